"""What one router told status: the first round trip's sections, read as values."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sitewire import strict
from sitewire.diagnose.facts import FactsError
from sitewire.diagnose.parse import (
    Link,
    Route,
    ScriptSection,
    UnexpectedOutput,
    WgDump,
    parse_ip_links,
    parse_number,
    parse_routes,
    parse_tailscale_prefs,
    parse_wg_dump,
)
from sitewire.diagnose.script import COMMANDS, FACT_SECTIONS
from sitewire.diagnose.status.model import TailnetState
from sitewire.strict import IPNetwork

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Seen:
    """What one router told status."""

    clock: int | None  # the router's UNIX time, for handshake ages
    wg: WgDump
    routes: tuple[Route, ...]
    links: tuple[Link, ...]
    tailnet: TailnetState

    def lan_address(self, prefixes: Sequence[IPNetwork]) -> str | None:
        """The router's own address in the first of its LANs with a connected route."""
        for prefix in prefixes:
            for route in self.routes:
                if route.dest == prefix and route.src is not None:
                    return str(route.src)
        return None


_NEEDED = ("clock", "wg", "routes4", "routes6", "links", "tailscale")
READ_SECTIONS = (
    *((name, body) for name, body in FACT_SECTIONS if name in _NEEDED),
    (
        "ts_status",
        "has tailscale || return 127\n"
        "_t=; has timeout && _t='timeout 5'\n"
        # --peers=false keeps the answer small on a big tailnet; older clients lack the flag.
        "$_t tailscale status --json --peers=false 2>/dev/null || $_t tailscale status --json",
    ),
)


def read_sections(site: str, sections: Mapping[str, ScriptSection]) -> Seen:
    """Pure: READ_SECTIONS' output as values, or a FactsError naming the command."""

    def parse(name: str, parser: Callable[[str], T]) -> T:
        section = sections[name]
        try:
            if not section.ok:
                raise UnexpectedOutput(section.error)
            return parser(section.stdout)
        except UnexpectedOutput as exc:
            raise FactsError(
                f"`{COMMANDS.get(name, name)}`: {exc}",
                where=site,
                fix="run it on the router; if it looks normal, report it to sitewire",
            ) from None

    wg = sections["wg"]
    v6 = sections["routes6"].ok  # a router without IPv6 says so on stderr
    return Seen(
        parse_number(sections["clock"].stdout.strip()),
        # 127: no wg command, so no WireGuard interface either.
        parse("wg", parse_wg_dump) if wg.rc != 127 else WgDump(()),
        (
            *parse("routes4", lambda text: parse_routes(text, 4)),
            *(parse("routes6", lambda text: parse_routes(text, 6)) if v6 else ()),
        ),
        tuple(parse("links", parse_ip_links)),
        parse_tailnet(sections["tailscale"], sections.get("ts_status")),
    )


def parse_tailnet(prefs: ScriptSection, status: ScriptSection | None) -> TailnetState:
    """`tailscale debug prefs` and `tailscale status --json`: state, address, accept-routes."""
    if prefs.rc == 127:
        return TailnetState(installed=False)
    try:
        accept = parse_tailscale_prefs(prefs.stdout).route_all if prefs.ok else None
    except UnexpectedOutput:
        accept = None  # status shows it unknown; doctor names the cause
    try:
        data = strict.loads_json(status.stdout) if status is not None and status.ok else None
    except ValueError:  # also nesting past strict.MAX_DEPTH
        data = None
    if not isinstance(data, dict):
        return TailnetState(installed=True, accept_routes=accept)
    me = data.get("Self")
    ips = me.get("TailscaleIPs") if isinstance(me, dict) else None
    ips = ips if isinstance(ips, list) else data.get("TailscaleIPs")
    v4 = [ip for ip in ips if _ipv4(ip)] if isinstance(ips, list) else []
    state = data.get("BackendState")
    return TailnetState(
        installed=True,
        state=state if isinstance(state, str) else None,
        ip=v4[0] if v4 else None,
        accept_routes=accept,
    )


def _ipv4(value: object) -> bool:
    """Only an address goes into another router's ping command line."""
    try:
        return strict.address(value).version == 4
    except ValueError:
        return False
