"""What a live network made by hand means, as a spec and a lock that reproduce it. Pure.

From each router's facts (UCI and `wg show`, keys hidden on the router): its WireGuard
interface, listen port and overlay address, its LAN, its live public key; from the peer
sections, who dials whom (the dialler's `endpoint_host` becomes the listener's `endpoint`),
keepalive, whether preshared keys are in use, and the clients (peers that are no router). What
cannot be said in a spec — a router holding a key for another that the other does not have,
one side of a pair missing, two WireGuard interfaces to choose from — is refused naming the
router and the section, and nothing is written.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sitewire import strict
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import HIDDEN
from sitewire.errors import InputError
from sitewire.spec.lock import Lock, LockEntry
from sitewire.uci import Package, Section, words

EXIT_ROUTES = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


class AdoptError(InputError):
    """The live network cannot be expressed as a spec: nothing was written."""


@dataclass(frozen=True, slots=True)
class Peer:
    ref: str  # the section as uci names it
    public_key: str
    allowed_ips: tuple[strict.IPNetwork, ...]
    endpoint: str | None  # host, or host:port when not the listener's port
    endpoint_port: int | None
    keepalive: int | None
    preshared: bool
    description: str | None


@dataclass(frozen=True, slots=True)
class Router:
    """One router as found."""

    name: str
    ssh: str
    interface: str
    public_key: str
    port: int | None  # None: no listen_port in UCI (a random port, fine for a dialler)
    address: strict.IPInterface
    lan: tuple[strict.IPNetwork, ...]
    peers: tuple[Peer, ...]
    facts: DeviceFacts | None = field(default=None, repr=False, compare=False)
    platform: str = "openwrt"
    address6: strict.IPInterface | None = None
    mtu: int | None = None  # set by hand in UCI


T = TypeVar("T")


def parsed(parse: Callable[[str], T], text: str, where: str, what: str) -> T:
    """`parse(text)`, or the one-line refusal naming what on the router (or file) is wrong."""
    try:
        return parse(text)
    except ValueError:
        raise AdoptError(
            f"{what}: {text!r} is not what sitewire can read here",
            where=where,
            fix="correct it on the router (or in the file), then adopt again",
        ) from None


def prefix(text: str) -> strict.IPNetwork:
    return strict.network(text, strict=False)


def read_router(name: str, ssh: str, facts: DeviceFacts) -> Router:
    network = facts.network
    if network is None:
        raise AdoptError(
            "is not an OpenWrt router sitewire can read (no UCI)",
            where=name,
            fix="adopt reads OpenWrt routers; for a Linux host pass its file with --wg-quick",
        )
    ifaces = [
        s
        for s in network.sections_of_type("interface")
        if s.name and s.options.get("proto") == "wireguard"
    ]
    if len(ifaces) != 1:
        found = ", ".join(str(s.name) for s in ifaces) or "none"
        raise AdoptError(
            f"has {len(ifaces)} WireGuard interfaces ({found}); adopt takes a router with one",
            where=name,
            fix="adopt the others separately, or remove the one that is not part of this network",
        )
    section = ifaces[0]
    iface = str(section.name)
    live = facts.wg.interface(iface)
    if live is None or live.public_key is None:
        raise AdoptError(
            f"{iface} is configured but does not run, so its public key is unknown",
            where=name,
            fix=f"bring it up (ifup {iface}) and adopt again",
        )
    addresses = [
        parsed(strict.interface, a, name, f"network.{iface}.addresses")
        for a in words(section.options.get("addresses"))
    ]
    v4 = [a for a in addresses if a.version == 4]
    if not v4:
        raise AdoptError(
            f"{iface} has no IPv4 address in UCI (network.{iface}.addresses)",
            where=name,
            fix="give it its overlay address, e.g. uci add_list "
            f"network.{iface}.addresses='192.168.5.1/24'",
        )
    v6 = [a for a in addresses if a.version == 6 and not a.ip.is_link_local]
    return Router(
        name,
        ssh,
        iface,
        live.public_key,
        strict.digits(section.options.get("listen_port")),
        v4[0],
        _lan(name, network, facts),
        tuple(_peer(name, network, s) for s in network.sections_of_type(f"wireguard_{iface}")),
        facts,
        address6=v6[0] if v6 else None,
        mtu=strict.digits(section.options.get("mtu")),
    )


def _lan(name: str, network: Package, facts: DeviceFacts) -> tuple[strict.IPNetwork, ...]:
    lan = network.section("lan")
    address = lan.options.get("ipaddr") if lan is not None else None
    mask = lan.options.get("netmask") if lan is not None else None
    for item in words(address):
        try:
            if "/" not in item and isinstance(mask, str):
                bits = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
                item = f"{item}/{bits}"
            return (strict.interface(item).network,)
        except ValueError:
            break
    raise AdoptError(
        "has no 'lan' interface with an address and netmask sitewire can read in UCI",
        where=name,
        fix="adopt reads the LAN from network.lan.ipaddr; set it, or write the spec by hand",
    )


def _peer(router: str, network: Package, section: Section) -> Peer:
    o = section.options
    where = f"network.{network.ref(section)}.allowed_ips"
    port = strict.digits(o.get("endpoint_port"))
    keepalive = strict.digits(o.get("persistent_keepalive"))
    host = o.get("endpoint_host")
    description = o.get("description")
    return Peer(
        network.ref(section),
        str(o.get("public_key", "")),
        tuple(parsed(prefix, p, router, where) for p in words(o.get("allowed_ips"))),
        host if isinstance(host, str) and host else None,
        port,
        keepalive or None,
        o.get("preshared_key") in (HIDDEN,) or bool(o.get("preshared_key")),
        description if isinstance(description, str) else None,
    )


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")


def _client_name(peer: Peer, taken: set[str]) -> str:
    base = _NAME_CHARS.sub("_", peer.description or "")[:24].strip("_")
    base = base if base and base[0].isalpha() else f"client{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def derive(
    network_name: str, routers: list[Router], client_names: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Lock]:
    """The spec (as TOML-ready data) and the lock that reproduce `routers`; `client_names`
    names clients by their public key (a phone's own wg-quick file, say)."""
    by_key = {r.public_key: r for r in routers}
    overlay = routers[0].address.network
    for r in routers:
        if r.address.network != overlay:
            raise AdoptError(
                f"{r.interface} is on {r.address.network}, {routers[0].name} on {overlay}: "
                "one overlay per network",
                where=r.name,
                fix="adopt the routers of one network together",
            )
    _check_pairs(routers, by_key)
    net = _network(network_name, routers, by_key)
    endpoints = _endpoints(routers, by_key)
    sites = {r.name: _site(r, routers, endpoints, net["port"]) for r in routers}
    clients, client_locks = _clients(routers, by_key, overlay, client_names or {})
    spec: dict[str, Any] = {"network": net, "sites": sites}
    if clients:
        spec["clients"] = clients
    lock = Lock(
        network=network_name,
        sites={
            r.name: LockEntry(
                address=str(r.address.ip),
                address6=str(r.address6.ip) if r.address6 is not None else None,
                public_key=r.public_key,
            )
            for r in routers
        },
        clients=client_locks,
    )
    return spec, lock


def _network(name: str, routers: list[Router], by_key: Mapping[str, Router]) -> dict[str, Any]:
    ports = Counter(r.port for r in routers if r.port is not None).most_common(1)
    keepalives = [
        p.keepalive for r in routers for p in r.peers if p.public_key in by_key and p.endpoint
    ]
    keepalive = Counter(k for k in keepalives if k).most_common(1)
    psk = any(p.preshared for r in routers for p in r.peers if p.public_key in by_key)
    net: dict[str, Any] = {
        "name": name,
        "overlay": str(routers[0].address.network),
        "port": ports[0][0] if ports else 51820,
    }
    v6 = [r.address6.network for r in routers if r.address6 is not None]
    if v6:
        if len(v6) != len(routers) or len(set(v6)) != 1:
            raise AdoptError(
                "the routers' IPv6 overlay addresses are not all in one prefix",
                where=routers[0].name,
                fix="give every router an address in one IPv6 overlay, or none",
            )
        net["overlay6"] = str(v6[0])
    if keepalive:
        net["keepalive"] = keepalive[0][0]
    if not psk:
        net["preshared_keys"] = False
    return net


def _site(
    r: Router, routers: list[Router], endpoints: Mapping[str, str], port: int
) -> dict[str, Any]:
    site: dict[str, Any] = {"platform": r.platform, "lan": [str(p) for p in _lan_of(r, routers)]}
    if r.ssh:
        site["ssh"] = r.ssh
    if r.name in endpoints:
        site["endpoint"] = endpoints[r.name]
    if r.port is not None and r.port != port:
        site["port"] = r.port
    if r.mtu is not None:
        site["mtu"] = r.mtu
    if r.interface != "wg0":
        site["interface"] = r.interface
    ts = _tailscale(r.facts) if r.facts is not None else None
    if ts is not None:
        site["tailscale"] = ts
    return site


def _lan_of(router: Router, routers: list[Router]) -> tuple[strict.IPNetwork, ...]:
    """Its LAN as found, and what the others route to it beyond the overlay: the prefixes
    their peer for it carries (a Linux host's file says no LAN), except another router's LAN
    as found, which it relays (B and C dial A, B's peer for A carries C's LAN too)."""
    overlay = router.address.network
    relayed = [p for other in routers if other is not router for p in other.lan]
    carried = {
        prefix
        for other in routers
        for p in other.peers
        if p.public_key == router.public_key
        for prefix in p.allowed_ips
        if not _within(prefix, overlay)
        and not (router.address6 is not None and _within(prefix, router.address6.network))
        and not any(_within(prefix, lan) for lan in relayed)
    }
    carried |= set(router.lan)
    return tuple(sorted(carried, key=lambda p: (p.version, int(p.network_address))))


def _within(prefix: strict.IPNetwork, overlay: strict.IPNetwork) -> bool:
    return (
        prefix.version == overlay.version
        and int(overlay.network_address) <= int(prefix.network_address)
        and int(prefix.broadcast_address) <= int(overlay.broadcast_address)
    )


def _check_pairs(routers: list[Router], by_key: Mapping[str, Router]) -> None:
    addresses = {r.address.ip: r for r in routers}
    for r in routers:
        for peer in r.peers:
            other = by_key.get(peer.public_key)
            if other is None:
                claimed = [
                    addresses[ip.network_address]
                    for ip in peer.allowed_ips
                    if ip.prefixlen == ip.max_prefixlen and ip.network_address in addresses
                ]
                if claimed and claimed[0] is not r:
                    raise AdoptError(
                        f"its peer section {peer.ref} holds {peer.public_key[:8]}… for "
                        f"{claimed[0].name}'s address {claimed[0].address.ip}, but "
                        f"{claimed[0].name}'s key is {claimed[0].public_key[:8]}…",
                        where=r.name,
                        fix=f"set network.{peer.ref}.public_key to {claimed[0].name}'s key, "
                        "or adopt without that router",
                    )
                continue
            if not any(p.public_key == r.public_key for p in other.peers):
                raise AdoptError(
                    f"holds {other.name}'s key ({peer.ref}), but {other.name} has no peer "
                    f"for {r.name}",
                    where=r.name,
                    fix=f"add {r.name} as a peer on {other.name}, or remove {peer.ref}",
                )


def _endpoints(routers: list[Router], by_key: Mapping[str, Router]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in sorted(routers, key=lambda x: x.name):
        for peer in r.peers:
            other = by_key.get(peer.public_key)
            if other is None or peer.endpoint is None or other.name in out:
                continue
            port = peer.endpoint_port
            host = f"[{peer.endpoint}]" if ":" in peer.endpoint else peer.endpoint
            out[other.name] = host if port in (None, other.port) else f"{host}:{port}"
    return out


def _tailscale(facts: DeviceFacts) -> dict[str, Any] | None:
    prefs = facts.tailscale.prefs
    if not facts.tailscale.installed or prefs is None:
        return None
    routes = [str(p) for p in prefs.advertise_routes if p not in EXIT_ROUTES]
    out: dict[str, Any] = {"advertise_routes": routes}
    if set(prefs.advertise_routes) >= EXIT_ROUTES:
        out["exit_node"] = True
    return out


def _clients(
    routers: list[Router],
    by_key: Mapping[str, Router],
    overlay: strict.IPNetwork,
    names: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, LockEntry]]:
    clients: dict[str, Any] = {}
    locks: dict[str, LockEntry] = {}
    taken = {r.name for r in routers} | set(names.values())
    seen: set[str] = set()
    for r in routers:
        for peer in r.peers:
            if peer.public_key in by_key or peer.public_key in seen or not peer.public_key:
                continue
            seen.add(peer.public_key)
            name = names.get(peer.public_key) or _client_name(peer, taken)
            taken.add(name)
            clients[name] = {"via": r.name, "public_key": peer.public_key}
            address = next(
                (
                    ip.network_address
                    for ip in peer.allowed_ips
                    if ip.prefixlen == ip.max_prefixlen and ip.network_address in overlay
                ),
                None,
            )
            if address is None:
                raise AdoptError(
                    f"its peer section {peer.ref} (a client, {peer.public_key[:8]}…) holds no "
                    f"single overlay address ({', '.join(map(str, peer.allowed_ips)) or 'none'})",
                    where=r.name,
                    fix="give that client its /32 in the overlay (allowed_ips), then adopt again",
                )
            locks[name] = LockEntry(
                address=str(address) if address is not None else None,
                public_key=peer.public_key,
            )
    return clients, locks
