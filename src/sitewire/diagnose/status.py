"""`sitewire status`: every site pair's path, handshake, endpoint, bytes and round-trip times.

Two round trips per site, all sites at once: a few of the collector's sections (the clock, the
WireGuard dump with keys hidden, links, routes, Tailscale prefs) plus `tailscale status --json`,
then pings across the tunnel, LAN to LAN and over the tailnet. Not the whole of
diagnose.script: status has no use for uci or packages, and on a busy router they are the slow
part. Each pair is measured from one of its two sites (alternating, so no router pings everyone),
and every ping of one router runs at the same time. Everything but `gather_status` is pure.
What one router said reaches another router's ping script only as a shell-quoted argument.
"""

from __future__ import annotations

import asyncio
import math
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

from sitewire import strict
from sitewire.deploy.ssh import Credentials, Session, Target, connect
from sitewire.diagnose.collect import run_sections
from sitewire.diagnose.facts import FactsError
from sitewire.diagnose.parse import (
    Link,
    Route,
    ScriptSection,
    UnexpectedOutput,
    WgDump,
    WgPeer,
    parse_ip_links,
    parse_number,
    parse_routes,
    parse_tailscale_prefs,
    parse_wg_dump,
)
from sitewire.diagnose.script import COMMANDS, FACT_SECTIONS
from sitewire.errors import InputError, SitewireError
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.strict import IPNetwork

T = TypeVar("T")

VERSION = 1
# WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing; a live link with
# keepalive (or traffic) renews its handshake every 2 minutes (REKEY_AFTER_TIME).
RECENT = 180


class Health(StrEnum):
    UP = "up"  # handshake within RECENT seconds (every hop, for a relayed pair)
    STALE = "stale"  # a handshake, but an old one
    DOWN = "down"  # no handshake, or no peer for the other site
    UNKNOWN = "unknown"  # a site could not be read


class Over(StrEnum):
    """What a round trip crossed."""

    WIREGUARD = "wireguard"  # router to router, overlay address to overlay address
    LAN = "lan"  # from the router's LAN address to the other router's LAN address
    TAILNET = "tailnet"  # to the other router's Tailscale address


@dataclass(frozen=True, slots=True)
class TailnetState:
    installed: bool
    state: str | None = None  # tailscaled's BackendState (Running, Stopped, NeedsLogin...)
    ip: str | None = None  # this node's Tailscale IPv4 address
    accept_routes: bool | None = None

    @property
    def running(self) -> bool:
        return self.state == "Running"


