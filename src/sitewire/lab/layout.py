"""Every namespace, device, address and name of a lab, computed from the spec alone."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from sitewire.errors import InputError
from sitewire.spec.model import SiteSpec, Spec
from sitewire.strict import IPAddress, IPNetwork

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

INET4 = ipaddress.IPv4Network("198.18.0.0/24")
INET6 = ipaddress.IPv6Network("fd53:5357:0:1::/64")
GATEWAY4 = INET4[1]
GATEWAY6 = INET6[1]
FIRST_NUMBER = 10  # router i is .(10+i) on the internet and on the management network
LAST_NUMBER = 254
MAX_LAB_NUMBER = 250

INET_BRIDGE = "inet"
MGMT_BRIDGE = "mgmt"
MGMT_ROOT_PORT = "root"  # the mgmt namespace's end of the root namespace's swl<k>
WAN = "wan"
MGMT = "mgmt"
HOST_DEVICE = "eth0"
HOST_NUMBER = 100


@dataclass(frozen=True, slots=True)
class HostLayout:
    """The one host on a site's LAN j."""

    site: str
    lan: int
    netns: str
    device: str
    addresses: tuple[IPInterface, ...]
    gateways: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class LanLayout:
    device: str
    router: tuple[IPInterface, ...]
    host_netns: str
    host: tuple[IPInterface, ...]


@dataclass(frozen=True, slots=True)
class RouterLayout:
    site: str
    index: int
    platform: str
    netns: str
    wan4: ipaddress.IPv4Interface
    wan6: ipaddress.IPv6Interface
    mgmt: ipaddress.IPv4Interface
    lans: tuple[LanLayout, ...]
    dns_name: str | None  # the endpoint, when it is a DNS name
    fixed_wan: bool  # the endpoint is an address literal, so the WAN address is the spec's
    firewalled: bool  # no endpoint: the upstream admits nothing new (the seed's B)

    @property
    def inet_port(self) -> str:
        return f"{WAN}{self.index}"

    @property
    def mgmt_port(self) -> str:
        return f"{MGMT}{self.index}"

    def hosts(self) -> tuple[HostLayout, ...]:
        return tuple(
            HostLayout(
                self.site,
                j,
                lan.host_netns,
                HOST_DEVICE,
                lan.host,
                tuple(a.ip for a in lan.router),
            )
            for j, lan in enumerate(self.lans)
        )


