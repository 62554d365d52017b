"""What doctor asks each router beyond its facts: routes a LAN host's packet takes, pings
across the tunnel with and without DF, names resolved, addresses held. Shell out, values in.

Every value in a probe script is shell-quoted, even those parse.py has already read as plain
addresses: a router's facts end up in another router's script (issue 9).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sitewire import strict
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.lans import Relayed, lan_address, lan_neighbour, lan_sources, relayed
from sitewire.diagnose.parse import ScriptSection, UnexpectedOutput, parse_number
from sitewire.diagnose.parse.boot import Boot, parse_boot
from sitewire.diagnose.parse.nft import Ruleset, parse_nft_json
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.strict import IPAddress, IPNetwork

Key = tuple[str, IPNetwork]  # a site and one of its LAN prefixes
K = TypeVar("K")
V = TypeVar("V", bool, bool | None)


@dataclass(frozen=True, slots=True)
class Target:
    """Another site as seen from one router: where its LAN and overlay answer. `lan_prefix`
    is the first of its LAN prefixes of an IP version this router has a LAN address in (the
    one the overlay, host and router pings go with); `more` holds the others, each traced on
    its own (both families, every LAN)."""

    site: str
    overlay: str
    lan_address: str | None  # the remote router's own address in lan_prefix, if known
    lan_prefix: IPNetwork
    host: str | None = None  # a host in its LAN its router lately heard from
    more: tuple[tuple[IPNetwork, str | None], ...] = ()  # (prefix, its router's address there)


@dataclass
class Probes:
    """What the second round trip saw on one router."""

    addresses: tuple[str, ...] = ()  # every address the router holds (`ip -o addr`)
    # (site, one of its LAN prefixes) -> `ip route get <there> from <LAN host> iif <lan>`
    route_lan: dict[Key, str] = field(default_factory=dict)
    route_router: dict[Key, str] = field(default_factory=dict)  # -> `ip route get <there>`
    ping_router: dict[Key, bool] = field(default_factory=dict)  # from the router itself
    # from the router's LAN address to the other router's (when no host in its LAN is known)
    ping_lan: dict[Key, bool] = field(default_factory=dict)
    # as a relay: (source site, prefix) -> `ip route get <there> from <its host> iif <wg>`
    route_relay: dict[Key, str] = field(default_factory=dict)
    route_ep: dict[str, str] = field(default_factory=dict)  # endpoint IP -> `ip route get` it
    small: dict[str, bool] = field(default_factory=dict)  # overlay ping, 56 bytes
    large: dict[str, bool | None] = field(default_factory=dict)  # DF ping at the MTU; None: no -M
    fits: dict[str, int] = field(default_factory=dict)  # site -> largest DF packet that crossed
    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> addresses
    # IP version -> (the LAN host address the route checks of that family used, its device)
    lan: dict[int, tuple[str, str]] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # address -> the device holding it
    ping_host: dict[str, tuple[str, bool]] = field(default_factory=dict)  # site -> (host, ok)
    ping_local: dict[str, bool] = field(default_factory=dict)  # own LAN host -> answered
    ruleset: Ruleset | None = None  # the loaded nftables ruleset; None where nft is not
    boot: Boot | None = None  # what runs at boot and from cron; None where it was not read

    def source(self, version: int) -> tuple[str, str] | None:
        """(the LAN host address, its device) the route checks of this IP version used."""
        return self.lan.get(version)


def targets(
    plan: Plan,
    site: str,
    facts: Mapping[str, DeviceFacts | None],
    versions: Collection[int] = (4, 6),
) -> list[Target]:
    """The other sites, each with its LAN prefixes; `versions`: the IP versions `site` has a
    LAN address in (the first prefix of one of them leads)."""
    out = []
    for other in plan.sites():
        if other.name == site or not other.lan:
            continue
        lead = next((p for p in other.lan if p.version in versions), other.lan[0])
        found = lan_address(facts.get(other.name), lead)
        address = str(found[0]) if found else None
        host = lan_neighbour(facts.get(other.name), lead)
        more = tuple(
            (p, str(a[0]) if (a := lan_address(facts.get(other.name), p)) else None)
            for p in other.lan
            if p != lead
        )
        out.append(Target(other.name, str(other.addresses[0].ip), address, lead, host, more))
    return out


def running_mtu(facts: DeviceFacts | None, site: SitePlan) -> int:
    """The WireGuard device's MTU as it runs (the plan's when it does not run): the probes
    test the path with what the device really sends."""
    links = facts.links if facts is not None else ()
    return next((x.mtu for x in links if x.name == site.interface), site.mtu)


def probe_sections(
    plan: Plan,
    site: str,
    facts: Mapping[str, DeviceFacts | None],
    only: Collection[str] | None = None,
    relays: Mapping[str, Sequence[Relayed]] | None = None,
) -> list[tuple[str, str]]:
    """Shell sections for diagnose.collect.run_sections: each prints `key value` lines.
    `only`: probe just these sites (a second look at the ones whose pings failed).
    `relays`: lans.relayed of the network, where the caller made it once for every site."""
    q = shlex.quote
    me = plan.site(site)
    # The source of each IP version's route checks and LAN pings.
    local = lan_sources(plan, site, facts)
    own = facts.get(site)
    # the addresses it holds come with the facts (`addrs`); asked here only where they did not
    lines = [] if own is not None and own.addresses else [_ADDRESSES]
    for host, dev, _, _ in local.values():
        lines.append(f"echo lan {q(host)} {q(dev)}")
    first = next(iter(local.values()), None)
    if first is not None and (mine := lan_neighbour(facts.get(site), first[3])) is not None:
        lines.append(
            f"{{ ping -c 2 -i 0.2 -W 2 {q(mine)} >/dev/null 2>&1 && echo ping_local "
            f"{q(mine)} ok || echo ping_local {q(mine)} fail; }} &"
        )
    # iputils ping sets DF with -M do; BusyBox ping has no -M (then: unknown).
    lines.append(f"wgdev={q(me.interface)}")
    lines.append("df=0; ping -c 1 -M do -s 64 -W 1 127.0.0.1 >/dev/null 2>&1 && df=1")
    lines.append(_probe_function(running_mtu(facts.get(site), me)))

    def where(prefix: IPNetwork, address: str | None) -> tuple[str, bool]:
        """PREFIX SRC DEV DST PING LANSRC as `rt`, `more` and `probe` take them ("-": none),
        and whether the LAN-address pings go."""
        mine = local.get(prefix.version)
        src, dev, lansrc = (mine[0], mine[1], str(mine[2])) if mine else ("-",) * 3
        dst = address or str(prefix.network_address + 1)
        ping = address is not None and mine is not None
        return " ".join(q(w) for w in (str(prefix), src, dev, dst, str(int(ping)), lansrc)), ping

    for t in targets(plan, site, facts, local):
        if only is not None and t.site not in only:
            continue
        lead, ping = where(t.lan_prefix, t.lan_address)
        host = f" {q(t.host)}" if t.host and ping else ""
        overlay = t.overlay if overlay_pinger(plan, site, t.site, facts) else "-"
        lines.append(f"probe {q(t.site)} {lead} {q(overlay)}{host} &")
        lines += [f"more {q(t.site)} {where(p, a)[0]} &" for p, a in t.more]
    # As a relay: its route for each forwarded LAN packet, back into the tunnel (not again on
    # the second look, which only pings again).
    if only is None:
        lines += _relay_lines((relays if relays is not None else relayed(plan, facts)), site)
    lines += _endpoint_routes(facts.get(site), me)
    lines += _resolve_lines(me)
    return [("sw_probes", "\n".join(lines) + "\nwait\nreturn 0")]


def _resolve_lines(me: SitePlan) -> list[str]:
    """Each name the site dials, as the router resolves it now."""
    out = []
    for peer in me.peers:
        if peer.dial is not None and peer.dial.endpoint.kind == "name":
            name = shlex.quote(peer.dial.endpoint.host)
            out.append(
                f"for a in $( (getent ahosts {name} 2>/dev/null || nslookup {name} 2>/dev/null) "
                "| awk '/^Address/ { print $NF; next } NF >= 2 && $2 == \"STREAM\" { print $1 }'"
                f"); do echo resolved {name} $a; done"
            )
    return out


# `rt`, `lp`, `more` and `rr` (see _probe_function).
_ROUTES = (
    # `ip route get` prints a second line (`cache`): one echo writes both at once, and
    # the reader skips it; no `head`, one process fewer per route.
    "rt() {\n"
    'rl=; [ "$3" = - ] || { rl=$(ip route get "$5" from "$3" iif "$4" 2>&1); '
    'echo "route_lan $1 $2 $rl"; }\n'
    # The router's own route, where a LAN host's packet does not leave by the tunnel
    # (the evidence of no-route and tailscale-captures-route).
    'case $rl in *" dev $wgdev "*) ;; '
    '*) echo "route_router $1 $2 $(ip route get "$5" 2>&1)" ;; esac\n'
    # From the router itself (its own source address) to the other router's LAN address,
    # where a LAN host's packet is taken away from WireGuard (Tailscale's table 52): it
    # tells "works from the router, fails from the LAN".
    'case $rl in *tailscale0* | *" table 52"*) [ "$6" = 1 ] && { pp "$5" '
    '&& echo "ping_router $1 $2 ok" || echo "ping_router $1 $2 fail"; } & ;; esac\n'
    "}\n"
    # From this router's LAN address to the other router's (no host there known).
    'lp() { pp -I "$7" "$5" && echo "ping_lan $1 $2 ok" || echo "ping_lan $1 $2 fail"; }\n'
    'more() { rt "$@"; [ "$6" = 1 ] && lp "$@"; wait; }\n'
    # A relay's route for a forwarded packet from a host of SITE (SRC) to DST in PREFIX.
    'rr() { echo "route_relay $1 $2 $(ip route get "$4" from "$3" iif "$wgdev" 2>&1)"; }\n'
)


_ADDRESSES = 'ip -o addr show | awk \'{ split($4, a, "/"); print "addr", a[1], $2 }\''


def _relay_lines(relays: Mapping[str, Sequence[Relayed]], site: str) -> list[str]:
    q = shlex.quote
    return [
        f"rr {q(src)} {q(str(prefix))} {q(host)} {q(target)}"
        for src, prefix, host, target in relays.get(site, [])
    ]


def _probe_function(mtu: int) -> str:
    """`rt SITE PREFIX SRC DEV DST`: the route a LAN host's packet (from SRC, arriving on
    DEV; "-": this router has no LAN of that family) takes to DST in PREFIX.
    `more SITE PREFIX SRC DEV DST PING LANSRC`: that, and where PING is 1 a ping to DST (the
    other router's address in PREFIX) from LANSRC (this router's own address there).
    `rr SITE PREFIX SRC DST`: as a relay, the route of a packet from SITE's host SRC to DST
    in PREFIX coming in from the tunnel.
    `probe SITE PREFIX SRC DEV DST PING LANSRC OVERLAY [HOST]`: the same for the other site's
    lead prefix, then its overlay address OVERLAY pinged ("-": the other end pings it) with
    and without DF, and HOST (a host in its LAN) pinged from LANSRC.

    Functions, then one short background call per target and prefix: the pings to all sites
    overlap, so a site's probes take as long as its slowest target, not their sum. Each
    `echo` is one short write."""
    size = mtu - 28  # IPv4 header 20 + ICMP 8: a packet of exactly the interface MTU
    # Smaller DF sizes tried when the full size fails but small pings pass: the largest
    # that crosses is the MTU to set.
    smaller = " ".join(str(m - 28) for m in range(mtu - 20, 1279, -20)) or "''"
    return (
        # One ping, and a second only when the first got no reply: a lost packet is not a
        # failure, and a path that answers costs one round trip, not two and the spacing.
        'pp() { ping -c 1 -W 1 "$@" >/dev/null 2>&1 || ping -c 1 -W 2 "$@" >/dev/null 2>&1; }\n'
        + _ROUTES
        + "probe() {\n"
        'rt "$@"\n'
        # From this router's LAN address to a host in the other LAN, beside the rest: what
        # LAN hosts' traffic meets past the other router; with no host known, to the other
        # router's LAN address.
        '[ -n "$9" ] && { pp -I "$7" "$9" '
        '&& echo "ping_host $1 $9 ok" || echo "ping_host $1 $9 fail"; } &\n'
        '[ "$6" = 1 ] && [ -z "$9" ] && lp "$@" &\n'
        # The overlay pings, from one end of each pair ("-": the other end pings; a ping is a
        # round trip, and doctor copies the answer to this end, see mirror_overlay).
        'if [ "$8" = - ]; then up=0\n'
        'elif pp "$8"; then echo "small $1 ok"; up=1; else echo "small $1 fail"; up=0; fi\n'
        'if [ "$up" = 0 ]; then :\n'  # nothing crosses, or not pinged here: no MTU
        'elif [ "$df" = 1 ]; then\n'
        f'if pp -M do -s {size} "$8"; then '
        'echo "large $1 ok"; else echo "large $1 fail"\n'
        f'for s in {smaller}; do [ -n "$s" ] || break; '
        'ping -c 1 -W 1 -M do -s "$s" "$8" >/dev/null 2>&1 '
        '&& { echo "fits $1 $((s + 28))"; break; }; done\n'
        "fi\n"
        'else echo "large $1 unknown"; fi\n'
        "wait\n"
        "}"
    )


def overlay_pinger(
    plan: Plan, site: str, other: str, facts: Mapping[str, DeviceFacts | None]
) -> bool:
    """Whether `site` pings `other`'s overlay address: the one first in the plan, unless the
    other will not probe `site` (it was not read, or `site` has no LAN for it to target),
    or the two run different MTUs."""
    order = plan.site_names
    if facts.get(other) is None or not plan.site(site).lan:
        return True
    if running_mtu(facts.get(site), plan.site(site)) != running_mtu(
        facts.get(other), plan.site(other)
    ):
        return True  # each end tries its own full size
    return order.index(site) < order.index(other)


def mirror_overlay(
    plan: Plan, probes: Mapping[str, Probes], facts: Mapping[str, DeviceFacts | None]
) -> None:
    """Give each site the overlay answers its pair's other end measured: a ping crosses the
    tunnel both ways, so one per pair serves both ends. The full-size answers (large, fits)
    only where both ends run the same MTU: else this end's own size was not tried."""
    for site, seen in probes.items():
        mtu = running_mtu(facts.get(site), plan.site(site))
        for other, theirs in probes.items():
            if other == site or site not in theirs.small or other in seen.small:
                continue
            seen.small[other] = theirs.small[site]
            if running_mtu(facts.get(other), plan.site(other)) != mtu:
                continue
            if site in theirs.large:
                seen.large[other] = theirs.large[site]
            if site in theirs.fits:
                seen.fits[other] = theirs.fits[site]


