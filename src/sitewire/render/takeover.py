"""Taking over what a person made by hand on an OpenWrt router, as uci lines. Pure.

A network made in LuCI describes the planned one in its own sections: an anonymous
`wireguard_wg0` peer section per public key, a zone named `wireguard` holding wg0, forwardings
to and from it, an `Allow-WireGuard` rule for the port (issue 12). Applying beside them would
leave two peer sections per key (netifd adds both; the last read wins the AllowedIPs and
routes), the interface in two zones and two rules for one port. Instead, each hand-made section
that means the same as a planned one is renamed to sitewire's name (so it keeps its position,
its preshared key and, on the device, its identity), a second one for the same thing is
deleted, and a zone shared with other networks only loses the interface. The render that
follows then rewrites the taken-over sections exactly as it writes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitewire.errors import UciError
from sitewire.plan.model import SitePlan
from sitewire.render.openwrt import OWNED_PREFIX, peer_section, rule_name
from sitewire.render.quote import uci_value
from sitewire.uci import Package, Section, UciStore, words


@dataclass(frozen=True, slots=True)
class Takeover:
    """One uci line and what it means for a person (`label: what`)."""

    line: str
    label: str  # e.g. "peer B", "zone wireguard"
    what: str  # e.g. "hand-made section @wireguard_wg0[0] taken over"
    order: int = 0  # deletions last, highest index first: indexes stay right until then
    renamed: str | None = None  # the section's new (sitewire's) name, for a rename

    @property
    def package(self) -> str:
        return self.line.split()[1].split(".", 1)[0]

    def shown(self, site: str) -> str:
        return f"{site}: {self.label}: {self.what}"


def _delete(package: Package, section: Section, label: str, why: str) -> Takeover:
    ref, index = package.ref(section), package.index(section)
    return Takeover(f"delete {package.name}.{ref}", label, f"{why} {ref} removed", 1000 - index)


def _rename(
    package: Package, section: Section, name: str, label: str, named: str | None = None
) -> Takeover:
    """Section renamed to sitewire's `name`; `named`: the `name` option it will have, said
    here when it differs (the render's renaming is part of the takeover, not a line of its own)."""
    ref = package.ref(section)
    line = f"rename {package.name}.{ref}={name}"
    what = f"hand-made section {ref} taken over"
    if named is not None and section.options.get("name") != named:
        what += f", now named {named}"
    return Takeover(line, label, what, renamed=name)


def plan_takeover(
    site: SitePlan, current: Mapping[str, Package], *, drop_foreign: bool = False
) -> list[Takeover]:
    """What to rename, delete or unlist so that one section describes each planned thing;
    with `drop_foreign`, peer sections of the interface for keys the plan does not know go."""
    network, firewall = current.get("network"), current.get("firewall")
    out: list[Takeover] = []
    if network is not None:
        out += _peers(site, network, drop_foreign)
    if firewall is not None:
        out += _zone(site, network, firewall)
        out += _rules(site, firewall)
    return sorted(out, key=lambda t: t.order)


def _peers(site: SitePlan, network: Package, drop_foreign: bool) -> list[Takeover]:
    by_key = {p.public_key: p.name for p in site.peers if p.public_key}
    taken = {s.name for s in network.sections if s.name}
    out = []
    for section in network.sections_of_type(f"wireguard_{site.interface}"):
        key = section.options.get("public_key")
        name = by_key.get(key) if isinstance(key, str) else None
        owned = (section.name or "").startswith(OWNED_PREFIX)
        if name is None and drop_foreign and not owned:
            shown = f"{key[:8]}…" if isinstance(key, str) else "without a key"
            out.append(
                _delete(network, section, f"peer {shown}", "not planned (--remove-foreign):")
            )
            continue
        if name is None or section.name == peer_section(name):
            continue
        label = f"peer {name}"
        if peer_section(name) in taken:
            out.append(_delete(network, section, label, "second section for its key:"))
        else:
            out.append(_rename(network, section, peer_section(name), label))
            taken.add(peer_section(name))
    return out


MEMBERSHIP = ("network", "device", "subnet")  # what puts an interface's traffic in a zone


def zones_holding(
    network: Package | None, firewall: Package, iface: str
) -> list[tuple[Section, str | None]]:
    """The zones fw4 puts the interface in, each with the option of the zone that lists it
    (`network`, or `device`: a WireGuard interface's device has its name), or None for the
    zone the interface's own `option zone` names (netifd passes it to fw4)."""
    section = network.section(iface) if network is not None else None
    named = section.options.get("zone") if section is not None else None
    out: list[tuple[Section, str | None]] = []
    for zone in firewall.sections_of_type("zone"):
        by = next((o for o in ("network", "device") if iface in words(zone.options.get(o))), None)
        if by is not None or (named is not None and zone.options.get("name") == named):
            out.append((zone, by))
    return out


def _zone(site: SitePlan, network: Package | None, firewall: Package) -> list[Takeover]:
    iface, ours = site.interface, f"{OWNED_PREFIX}zone"
    out: list[Takeover] = []
    have_ours = firewall.section(ours) is not None
    for zone, by in zones_holding(network, firewall, iface):
        if zone.name == ours:
            continue
        ref = firewall.ref(zone)
        old = str(zone.options.get("name", ref))
        label = f"zone {old}"
        # Only this interface, by one option: the person's zone for it. (Named by the
        # interface's `option zone`, which the render clears: a zone holding nothing else.)
        held = {o: words(zone.options.get(o)) for o in MEMBERSHIP}
        alone = {o: v for o, v in held.items() if v} == ({by: [iface]} if by else {})
        if have_ours or not alone:
            if by is not None:
                out.append(_leave(firewall, zone, iface, label, by))
            continue
        out.append(_rename(firewall, zone, ours, label, site.firewall.zone))
        out += _forwardings(site, firewall, old)
        have_ours = True
    return out


def _leave(firewall: Package, zone: Section, iface: str, label: str, by: str) -> Takeover:
    """The interface out of a zone it shares (`by`: its `network` or `device` option):
    `del_list` for a list; uci's del_list does nothing on an option (`option network 'lan
    wg0'`, which fw4 reads too), so `set` the rest."""
    ref = firewall.ref(zone)
    value = zone.options.get(by)
    if isinstance(value, tuple):
        line = f"del_list firewall.{ref}.{by}={uci_value(iface)}"
    else:
        rest = " ".join(n for n in words(value) if n != iface)
        line = f"set firewall.{ref}.{by}={uci_value(rest)}"
    return Takeover(line, label, f"{iface} leaves it (one zone per interface)")


def _forwardings(site: SitePlan, firewall: Package, old: str) -> list[Takeover]:
    """The taken-over zone's forwardings: the planned ones taken over, others follow its name."""
    new = site.firewall.zone
    planned = set(site.firewall.forwardings)
    out = []
    for fwd in firewall.sections_of_type("forwarding"):
        src, dest = fwd.options.get("src"), fwd.options.get("dest")
        if old not in (src, dest) or not isinstance(src, str) or not isinstance(dest, str):
            continue
        pair = (new if src == old else src, new if dest == old else dest)
        label = f"forwarding {src}→{dest}"
        name = f"{OWNED_PREFIX}fwd_{pair[0]}_{pair[1]}"
        if pair in planned and firewall.section(name) is None:
            out.append(_rename(firewall, fwd, name, label))
            continue
        out += _follow(firewall, fwd, old, new, label)
    for kind in ("rule", "redirect", "nat"):
        for section in firewall.sections_of_type(kind):
            label = f"{kind} {section.options.get('name', firewall.ref(section))}"
            out += _follow(firewall, section, old, new, label)
    return out


def _follow(firewall: Package, section: Section, old: str, new: str, label: str) -> list[Takeover]:
    """A section naming the zone by its old name names it by the new one (fw4 skips a rule
    or redirect whose zone does not exist)."""
    ref = firewall.ref(section)
    return [
        Takeover(
            f"set firewall.{ref}.{option}={uci_value(new)}",
            label,
            f"follows the zone's new name {new}",
        )
        for option in ("src", "dest", "reflection_zone")
        if section.options.get(option) == old
    ]


def _rules(site: SitePlan, firewall: Package) -> list[Takeover]:
    port, ours = site.firewall.open_port, f"{OWNED_PREFIX}allow_{site.firewall.interface}"
    if port is None:
        return []
    have_ours = firewall.section(ours) is not None
    out = []
    for rule in firewall.sections_of_type("rule"):
        if rule.name == ours or not _opens(rule, port):
            continue
        label = f"rule {rule.options.get('name', firewall.ref(rule))}"
        if have_ours:
            out.append(_delete(firewall, rule, label, "same port as sitewire's rule:"))
        else:
            out.append(_rename(firewall, rule, ours, label, rule_name(site.firewall.interface)))
            have_ours = True
    return out


def _opens(rule: Section, port: int) -> bool:
    """A rule that accepts exactly the planned port from the WAN, as the planned one does."""
    o = rule.options
    protos = words(o.get("proto"))
    return (
        o.get("src") in ("wan", "*")
        and o.get("target") == "ACCEPT"
        and words(o.get("dest_port")) == [str(port)]
        and protos in ([], ["udp"], ["tcp", "udp"], ["tcpudp"])
        and "dest" not in o
        and o.get("enabled") not in ("0", "no", "off", "false")
    )


def taken_over(current: Mapping[str, Package], takeovers: list[Takeover]) -> dict[str, Package]:
    """`current` as the real `uci batch` of the takeovers leaves it (the uci model, which is
    checked against recorded runs of the real uci)."""
    if not takeovers:
        return dict(current)
    store = UciStore(dict(current))
    result = store.batch(batch_text(takeovers))
    if result.stderr.strip():
        # uci's own model refusing our lines is a sitewire bug, said on one line, not a trace.
        raise UciError(
            f"the takeover batch would fail: {result.stderr.strip().splitlines()[0]}",
            fix="report this with 'uci export network' and 'uci export firewall'",
        )
    return {name: store.committed(name) for name in current}


def batch_text(takeovers: list[Takeover]) -> str:
    packages = {t.package for t in takeovers}
    commits = [f"commit {p}" for p in ("network", "firewall") if p in packages]
    return "\n".join([*(t.line for t in takeovers), *commits]) + "\n"
