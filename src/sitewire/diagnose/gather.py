"""The live network for status and doctor: two round trips per site, every site at once.

The SSH edge of diagnose: each fan-out runs through `run_on_sites`, so one site's failure stays
that site's. A site that cannot be read is reported with why; a bug (an exception that is not a
SitewireError) is raised once every site's task has finished and every session is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from sitewire.deploy.remote import Credentials, Shell, Target
from sitewire.deploy.runner import Results, run_on_sites
from sitewire.deploy.ssh import connect
from sitewire.diagnose.collect import run_sections
from sitewire.diagnose.doctor import Live
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.lans import relayed
from sitewire.diagnose.probes import (
    Probes,
    failed,
    held,
    mirror_overlay,
    parse_probes,
    probe_sections,
    second_look,
)
from sitewire.diagnose.script import FACT_SECTIONS
from sitewire.diagnose.state import STATE_SECTIONS
from sitewire.diagnose.status import (
    READ_SECTIONS,
    NetworkStatus,
    Seen,
    build_status,
    parse_pings,
    ping_sections,
    read_sections,
)
from sitewire.errors import SitewireError
from sitewire.plan import Plan

T = TypeVar("T")
# What doctor does not read of the facts: the installed packages, free space and cron daemons
# are apply's preflight; opkg's listing alone is a third of the script's CPU on a router.
DOCTOR_FACTS = tuple(s for s in FACT_SECTIONS if s[0] not in ("packages", "space", "cron"))
Pings = dict[tuple[str, str], float | None]


@dataclass
class Gathered:
    live: Live
    unreachable: dict[str, str] = field(default_factory=dict)  # site -> why
    seconds: float = 0.0


def _why(results: Results[T]) -> dict[str, str]:
    """Why each failed site could not be read; a bug is raised, not taken for a site's fault."""
    for exc in results.failed.values():
        if not isinstance(exc, SitewireError):
            raise exc
    return {name: str(exc) for name, exc in results.failed.items()}


async def _close(sessions: Mapping[str, Shell]) -> None:
    """Close every session; one that fails to close changes nothing that was read over it."""
    await run_on_sites(sessions, lambda name: sessions[name].close())


async def gather_network(plan: Plan, targets: Mapping[str, Target], creds: Credentials) -> Gathered:
    """Every site's facts, then its probes; a site that cannot be read is reported."""
    started = time.monotonic()
    sessions: dict[str, Shell] = {}

    async def read(name: str) -> DeviceFacts:
        session = sessions[name] = await connect(targets[name], creds)
        sections = await run_sections(session, DOCTOR_FACTS)
        return facts_from_sections(name, plan.site(name).platform, sections)

    try:
        found = await run_on_sites(plan.site_names, read)
        unreachable = _why(found)
        facts = dict(found.ok)
        relays = relayed(plan, facts)  # once for every site

        async def probe(name: str) -> Probes:
            session = sessions[name]
            pinged, state = await asyncio.gather(
                run_sections(session, probe_sections(plan, name, {**facts}, relays=relays)),
                run_sections(session, STATE_SECTIONS),
            )
            probes = held(parse_probes(pinged["sw_probes"], state), facts.get(name))
            if again := failed(probes):
                retried = await run_sections(
                    session, probe_sections(plan, name, facts, again, relays)
                )
                probes = second_look(probes, parse_probes(retried["sw_probes"]))
            return probes

        probed = await run_on_sites(facts, probe)
        lost = _why(probed)
        mirror_overlay(plan, probed.ok, facts)
    finally:
        await _close(sessions)
    unreachable.update(lost)
    for name in lost:
        del facts[name]
    return Gathered(Live(plan, facts, probed.ok), unreachable, time.monotonic() - started)


async def gather_status(
    plan: Plan, targets: Mapping[str, Target], creds: Credentials
) -> NetworkStatus:
    """Every site's state, then the round-trip times it measures; a site that cannot be read
    is reported."""
    taken_at, started = time.time(), time.monotonic()
    sessions: dict[str, Shell] = {}

    async def read(name: str) -> Seen:
        session = sessions[name] = await connect(targets[name], creds)
        return read_sections(name, await run_sections(session, READ_SECTIONS))

    try:
        found = await run_on_sites(plan.site_names, read)
        errors = _why(found)
        seen = dict(found.ok)

        async def measure(name: str) -> Pings | None:
            sections = ping_sections(plan, name, seen)
            if not sections:
                return None
            answered = await run_sections(sessions[name], sections)
            return parse_pings(answered[sections[0][0]])

        measured = await run_on_sites(seen, measure)
        unmeasured = _why(measured)
    finally:
        await _close(sessions)
    errors.update({n: f"round-trip times not measured: {why}" for n, why in unmeasured.items()})
    pings = {name: p for name, p in measured.ok.items() if p is not None}
    return build_status(plan, seen, pings, errors, taken_at, time.monotonic() - started)
