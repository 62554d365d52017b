"""A LAN host's packet from one site to another, hop by hop through what the routers run.

Pure: each hop reads the live state doctor gathered (the route the kernel picked for the
packet, the loaded nftables ruleset, the WireGuard peer that owns the destination, the peer's
endpoint against the other side's socket, the handshake) and says whether the packet passes.
doctor.paths turns the first hop that fails into a finding, and says so when the path fails
with every hop passing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sitewire import strict
from sitewire.diagnose.doctor.model import Live, actual_key, live_peer
from sitewire.diagnose.lans import lan_address, lan_host, next_hop
from sitewire.diagnose.nftwalk import Packet, Verdict, walk
from sitewire.diagnose.parse import WgPeer
from sitewire.strict import IPAddress, IPNetwork

HANDSHAKE_FRESH = 180  # WireGuard re-handshakes every 2 minutes on a live session


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of the path on one site: what the packet meets there, and whether it passes."""

    site: str
    kind: str  # route, firewall, nat, peer, endpoint, port, underlay, input, handshake
    ok: bool
    evidence: tuple[str, ...]  # "$ command" and the line(s) it printed, or what was read
    verdict: Verdict | None = None  # for firewall and input hops
    detail: str = ""  # for a failing hop: what it found, in a few words
    other: str = ""  # the other end of a link hop

    def line(self) -> str:
        mark = "ok" if self.ok else "FAILS"
        return f"[{mark}] {self.site} {self.kind}: {self.detail or self.evidence[-1]}"


@dataclass(frozen=True, slots=True)
class Path:
    """From `source`'s LAN to `prefix`, one of `dest`'s LAN prefixes, through `sites`
    (relays between)."""

    source: str
    dest: str
    prefix: IPNetwork
    sites: tuple[str, ...]
    hops: tuple[Hop, ...]

    @property
    def first_failure(self) -> Hop | None:
        return next((h for h in self.hops if not h.ok), None)


def _dev(line: str) -> str | None:
    m = re.search(r"\bdev (\S+)", line)
    return m.group(1) if m else None


def _addr(text: str | None) -> IPAddress | None:
    try:
        return strict.address(text) if text else None
    except ValueError:
        return None


def trace(live: Live, source: str, dest: str, prefix: IPNetwork) -> Path | None:
    """The path of a LAN host's ping from `source` to `prefix` in `dest`'s LAN; None where
    doctor knows too little to follow one (no LAN address of that IP version on either end,
    or a site not read)."""
    plan = live.plan
    src_plan, dst_plan = plan.site(source), plan.site(dest)
    if source not in live.probes or dest not in live.facts:
        return None
    theirs = lan_address(live.facts[dest], prefix)
    probes = live.probes[source]
    lan = probes.source(prefix.version)
    host = _addr(lan[0]) if lan is not None else None
    if theirs is None or host is None or lan is None:
        return None
    target = strict.address(lan_host(prefix, theirs[0]))
    hops: list[Hop] = []
    line = probes.route_lan.get((dest, prefix), "")
    device = _dev(line) if not line.startswith(("unreachable", "prohibit", "blackhole")) else None
    hops.append(
        Hop(
            source,
            "route",
            device == src_plan.interface,
            (f"$ ip route get {theirs[0]} from {host} iif {lan[1]}", line or "(none)"),
            detail=f"routed to {device}" if device else f"not routed ({line or 'no answer'})",
        )
    )
    if not hops[-1].ok:
        return Path(source, dest, prefix, (source,), tuple(hops))
    packet = Packet(prefix.version, host, target, "icmp")
    sites = [source]
    here, iif = source, lan[1]
    for _ in range(len(plan.site_names)):
        here_plan = plan.site(here)
        packet = Packet(packet.family, host, target, "icmp", iif=iif, oif=here_plan.interface)
        hops += _firewall(live, here, packet)
        owner = _owner(live, here, target)
        hops.append(owner[0])
        nxt = owner[1]
        if nxt is None or not hops[-1].ok:
            break
        hops += _link(live, here, nxt)
        sites.append(nxt)
        if nxt == dest:
            break
        if not _relay_route(live, (source, prefix), nxt, target, hops):
            break
        here, iif = nxt, plan.site(nxt).interface
    if sites[-1] == dest:
        packet = Packet(packet.family, host, target, "icmp", iif=dst_plan.interface, oif=theirs[1])
        hops += _firewall(live, dest, packet)
    return Path(source, dest, prefix, tuple(sites), tuple(hops))


