"""Where a site's LANs answer, from its facts: the router's own address in each prefix, a host
address standing for a LAN host's packet, a neighbour lately heard from; and the planned next
hop of a packet, with the LAN paths a relay carries. doctor's probes, its trace and apply's
verification all ask these."""

from __future__ import annotations

from collections.abc import Mapping

from sitewire import strict
from sitewire.diagnose.facts import DeviceFacts
from sitewire.plan import Plan
from sitewire.strict import IPAddress, IPNetwork


def lan_address(facts: DeviceFacts | None, prefix: IPNetwork) -> tuple[IPAddress, str] | None:
    """(the device's own address in `prefix`, its device): from the connected route (a route
    whose src lies outside the prefix says nothing about it), else from the addresses it holds
    (an IPv6 connected route names no src)."""
    if facts is None:
        return None
    for route in facts.routes:
        if route.dest != prefix or route.src is None or route.dev is None:
            continue
        if route.src in prefix:
            return route.src, route.dev
    for held in facts.addresses:  # in the prefix, on a subnet as wide or wider (ip6assign)
        ip = held.interface.ip
        if ip in prefix and held.interface.network.prefixlen <= prefix.prefixlen:
            return ip, held.dev
    return None


def lan_host(prefix: IPNetwork, router: IPAddress | str) -> str:
    """An address in the LAN that is not the router's: stands for a LAN host's packet."""
    address = router if not isinstance(router, str) else strict.address(router)
    for candidate in (prefix.broadcast_address - 1, prefix.broadcast_address - 2):
        if candidate != address:
            return str(candidate)
    return str(prefix.network_address + 2)


def lan_neighbour(facts: DeviceFacts | None, prefix: IPNetwork) -> str | None:
    """A host in `prefix` (not the router) that the router lately heard from on its LAN
    device: doctor pings it across the tunnel, and from its own router, in the same round."""
    found = lan_address(facts, prefix)
    if facts is None or found is None:
        return None
    hosts = (n.address for n in facts.neighbours if n.dev == found[1] and n.address in prefix)
    return next((str(a) for a in hosts if a != found[0]), None)


def lan_sources(
    plan: Plan, site: str, facts: Mapping[str, DeviceFacts | None]
) -> dict[int, tuple[str, str, IPAddress, IPNetwork]]:
    """By IP version: (the LAN host address doctor routes from, its device, the router's own
    address there, the prefix), for the first LAN prefix of that version the router has an
    address in."""
    out: dict[int, tuple[str, str, IPAddress, IPNetwork]] = {}
    for prefix in plan.site(site).lan:
        if prefix.version not in out and (found := lan_address(facts.get(site), prefix)):
            out[prefix.version] = (lan_host(prefix, found[0]), found[1], found[0], prefix)
    return out


def next_hop(plan: Plan, site: str, address: IPAddress) -> str | None:
    """The node the plan sends `address` to from `site` (the longest planned prefix)."""
    best: tuple[str, int] | None = None
    for peer in plan.site(site).peers:
        for prefix in peer.allowed_ips:
            fits = prefix.version == address.version and address in prefix
            if fits and (best is None or prefix.prefixlen > best[1]):
                best = (peer.name, prefix.prefixlen)
    return best[0] if best else None


Relayed = tuple[str, IPNetwork, str, str]  # (source, prefix, source's LAN host, target)
_TAILSCALE_MARK = "0x80000/0xff0000"  # tailscaled's own packets (rules 5210-5250)


def relayed(plan: Plan, facts: Mapping[str, DeviceFacts | None]) -> dict[str, list[Relayed]]:
    """By relay: each planned LAN path it forwards, where its own rules could take the packet
    away from its main table (any policy rule but the kernel's, Tailscale's own marked ones,
    and `lookup 52` while table 52 holds nothing for the prefix). Elsewhere the main table
    is the kernel's answer, and doctor reads that from the facts."""
    out: dict[str, list[Relayed]] = {}
    for source in plan.site_names:
        sources = lan_sources(plan, source, facts)
        for dest in plan.sites():
            for prefix in dest.lan if dest.name != source else ():
                there = lan_address(facts.get(dest.name), prefix)
                if prefix.version not in sources or there is None:
                    continue
                target = strict.address(lan_host(prefix, there[0]))
                here, seen = next_hop(plan, source, target), {source}
                while here is not None and here not in seen and here != dest.name:
                    if _may_divert(facts.get(here), prefix):
                        host = sources[prefix.version][0]
                        out.setdefault(here, []).append((source, prefix, host, str(target)))
                    seen.add(here)
                    here = next_hop(plan, here, target)
    return out


def _may_divert(facts: DeviceFacts | None, prefix: IPNetwork) -> bool:
    if facts is None:
        return False
    for rule in facts.rules4 if prefix.version == 4 else facts.rules6:
        if rule.priority in (0, 32766, 32767) or rule.fwmark == _TAILSCALE_MARK:
            continue
        if rule.action == "lookup" and rule.table == "52" and not rule.has_selector:
            if any(
                r.dest.overlaps(prefix) for r in facts.table52 if r.dest.version == prefix.version
            ):
                return True
            continue
        return True
    return False
