"""What else claims sitewire's interface: two sections for one key, two zones, foreign peers.

A network made by hand (in LuCI, say) and then applied leaves its own sections beside
sitewire's (issue 12): netifd adds every peer section of the interface, the last one read
winning a key's AllowedIPs and routes; fw4 puts a packet in whichever zone it matches first.
"""

from __future__ import annotations

from sitewire.diagnose.doctor.model import (
    APPLY,
    Finding,
    Live,
    actual_key,
    dump_line,
    fw4_enabled,
)
from sitewire.driver import driver_for
from sitewire.plan.model import SitePlan
from sitewire.render.takeover import zones_holding
from sitewire.uci import Section, words


def check_duplicate_peers(live: Live, site: SitePlan) -> list[Finding]:
    """One public key in two peer sections of the interface."""
    facts = live.facts[site.name]
    network = facts.network
    if not driver_for(site.platform).uses_uci or network is None:
        return []
    names = {p.public_key: p.name for p in site.peers if p.public_key}
    names.update({k: p.name for p in site.peers if (k := actual_key(live, p.name))})
    by_key: dict[str, list[Section]] = {}
    for section in network.sections_of_type(f"wireguard_{site.interface}"):
        key = section.options.get("public_key")
        if isinstance(key, str) and key:
            by_key.setdefault(key, []).append(section)
    out = []
    for key, sections in by_key.items():
        if len(sections) < 2:
            continue
        refs = [network.ref(s) for s in sections]
        owner = names.get(key, f"{key[:8]}…")
        extra = [r for r in refs if not r.startswith("sw_")] or refs[1:]
        out.append(
            Finding(
                "duplicate-peer",
                site.name,
                f"has two peer sections for {owner}'s key ({', '.join(refs)}): netifd adds "
                "both, and whichever it reads last decides the AllowedIPs and routes",
                (
                    f"$ uci show network | grep {key[:8]}",
                    *(f"network.{r}.public_key" for r in refs),
                ),
                f"uci delete network.{extra[-1]} && uci commit network && ifup {site.interface}"
                f"   (or: {APPLY}, which takes a hand-made section over)",
            )
        )
    return out


def check_zones(live: Live, site: SitePlan) -> list[Finding]:
    """The interface in two firewall zones: which policy applies depends on their order."""
    facts = live.facts[site.name]
    firewall = facts.firewall
    if not driver_for(site.platform).uses_fw4 or firewall is None:
        return []
    zones = [z for z in zones_holding(facts.network, firewall, site.interface) if fw4_enabled(z[0])]
    if len(zones) < 2:
        return []
    iface = site.interface
    names = [str(z.options.get("name", firewall.ref(z))) for z, _ in zones]
    theirs, by = next(((z, b) for z, b in zones if z.name != "sw_zone"), zones[-1])
    shown = [
        f"firewall.{firewall.ref(z)}.{b}={iface}" if b else f"network.{iface}.zone={z_name}"
        for (z, b), z_name in zip(zones, names, strict=True)
    ]
    if by is None:  # the interface's own option; netifd restarts it when that changes
        fix = f"uci delete network.{iface}.zone && uci commit network && ifup {iface}"
    else:
        fix = _leave_command(theirs, firewall.ref(theirs), iface, by) + " && uci commit firewall"
    return [
        Finding(
            "interface-in-two-zones",
            site.name,
            f"{iface} is in two firewall zones ({', '.join(sorted(names))}): which "
            "policy a packet gets depends on the zones' order",
            (
                "$ uci show firewall | grep -e network -e device; uci show network | grep zone",
                *shown,
            ),
            f"{fix} && /etc/init.d/firewall reload   (or: {APPLY})",
        )
    ]


def _leave_command(zone: Section, ref: str, iface: str, by: str) -> str:
    value = zone.options.get(by)
    if isinstance(value, tuple):
        return f"uci del_list firewall.{ref}.{by}='{iface}'"
    rest = " ".join(n for n in words(value) if n != iface)
    return f"uci set firewall.{ref}.{by}='{rest}'"


def check_foreign_peers(live: Live, site: SitePlan) -> list[Finding]:
    """A running peer the plan does not know, holding none of the planned prefixes (a planned
    peer's prefixes under another key is `wrong-key`'s)."""
    iface = live.facts[site.name].wg.interface(site.interface)
    if iface is None:
        return []
    planned = {p.public_key for p in site.peers}
    planned |= {k for p in site.peers if (k := actual_key(live, p.name))}
    carried = {prefix for p in site.peers for prefix in p.allowed_ips}
    out = []
    for peer in iface.peers:
        if peer.public_key in planned or set(peer.allowed_ips) & carried:
            continue
        ips = ", ".join(str(p) for p in peer.allowed_ips) or "no AllowedIPs"
        out.append(
            Finding(
                "foreign-peer",
                site.name,
                f"runs a peer sitewire does not plan ({peer.public_key[:8]}…, {ips}): it is "
                "kept; if it is not yours, remove it",
                ("$ wg show all dump", dump_line(site.interface, peer)),
                f"wg set {site.interface} peer {peer.public_key} remove, and delete it from "
                + driver_for(site.platform).peer_store.format(iface=site.interface),
            )
        )
    return out
