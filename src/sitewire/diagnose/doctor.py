"""`sitewire doctor`: the live network compared with the plan, each fault named with its evidence.

Pure: the checks read DeviceFacts (one round trip per site, diagnose.facts) and Probes (a
second round trip: the route a LAN host's packet takes, pings across the tunnel with and without
fragmentation allowed, names resolved, addresses held), never a device. Each check looks at one
cause and stays quiet about symptoms another check owns, so a broken network gets one finding
per cause (the lab tests break a healthy network one way at a time and expect exactly one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sitewire import strict
from sitewire.diagnose.facts import DeviceFacts, PackageManager
from sitewire.diagnose.parse import Handler, NetifdInterface, WgPeer, parse_number
from sitewire.diagnose.probes import (
    Probes,
    running_mtu,
)
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.render.openwrt import peer_section
from sitewire.spec.model import Platform
from sitewire.strict import IPNetwork
from sitewire.uci import Section

APPLY = "sitewire apply"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # stable id, e.g. "tailscale-captures-route"
    site: str
    problem: str  # one line: what is wrong
    evidence: tuple[str, ...]  # "$ command" followed by the line(s) that show it
    fix: str  # the command to run, or `sitewire apply`

    def text(self) -> str:
        lines = [f"{self.site}: {self.problem}"]
        lines += [f"    {line}" for line in self.evidence]
        lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        return {
            "check": self.check,
            "site": self.site,
            "problem": self.problem,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


# --- the checks -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Live:
    """Everything the checks read: the plan, and per site its facts and probes."""

    plan: Plan
    facts: Mapping[str, DeviceFacts]
    probes: Mapping[str, Probes]


def _uci_line(package: str, section: Section) -> str:
    head = f"{package}.{section.name or '@' + section.type}={section.type}"
    opts = " ".join(
        f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in section.options.items()
    )
    return f"{head} {opts}".strip()


def _zone_of(facts: DeviceFacts, iface: str) -> Section | None:
    if facts.firewall is None:
        return None
    # netifd's `option zone` on the interface also puts it in a zone (reference §2.1).
    section = facts.network.section(iface) if facts.network is not None else None
    named = section.options.get("zone") if section is not None else None
    for zone in facts.firewall.sections_of_type("zone"):
        if named is not None and zone.options.get("name") == named:
            return zone
    for zone in facts.firewall.sections_of_type("zone"):
        networks = zone.options.get("network", ())
        devices = zone.options.get("device", ())
        listed = [*(networks if isinstance(networks, tuple) else networks.split())]
        listed += [*(devices if isinstance(devices, tuple) else devices.split())]
        if iface in listed:
            return zone
    return None


def _netifd_down(facts: DeviceFacts, iface: str) -> NetifdInterface | None:
    """netifd's state of IFACE when netifd says it is not up (None: up, or not known)."""
    state = (facts.netifd or {}).get(iface)
    return state if state is not None and not state.up else None


def check_interface_running(live: Live, site: SitePlan) -> list[Finding]:
    """0. The WireGuard interface does not run at all; every other check would see symptoms.

    On OpenWrt netifd says why: proto `none` with NO_DEVICE when it had no WireGuard handler at
    its start (wireguard-tools missing, or installed after netifd started: it loads handlers
    only then), else the handler's own failure. On Linux the device is simply not there."""
    facts = live.facts[site.name]
    iface = site.interface
    running = facts.wg.interface(iface) is not None
    if site.platform is not Platform.OPENWRT:
        if running:
            return []
        return [
            Finding(
                "interface-not-running",
                site.name,
                f"{iface} does not exist: WireGuard is not running here",
                ("$ wg show all dump", f"(no {iface})"),
                f"wg-quick up {iface}   (or: systemctl start wg-quick@{iface}; or: {APPLY})",
            )
        ]
    state = (facts.netifd or {}).get(iface)
    if state is None:
        if running or facts.netifd is None:
            return []
        return [
            Finding(
                "interface-not-running",
                site.name,
                f"netifd knows no interface {iface}: the configuration is not there",
                (f"$ ubus call network.interface.{iface} status", "(no such interface)"),
                APPLY,
            )
        ]
    if state.up:
        return []
    status = f"proto {state.proto or '?'}" + "".join(f", {code}" for code in state.errors)
    evidence = [f"$ ubus call network.interface.{iface} status", f'"up": false ({status})']
    restart = "/etc/init.d/network restart"
    if state.proto == "none" and facts.handler is Handler.ABSENT:
        install = "apk add" if facts.package_manager is PackageManager.APK else "opkg install"
        problem = (
            f"{iface} does not run: wireguard-tools is not installed, so netifd has no handler"
        )
        fix = f"{install} wireguard-tools && {restart}   (or: {APPLY})"
    elif state.proto == "none":
        problem = (
            f"{iface} does not run: netifd had no WireGuard handler when it started "
            "(it loads handlers only then)"
        )
        evidence += ["$ ls /lib/netifd/proto/wireguard.*", f"(installed: {facts.handler})"]
        fix = restart
    else:
        problem = f"{iface} is down in netifd ({status}): its setup failed"
        fix = f"ifup {iface}; then logread | grep -i wireguard to see why"
    return [Finding("interface-not-running", site.name, problem, tuple(evidence), fix)]


