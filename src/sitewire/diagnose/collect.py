"""Facts about one live router in one SSH round trip: what apply, status and doctor start from.

The script (diagnose.script) runs over a connection here; diagnose.facts reads its sections.
"""

from __future__ import annotations

from collections.abc import Sequence

from sitewire.deploy.remote import Shell
from sitewire.diagnose.facts import DeviceFacts, FactsError, facts_from_sections
from sitewire.diagnose.parse import ScriptSection, UnexpectedOutput, parse_sections
from sitewire.diagnose.script import FACT_SECTIONS, build_script
from sitewire.spec.model import Platform


async def run_sections(
    session: Shell, sections: Sequence[tuple[str, str]]
) -> dict[str, ScriptSection]:
    """Run probes in one script over the session; each section's output, stderr and status.

    The script goes on stdin (Shell.script), never on the command line: dropbear drops an exec
    request over 9000 bytes, and a listener's script grows with its peers."""
    site = session.target.name
    result = await session.script(build_script(sections))
    try:
        found = parse_sections(result.stdout)
    except UnexpectedOutput as exc:
        raise FactsError(
            f"fact-gathering output is garbled: {exc.message}",
            where=site,
            fix="run it again; if this persists, report it to sitewire with the router's release",
        ) from None
    missing = [name for name, _ in sections if name not in found]
    if missing:
        reason = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
        raise FactsError(
            f"the fact-gathering script stopped before {missing[0]!r}: {reason[0]}",
            where=site,
            fix="check that `sh -s` works for the SSH user (a POSIX shell such as BusyBox ash)",
        )
    return found


async def gather_facts(session: Shell, platform: Platform) -> DeviceFacts:
    """Everything apply needs to know about one router, in one round trip."""
    sections = await run_sections(session, FACT_SECTIONS)
    return facts_from_sections(session.target.name, platform, sections)
