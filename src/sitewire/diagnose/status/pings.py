"""The second round trip: which site of each pair pings the other, and the times it prints."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence

from sitewire import strict
from sitewire.diagnose.parse import ScriptSection
from sitewire.diagnose.status.model import Over
from sitewire.diagnose.status.seen import Seen
from sitewire.plan import Plan

_PING = (
    "m() {\n"
    "\t_k=$1; shift\n"
    '\t_l=$(ping -q -c 3 -i 0.2 -w 2 "$@" 2>/dev/null | grep /avg/)\n'
    '\techo "rtt $_k ${_l:-no reply}"\n'
    "}\n"
)


def pairs(plan: Plan) -> list[tuple[str, str, str | None]]:
    """Every site pair in file order, with the relay between them (None: they peer directly)."""
    names = plan.site_names
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            path = plan.path(a, b)
            out.append((a, b, path[1] if len(path) == 3 else None))
    return out


def prober(
    plan: Plan, a: str, b: str, readable: Sequence[str] | Mapping[str, object]
) -> str | None:
    """Which of the pair pings the other: alternating by position, else whichever was read."""
    order = plan.site_names
    first, second = (a, b) if (order.index(a) + order.index(b)) % 2 == 0 else (b, a)
    return next((s for s in (first, second) if s in readable), None)


def ping_sections(plan: Plan, site: str, seen: Mapping[str, Seen]) -> list[tuple[str, str]]:
    """The second round trip of `site`: its pings, all at once; [] when it measures nothing."""
    q = shlex.quote
    lines = []
    mine = seen[site].lan_address(plan.site(site).lan)
    here = seen[site].tailnet
    for a, b, _ in pairs(plan):
        if site not in (a, b) or prober(plan, a, b, seen) != site:
            continue
        other = b if site == a else a
        overlay = str(plan.site(other).addresses[0].ip)
        lines.append(f"m {q(f'{other} {Over.WIREGUARD}')} {q(overlay)} &")
        there = seen.get(other)
        if there is None:
            continue
        theirs = there.lan_address(plan.site(other).lan)
        if mine is not None and theirs is not None:
            lines.append(f"m {q(f'{other} {Over.LAN}')} -I {q(mine)} {q(theirs)} &")
        if here.running and there.tailnet.running and there.tailnet.ip:
            lines.append(f"m {q(f'{other} {Over.TAILNET}')} {q(there.tailnet.ip)} &")
    if not lines:
        return []
    return [("sw_rtt", _PING + "\n".join(lines) + "\nwait\nreturn 0")]


_AVERAGE = re.compile(r"=\s*[0-9.]+/([0-9.]+)/")


def parse_pings(section: ScriptSection) -> dict[tuple[str, str], float | None]:
    """`rtt <site> <path> <ping's summary line | no reply>` -> (site, path): average ms."""
    out: dict[tuple[str, str], float | None] = {}
    for line in section.stdout.splitlines():
        words = line.split(maxsplit=3)
        if len(words) < 4 or words[0] != "rtt":
            continue
        # iputils: "rtt min/avg/max/mdev = 0.036/0.048/0.063/0.010 ms";
        # BusyBox: "round-trip min/avg/max = 0.050/0.064/0.082 ms".
        found = _AVERAGE.search(words[3])
        average = strict.decimal(found[1]) if found else None
        out[(words[1], words[2])] = (
            average if average is not None and math.isfinite(average) else None
        )
    return out