@dataclass(frozen=True, slots=True)
class SiteStatus:
    name: str
    lan: tuple[str, ...]
    overlay: str
    interface: str
    reachable: bool
    interface_up: bool | None = None
    tailnet: TailnetState | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A site pair. Bytes and endpoint only for a direct pair: a relay's peer carries many."""

    a: str
    b: str
    relay: str | None
    health: Health
    handshake_age: int | None = None  # seconds; for a relayed pair, its older hop's
    endpoint: str | None = None  # where the dialing side sends (or where the other came from)
    bytes_ab: int | None = None
    bytes_ba: int | None = None
    # Over -> milliseconds, or None when no reply came; a path not tried is absent.
    rtt_ms: dict[str, float | None] = field(default_factory=dict)
    measured_from: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    network: str
    taken_at: float  # UNIX time the gathering started
    seconds: float
    sites: tuple[SiteStatus, ...]
    links: tuple[LinkStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(s.reachable for s in self.sites) and all(
            link.health is Health.UP for link in self.links
        )

    def site(self, name: str) -> SiteStatus | None:
        return next((s for s in self.sites if s.name == name), None)

    def link(self, a: str, b: str) -> LinkStatus | None:
        return next((x for x in self.links if {x.a, x.b} == {a, b}), None)


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


# --- the probes ----------------------------------------------------------------------------------

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


# --- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Side:
    """One site's view of its direct peer."""

    peer: WgPeer | None
    age: int | None


def _side(sites: Mapping[str, SitePlan], seen: Mapping[str, Seen], me: str, other: str) -> _Side:
    mine = seen[me]
    iface = mine.wg.interface(sites[me].interface)
    theirs = seen.get(other)
    live = theirs.wg.interface(sites[other].interface) if theirs is not None else None
    # The key the other site really has: a wrong key on this side shows as no handshake.
    key = (live.public_key if live is not None else None) or sites[me].peer(other).public_key
    peer = iface.peer(key) if iface is not None and key else None
    if peer is None or peer.latest_handshake is None:
        return _Side(peer, None)
    clock = mine.clock if mine.clock is not None else int(time.time())
    return _Side(peer, max(0, clock - peer.latest_handshake))


def _health(age: int | None) -> Health:
    if age is None:
        return Health.DOWN
    return Health.UP if age <= RECENT else Health.STALE


def _direct(
    sites: Mapping[str, SitePlan],
    seen: Mapping[str, Seen],
    dialers: Sequence[str],
    a: str,
    b: str,
) -> LinkStatus:
    sides = {s: _side(sites, seen, s, o) for s, o in ((a, b), (b, a)) if s in seen}
    if not sides:
        return LinkStatus(a, b, None, Health.UNKNOWN)
    ages = [s.age for s in sides.values() if s.age is not None]
    age = min(ages) if ages else None
    # The endpoint a dialer sends to; else where the other side was last heard from.
    endpoint = next(
        (
            str(side.peer.endpoint)
            for name in (*dialers, a, b)
            if (side := sides.get(name)) and side.peer and side.peer.endpoint
        ),
        None,
    )
    pa = sides[a].peer if a in sides else None
    pb = sides[b].peer if b in sides else None
    return LinkStatus(
        a,
        b,
        None,
        _health(age),
        handshake_age=age,
        endpoint=endpoint,
        bytes_ab=pa.tx_bytes if pa else (pb.rx_bytes if pb else None),
        bytes_ba=pa.rx_bytes if pa else (pb.tx_bytes if pb else None),
    )


_WORST = (Health.UNKNOWN, Health.DOWN, Health.STALE, Health.UP)


def _relayed(a: str, b: str, relay: str, hops: Sequence[LinkStatus]) -> LinkStatus:
    health = min((h.health for h in hops), key=_WORST.index)
    ages = [h.handshake_age for h in hops]
    age = None if any(x is None for x in ages) else max(x for x in ages if x is not None)
    return LinkStatus(a, b, relay, health, handshake_age=age)


def build_status(
    plan: Plan,
    seen: Mapping[str, Seen],
    pings: Mapping[str, Mapping[tuple[str, str], float | None]],
    errors: Mapping[str, str],
    taken_at: float,
    seconds: float,
) -> NetworkStatus:
    """Pure: the status table's values from what each site answered."""
    plans = {site.name: site for site in plan.sites()}
    dialers = {frozenset((x.a, x.b)): x.dialers for x in plan.links()}
    sites = []
    for site in plans.values():
        got = seen.get(site.name)
        link = next((x for x in got.links if x.name == site.interface), None) if got else None
        sites.append(
            SiteStatus(
                site.name,
                tuple(str(p) for p in site.lan),
                str(site.addresses[0].ip),
                site.interface,
                reachable=got is not None,
                interface_up=(link is not None and link.up) if got else None,
                tailnet=got.tailnet if got else None,
                error=errors.get(site.name),
            )
        )
    direct: dict[tuple[str, str], LinkStatus] = {}
    links = []
    for a, b, relay in pairs(plan):
        if relay is None:
            status = direct[(a, b)] = _direct(plans, seen, dialers[frozenset((a, b))], a, b)
        else:
            status = _relayed(a, b, relay, [direct[hop] for hop in _hops(plan, a, b)])
        by = prober(plan, a, b, seen)
        if by is not None:
            other = b if by == a else a
            measured = pings.get(by, {})
            rtt = {str(p): measured[(other, p)] for p in Over if (other, p) in measured}
            status = replace(status, rtt_ms=rtt, measured_from=by)
        links.append(status)
    return NetworkStatus(plan.name, taken_at, seconds, tuple(sites), tuple(links))


def _hops(plan: Plan, a: str, b: str) -> list[tuple[str, str]]:
    """The direct pairs a relayed pair rides on, each in file order."""
    order = plan.site_names.index
    path = plan.path(a, b)
    return [(x, y) if order(x) < order(y) else (y, x) for x, y in pairwise(path)]


# --- gathering (the only side effects) -----------------------------------------------------------


async def gather_status(
    plan: Plan, targets: Mapping[str, Target], creds: Credentials
) -> NetworkStatus:
    """Two round trips per site, all sites at once; a site that cannot be read is reported."""
    taken_at, started = time.time(), time.monotonic()
    sessions: dict[str, Session] = {}
    seen: dict[str, Seen] = {}
    errors: dict[str, str] = {}
    pings: dict[str, dict[tuple[str, str], float | None]] = {}

    async def read(name: str) -> None:
        try:
            session = sessions[name] = await connect(targets[name], creds)
            seen[name] = read_sections(name, await run_sections(session, READ_SECTIONS))
        except SitewireError as exc:
            errors[name] = str(exc)

    async def measure(name: str) -> None:
        sections = ping_sections(plan, name, seen)
        if not sections:
            return
        try:
            found = await run_sections(sessions[name], sections)
            pings[name] = parse_pings(found[sections[0][0]])
        except SitewireError as exc:
            errors[name] = f"round-trip times not measured: {exc}"

    try:
        await asyncio.gather(*(read(n) for n in plan.site_names))
        await asyncio.gather(*(measure(n) for n in plan.site_names if n in seen))
    finally:
        await asyncio.gather(*(s.close() for s in sessions.values()), return_exceptions=True)
    return build_status(plan, seen, pings, errors, taken_at, time.monotonic() - started)


# --- for people ---------------------------------------------------------------------------------


def format_age(age: int | None, health: Health) -> str:
    if health is Health.UNKNOWN:
        return "?"
    if age is None:
        return "never"
    if age < 60:
        return f"{age} s ago"
    if age < 3600:
        return f"{age // 60} m {age % 60} s ago"
    return f"{age // 3600} h {age % 3600 // 60} m ago"


# --- JSON, and where the last status is kept -----------------------------------------------------


def status_path(lock_path: Path) -> Path:
    """network.lock -> network.status.json: the last status, beside the lock it describes."""
    return lock_path.with_name(f"{lock_path.stem}.status.json")


def status_json(status: NetworkStatus) -> dict[str, object]:
    """What `--json` prints and `graph` reads: the dataclasses' own fields, versioned."""
    data = asdict(status)
    data.update(taken_at=round(status.taken_at, 3), seconds=round(status.seconds, 2))
    return {"version": VERSION, **data, "healthy": status.healthy}


def status_from_json(text: str, where: str) -> NetworkStatus:
    """The saved status back as values; a file from another version is refused with the fix."""
    fix = "run `sitewire status` again to replace it"
    try:
        data = strict.loads_json(text)
        if data.get("version") != VERSION:
            raise InputError(
                f"status version {data.get('version')!r}, not {VERSION}", where=where, fix=fix
            )
        sites = tuple(
            SiteStatus(
                **{
                    **s,
                    "lan": tuple(s["lan"]),
                    "tailnet": s["tailnet"] and TailnetState(**s["tailnet"]),
                }
            )
            for s in data["sites"]
        )
        links = tuple(LinkStatus(**{**x, "health": Health(x["health"])}) for x in data["links"])
        return NetworkStatus(
            str(data["network"]), float(data["taken_at"]), float(data["seconds"]), sites, links
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a sitewire status file: {exc}", where=where, fix=fix) from None