def check_no_zone(live: Live, site: SitePlan) -> list[Finding]:
    """10. The WireGuard interface in no firewall zone: fw4 drops what it forwards."""
    facts = live.facts[site.name]
    if site.platform is not Platform.OPENWRT or facts.firewall is None:
        return []
    if _zone_of(facts, site.interface) is not None:
        return []
    zones = [
        _uci_line("firewall", z)
        for z in facts.firewall.sections_of_type("zone")
        if z.options.get("name") in ("lan", "wan", "sitewire")
    ]
    return [
        Finding(
            "interface-without-zone",
            site.name,
            f"{site.interface} is in no firewall zone: fw4 rejects what crosses it",
            ("$ uci export firewall  (no zone lists it under 'network')", *zones),
            f"uci add_list firewall.sw_zone.network='{site.interface}' && uci commit firewall "
            f"&& /etc/init.d/firewall reload   (or: {APPLY})",
        )
    ]


def check_forwardings(live: Live, site: SitePlan) -> list[Finding]:
    """2. A forwarding missing between the WireGuard zone and `lan`, either direction."""
    facts = live.facts[site.name]
    if site.platform is not Platform.OPENWRT or facts.firewall is None:
        return []
    zone = _zone_of(facts, site.interface)
    if zone is None:
        return []  # check_no_zone owns this
    name = str(zone.options.get("name", ""))
    have = {
        (f.options.get("src"), f.options.get("dest"))
        for f in facts.firewall.sections_of_type("forwarding")
        if f.options.get("enabled", "1") != "0"
    }
    out = []
    for src, dest in (("lan", name), (name, "lan")):
        # fw4 takes `*` for any zone on either side (reference §2.2).
        if {(src, dest), ("*", dest), (src, "*"), ("*", "*")} & have:
            continue
        shown = [_uci_line("firewall", f) for f in facts.firewall.sections_of_type("forwarding")]
        out.append(
            Finding(
                "missing-forwarding",
                site.name,
                f"no firewall forwarding {src} → {dest}: "
                + (
                    "LAN hosts cannot send into the tunnel"
                    if src == "lan"
                    else "the remote LANs cannot reach this LAN"
                ),
                ("$ uci show firewall | grep forwarding", *(shown or ["(no forwarding)"])),
                # Delete first: a disabled sw_fwd section would keep its enabled='0'.
                f"uci -q delete firewall.sw_fwd_{src}_{dest}; "
                f"uci set firewall.sw_fwd_{src}_{dest}=forwarding && "
                f"uci set firewall.sw_fwd_{src}_{dest}.src='{src}' && "
                f"uci set firewall.sw_fwd_{src}_{dest}.dest='{dest}' && uci commit firewall && "
                f"/etc/init.d/firewall reload   (or: {APPLY})",
            )
        )
    return out


def _port_open(facts: DeviceFacts, port: int) -> bool:
    assert facts.firewall is not None
    # fw4 reads policies and targets case-insensitively; a rule's `src` may be `*` (any
    # zone, as LuCI writes it) and its proto defaults to `tcpudp` (reference §2.1, §2.3).
    for zone in facts.firewall.sections_of_type("zone"):
        if zone.options.get("name") == "wan" and str(zone.options.get("input")).upper() == "ACCEPT":
            return True
    for rule in facts.firewall.sections_of_type("rule"):
        o = rule.options
        if o.get("enabled", "1") == "0" or o.get("src") not in ("wan", "*"):
            continue
        if str(o.get("target", "")).upper() != "ACCEPT":
            continue
        if o.get("dest") not in (None, ""):
            continue  # a forward rule, not input
        proto = o.get("proto", "tcpudp")
        protos = proto if isinstance(proto, tuple) else tuple(str(proto).split())
        if not ({"udp", "tcpudp", "all", "any"} & {p.lower() for p in protos}):
            continue
        ports = o.get("dest_port")
        if ports is None:
            return True
        for item in ports if isinstance(ports, tuple) else str(ports).split():
            low, _, high = item.replace(":", "-").partition("-")
            first, last = parse_number(low), parse_number(high or low)
            if first is not None and last is not None and first <= port <= last:
                return True
    return False