@dataclass(frozen=True, slots=True)
class LabLayout:
    name: str
    k: int
    routers: tuple[RouterLayout, ...]

    @property
    def inet_netns(self) -> str:
        return netns_name(self.name, "inet")

    @property
    def mgmt_netns(self) -> str:
        return netns_name(self.name, "mgmt")

    @property
    def root_link(self) -> str:
        return f"swl{self.k}"

    @property
    def mgmt_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"198.19.{self.k}.0/24")

    @property
    def root_mgmt(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.mgmt_network[1]}/24")

    def router(self, site: str) -> RouterLayout:
        for router in self.routers:
            if router.site == site:
                return router
        raise InputError(
            f"{site!r} is not a site of this lab",
            where=f"lab {self.name}",
            fix=f"use one of {[r.site for r in self.routers]}",
        )

    def hosts(self) -> tuple[HostLayout, ...]:
        return tuple(h for r in self.routers for h in r.hosts())

    def netns_names(self) -> tuple[str, ...]:
        """Every namespace, in the order they are torn down (hosts first)."""
        hosts = tuple(h.netns for h in self.hosts())
        return (*hosts, *(r.netns for r in self.routers), self.inet_netns, self.mgmt_netns)

    def dns_names(self) -> dict[str, tuple[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
        return {r.dns_name: (r.wan4.ip, r.wan6.ip) for r in self.routers if r.dns_name}

    def off_subnet_wans(self) -> tuple[IPNetwork, ...]:
        """Literal WAN addresses outside the internet subnets: every router routes them on-link."""
        nets: list[IPNetwork] = []
        for r in self.routers:
            nets += [a.network for a in (r.wan4, r.wan6) if a.network not in (INET4, INET6)]
        return tuple(nets)

    def moved(self, site: str) -> LabLayout:
        """The site on the next free internet address (both families share the number)."""
        router = self.router(site)
        if router.fixed_wan:
            raise InputError(
                "its endpoint is an address literal, so its WAN address is fixed",
                where=f"lab {self.name}: {site}",
                fix="give the site a DNS name as endpoint to rehearse a move",
            )
        wan4, wan6 = _wan_pair(_next_free(self._numbers_in_use()))
        new = replace(router, wan4=wan4, wan6=wan6)
        return replace(self, routers=tuple(new if r is router else r for r in self.routers))

    def _numbers_in_use(self) -> set[int]:
        used = set()
        for r in self.routers:
            used |= {_number_in(a.ip) for a in (r.wan4, r.wan6)}
        return used - {-1}


def netns_name(lab: str, suffix: str) -> str:
    # Lab and site names never contain '-', so the prefix 'swl-<lab>-' belongs to one lab.
    return f"swl-{lab}-{suffix}"


def lan_device(j: int) -> str:
    return "br-lan" if j == 0 else f"lan{j}"


def compute_layout(spec: Spec, lab: str, k: int) -> LabLayout:
    """Lay out the lab named `lab` with management number `k` (1..250)."""
    if not 1 <= k <= MAX_LAB_NUMBER:
        raise InputError(f"lab number {k} is out of range", where=f"lab {lab}", fix="use 1..250")
    count = len(spec.sites)
    if count > LAST_NUMBER - FIRST_NUMBER + 1:
        raise InputError(
            f"{count} sites do not fit the lab's internet /24",
            where=f"lab {lab}",
            fix=f"rehearse at most {LAST_NUMBER - FIRST_NUMBER + 1} sites at once",
        )
    literals = _literal_numbers(spec, lab)
    routers = tuple(
        _router(lab, k, i, name, site, literals)
        for i, (name, site) in enumerate(spec.sites.items())
    )
    return LabLayout(lab, k, routers)


def _router(
    lab: str, k: int, i: int, name: str, site: SiteSpec, literals: dict[IPAddress, str]
) -> RouterLayout:
    endpoint = site.endpoint
    host = endpoint.host if endpoint else None
    for inet in (INET4, INET6):
        address = number_address(inet, FIRST_NUMBER + i)
        owner = literals.get(address)
        if owner is not None and owner != name:
            raise InputError(
                f"its endpoint is {address}, the lab WAN address of {name}",
                where=f"lab {lab}: {owner}",
                fix=f"use a DNS name or an address outside {inet} as {owner}'s endpoint",
            )
    wan4, wan6 = _wan_pair(FIRST_NUMBER + i)
    if endpoint and endpoint.kind == "ipv4":
        wan4 = ipaddress.IPv4Interface(_literal_interface(endpoint.host, INET4))
    elif endpoint and endpoint.kind == "ipv6":
        wan6 = ipaddress.IPv6Interface(_literal_interface(endpoint.host, INET6))
    return RouterLayout(
        site=name,
        index=i,
        platform=str(site.platform),
        netns=netns_name(lab, name),
        wan4=wan4,
        wan6=wan6,
        mgmt=ipaddress.IPv4Interface(f"198.19.{k}.{FIRST_NUMBER + i}/24"),
        lans=_lans(lab, name, site),
        dns_name=host if endpoint and endpoint.kind == "name" else None,
        fixed_wan=bool(endpoint and endpoint.kind != "name"),
        firewalled=endpoint is None,
    )


def _literal_interface(host: str, inet: IPNetwork) -> str:
    # Inside the internet subnet a literal is an ordinary neighbour; outside it is a host route.
    address = ipaddress.ip_address(host)
    return f"{address}/{inet.prefixlen if address in inet else address.max_prefixlen}"


def _literal_numbers(spec: Spec, lab: str) -> dict[IPAddress, str]:
    """Addresses inside the internet subnets that literal endpoints take, by owning site."""
    taken: dict[IPAddress, str] = {}
    for name, site in spec.sites.items():
        if site.endpoint is None or site.endpoint.kind == "name":
            continue
        address = ipaddress.ip_address(site.endpoint.host)
        _refuse_special(address, name, lab)
        number = _number_in(address)
        if number != -1 and not FIRST_NUMBER <= number <= LAST_NUMBER:
            raise InputError(
                f"endpoint {address} is reserved in the lab's internet",
                where=f"lab {lab}: {name}",
                fix=f"use an address from .{FIRST_NUMBER} to .{LAST_NUMBER} or outside it",
            )
        if number != -1:
            taken[address] = name
    return taken


def _refuse_special(address: IPAddress, site: str, lab: str) -> None:
    if address.is_loopback or address.is_multicast or address.is_unspecified:
        raise InputError(
            f"endpoint {address} cannot be a lab WAN address",
            where=f"lab {lab}: {site}",
            fix="use the site's real public address or a DNS name",
        )
    if address.is_link_local:
        raise InputError(
            f"endpoint {address} is link-local and cannot be dialled across the internet",
            where=f"lab {lab}: {site}",
            fix="use the site's global address or a DNS name",
        )


def number_address(inet: IPNetwork, number: int) -> IPAddress:
    """Host `number` of an internet subnet: .10 in IPv4 reads ::10 in IPv6 (docs/lab.md)."""
    return inet[number if inet.version == 4 else int(str(number), 16)]


def _wan_pair(number: int) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv6Interface]:
    wan4 = ipaddress.IPv4Interface(f"{number_address(INET4, number)}/{INET4.prefixlen}")
    wan6 = ipaddress.IPv6Interface(f"{number_address(INET6, number)}/{INET6.prefixlen}")
    return wan4, wan6


def _number_in(address: IPAddress) -> int:
    """The inverse of number_address; -1 outside the internet or off its decimal-looking grid."""
    for inet in (INET4, INET6):
        if address.version == inet.version and address in inet:
            offset = int(address) - int(inet.network_address)
            text = str(offset) if inet.version == 4 else format(offset, "x")
            return int(text) if text.isdigit() else -1
    return -1


def _next_free(used: set[int]) -> int:
    # After the highest number in use, so a moved site never lands back where it was.
    candidates: list[int] = [
        *range(max(used) + 1, LAST_NUMBER + 1),
        *range(FIRST_NUMBER, LAST_NUMBER + 1),
    ]
    for number in candidates:
        if number not in used:
            return number
    raise InputError("no free address left in the lab's internet", fix="use fewer sites")


def _lans(lab: str, site_name: str, site: SiteSpec) -> tuple[LanLayout, ...]:
    # The j-th IPv4 and the j-th IPv6 prefix of a site share LAN j (one dual-stack LAN).
    v4: list[IPNetwork] = [p for p in site.lan if p.version == 4]
    v6: list[IPNetwork] = [p for p in site.lan if p.version == 6]
    lans = []
    for j in range(max(len(v4), len(v6))):
        prefixes = [*v4[j : j + 1], *v6[j : j + 1]]
        pairs = [_lan_pair(p, lab, site_name) for p in prefixes]
        lans.append(
            LanLayout(
                device=lan_device(j),
                router=tuple(router for router, _ in pairs),
                host_netns=netns_name(lab, f"{site_name}-h{j}"),
                host=tuple(host for _, host in pairs),
            )
        )
    return tuple(lans)


def _lan_pair(prefix: IPNetwork, lab: str, site: str) -> tuple[IPInterface, IPInterface]:
    if prefix.num_addresses < 4:
        raise InputError(
            f"LAN {prefix} is too small for a router and a host",
            where=f"lab {lab}: {site}",
            fix="rehearse with a LAN of at least 4 addresses",
        )
    # The host is .100 (::100 in IPv6), or .2 on a LAN too small for that.
    host = HOST_NUMBER if prefix.version == 4 else int(str(HOST_NUMBER), 16)
    host = host if prefix.num_addresses > host + 2 else 2
    router = ipaddress.ip_interface(f"{prefix[1]}/{prefix.prefixlen}")
    return router, ipaddress.ip_interface(f"{prefix[host]}/{prefix.prefixlen}")


def hosts_text(layout: LabLayout) -> str:
    """/etc/hosts for every router: the lab's DNS names point at lab WAN addresses."""
    lines = [
        "# sitewire lab: endpoint names at lab WAN addresses (sitewire lab move rewrites this)",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    for name, (wan4, wan6) in layout.dns_names().items():
        lines += [f"{wan4}\t{name}", f"{wan6}\t{name}"]
    return "\n".join(lines) + "\n"


def layout_to_json(layout: LabLayout) -> dict[str, Any]:
    return {
        "name": layout.name,
        "k": layout.k,
        "routers": [_router_to_json(r) for r in layout.routers],
    }


def _router_to_json(r: RouterLayout) -> dict[str, Any]:
    return {
        "site": r.site,
        "index": r.index,
        "platform": r.platform,
        "netns": r.netns,
        "wan4": str(r.wan4),
        "wan6": str(r.wan6),
        "mgmt": str(r.mgmt),
        "lans": [
            {
                "device": lan.device,
                "router": [str(a) for a in lan.router],
                "host_netns": lan.host_netns,
                "host": [str(a) for a in lan.host],
            }
            for lan in r.lans
        ],
        "dns_name": r.dns_name,
        "fixed_wan": r.fixed_wan,
        "firewalled": r.firewalled,
    }


def layout_from_json(data: dict[str, Any]) -> LabLayout:
    return LabLayout(
        name=str(data["name"]),
        k=int(data["k"]),
        routers=tuple(_router_from_json(r) for r in data["routers"]),
    )


def _router_from_json(r: dict[str, Any]) -> RouterLayout:
    return RouterLayout(
        site=str(r["site"]),
        index=int(r["index"]),
        platform=str(r["platform"]),
        netns=str(r["netns"]),
        wan4=ipaddress.IPv4Interface(r["wan4"]),
        wan6=ipaddress.IPv6Interface(r["wan6"]),
        mgmt=ipaddress.IPv4Interface(r["mgmt"]),
        lans=tuple(
            LanLayout(
                device=str(lan["device"]),
                router=tuple(ipaddress.ip_interface(a) for a in lan["router"]),
                host_netns=str(lan["host_netns"]),
                host=tuple(ipaddress.ip_interface(a) for a in lan["host"]),
            )
            for lan in r["lans"]
        ),
        dns_name=r["dns_name"],
        fixed_wan=bool(r["fixed_wan"]),
        firewalled=bool(r["firewalled"]),
    )