def _endpoint_routes(facts: DeviceFacts | None, me: SitePlan) -> list[str]:
    """The route WireGuard's own packets take to each running peer's endpoint (with the
    interface's fwmark, as the kernel routes them): the WAN, not the tunnel or tailscale0."""
    iface = facts.wg.interface(me.interface) if facts is not None else None
    if iface is None:
        return []
    mark = f" mark {iface.fwmark}" if iface.fwmark else ""
    found = sorted({str(p.endpoint.ip) for p in iface.peers if p.endpoint is not None})
    return [
        f'echo "route_ep {shlex.quote(ip)} $(ip route get {shlex.quote(ip)}{mark} 2>&1)"'
        for ip in found
    ]


def failed(probes: Probes) -> set[str]:
    """The sites some ping to failed: doctor looks at them again before it says so."""
    out = {site for site, ok in probes.small.items() if not ok}
    pings = (*probes.ping_router.items(), *probes.ping_lan.items())
    out |= {site for (site, _), ok in pings if not ok}
    return out | {site for site, (_, ok) in probes.ping_host.items() if not ok}


def _passed(seen: dict[K, V], retried: Mapping[K, V], yes: V) -> None:
    """Each ping that failed in `seen` and passed in `retried` counts as passed."""
    for key, ok in retried.items():
        if ok and seen.get(key) is not True:
            seen[key] = yes