def _firewall(live: Live, site: str, packet: Packet) -> list[Hop]:
    """The packet through the site's loaded ruleset: prerouting, forward, postrouting."""
    ruleset = live.probes[site].ruleset
    if ruleset is None:
        return []
    out = []
    nat: list[Verdict] = []
    unsure: list[Verdict] = []
    for hook in ("prerouting", "forward", "postrouting"):
        # before the routing decision a packet has no output device (oifname is "")
        verdict = walk(ruleset, replace(packet, oif="") if hook == "prerouting" else packet, hook)
        if verdict.nat:
            nat.append(verdict)
        if verdict.dropped and verdict.uncertain:
            unsure.append(verdict)  # a rule it could not read came first: cannot tell
        elif verdict.dropped:
            where = verdict.chain.where() if verdict.chain else hook
            shown = ruleset.line(verdict.rule) if verdict.rule else f"policy {verdict.action}"
            evidence = (f"$ nft -a list chain {where}", shown)
            detail = f"{verdict.action} at {hook} ({where}: {shown})"
            if verdict.trail:  # the rule that sent it there (a UCI rule's jump, say)
                detail += f", reached by {ruleset.line(verdict.trail[-1])}"
            return [Hop(site, "firewall", False, evidence, verdict, detail)]
    for verdict in nat:
        kind, rule = verdict.nat[0]
        evidence = (f"$ nft -a list chain {' '.join(rule.chain)}", ruleset.line(rule))
        out.append(Hop(site, "nat", False, evidence, verdict, f"{kind} ({ruleset.line(rule)})"))
    if not out:
        arrow = f"{packet.iif} → {packet.oif}"
        said = "cannot tell (a rule doctor cannot read comes first)" if unsure else "accepted"
        accepted = (f"nft: {arrow} {packet.daddr} {said}",)
        out.append(Hop(site, "firewall", True, accepted, unsure[0] if unsure else None))
    return out


def owner_of(peers: tuple[WgPeer, ...], address: IPAddress) -> tuple[WgPeer, IPNetwork] | None:
    """The peer WireGuard sends `address` to: the longest AllowedIPs prefix holding it."""
    best: tuple[WgPeer, IPNetwork] | None = None
    for peer in peers:
        for prefix in peer.allowed_ips:
            if prefix.version != address.version or address not in prefix:
                continue
            if best is None or prefix.prefixlen > best[1].prefixlen:
                best = (peer, prefix)
    return best


def _owner(live: Live, site: str, target: IPAddress) -> tuple[Hop, str | None]:
    iface_name = live.plan.site(site).interface
    iface = live.facts[site].wg.interface(iface_name)
    planned = next_hop(live.plan, site, target)
    evidence = (f"$ wg show {iface_name} allowed-ips  (who carries {target})",)
    if iface is None or planned is None:
        return Hop(site, "peer", False, (*evidence, "(no such interface)")), None
    found = owner_of(iface.peers, target)
    key = actual_key(live, planned) or live.plan.site(site).peer(planned).public_key
    if found is None:
        hop = Hop(site, "peer", False, (*evidence, "(no peer)"), detail="no peer carries it")
        return hop, None
    peer, prefix = found
    shown = f"{peer.public_key}\t{prefix}"
    if peer.public_key != key:
        detail = f"{prefix} is carried by {peer.public_key[:8]}…, not {planned}"
        return Hop(site, "peer", False, (*evidence, shown), detail=detail, other=planned), None
    return Hop(site, "peer", True, (*evidence, shown), detail=f"{prefix} → {planned}"), planned


def _relay_route(
    live: Live, path: tuple[str, IPNetwork], site: str, target: IPAddress, hops: list[Hop]
) -> bool:
    """A relay's own route for the forwarded packet: back into its WireGuard interface. As the
    kernel picks it (`ip route get ... iif <wg>`: policy rules and table 52 included) where
    the relay was asked; else its main table."""
    iface = live.plan.site(site).interface
    line = live.probes[site].route_relay.get(path) if site in live.probes else None
    if line is not None:
        device = (
            _dev(line) if not line.startswith(("unreachable", "prohibit", "blackhole")) else None
        )
        ok = device == iface
        source = live.probes[path[0]].source(target.version) if path[0] in live.probes else None
        asked = f"$ ip route get {target} from {source[0] if source else '?'} iif {iface}"
        detail = f"routed to {device}" if device else f"not routed ({line or 'no answer'})"
        hops.append(Hop(site, "route", ok, (asked, line), detail=detail))
        return ok
    routes = [r for r in live.facts[site].routes if r.dest.version == target.version]
    holding = [r for r in routes if target in r.dest]
    best = max(holding, key=lambda r: r.dest.prefixlen, default=None)
    ok = best is not None and best.dev == iface and best.type == "unicast"
    shown = f"{best.dest} dev {best.dev}" if best is not None else "(no route)"
    hops.append(Hop(site, "route", ok, ("$ ip route show  (main table)", shown), detail=shown))
    return ok


