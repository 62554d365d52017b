"""/etc/config/network as netifd reads it: interfaces, WireGuard peers, routes and policy rules.

Pure: sections in, typed values and `wg` configuration text out. What the proto handlers
declare (reference §1.1, §1.5) decides which changes `network reload` notices.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from sitewire.render.uci import Package, Section, Value

DEFAULT_ENDPOINT_PORT = "51820"
# Options of every interface that netifd itself compares on reload (interface.c).
GENERIC_PARAMS = ("proto", "auto", "disabled", "device", "ifname", "zone")
# What each proto handler declares in proto_*_init_config (reference §1.1).
DECLARED = {
    "classic": ("private_key", "listen_port", "mtu", "fwmark"),
    "syncconf": ("private_key", "listen_port", "mtu", "fwmark", "addresses"),
}


def option(section: Section, name: str, default: str = "") -> str:
    value = section.options.get(name)
    if value is None:
        return default
    return value if isinstance(value, str) else " ".join(value)


def items(section: Section, name: str) -> tuple[str, ...]:
    """A list option, or an option holding space-separated values (netifd accepts both)."""
    value: Value | None = section.options.get(name)
    if value is None:
        return ()
    if isinstance(value, tuple):
        return value
    return tuple(value.split())


def flag(section: Section, name: str, default: bool = False) -> bool:
    value = option(section, name)
    if not value:
        return default
    return value in ("1", "on", "true", "yes", "enabled")


@dataclass(frozen=True)
class Interface:
    name: str
    section: Section

    @property
    def proto(self) -> str:
        return option(self.section, "proto", "none")

    @property
    def auto(self) -> bool:
        return flag(self.section, "auto", True) and not flag(self.section, "disabled")

    @property
    def device(self) -> str | None:
        """The layer-3 device: a WireGuard interface's device is its own name (§1.1)."""
        if self.proto == "wireguard":
            return self.name
        return option(self.section, "device") or option(self.section, "ifname") or None

    @property
    def metric(self) -> str:
        return option(self.section, "metric")

    def table(self, version: int) -> str:
        return option(self.section, "ip6table" if version == 6 else "ip4table")

    def fingerprint(self, flavour: str | None) -> dict[str, Value]:
        """What `network reload` compares: generic options plus what the handler declares."""
        if self.proto == "wireguard":
            names: tuple[str, ...] = GENERIC_PARAMS + DECLARED.get(flavour or "classic", ())
            return {n: v for n, v in self.section.options.items() if n in names}
        return dict(self.section.options)


def interfaces(package: Package) -> dict[str, Interface]:
    return {
        s.name: Interface(s.name, s)
        for s in package.sections
        if s.type == "interface" and s.name is not None
    }


def static_addresses(section: Section) -> list[str]:
    """`ipaddr` (with `netmask`, or CIDR, or a list of either) and `ip6addr`, as `ip/len`."""
    netmask = option(section, "netmask")
    out = []
    for text in items(section, "ipaddr"):
        if "/" not in text and netmask:
            text = f"{text}/{netmask}"
        out.append(str(ipaddress.ip_interface(text if "/" in text else f"{text}/32")))
    for text in items(section, "ip6addr"):
        out.append(str(ipaddress.ip_interface(text if "/" in text else f"{text}/128")))
    return out


def host_prefix(text: str) -> str:
    """A bare address in allowed_ips or addresses means /32 or /128 (§1.1)."""
    if "/" in text:
        return str(ipaddress.ip_network(text, strict=False))
    return str(ipaddress.ip_network(text))


def interface_addresses(section: Section) -> list[str]:
    """A WireGuard interface's `addresses` as `ip/len`."""
    out = []
    for text in items(section, "addresses"):
        interface = ipaddress.ip_interface(text)
        if "/" not in text:
            interface = ipaddress.ip_interface(f"{text}/{interface.max_prefixlen}")
        out.append(str(interface))
    return out


@dataclass(frozen=True)
class Peer:
    name: str
    public_key: str
    preshared_key: str
    allowed_ips: tuple[str, ...]
    route_allowed_ips: bool
    endpoint_host: str
    endpoint_port: str
    persistent_keepalive: str


