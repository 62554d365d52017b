"""The lab's wires: internet and management bridges, router ports, LAN hosts, upstream firewalls."""

from __future__ import annotations

import ipaddress

from sitewire.lab.layout import (
    GATEWAY4,
    GATEWAY6,
    HOST_DEVICE,
    INET4,
    INET6,
    INET_BRIDGE,
    MGMT,
    MGMT_BRIDGE,
    MGMT_ROOT_PORT,
    WAN,
    IPInterface,
    LabLayout,
    LanLayout,
    RouterLayout,
)
from sitewire.lab.netns import LabError, in_netns, ip, link_exists, netns_add, run, sysctl
from sitewire.lab.state import LabState
from sitewire.strict import IPNetwork

# A namespace's devices take its defaults when they appear there, so these come first. DAD off:
# every lab address is unique by construction, and a tentative address would fail the first ping.
_QUIET6 = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
_NO_FORWARDING = ("net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
_FORWARDING = ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

UPSTREAM_TABLE = "lab_upstream"
GUARD_TABLE = "lab_guard"


def make_netns(state: LabState, name: str, *settings: str) -> None:
    state.record("netns", name)
    netns_add(name)
    sysctl(name, *_QUIET6, *settings)
    ip(name, "link", "set", "lo", "up")


def add_address(netns: str, device: str, address: IPInterface) -> None:
    # nodad is IPv6's alone; ip warns about it on IPv4.
    extra = ("nodad",) if address.version == 6 else ()
    ip(netns, "address", "add", str(address), "dev", device, *extra)


def build_backbone(state: LabState) -> None:
    """The internet namespace (gateway, forwards nothing) and the management bridge + root veth."""
    layout = state.layout
    inet = layout.inet_netns
    make_netns(state, inet, *_NO_FORWARDING)
    _bridge(inet, INET_BRIDGE, ipaddress.ip_interface(f"{GATEWAY4}/{INET4.prefixlen}"))
    add_address(inet, INET_BRIDGE, ipaddress.ip_interface(f"{GATEWAY6}/{INET6.prefixlen}"))
    for net in layout.off_subnet_wans():
        ip(inet, "route", "add", str(net), "dev", INET_BRIDGE)
    mgmt = layout.mgmt_netns
    make_netns(state, mgmt, *_NO_FORWARDING)
    _bridge(mgmt, MGMT_BRIDGE, None)
    _guard_root(layout)
    if link_exists(layout.root_link):  # another lab took the number since it was chosen
        raise LabError(f"{layout.root_link} already exists", where="root", fix="run up again")
    state.record("link", layout.root_link)
    peer = ("peer", "name", MGMT_ROOT_PORT, "netns", mgmt)
    run("root", ["ip", "link", "add", layout.root_link, "type", "veth", *peer])
    ip(mgmt, "link", "set", MGMT_ROOT_PORT, "master", MGMT_BRIDGE, "up")
    run("root", ["ip", "address", "add", str(layout.root_mgmt), "dev", layout.root_link])
    run("root", ["ip", "link", "set", layout.root_link, "up"])


def _bridge(netns: str, name: str, address: IPInterface | None) -> None:
    ip(netns, "link", "add", name, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
    if address is not None:
        add_address(netns, name, address)
    ip(netns, "link", "set", name, "up")


def _guard_root(layout: LabLayout) -> None:
    """Only management traffic reaches the root namespace: whatever a router forwards stays in.

    Without it a LAN host could send to 198.19.k.1 through its router, and the root namespace
    would answer a lab LAN address over its own default route, out of the machine.
    """
    ruleset = f"""table bridge {GUARD_TABLE} {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        oifname "{MGMT_ROOT_PORT}" ether type ip ip saddr != {layout.mgmt_network} drop
        oifname "{MGMT_ROOT_PORT}" ether type ip6 drop
    }}
}}
"""
    nft(layout.mgmt_netns, ruleset)


def nft(netns: str, ruleset: str) -> None:
    shown = f"nft -f - <<EOF\n{ruleset}EOF"
    run(netns, in_netns(netns, ["nft", "-f", "-"]), input=ruleset, shown=shown)


def wire_router(state: LabState, router: RouterLayout) -> None:
    """The router's namespace with its wan, mgmt and LAN ports, addresses and routes."""
    layout = state.layout
    ns = router.netns
    make_netns(state, ns, *_FORWARDING)
    _port(ns, WAN, router.inet_port, layout.inet_netns, INET_BRIDGE, port_index(router, 0))
    _port(ns, MGMT, router.mgmt_port, layout.mgmt_netns, MGMT_BRIDGE, port_index(router, 1))
    add_address(ns, MGMT, router.mgmt)
    for number, lan in enumerate(router.lans):
        _lan(state, router, lan, port_index(router, 2 + number))
    configure_ports(layout, router)
    if router.firewalled:
        nft(ns, upstream_ruleset())


def configure_ports(layout: LabLayout, router: RouterLayout) -> None:
    """The router's own addresses and WAN routes, as the machine's network config sets them:
    at lab up, and for a Linux router at each lab reboot (netifd does it on OpenWrt)."""
    for address in (router.wan4, router.wan6):
        add_address(router.netns, WAN, address)
    _wan_routes(layout, router)
    for lan in router.lans:
        for address in lan.router:
            add_address(router.netns, lan.device, address)


# Both ends of a router's veth get one interface index, unique in the lab: netifd takes a link
# whose iflink (the peer's index, in the other namespace) differs from its own for a child of
# the device holding that index here (system_if_get_parent) and clears that one's addresses.
# A router port has 16 indexes from PORT_BASE + 16 * router index: wan, mgmt, then its LANs.
PORT_BASE = 1000
PORTS_PER_ROUTER = 16


def port_index(router: RouterLayout, port: int) -> int:
    if port >= PORTS_PER_ROUTER:
        raise LabError(f"more than {PORTS_PER_ROUTER - 2} LANs", where=router.site)
    return PORT_BASE + PORTS_PER_ROUTER * router.index + port


def _veth(netns: str, device: str, peer: str, peer_netns: str, index: int) -> None:
    ip(
        *(netns, "link", "add", device, "index", str(index), "type", "veth"),
        *("peer", "name", peer, "index", str(index), "netns", peer_netns),
    )


def _port(netns: str, device: str, peer: str, peer_netns: str, bridge: str, index: int) -> None:
    _veth(netns, device, peer, peer_netns, index)
    ip(peer_netns, "link", "set", peer, "master", bridge, "up")
    ip(netns, "link", "set", device, "up")


def wan_onlink(layout: LabLayout, router: RouterLayout) -> list[IPNetwork]:
    """Prefixes a router reaches on-link through its WAN besides its own subnet."""
    out: list[IPNetwork] = [
        inet for inet, wan in ((INET4, router.wan4), (INET6, router.wan6)) if wan.network != inet
    ]
    own = (router.wan4.network, router.wan6.network)
    return out + [net for net in layout.off_subnet_wans() if net not in own]


def _wan_routes(layout: LabLayout, router: RouterLayout) -> None:
    ns = router.netns
    for net in wan_onlink(layout, router):
        ip(ns, "route", "add", str(net), "dev", WAN)
    ip(ns, "route", "add", "default", "via", str(GATEWAY4), "dev", WAN)
    ip(ns, "-6", "route", "add", "default", "via", str(GATEWAY6), "dev", WAN)


def _lan(state: LabState, router: RouterLayout, lan: LanLayout, index: int) -> None:
    host = lan.host_netns
    make_netns(state, host)
    _veth(router.netns, lan.device, HOST_DEVICE, host, index)
    ip(router.netns, "link", "set", lan.device, "up")
    for address in lan.host:
        add_address(host, HOST_DEVICE, address)
    ip(host, "link", "set", HOST_DEVICE, "up")
    for gateway in lan.router:
        family = "-6" if gateway.version == 6 else "-4"
        ip(host, family, "route", "add", "default", "via", str(gateway.ip), "dev", HOST_DEVICE)


def move_wan(layout: LabLayout, old: RouterLayout, new: RouterLayout) -> None:
    """Give a router its new WAN addresses; the default routes go with the old subnet route."""
    ns = old.netns
    for before, after in ((old.wan4, new.wan4), (old.wan6, new.wan6)):
        ip(ns, "address", "delete", str(before), "dev", WAN)
        add_address(ns, WAN, after)
    ip(ns, "route", "replace", "default", "via", str(GATEWAY4), "dev", WAN)
    ip(ns, "-6", "route", "replace", "default", "via", str(GATEWAY6), "dev", WAN)


def upstream_ruleset() -> str:
    """The provider's firewall of a site nobody can dial: replies in, nothing new (the seed's B)."""
    chains = "\n".join(
        f"""    chain {hook} {{
        type filter hook {hook} priority -10; policy accept;
        ct state established,related accept
        iifname "{WAN}" ct state new drop
    }}"""
        for hook in ("input", "forward")
    )
    return f"table inet {UPSTREAM_TABLE} {{\n{chains}\n}}\n"