def check_port_open(live: Live, site: SitePlan) -> list[Finding]:
    """3. A listener whose WireGuard port is not open on its WAN."""
    facts = live.facts[site.name]
    if site.platform is not Platform.OPENWRT or facts.firewall is None:
        return []
    if site.firewall.open_port is None or _port_open(facts, site.firewall.open_port):
        return []
    port = site.firewall.open_port
    shown = [
        _uci_line("firewall", z)
        for z in facts.firewall.sections_of_type("zone")
        if z.options.get("name") == "wan"
    ]
    shown += [
        _uci_line("firewall", r)
        for r in facts.firewall.sections_of_type("rule")
        if r.options.get("src") in ("wan", "*")
    ]
    rule = f"firewall.sw_allow_{site.interface}"
    return [
        Finding(
            "port-closed",
            site.name,
            f"others dial this site on udp/{port}, but no firewall rule accepts it from wan",
            ("$ uci show firewall  (the wan zone and rules from wan)", *(shown or ["(none)"])),
            # Delete first: a disabled or altered sw_allow section would keep its options.
            f"uci -q delete {rule}; uci set {rule}=rule && "
            f"uci set {rule}.name='Allow-sitewire-{site.interface}' && "
            f"uci set {rule}.src='wan' && uci set {rule}.proto='udp' && "
            f"uci set {rule}.dest_port='{port}' && uci set {rule}.target='ACCEPT' && "
            "uci commit firewall "
            f"&& /etc/init.d/firewall reload   (or: {APPLY})",
        )
    ]


def _dump_line(iface: str, peer: WgPeer) -> str:
    endpoint = str(peer.endpoint) if peer.endpoint else "(none)"
    ips = ",".join(str(p) for p in peer.allowed_ips) or "(none)"
    keep = str(peer.keepalive) if peer.keepalive else "off"
    last = str(peer.latest_handshake or 0)
    return f"{iface}\t{peer.public_key}\t{endpoint}\t{ips}\t{last}\t{keep}"


def _live_peer(live: Live, site: SitePlan, name: str) -> WgPeer | None:
    """This site's running peer for `name`, matched by the key `name` really has."""
    iface = live.facts[site.name].wg.interface(site.interface)
    if iface is None:
        return None
    other = live.facts.get(name)
    key = _actual_key(live, name) if other is not None else None
    key = key or site.peer(name).public_key
    return iface.peer(key or "")


def _actual_key(live: Live, site: str) -> str | None:
    facts = live.facts.get(site)
    if facts is None:
        return None
    iface = facts.wg.interface(live.plan.site(site).interface)
    return iface.public_key if iface is not None else None


def check_keepalive(live: Live, site: SitePlan) -> list[Finding]:
    """4. A dialer without persistent keepalive: the listener cannot start traffic to it."""
    if site.endpoint is not None:
        return []  # reachable itself; keepalive is a courtesy here, not a need
    out = []
    for peer in site.peers:
        if peer.kind != "site" or peer.dial is None:
            continue
        running = _live_peer(live, site, peer.name)
        if running is None or running.keepalive:
            continue
        out.append(
            Finding(
                "dialer-without-keepalive",
                site.name,
                f"dials {peer.name} without persistent keepalive from behind a firewall: when "
                f"it falls silent, {peer.name} cannot reach it again",
                (
                    "$ wg show all dump  (keepalive is the last field)",
                    _dump_line(site.interface, running),
                ),
                f"uci set network.{peer_section(peer.name)}.persistent_keepalive='25' && "
                f"uci commit network && wg set {site.interface} peer {running.public_key} "
                f"persistent-keepalive 25   (or: {APPLY})",
            )
        )
    return out


def _wan4(facts: DeviceFacts | None) -> list[str]:
    """The router's own IPv4 address(es) on its WAN device, from the connected route."""
    if facts is None or facts.wan_device is None:
        return []
    return [str(r.src) for r in facts.routes if r.dev == facts.wan_device and r.src is not None]