def second_look(first: Probes, again: Probes) -> Probes:
    """The first probes, with each ping that failed there taken as passed when it passed the
    second time: a reply lost once on a busy path is not a failure. Only failures are
    retried, so a healthy network costs one round."""
    _passed(first.small, again.small, True)
    _passed(first.large, again.large, True)
    _passed(first.ping_router, again.ping_router, True)
    _passed(first.ping_lan, again.ping_lan, True)
    for site, (host, ok) in again.ping_host.items():
        if ok:
            first.ping_host[site] = (host, True)
    for site, fits in again.fits.items():
        first.fits.setdefault(site, fits)
    return first


def held(probes: Probes, facts: DeviceFacts | None) -> Probes:
    """The probes, with the addresses the router holds taken from its facts where the probe
    script did not ask (probe_sections)."""
    if facts is not None and facts.addresses and not probes.addresses:
        probes.addresses = tuple(str(a.interface.ip) for a in facts.addresses)
        probes.devices = {str(a.interface.ip): a.dev for a in facts.addresses}
    return probes


def parse_probes(
    section: ScriptSection, sections: Mapping[str, ScriptSection] | None = None
) -> Probes:
    """The probes' `key value` lines; a line that does not read as one is skipped, and so is an
    address with anything in it an address is not written with. `sections` holds the nft
    listings, where they were asked for."""
    probes = Probes(
        ruleset=_ruleset(sections or {}), boot=parse_boot((sections or {}).get("sw_boot"))
    )
    addresses: list[str] = []
    for line in section.stdout.splitlines():
        words = line.split()
        match words:
            case ["addr", address, *device] if _plain(address):
                addresses.append(address)
                if device and _device(device[0]):
                    probes.devices[address] = device[0]
            case ["lan", host, device] if (source := _address(host)) and _device(device):
                probes.lan.setdefault(source.version, (host, device))
            case ["route_lan", site, prefix, *rest] if (net := _network(prefix)) is not None:
                probes.route_lan[site, net] = " ".join(rest)
            case ["route_ep", address, *rest] if _plain(address):
                probes.route_ep[address] = " ".join(rest)
            case ["route_relay", site, prefix, *rest] if (net := _network(prefix)) is not None:
                probes.route_relay[site, net] = " ".join(rest)
            case ["route_router", site, prefix, *rest] if (net := _network(prefix)) is not None:
                probes.route_router[site, net] = " ".join(rest)
            case ["ping_host", site, host, state] if _plain(host):
                probes.ping_host[site] = (host, state == "ok")
            case ["ping_local", host, state] if _plain(host):
                probes.ping_local[host] = state == "ok"
            case ["ping_lan", site, prefix, state] if (net := _network(prefix)) is not None:
                probes.ping_lan[site, net] = state == "ok"
            case ["ping_router", site, prefix, state] if (net := _network(prefix)) is not None:
                probes.ping_router[site, net] = state == "ok"
            case ["small", site, state]:
                probes.small[site] = state == "ok"
            case ["large", site, state]:
                probes.large[site] = None if state == "unknown" else state == "ok"
            case ["fits", site, size] if (fits := parse_number(size)) is not None:
                probes.fits[site] = fits
            case ["resolved", name, address] if _plain(address):
                probes.resolved[name] = (*probes.resolved.get(name, ()), address)
    probes.addresses = tuple(addresses)
    return probes


def _ruleset(sections: Mapping[str, ScriptSection]) -> Ruleset | None:
    """The loaded ruleset; None where nft is missing, failed, or printed what is not its JSON
    (doctor then says it could not read the firewall, and names no nft cause)."""
    data, text = sections.get("sw_nft_json"), sections.get("sw_nft_text")
    if data is None or not data.ok:
        return None
    try:
        return parse_nft_json(data.stdout, text.stdout if text is not None and text.ok else "")
    except UnexpectedOutput:
        return None


def _device(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.@-]{1,15}", text) is not None


def _address(text: str) -> IPAddress | None:
    try:
        return strict.address(text)
    except ValueError:
        return None


def _network(text: str) -> IPNetwork | None:
    try:
        return strict.network(text)
    except ValueError:
        return None


def _plain(text: str) -> bool:
    return _address(text) is not None
