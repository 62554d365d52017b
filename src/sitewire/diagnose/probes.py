"""What doctor asks each router beyond its facts: routes a LAN host's packet takes, pings
across the tunnel with and without DF, names resolved, addresses held. Shell out, values in.

Every value in a probe script is shell-quoted, even those parse.py has already read as plain
addresses: a router's facts end up in another router's script (issue 9).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sitewire import strict
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import ScriptSection, UnexpectedOutput, parse_number
from sitewire.diagnose.parse.boot import Boot, parse_boot
from sitewire.diagnose.parse.nft import Ruleset, parse_nft_json
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.strict import IPAddress, IPNetwork

# The files that run at boot or from cron, on OpenWrt and on Linux; sitewire's own are skipped.
_FILES = (
    "/etc/rc.local /etc/crontabs/root /etc/crontab /etc/cron.d/* "
    "/var/spool/cron/crontabs/root /etc/hotplug.d/iface/* /etc/network/if-up.d/*"
)
_WATCHED = (
    r"tailscale[ \t]+(up|set)|wg[ \t]+(set|setconf|syncconf|addconf)|wg-quick[ \t]+(up|down)"
    r"|(^|[;&|( \t])(ifup|ifdown)[ \t]"
)
_B64 = "[A-Za-z0-9+\\/]"
# The awk program that prints each watched line, with what could be a secret hidden on the
# router: the word after a key-like name (any case; `=`, space or tab), a Tailscale auth key,
# and anything written like a WireGuard key (43 base64 characters and `=`), wherever it is.
# (Written out, not as {42}: not every awk reads interval expressions.)
HIDE_AWK = (
    "/^[ \\t]*#/ { next } /" + _WATCHED + '/ { s = $0; l = ""\n'
    "while (match(tolower(s), /(auth-?key|key|secret|passw(or)?d|token)[= \\t]+[^ \\t]+/)) "
    '{ l = l substr(s, 1, RSTART - 1) "(hidden)"; s = substr(s, RSTART + RLENGTH) }\n'
    'l = l s; gsub(/tskey-[A-Za-z0-9_-]+/, "(hidden)", l)\n'
    f'gsub(/{_B64 * 43}=/, "(hidden)", l); print "line", f, NR, l }}'
)
BOOT = (
    "sw_boot",
    f'for _f in {_FILES}; do\n[ -f "$_f" ] || continue\n'
    "case $_f in */sitewire*) continue ;; esac\n"
    f'awk -v f="$_f" \'{HIDE_AWK}\' "$_f"\ndone\n'
    # OpenWrt's init scripts (a Linux /etc/init.d script has no `enabled`).
    "if [ -f /etc/openwrt_release ]; then for _s in network firewall; do\n"
    "[ -x /etc/init.d/$_s ] || continue\n"
    '/etc/init.d/$_s enabled && echo "service $_s on" || echo "service $_s off"; done; fi\n'
    "if command -v systemctl >/dev/null 2>&1; then for _u in /etc/wireguard/*.conf; do\n"
    '[ -f "$_u" ] || continue; _n=$(basename "$_u" .conf)\n'
    'echo "unit $_n $(systemctl is-enabled "wg-quick@$_n" 2>/dev/null || echo disabled)"\n'
    "done; fi\nreturn 0",
)


@dataclass(frozen=True, slots=True)
class Target:
    """Another site as seen from one router: where its LAN and overlay answer."""

    site: str
    overlay: str
    lan_address: str | None  # the remote router's own LAN address, if known
    lan_prefix: IPNetwork
    host: str | None = None  # a host in its LAN its router lately heard from


@dataclass
class Probes:
    """What the second round trip saw on one router."""

    addresses: tuple[str, ...] = ()  # every address the router holds (`ip -o addr`)
    route_lan: dict[str, str] = field(default_factory=dict)  # site -> `ip route get ... iif lan`
    route_router: dict[str, str] = field(default_factory=dict)  # site -> `ip route get <dst>`
    ping_router: dict[str, bool] = field(default_factory=dict)  # from the router itself
    # from the router's LAN address to the other router's (when no host in its LAN is known)
    ping_lan: dict[str, bool] = field(default_factory=dict)
    route_ep: dict[str, str] = field(default_factory=dict)  # endpoint IP -> `ip route get` it
    small: dict[str, bool] = field(default_factory=dict)  # overlay ping, 56 bytes
    large: dict[str, bool | None] = field(default_factory=dict)  # DF ping at the MTU; None: no -M
    fits: dict[str, int] = field(default_factory=dict)  # site -> largest DF packet that crossed
    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> addresses
    lan_source: str | None = None  # the LAN host address the route checks used
    lan_device: str | None = None
    devices: dict[str, str] = field(default_factory=dict)  # address -> the device holding it
    ping_host: dict[str, tuple[str, bool]] = field(default_factory=dict)  # site -> (host, ok)
    ping_local: dict[str, bool] = field(default_factory=dict)  # own LAN host -> answered
    ruleset: Ruleset | None = None  # the loaded nftables ruleset; None where nft is not
    boot: Boot | None = None  # what runs at boot and from cron; None where it was not read


def lan_address(facts: DeviceFacts | None, prefix: IPNetwork) -> tuple[IPAddress, str] | None:
    """(the device's own address in `prefix`, its device), from the connected route; a route
    whose src lies outside the prefix says nothing about it."""
    if facts is None:
        return None
    for route in facts.routes:
        if route.dest != prefix or route.src is None or route.dev is None:
            continue
        if route.src in prefix:
            return route.src, route.dev
    return None


def lan_host(prefix: IPNetwork, router: IPAddress | str) -> str:
    """An address in the LAN that is not the router's: stands for a LAN host's packet."""
    address = router if not isinstance(router, str) else strict.address(router)
    for candidate in (prefix.broadcast_address - 1, prefix.broadcast_address - 2):
        if candidate != address:
            return str(candidate)
    return str(prefix.network_address + 2)


def targets(plan: Plan, site: str, facts: Mapping[str, DeviceFacts | None]) -> list[Target]:
    out = []
    for other in plan.sites():
        if other.name == site or not other.lan:
            continue
        prefix = other.lan[0]
        found = lan_address(facts.get(other.name), prefix)
        address = str(found[0]) if found else None
        host = lan_neighbour(facts.get(other.name), prefix)
        out.append(Target(other.name, str(other.addresses[0].ip), address, prefix, host))
    return out


def lan_neighbour(facts: DeviceFacts | None, prefix: IPNetwork) -> str | None:
    """A host in `prefix` (not the router) that the router lately heard from on its LAN
    device: doctor pings it across the tunnel, and from its own router, in the same round."""
    found = lan_address(facts, prefix)
    if facts is None or found is None:
        return None
    hosts = (n.address for n in facts.neighbours if n.dev == found[1] and n.address in prefix)
    return next((str(a) for a in hosts if a != found[0]), None)


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
) -> list[tuple[str, str]]:
    """Shell sections for diagnose.collect.run_sections: each prints `key value` lines.
    `only`: probe just these sites (a second look at the ones whose pings failed)."""
    q = shlex.quote
    me = plan.site(site)
    local = next((a for p in me.lan if (a := lan_address(facts.get(site), p))), None)
    lines = ['ip -o addr show | awk \'{ split($4, a, "/"); print "addr", a[1], $2 }\'']
    route_lan = "rl="
    source = ""
    if local is not None:
        src, dev = local
        source = str(src)
        prefix = next(p for p in me.lan if src in p)
        host = lan_host(prefix, src)
        lines.append(f"echo lan {q(host)} {q(dev)}")
        if (mine := lan_neighbour(facts.get(site), prefix)) is not None:
            lines.append(
                f"{{ ping -c 2 -i 0.2 -W 2 {q(mine)} >/dev/null 2>&1 && echo ping_local "
                f"{q(mine)} ok || echo ping_local {q(mine)} fail; }} &"
            )
        route_lan = (
            f'rl=$(ip route get "$2" from {q(host)} iif {q(dev)} 2>&1); echo "route_lan $1 $rl"'
        )
    # iputils ping sets DF with -M do; BusyBox ping has no -M (then: unknown).
    lines.append(f"lansrc={q(source)} wgdev={q(me.interface)}")
    lines.append("df=0; ping -c 1 -M do -s 64 -W 1 127.0.0.1 >/dev/null 2>&1 && df=1")
    lines.append(_probe_function(running_mtu(facts.get(site), me), route_lan))
    for t in targets(plan, site, facts):
        if only is not None and t.site not in only:
            continue
        dst = t.lan_address or str(t.lan_prefix.network_address + 1)
        router_ping = int(t.lan_address is not None and local is not None)
        host = f" {q(t.host)}" if t.host and router_ping else ""
        overlay = t.overlay if overlay_pinger(plan, site, t.site, facts) else "-"
        lines.append(f"probe {q(t.site)} {q(dst)} {q(overlay)} {router_ping}{host} &")
    lines += _endpoint_routes(facts.get(site), me)
    for peer in me.peers:
        if peer.dial is not None and peer.dial.endpoint.kind == "name":
            name = q(peer.dial.endpoint.host)
            lines.append(
                f"for a in $( (getent ahosts {name} 2>/dev/null || nslookup {name} 2>/dev/null) "
                "| awk '/^Address/ { print $NF; next } NF >= 2 && $2 == \"STREAM\" { print $1 }'"
                f"); do echo resolved {name} $a; done"
            )
    return [("sw_probes", "\n".join(lines) + "\nwait\nreturn 0")]


# What doctor reads beside the probes, in a script of its own on the same connection (it runs
# while the pings wait): the loaded ruleset twice (JSON to walk, text for each rule's line), and
# what runs at boot. The probe script stays small (dropbear's 9000-byte command limit).
STATE_SECTIONS = (
    ("sw_nft_json", "has nft || return 127\nnft -j list ruleset"),
    ("sw_nft_text", "has nft || return 127\nnft -a list ruleset"),
    BOOT,
)


def _probe_function(mtu: int, route_lan: str) -> str:
    """`probe SITE DST OVERLAY PING`: DST the remote router's LAN address (for `ip route get`;
    pinged from this router when PING is 1), OVERLAY its tunnel address.

    One function, then one short background call per target: dropbear drops a connection
    whose command exceeds 9000 bytes (MAX_CMD_LEN), so the script must not grow with a block
    per site; and the pings to all sites overlap, so a site's probes take as long as its
    slowest target, not their sum. Each `echo` is one short write."""
    size = mtu - 28  # IPv4 header 20 + ICMP 8: a packet of exactly the interface MTU
    # Smaller DF sizes tried when the full size fails but small pings pass: the largest
    # that crosses is the MTU to set.
    smaller = " ".join(str(m - 28) for m in range(mtu - 20, 1279, -20)) or "''"
    return (
        # One ping, and a second only when the first got no reply: a lost packet is not a
        # failure, and a path that answers costs one round trip, not two and the spacing.
        'pp() { ping -c 1 -W 1 "$@" >/dev/null 2>&1 || ping -c 1 -W 2 "$@" >/dev/null 2>&1; }\n'
        "probe() {\n"
        # `ip route get` prints a second line (`cache`): one echo writes both at once, and
        # the reader skips it; no `head`, one process fewer per route.
        f"{route_lan}\n"
        # The router's own route, where a LAN host's packet does not leave by the tunnel
        # (the evidence of no-route and tailscale-captures-route).
        'case $rl in *" dev $wgdev "*) ;; *) echo "route_router $1 $(ip route get "$2" 2>&1)" ;; '
        "esac\n"
        # From this router's LAN address to a host in the other LAN, beside the rest: what
        # LAN hosts' traffic meets past the other router; with no host known, to the other
        # router's LAN address.
        '[ -n "$5" ] && { pp -I "$lansrc" "$5" '
        '&& echo "ping_host $1 $5 ok" || echo "ping_host $1 $5 fail"; } &\n'
        '[ "$4" = 1 ] && [ -z "$5" ] && { pp -I "$lansrc" "$2" '
        '&& echo "ping_lan $1 ok" || echo "ping_lan $1 fail"; } &\n'
        # From the router itself (its own source address) to the other router's LAN address,
        # where a LAN host's packet is taken away from WireGuard (Tailscale's table 52): it
        # tells "works from the router, fails from the LAN".
        'case $rl in *tailscale0* | *" table 52"*) [ "$4" = 1 ] && { pp "$2" '
        '&& echo "ping_router $1 ok" || echo "ping_router $1 fail"; } ;; esac\n'
        # The overlay pings, from one end of each pair ("-": the other end pings; a ping is a
        # round trip, and doctor copies the answer to this end, see mirror_overlay).
        'if [ "$3" = - ]; then up=0\n'
        'elif pp "$3"; then echo "small $1 ok"; up=1; else echo "small $1 fail"; up=0; fi\n'
        'if [ "$up" = 0 ]; then :\n'  # nothing crosses, or not pinged here: no MTU
        'elif [ "$df" = 1 ]; then\n'
        f'if pp -M do -s {size} "$3"; then '
        'echo "large $1 ok"; else echo "large $1 fail"\n'
        f'for s in {smaller}; do [ -n "$s" ] || break; '
        'ping -c 1 -W 1 -M do -s "$s" "$3" >/dev/null 2>&1 '
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
    pings = (*probes.small.items(), *probes.ping_router.items(), *probes.ping_lan.items())
    out = {site for site, ok in pings if not ok}
    return out | {site for site, (_, ok) in probes.ping_host.items() if not ok}


def second_look(first: Probes, again: Probes) -> Probes:
    """The first probes, with each ping that failed there taken as passed when it passed the
    second time: a reply lost once on a busy path is not a failure. Only failures are
    retried, so a healthy network costs one round."""
    for seen, retried in (
        (first.small, again.small),
        (first.ping_router, again.ping_router),
        (first.ping_lan, again.ping_lan),
        (first.large, again.large),
    ):
        for site, ok in retried.items():
            if ok and seen.get(site) is not True:
                seen[site] = True
    for site, (host, ok) in again.ping_host.items():
        if ok:
            first.ping_host[site] = (host, True)
    for site, fits in again.fits.items():
        first.fits.setdefault(site, fits)
    return first


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
            case ["lan", host, device]:
                probes.lan_source, probes.lan_device = host, device
            case ["route_lan", site, *rest]:
                probes.route_lan[site] = " ".join(rest)
            case ["route_ep", address, *rest] if _plain(address):
                probes.route_ep[address] = " ".join(rest)
            case ["route_router", site, *rest]:
                probes.route_router[site] = " ".join(rest)
            case ["ping_host", site, host, state] if _plain(host):
                probes.ping_host[site] = (host, state == "ok")
            case ["ping_local", host, state] if _plain(host):
                probes.ping_local[host] = state == "ok"
            case ["ping_lan", site, state]:
                probes.ping_lan[site] = state == "ok"
            case ["ping_router", site, state]:
                probes.ping_router[site] = state == "ok"
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


def _plain(text: str) -> bool:
    try:
        strict.address(text)
    except ValueError:
        return False
    return True
