"""The firewall4 checks: the interface in no zone, a missing forwarding, a closed port."""

from __future__ import annotations

from sitewire.diagnose.doctor.model import APPLY, Finding, Live, fw4_enabled, live_peer
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import parse_number
from sitewire.driver import driver_for
from sitewire.plan.model import SitePlan
from sitewire.render.openwrt import rule_name
from sitewire.render.takeover import zones_holding
from sitewire.uci import Section


def _uci_line(package: str, section: Section) -> str:
    head = f"{package}.{section.name or '@' + section.type}={section.type}"
    opts = " ".join(
        f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in section.options.items()
    )
    return f"{head} {opts}".strip()


def _zone_of(facts: DeviceFacts, iface: str) -> Section | None:
    """The zone fw4 puts the interface in: sitewire's where it is one of several (a second zone
    is `interface-in-two-zones`'s), else the one its `option zone` names, else the first; a
    disabled zone fw4 ignores."""
    if facts.firewall is None:
        return None
    zones = [z for z in zones_holding(facts.network, facts.firewall, iface) if fw4_enabled(z[0])]
    ranked = sorted(zones, key=lambda zb: (zb[0].name != "sw_zone", zb[1] is not None))
    return ranked[0][0] if ranked else None


def _enable_fix(ref: str) -> str:
    return (
        f"uci set firewall.{ref}.enabled='1' && uci commit firewall && "
        f"/etc/init.d/firewall reload   (or: {APPLY})"
    )


def check_disabled_zone(live: Live, site: SitePlan) -> list[Finding]:
    """The zones holding the interface are all disabled: fw4 leaves it in none."""
    facts = live.facts[site.name]
    firewall = facts.firewall
    if not driver_for(site.platform).uses_fw4 or firewall is None:
        return []
    zones = zones_holding(facts.network, firewall, site.interface)
    if not zones or _zone_of(facts, site.interface) is not None:
        return []
    zone = zones[0][0]
    ref = firewall.ref(zone)
    name = zone.options.get("name", ref)
    return [
        Finding(
            "disabled-zone",
            site.name,
            f"zone '{name}' holds {site.interface} but is disabled (enabled "
            f"'{zone.options.get('enabled')}'): fw4 ignores it and rejects what crosses "
            f"{site.interface}",
            (f"$ uci show firewall.{ref}", _uci_line("firewall", zone)),
            _enable_fix(ref),
        )
    ]


def check_no_zone(live: Live, site: SitePlan) -> list[Finding]:
    """10. The WireGuard interface in no firewall zone: fw4 drops what it forwards."""
    facts = live.facts[site.name]
    if not driver_for(site.platform).uses_fw4 or facts.firewall is None:
        return []
    if zones_holding(facts.network, facts.firewall, site.interface):
        return []  # held by a zone, enabled or (check_disabled_zone's) not
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
    if not driver_for(site.platform).uses_fw4 or facts.firewall is None:
        return []
    zone = _zone_of(facts, site.interface)
    if zone is None:
        return []  # check_no_zone owns this
    name = str(zone.options.get("name", ""))
    forwardings = facts.firewall.sections_of_type("forwarding")
    have = {(f.options.get("src"), f.options.get("dest")) for f in forwardings if fw4_enabled(f)}
    out = []
    for src, dest in (("lan", name), (name, "lan")):
        # fw4 takes `*` for any zone on either side (reference §2.2).
        if {(src, dest), ("*", dest), (src, "*"), ("*", "*")} & have:
            continue
        off = next(
            (
                f
                for f in forwardings
                if (f.options.get("src"), f.options.get("dest")) == (src, dest)
            ),
            None,
        )
        if off is not None:
            out.append(_disabled_forwarding(site, facts, off, src, dest))
            continue
        shown = [_uci_line("firewall", f) for f in forwardings]
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


def _disabled_forwarding(
    site: SitePlan, facts: DeviceFacts, forwarding: Section, src: str, dest: str
) -> Finding:
    assert facts.firewall is not None
    ref = facts.firewall.ref(forwarding)
    return Finding(
        "disabled-forwarding",
        site.name,
        f"the firewall forwarding {src} → {dest} is disabled (enabled "
        f"'{forwarding.options.get('enabled')}'): "
        + (
            "LAN hosts cannot send into the tunnel"
            if src == "lan"
            else "the remote LANs cannot reach this LAN"
        ),
        (f"$ uci show firewall.{ref}", _uci_line("firewall", forwarding)),
        _enable_fix(ref),
    )