def _link(live: Live, a: str, b: str) -> list[Hop]:
    """The tunnel between two neighbours on the path: the dialer's endpoint against the
    listener's socket, the listener's firewall for the handshake, the handshake's age."""
    plan = live.plan
    if plan.site(a).peer(b).dial is not None:
        dialer, listener = a, b
    elif plan.site(b).peer(a).dial is not None:
        dialer, listener = b, a
    else:
        return []
    running = live_peer(live, plan.site(dialer), listener)
    iface = live.facts[listener].wg.interface(plan.site(listener).interface)
    if running is None or iface is None:
        return []
    out: list[Hop] = []
    dial = f"$ wg show {plan.site(dialer).interface} endpoints  (on {dialer})"
    if running.endpoint is None:
        none = Hop(
            dialer, "endpoint", False, (dial, "(none)"), detail="no endpoint", other=listener
        )
        return [none]
    port = iface.listen_port
    listen = f"$ wg show {iface.name} listen-port  (on {listener})"
    shown = (dial, str(running.endpoint), listen, str(port))
    dial_plan = plan.site(dialer).peer(listener).dial
    planned = dial_plan.endpoint.port if dial_plan is not None else port
    planned_listen = plan.site(listener).listen_port
    # A listener behind a port forward is dialled on the forward's port, not its own: each
    # end is held to the plan, and the two live ports are compared only where they are one.
    if port != planned_listen and planned == planned_listen:
        detail = f"sends to port {running.endpoint.port}, {listener} listens on {port}"
        return [Hop(dialer, "port", False, shown, detail=detail, other=listener)]
    if running.endpoint.port != planned:
        detail = f"sends to port {running.endpoint.port}, {listener} is dialled on {planned}"
        return [Hop(dialer, "port", False, shown, detail=detail, other=listener)]
    out.append(Hop(dialer, "endpoint", True, shown, detail=str(running.endpoint), other=listener))
    out += _underlay(live, dialer, listener, running)
    theirs = live_peer(live, plan.site(listener), dialer)
    if theirs is not None:
        out += _underlay(live, listener, dialer, theirs)
    out += _input(live, dialer, listener, running, port)
    out.append(_handshake(live, dialer, listener, running))
    return out


def _underlay(live: Live, site: str, other: str, running: WgPeer) -> list[Hop]:
    """WireGuard's own packets from `site` to `other`'s endpoint: out by the WAN, not into the
    tunnel itself or into tailscale0 (a route Tailscale accepted, or an exit node)."""
    if running.endpoint is None:
        return []
    address = str(running.endpoint.ip)
    line = live.probes[site].route_ep.get(address)
    if line is None:
        return []
    device = _dev(line) if not line.startswith(("unreachable", "prohibit", "blackhole")) else None
    bad = (None, live.plan.site(site).interface, "tailscale0")
    evidence = (f"$ ip route get {address}", line)
    detail = f"{other}'s endpoint {address} leaves by {device or 'no device'}"
    return [Hop(site, "underlay", device not in bad, evidence, detail=detail, other=other)]


def _input(live: Live, dialer: str, listener: str, running: WgPeer, port: int) -> list[Hop]:
    """The dialer's first handshake packet through the listener's prerouting and input
    hooks, to its real socket (`port`; a port forward in front may have changed the one
    dialled), as a new flow: conntrack keeps a running one alive past a closed port."""
    ruleset = live.probes[listener].ruleset
    endpoint = running.endpoint
    if ruleset is None or endpoint is None:
        return []
    probes = live.probes[listener]
    facts = live.facts[listener]
    held = str(endpoint.ip) in probes.devices
    device = probes.devices.get(str(endpoint.ip)) or facts.wan_device
    theirs = live_peer(live, live.plan.site(listener), dialer)
    source = theirs.endpoint.ip if theirs and theirs.endpoint else None
    if source is None or source.version != endpoint.ip.version:
        source = endpoint.ip
    target = endpoint.ip if held else _held_on(probes.devices, device, endpoint.ip.version)
    packet = Packet(
        endpoint.ip.version, source, target or endpoint.ip, "udp", iif=device, dport=port
    )
    for hook in ("prerouting", "input"):
        verdict = walk(ruleset, packet, hook)
        if verdict.dropped and not verdict.uncertain:
            where = verdict.chain.where() if verdict.chain else hook
            shown = ruleset.line(verdict.rule) if verdict.rule else f"policy {verdict.action}"
            evidence = (f"$ nft -a list chain {where}", shown)
            detail = f"{verdict.action}s UDP {port} from {device} ({where}: {shown})"
            return [Hop(listener, "input", False, evidence, verdict, detail, other=dialer)]
    return [Hop(listener, "input", True, (f"nft: UDP {port} from {device} accepted",), verdict)]


def _held_on(devices: Mapping[str, str], device: str | None, version: int) -> IPAddress | None:
    """An address of this IP version the router holds on `device` (its WAN, where a port
    forward in front sends the dialer's packets)."""
    for text, dev in devices.items():
        address = _addr(text)
        fits = dev == device and address is not None and address.version == version
        if fits and address is not None and not address.is_link_local:
            return address
    return None


def _handshake(live: Live, dialer: str, listener: str, running: WgPeer) -> Hop:
    clock = live.facts[dialer].clock
    last = running.latest_handshake
    age = clock - last if clock is not None and last else None
    fresh = age is not None and age <= HANDSHAKE_FRESH
    shown = f"latest handshake {age} s ago" if age is not None else "no handshake yet"
    evidence = (f"$ wg show {live.plan.site(dialer).interface} latest-handshakes", shown)
    return Hop(dialer, "handshake", fresh, evidence, detail=shown, other=listener)
