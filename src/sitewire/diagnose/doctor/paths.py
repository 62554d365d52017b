"""Every planned LAN-to-LAN path traced through the live state: the first hop where the packet
dies or is changed becomes a finding; a path that fails with every hop passing is said to.

Runs after the other checks (CHECKS): a hop whose failure one of them already names on that
site (a missing forwarding is a forward-hook reject; a missing route a route elsewhere) adds
nothing, so a fault still gets exactly one finding. What is left is what only the live data
path shows: an nftables rule of any table dropping the packet, NAT on the tunnel, a prefix
WireGuard sends to another peer, a dialer and a listener on different ports, a blackhole or
policy rule; and, when none of that explains a failing ping, the path, the hops known good and
what doctor read, with the places it does not look.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sitewire.diagnose.doctor.elsewhere import route_elsewhere
from sitewire.diagnose.doctor.model import APPLY, Finding, Live
from sitewire.diagnose.doctor.trace import Hop, Path, trace
from sitewire.diagnose.doctor.unexplained import unexplained, which
from sitewire.diagnose.parse.nft import NftRule
from sitewire.driver import driver_for
from sitewire.render.openwrt import peer_section
from sitewire.uci import Section, words

_FIREWALL = frozenset(
    {"missing-forwarding", "disabled-forwarding", "disabled-zone", "interface-without-zone"}
    | {"interface-in-two-zones", "port-closed", "port-closed-for-family"}
    | {"interface-not-running"}  # fw4 leaves a device that is not there out of its zone
)
# The checks that already name a hop's failure on the hop's site.
OWNERS = {
    "route": frozenset({"no-route", "tailscale-captures-route", "interface-not-running"}),
    "firewall": _FIREWALL,
    "input": _FIREWALL,
    "nat": frozenset(),
    "peer": frozenset({"wrong-key", "duplicate-peer", "interface-not-running"}),
    "endpoint": frozenset({"saved-not-live", "wrong-key", "ddns-stale", "interface-not-running"}),
    "port": frozenset({"saved-not-live"}),
    "underlay": frozenset({"tailscale-captures-route", "interface-not-running"}),
}
_XTABLES = ("filter", "nat", "mangle", "raw", "security")  # iptables-nft's tables


def paths(live: Live) -> list[Path]:
    """Every planned path: each site's LAN to each LAN prefix of every other site, for each
    IP version both ends have a LAN in."""
    names = [n for n in live.plan.site_names if n in live.facts]
    out = []
    for source in names:
        for dest in names:
            if source == dest:
                continue
            for prefix in live.plan.site(dest).lan:
                if (path := trace(live, source, dest, prefix)) is not None:
                    out.append(path)
    return out


def check_paths(live: Live, found: Sequence[Finding]) -> list[Finding]:
    """The findings only the traced paths give, after `found` (the other checks')."""
    named = {(f.site, f.check) for f in found}
    # one cause, one finding: the same rule or route met on several paths (both directions,
    # each prefix of a LAN), and the paths it was met on
    made: dict[tuple[str, ...], tuple[Finding, Hop, list[Path]]] = {}
    traced = paths(live)
    for path in traced:
        for hop in path.hops:
            if hop.ok and hop.kind != "nat":
                continue
            owners = OWNERS.get(hop.kind)
            if owners is None:
                continue  # a hop with no cause of its own (the handshake)
            if any((hop.site, check) in named for check in owners):
                break
            finding = _cause(live, path, hop)
            made.setdefault(_key(live, path, hop, finding), (finding, hop, []))[2].append(path)
            if hop.kind != "nat":
                break
    out = [
        _dropped(live, met[0], hop, met) if hop.kind == "firewall" else finding
        for finding, hop, met in made.values()
    ]
    return out + unexplained(live, traced, [*found, *out])


def _key(live: Live, path: Path, hop: Hop, finding: Finding) -> tuple[str, ...]:
    """What makes two failing hops one cause: the rule (or chain policy) that decided, for a
    firewall hop; else what the finding says and its fix, whatever the path's prefix."""
    verdict = hop.verdict
    if hop.kind in ("firewall", "input") and verdict is not None:
        rule = verdict.rule
        where = verdict.chain.where() if verdict.chain else ""
        decided = f"{' '.join(rule.chain)} {rule.handle}" if rule is not None else where
        return (finding.check, finding.site, hop.kind, hop.other, decided)
    said = which(live, path)
    return (finding.check, finding.site, finding.problem.replace(said, "", 1), finding.fix)


def _traffic(live: Live, met: Sequence[Path]) -> str:
    """The LAN traffic of the paths `met`: each pair, once for both ways, with the prefixes
    where they are not all of the LANs'."""
    pairs: list[tuple[str, str]] = []
    for p in met:
        if (p.source, p.dest) not in pairs and (p.dest, p.source) not in pairs:
            pairs.append((p.source, p.dest))
    ways = {(p.source, p.dest) for p in met}
    said = [
        f"between {a} and {b}, both ways" if (b, a) in ways else f"from {a} to {b}"
        for a, b in pairs
    ]
    prefixes = list(dict.fromkeys(p.prefix for p in met))
    lans = {prefix for p in met for prefix in live.plan.site(p.dest).lan}
    which = f" ({', '.join(map(str, prefixes))})" if set(prefixes) != lans else ""
    return f"LAN traffic {'; '.join(said)}{which}"


def _cause(live: Live, path: Path, hop: Hop) -> Finding:
    makers = {
        "route": route_elsewhere,
        "firewall": _dropped,
        "input": _dropped,
        "nat": _nat,
        "peer": _peer,
        "endpoint": _endpoint,
        "port": _port,
        "underlay": _underlay,
    }
    return makers[hop.kind](live, path, hop)


def _rule_fix(
    live: Live, site: str, rule: NftRule | None, chain: str, trail: Sequence[NftRule] = ()
) -> str:
    """How to take away what made the verdict: the UCI section fw4 made it (or the jump that
    led to it) from, an include, or the rule itself in a table that is not fw4's."""
    family, table, name = rule.chain if rule is not None else chain.split(" ", 2)
    reload = "/etc/init.d/firewall reload"
    for made in (rule, *reversed(trail)):
        label = (made.comment or "") if made is not None and made.chain[1] == "fw4" else ""
        ref = _uci_rule(live, site, label.removeprefix("!fw4: ")) if label else None
        if ref is not None:
            return f"uci delete firewall.{ref} && uci commit firewall && {reload}"
    if rule is None:
        return f"nft delete chain {family} {table} {name}   (its policy drops the packet)"
    if table == "fw4" and rule.comment and rule.comment.startswith("!fw4: "):
        return f"{reload}   (the loaded rules differ from /etc/config/firewall; or: {APPLY})"
    if table == "fw4":
        return (
            f"remove it from /etc/nftables.d (fw4 includes those files), then {reload}; "
            f"for now: nft delete rule {family} {table} {name} handle {rule.handle}"
        )
    if family in ("ip", "ip6") and table in _XTABLES:
        tool = "iptables" if family == "ip" else "ip6tables"
        return (
            f"{tool} -t {table} -S {name}; then {tool} -t {table} -D {name} <that rule>   "
            f"(an iptables-nft rule; and remove what adds it at boot)"
        )
    return (
        f"nft delete rule {family} {table} {name} handle {rule.handle}   (and remove what "
        "adds it at boot: /etc/nftables.conf, /etc/rc.local, an init or hotplug script)"
    )


def _uci_rule(live: Live, site: str, label: str) -> str | None:
    firewall = live.facts[site].firewall
    if firewall is None:
        return None
    for kind in ("rule", "redirect"):
        for section in firewall.sections_of_type(kind):
            ref = firewall.ref(section)
            if section.options.get("name") == label or f"@{ref}" == label or ref == label:
                return ref
    return None


def _dropped(live: Live, path: Path, hop: Hop, met: Sequence[Path] = ()) -> Finding:
    """`met`: every path the same rule drops (default: `path`)."""
    verdict = hop.verdict
    assert verdict is not None
    chain = verdict.chain.where() if verdict.chain else ""
    ruleset = live.probes[hop.site].ruleset
    trail = [f"  via: {ruleset.line(r)}" for r in verdict.trail] if ruleset else []
    what = (
        f"the handshake from {hop.other} (UDP to the listen port)"
        if hop.kind == "input"
        else _traffic(live, met or (path,))
    )
    return Finding(
        "firewall-drops",
        hop.site,
        f"the loaded nftables ruleset drops {what}: {hop.detail}",
        (*hop.evidence, *trail),
        _rule_fix(live, hop.site, verdict.rule, chain, verdict.trail),
    )


def _nat(live: Live, path: Path, hop: Hop) -> Finding:
    verdict = hop.verdict
    assert verdict is not None
    kind, rule = verdict.nat[0]
    fix = _rule_fix(live, hop.site, rule, " ".join(rule.chain))
    label = (rule.comment or "").removeprefix("!fw4: ")
    if label.startswith("Masquerade") and rule.chain[1] == "fw4":
        zone = label.split()[2] if len(label.split()) > 2 else ""
        ref, section = _zone_ref(live, hop.site, zone)
        held = words(section.options.get("network")) if section is not None else []
        iface = live.plan.site(hop.site).interface
        if ref is not None and any(n.startswith("wan") for n in held):
            # The WAN's own zone: its masquerade is the LAN's way out; the tunnel must leave it.
            fix = f"{APPLY}   (it puts {iface} in a zone of its own; keep {zone}'s masq)"
        elif ref is not None:
            option = "masq6" if "IPv6" in label else "masq"
            fix = (
                f"uci delete firewall.{ref}.{option} && uci commit firewall && "
                f"/etc/init.d/firewall reload   (or: {APPLY})"
            )
    return Finding(
        "nat-on-tunnel",
        hop.site,
        f"applies {kind} to LAN traffic between {path.source} and {path.dest}: the other "
        "side sees the router's address, not the host's (LAN-to-LAN traffic keeps its source)",
        hop.evidence,
        fix,
    )


def _zone_ref(live: Live, site: str, zone: str) -> tuple[str | None, Section | None]:
    firewall = live.facts[site].firewall
    if firewall is None:
        return None, None
    for section in firewall.sections_of_type("zone"):
        if section.options.get("name") == zone:
            return firewall.ref(section), section
    return None, None


def _peer(live: Live, path: Path, hop: Hop) -> Finding:
    site = live.plan.site(hop.site)
    iface = site.interface
    key = hop.evidence[-1].split("\t")[0] if "\t" in hop.evidence[-1] else ""
    network = live.facts[hop.site].network
    ref = None
    if network is not None and key:
        ref = next(
            (
                network.ref(s)
                for s in network.sections_of_type(f"wireguard_{iface}")
                if s.options.get("public_key") == key
            ),
            None,
        )
    if not hop.other:  # nobody carries it
        problem = f"no running peer of {iface} carries {path.dest}'s LAN: WireGuard drops it"
        fix = f"{driver_for(site.platform).start_interface[0].format(iface=iface)}   (or: {APPLY})"
    else:
        problem = (
            f"sends {path.dest}'s LAN to another peer: {hop.detail}, so {hop.other} never "
            "gets it (one prefix, one peer per interface)"
        )
        if ref is not None and not ref.startswith("sw_"):
            fix = f"uci delete network.{ref} && uci commit network && ifup {iface}"
        else:
            fix = f"wg set {iface} peer {key} remove; then {APPLY}"
    return Finding("prefix-elsewhere", hop.site, problem, hop.evidence, fix)


def _underlay(live: Live, path: Path, hop: Hop) -> Finding:
    line = hop.evidence[-1]
    address = hop.evidence[0].split()[-1]
    site = live.plan.site(hop.site)
    six = "-6 " if ":" in address else ""
    if "tailscale0" in line:
        priority = site.tailscale.pin_priority if site.tailscale is not None else 5200
        why = " (Tailscale's table 52: an accepted route or an exit node)"
        fix = (
            f"ip {six}rule add to {address} lookup main priority {priority}   (or: tailscale "
            "set --accept-routes=false; with an exit node: tailscale set --exit-node=)"
        )
    else:
        why = ""
        fix = (
            f"ip {six}route show; give {address} a route by the WAN that is more specific "
            f"than what sends it into {site.interface}"
        )
    device = re.search(r"\bdev (\S+)", line)
    where = f"go out by {device.group(1)}" if device else f"have no route ({line})"
    return Finding(
        "endpoint-route",
        hop.site,
        f"WireGuard's own packets to {hop.other}'s endpoint {address} {where}{why}, not by the WAN",
        hop.evidence,
        fix,
    )


def _endpoint(live: Live, path: Path, hop: Hop) -> Finding:
    return Finding(
        "no-endpoint",
        hop.site,
        f"dials {hop.other} but its peer has no endpoint: no handshake can start from here",
        hop.evidence,
        APPLY,
    )


def _port(live: Live, path: Path, hop: Hop) -> Finding:
    listener = live.plan.site(hop.other)
    running = int(hop.evidence[3])
    dial = live.plan.site(hop.site).peer(hop.other).dial
    planned = dial.endpoint.port if dial is not None else listener.listen_port
    if running != listener.listen_port and planned == listener.listen_port:
        fix = (
            f"uci set network.{listener.interface}.listen_port='{listener.listen_port}' && "
            f"uci commit network && ifup {listener.interface}   (or: {APPLY})"
            if driver_for(listener.platform).uses_uci
            else APPLY
        )
        return Finding(
            "listen-port-changed",
            hop.other,
            f"{listener.interface} listens on port {running}, not the planned "
            f"{listener.listen_port} that {hop.site} dials: its handshakes go nowhere",
            hop.evidence,
            fix,
        )
    site = live.plan.site(hop.site)
    fix = (
        f"uci set network.{peer_section(hop.other)}.endpoint_port='{planned}' && "
        f"uci commit network && ifup {site.interface}   (or: {APPLY})"
        if driver_for(site.platform).uses_uci
        else APPLY
    )
    return Finding(
        "endpoint-port",
        hop.site,
        f"dials {hop.other} on the wrong port: {hop.detail}",
        hop.evidence,
        fix,
    )