def peers(package: Package, interface: str) -> list[Peer]:
    """`wireguard_<if>` sections netifd's handler uses: not disabled, with a public key."""
    out = []
    for index, section in enumerate(package.sections_of_type(f"wireguard_{interface}")):
        key = option(section, "public_key")
        if not key or flag(section, "disabled"):
            continue
        host = option(section, "endpoint_host")
        out.append(
            Peer(
                name=section.name or f"@wireguard_{interface}[{index}]",
                public_key=key,
                preshared_key=option(section, "preshared_key"),
                allowed_ips=items(section, "allowed_ips"),
                route_allowed_ips=flag(section, "route_allowed_ips"),
                endpoint_host=host,
                endpoint_port=option(section, "endpoint_port") or DEFAULT_ENDPOINT_PORT,
                persistent_keepalive=option(section, "persistent_keepalive"),
            )
        )
    return out


def endpoint(peer: Peer) -> str:
    """`host:port`, an IPv6 literal wrapped in brackets as wireguard.sh does."""
    host = peer.endpoint_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{peer.endpoint_port}"


def wg_config(section: Section, peer_list: list[Peer], flavour: str) -> str:
    """The file the classic handler hands `wg setconf`, or the syncconf handler's stdin."""
    lines = ["[Interface]", f"PrivateKey={option(section, 'private_key')}"]
    for name, key in (("listen_port", "ListenPort"), ("fwmark", "FwMark")):
        if option(section, name):
            lines.append(f"{key}={option(section, name)}")
    for peer in peer_list:
        lines += ["", "[Peer]", f"PublicKey={peer.public_key}"]
        if peer.preshared_key:
            lines.append(f"PresharedKey={peer.preshared_key}")
        if peer.allowed_ips and flavour == "syncconf":
            lines.append("AllowedIPs=" + ", ".join(peer.allowed_ips))
        else:
            lines += [f"AllowedIPs={ip}" for ip in peer.allowed_ips]
        if peer.endpoint_host:
            lines.append(f"Endpoint={endpoint(peer)}")
        if peer.persistent_keepalive:
            lines.append(f"PersistentKeepalive={peer.persistent_keepalive}")
    return "\n".join(lines) + "\n"


def peer_routes(peer_list: list[Peer]) -> list[str]:
    """route_allowed_ips: one route per allowed IP of every peer that asks for it."""
    out: list[str] = []
    for peer in peer_list:
        if peer.route_allowed_ips:
            out += [host_prefix(ip) for ip in peer.allowed_ips if host_prefix(ip) not in out]
    return out


@dataclass(frozen=True)
class StaticRoute:
    """A `config route`/`route6` section bound to an interface."""

    interface: str
    target: str
    gateway: str
    metric: str
    table: str


def static_routes(package: Package) -> list[StaticRoute]:
    out = []
    for section in package.sections:
        if section.type not in ("route", "route6") or flag(section, "disabled"):
            continue
        target = option(section, "target")
        netmask = option(section, "netmask")
        if target and netmask and "/" not in target:
            target = f"{target}/{netmask}"
        if not target or not option(section, "interface"):
            continue
        out.append(
            StaticRoute(
                interface=option(section, "interface"),
                target=str(ipaddress.ip_network(target, strict=False)),
                gateway=option(section, "gateway"),
                metric=option(section, "metric"),
                table=option(section, "table"),
            )
        )
    return out


_RULE_SELECTORS = (("src", "from"), ("dest", "to"), ("mark", "fwmark"), ("tos", "tos"))


def policy_rules(package: Package, devices: Mapping[str, str]) -> list[list[str]]:
    """`config rule`/`rule6` (netifd iprule.c) as `ip [-6] rule add` arguments."""
    out = []
    for section in package.sections:
        if section.type not in ("rule", "rule6") or flag(section, "disabled"):
            continue
        argv = ["-6" if section.type == "rule6" else "-4", "rule", "add"]
        if flag(section, "invert"):
            argv.append("not")
        if option(section, "priority"):
            argv += ["priority", option(section, "priority")]
        for name, keyword in _RULE_SELECTORS:
            if option(section, name):
                argv += [keyword, option(section, name)]
        for name, keyword in (("in", "iif"), ("out", "oif")):
            interface = option(section, name)
            if interface:
                argv += [keyword, devices.get(interface, interface)]
        argv += _rule_action(section)
        out.append(argv)
    return out


def _rule_action(section: Section) -> list[str]:
    action = option(section, "action")
    if action:
        return [action]
    if option(section, "goto"):
        return ["goto", option(section, "goto")]
    return ["lookup", option(section, "lookup", "main")]