def check_ddns(live: Live, site: SitePlan) -> list[Finding]:
    """5. A dialled DNS name whose address is not the listener's current WAN address.

    Two shapes: WireGuard still sends to an address the listener no longer holds (it resolved
    the name once; the tunnel is down), and the name itself resolves to none of the listener's
    addresses while the tunnel runs on the right one (it breaks at the next resolve). A
    listener behind a port-forwarding router holds neither its public address nor the
    endpoint; there the name and the working endpoint agree, and nothing is reported.
    """
    out = []
    for peer in site.peers:
        if peer.dial is None or peer.dial.endpoint.kind != "name" or peer.kind != "site":
            continue
        theirs = live.probes.get(peer.name)
        running = _live_peer(live, site, peer.name)
        if theirs is None or running is None or running.endpoint is None:
            continue
        endpoint = str(running.endpoint.ip)
        held = set(theirs.addresses)
        name = peer.dial.endpoint.host
        resolved = live.probes[site.name].resolved.get(name, ())
        works = live.probes[site.name].small.get(peer.name) is True
        stale_endpoint = endpoint not in held and not works
        dns_off = bool(resolved) and not (set(resolved) & held)
        latent = dns_off and works and endpoint not in resolved
        if not stale_endpoint and not latent:
            continue
        wan = [a for a in theirs.addresses if not a.startswith(("127.", "::1", "fe80"))]
        evidence = [
            "$ wg show all dump  (the endpoint in use)",
            _dump_line(site.interface, running),
            f"$ ip -o addr  (on {peer.name})",
            " ".join(wan),
            f"$ nslookup {name}  (on {site.name})",
            " ".join(resolved) or "(no answer)",
        ]
        target = peer.dial.endpoint.with_port(peer.dial.endpoint.port or 51820)
        reset = f"wg set {site.interface} peer {running.public_key} endpoint {target}"
        address = ", ".join(_wan4(live.facts.get(peer.name))) or f"{peer.name}'s WAN address"
        update = (
            f"update the DNS record of {name} to {address} (if {peer.name} sits behind "
            "another router that forwards the port, check that forward instead)"
        )
        if latent:
            problem = (
                f"{name} resolves to {' '.join(resolved)}, which {peer.name} does not have: "
                f"the tunnel runs on {endpoint} now, but breaks the next time {site.name} "
                "resolves the name (ifup, reboot, the watchdog)"
            )
            fix = update
        elif dns_off:
            again = (
                "still resolves to the old address"
                if endpoint in resolved
                else f"resolves to {' '.join(resolved)}, which {peer.name} does not have either"
            )
            problem = (
                f"talks to {peer.name} at {endpoint}, which {peer.name} no longer has; "
                f"{name} {again}"
            )
            fix = f"{update}; then: {reset}"
        else:
            problem = (
                f"talks to {peer.name} at {endpoint}, which {peer.name} no longer has: {name} "
                "resolves to its new address, but WireGuard resolved the name once and kept "
                "the old one"
            )
            job = (
                f"the sitewire-reresolve-{site.interface} cron job"
                if site.platform is Platform.LINUX
                else f"or: ifup {site.interface}; the wireguard_watchdog cron job"
            )
            # Apply compares no resolved endpoint with the plan: it would not change this.
            fix = (
                f"{reset}   ({job} does this after 150 s without a handshake: check that "
                f"cron runs on {site.name})"
            )
        out.append(Finding("ddns-stale", site.name, problem, tuple(evidence), fix))
    return out


def _routed(facts: DeviceFacts, prefix: IPNetwork, iface: str) -> bool:
    return any(r.dest == prefix and r.dev == iface for r in facts.routes)


def check_routes(live: Live, site: SitePlan) -> list[Finding]:
    """6. `route_allowed_ips` off: no route to a remote LAN, which leaks to the WAN default."""
    facts = live.facts[site.name]
    if facts.wg.interface(site.interface) is None or _netifd_down(facts, site.interface):
        return []
    out = []
    for peer in site.peers:
        if peer.kind != "site":
            continue
        missing = [
            p
            for p in peer.allowed_ips
            if p.prefixlen < p.max_prefixlen and not _routed(facts, p, site.interface)
        ]
        if not missing:
            continue
        section = facts.network.section(peer_section(peer.name)) if facts.network else None
        flag = section.options.get("route_allowed_ips") if section is not None else None
        probe = live.probes[site.name].route_router.get(peer.name, "")
        evidence = [f"$ ip route show  (no route for {', '.join(map(str, missing))})"]
        if probe:
            evidence += [f"$ ip route get {probe.split()[0]}", probe]
        if section is not None:
            evidence += [
                f"$ uci get network.{peer_section(peer.name)}.route_allowed_ips",
                str(flag or "(unset: 0)"),
            ]
        out.append(
            Finding(
                "no-route",
                site.name,
                f"no route to {', '.join(map(str, missing))} through {site.interface}"
                + (" (route_allowed_ips is off)" if flag != "1" else "")
                + ": that traffic leaves through the WAN default route",
                tuple(evidence),
                f"uci set network.{peer_section(peer.name)}.route_allowed_ips='1' && "
                f"uci commit network && ifup {site.interface}   (or: {APPLY})",
            )
        )
    return out