def fw4_families(value: object) -> frozenset[int]:
    """The IP versions a fw4 `family` option admits (fw4.uc parse_family): none set, `any`,
    `all` or `*` is both; `inet` or a value with a 4 is IPv4; one with a 6, IPv6."""
    text = str(value) if value is not None else "any"
    if text in ("any", "all", "*"):
        return frozenset({4, 6})
    if text == "inet" or "4" in text:
        return frozenset({4})
    return frozenset({6}) if "6" in text else frozenset({4, 6})


def _port_open_for(facts: DeviceFacts, port: int) -> tuple[frozenset[int], list[Section]]:
    """The IP versions whose packets to udp/`port` from wan the firewall accepts, and the
    sections that do it (the wan zone, or the rules)."""
    assert facts.firewall is not None
    # fw4 reads policies and targets case-insensitively; a rule's `src` may be `*` (any
    # zone, as LuCI writes it) and its proto defaults to `tcpudp` (reference §2.1, §2.3).
    for zone in facts.firewall.sections_of_type("zone"):
        if zone.options.get("name") == "wan" and str(zone.options.get("input")).upper() == "ACCEPT":
            return fw4_families(zone.options.get("family")), [zone]
    families: set[int] = set()
    rules: list[Section] = []
    for rule in facts.firewall.sections_of_type("rule"):
        if _accepts(rule, port):
            families |= fw4_families(rule.options.get("family"))
            rules.append(rule)
    return frozenset(families), rules


def _accepts(rule: Section, port: int) -> bool:
    o = rule.options
    if not fw4_enabled(rule) or o.get("src") not in ("wan", "*"):
        return False
    if str(o.get("target", "")).upper() != "ACCEPT":
        return False
    if o.get("dest") not in (None, ""):
        return False  # a forward rule, not input
    proto = o.get("proto", "tcpudp")
    protos = proto if isinstance(proto, tuple) else tuple(str(proto).split())
    if not ({"udp", "tcpudp", "all", "any"} & {p.lower() for p in protos}):
        return False
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
    if not driver_for(site.platform).uses_fw4 or facts.firewall is None:
        return []
    if site.firewall.open_port is None:
        return []
    port = site.firewall.open_port
    families, rules = _port_open_for(facts, port)
    if families:
        return _family_closed(live, site, port, families, rules)
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
            f"uci set {rule}.name='{rule_name(site.interface)}' && "
            f"uci set {rule}.src='wan' && uci set {rule}.proto='udp' && "
            f"uci set {rule}.dest_port='{port}' && uci set {rule}.target='ACCEPT' && "
            "uci commit firewall "
            f"&& /etc/init.d/firewall reload   (or: {APPLY})",
        )
    ]


def _family_closed(
    live: Live, site: SitePlan, port: int, families: frozenset[int], rules: list[Section]
) -> list[Finding]:
    """The port is open for one IP version, and a site dials this one over the other."""
    facts = live.facts[site.name]
    assert facts.firewall is not None
    out = []
    for other in live.plan.sites():
        if other.name == site.name or other.name not in live.facts:
            continue
        peer = next((p for p in other.peers if p.name == site.name), None)
        if peer is None or peer.dial is None:
            continue
        running = live_peer(live, other, site.name)
        if running is None or running.endpoint is None:
            continue
        version = running.endpoint.ip.version
        if version in families:
            continue
        fix = "".join(f"uci -q delete firewall.{facts.firewall.ref(r)}.family; " for r in rules)
        fix += "uci commit firewall && /etc/init.d/firewall reload"
        out.append(
            Finding(
                "port-closed-for-family",
                site.name,
                f"udp/{port} is accepted from wan for IPv{min(families)} only, and "
                f"{other.name} dials this site over IPv{version} ({running.endpoint}): its "
                "handshakes are dropped once the current flow's conntrack entry goes",
                (
                    "$ uci show firewall  (what accepts the port from wan)",
                    *(_uci_line("firewall", r) for r in rules),
                    f"$ wg show {other.interface} endpoints  (on {other.name})",
                    f"{running.public_key}\t{running.endpoint}",
                ),
                f"{fix}   (or: {APPLY})",
            )
        )
    return out