def check_keys(live: Live, site: SitePlan) -> list[Finding]:
    """7. A public key mismatch: this site holds a key for a peer that the peer does not have."""
    iface = live.facts[site.name].wg.interface(site.interface)
    if iface is None:
        return []
    out = []
    for peer in site.peers:
        if peer.kind != "site":
            continue
        actual = _actual_key(live, peer.name)
        if actual is None or iface.peer(actual) is not None:
            continue
        held = next((p for p in iface.peers if set(p.allowed_ips) & set(peer.allowed_ips)), None)
        out.append(
            Finding(
                "wrong-key",
                site.name,
                f"holds the wrong public key for {peer.name}: no handshake can ever succeed",
                (
                    f"$ wg show {site.interface} dump  (on {site.name}: the peer for {peer.name})",
                    _dump_line(site.interface, held) if held else "(no such peer)",
                    f"$ wg show {live.plan.site(peer.name).interface} public-key  (on {peer.name})",
                    actual,
                ),
                f"{APPLY}   (it reads each router's real key; or by hand: "
                f"uci set network.{peer_section(peer.name)}.public_key='{actual}' && "
                f"uci commit network && ifup {site.interface})",
            )
        )
    return out


def _uci_peer(facts: DeviceFacts, name: str) -> Section | None:
    return facts.network.section(peer_section(name)) if facts.network is not None else None


def check_saved_not_live(live: Live, site: SitePlan) -> list[Finding]:
    """8. A peer change saved in UCI but not running (24.10's `network reload` ignores peers)."""
    facts = live.facts[site.name]
    iface = facts.wg.interface(site.interface)
    if site.platform is not Platform.OPENWRT or iface is None:
        return []
    out = []
    for peer in site.peers:
        section = _uci_peer(facts, peer.name)
        if section is None:
            continue
        key = str(section.options.get("public_key", ""))
        running = iface.peer(key)
        ips = section.options.get("allowed_ips", ())
        saved = _prefixes(ips if isinstance(ips, tuple) else str(ips).split())
        if running is not None and set(running.allowed_ips) == saved:
            continue
        if running is None and peer.kind == "site" and _actual_key(live, peer.name) != key:
            continue  # a wrong key: check_keys owns it
        shown = _dump_line(site.interface, running) if running else "(not running)"
        out.append(
            Finding(
                "saved-not-live",
                site.name,
                f"peer {peer.name} in /etc/config/network differs from what {site.interface} "
                "runs: the change was saved but never applied",
                (
                    f"$ uci get network.{peer_section(peer.name)}.allowed_ips",
                    " ".join(sorted(map(str, saved))),
                    "$ wg show all dump",
                    shown,
                ),
                f"ifup {site.interface}   (24.10: a network reload ignores peer changes; "
                f"25.12: ubus call network.interface.{site.interface} renew; or: {APPLY})",
            )
        )
    return out


def _prefixes(items: Sequence[str]) -> set[IPNetwork | str]:
    """uci's allowed_ips as prefixes; what does not read as one stays text, and so differs."""
    out: set[IPNetwork | str] = set()
    for item in items:
        try:
            out.add(strict.network(item, strict=False))
        except ValueError:
            out.add(item)
    return out


def _mtu_fails(live: Live, site: str, other: str) -> bool:
    probes = live.probes.get(site)
    return (
        probes is not None and probes.small.get(other) is True and probes.large.get(other) is False
    )


def check_mtu(live: Live, site: SitePlan) -> list[Finding]:
    """9. An MTU too large for the path: small pings pass, full-size ones with DF do not.

    One cause, one finding: a path that drops large packets fails both ends' probes (a ping's
    reply is as large as its request), so where both ends see it the site first in the plan
    reports it for the pair.
    """
    probes = live.probes[site.name]
    order = list(live.plan.site_names)
    out = []
    for other in probes.small:
        if not _mtu_fails(live, site.name, other):
            continue
        both = _mtu_fails(live, other, site.name)
        if both and other in order and order.index(other) < order.index(site.name):
            continue  # `other` reports this pair
        mtu = running_mtu(live.facts[site.name], site)
        size = mtu - 28
        overlay = live.plan.site(other).addresses[0].ip
        evidence = [
            f"$ ping -c 2 {overlay}   → ok",
            f"$ ping -c 2 -M do -s {size} {overlay}   → no reply",
        ]
        fits = probes.fits.get(other)
        if fits is not None:
            evidence.append(
                f"$ ping -c 1 -M do -s {fits - 28} {overlay}   → ok  (the largest that crossed)"
            )
        if both:
            evidence.append(f"(and the same from {other} to {site.name})")
        fix = (
            f"set mtu = {fits} under sites.{site.name} and sites.{other}, then run {APPLY}"
            if fits is not None
            else f"lower the MTU on both ends: set wan_mtu (the WAN's real MTU; pppoe = true "
            f"for 1492) or mtu under sites.{site.name} and sites.{other}, then run {APPLY}"
        )
        out.append(
            Finding(
                "mtu-too-large",
                site.name,
                f"packets of {site.interface}'s MTU ({mtu}) do not cross to {other}; "
                "small ones do: the path carries less (and says nothing)",
                tuple(evidence),
                fix,
            )
        )
    return out


def _covers(outer: IPNetwork, inner: IPNetwork) -> bool:
    return (
        outer.version == inner.version
        and inner.network_address in outer
        and inner.prefixlen >= outer.prefixlen
    )


def check_tailscale(live: Live, site: SitePlan) -> list[Finding]:
    """1. Tailscale's accepted routes capture a WireGuard-routed prefix (table 52 first)."""
    facts = live.facts[site.name]
    probes = live.probes[site.name]
    out = []
    for other, line in probes.route_lan.items():
        if "tailscale0" not in line and " table 52" not in line:
            continue
        prefix = live.plan.site(other).lan[0]
        in52 = [r for r in facts.table52 if _covers(r.dest, prefix)]
        rule = facts.lookup52
        router_ok = probes.ping_router.get(other)
        evidence = [
            "$ ip rule show",
            f"{rule}:\tfrom all lookup 52" if rule is not None else "(no lookup 52 rule)",
            "$ ip route show table 52",
            *(f"{r.dest} dev {r.dev}" for r in in52),
            f"$ ip route get {line.split()[0]} from {probes.lan_source} iif {probes.lan_device}",
            line,
        ]
        if router_ok:
            dst = probes.route_router.get(other, "").split()[:1] or [f"<{other} LAN>"]
            evidence.append(f"$ ping -c 2 {dst[0]}   → ok  (from the router itself)")
        path = "the tailnet" if "tailscale0" in probes.route_router.get(other, "") else "WireGuard"
        shape = (
            f" (pings from the router itself still get through, over {path}: it works from "
            "the router and fails from the LAN)"
            if router_ok
            else ""
        )
        pinned = site.tailscale is not None and site.tailscale.accept_routes
        out.append(
            Finding(
                "tailscale-captures-route",
                site.name,
                f"Tailscale's accepted routes capture {prefix}: LAN traffic to {other} goes "
                f"into tailscale0, not {site.interface}{shape}",
                tuple(evidence),
                # The spec keeps accepted routes: apply restores the rules that pin the
                # WireGuard prefixes to main ahead of table 52 (turning them off would fight it).
                f"{APPLY}   (it puts back the rules that pin {prefix} to main ahead of table 52)"
                if pinned
                else "tailscale set --accept-routes=false   (or keep them: accept_routes = true "
                f"under sites.{site.name}.tailscale pins the WireGuard prefixes; then {APPLY})",
            )
        )
    return out


CHECKS = (
    check_interface_running,
    check_tailscale,
    check_forwardings,
    check_port_open,
    check_keepalive,
    check_ddns,
    check_routes,
    check_keys,
    check_saved_not_live,
    check_mtu,
    check_no_zone,
)


def diagnose(live: Live, sites: Sequence[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    for name in sites or live.plan.site_names:
        if name not in live.facts:
            continue
        site = live.plan.site(name)
        for check in CHECKS:
            out += check(live, site)
    return out
