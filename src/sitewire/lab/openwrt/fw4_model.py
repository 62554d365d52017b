"""/etc/config/firewall parsed the way firewall4's fw4.uc does: defaults, zones, rules, forwardings.

Pure. Only what the lab needs is parsed; sections using anything else (redirects, ipsets,
helpers, marks, logging) are skipped with a warning, as fw4 skips sections it cannot use.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sitewire.lab.openwrt.netconf import items, option
from sitewire.render.uci import Package, Section

POLICIES = ("accept", "reject", "drop")
TARGETS = ("accept", "reject", "drop", "notrack", "helper", "mark", "dscp")
LIMIT_UNITS = ("second", "minute", "hour", "day")

# name: (type, code_min, code_max), as fw4.uc's tables; a name in both tables has family 0.
ICMP4 = {
    "any": (0xFF, 0, 0xFF),
    "echo-reply": (0, 0, 0xFF),
    "pong": (0, 0, 0xFF),
    "destination-unreachable": (3, 0, 0xFF),
    "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4),
    "source-quench": (4, 0, 0xFF),
    "redirect": (5, 0, 0xFF),
    "echo-request": (8, 0, 0xFF),
    "ping": (8, 0, 0xFF),
    "router-advertisement": (9, 0, 0xFF),
    "router-solicitation": (10, 0, 0xFF),
    "time-exceeded": (11, 0, 0xFF),
    "ttl-exceeded": (11, 0, 0xFF),
    "parameter-problem": (12, 0, 0xFF),
    "timestamp-request": (13, 0, 0xFF),
    "timestamp-reply": (14, 0, 0xFF),
}
ICMP6 = {
    "destination-unreachable": (1, 0, 0xFF),
    "no-route": (1, 0, 0),
    "communication-prohibited": (1, 1, 1),
    "address-unreachable": (1, 3, 3),
    "port-unreachable": (1, 4, 4),
    "packet-too-big": (2, 0, 0xFF),
    "time-exceeded": (3, 0, 0xFF),
    "ttl-exceeded": (3, 0, 0xFF),
    "parameter-problem": (4, 0, 0xFF),
    "bad-header": (4, 0, 0),
    "unknown-header-type": (4, 1, 1),
    "unknown-option": (4, 2, 2),
    "echo-request": (128, 0, 0xFF),
    "ping": (128, 0, 0xFF),
    "echo-reply": (129, 0, 0xFF),
    "pong": (129, 0, 0xFF),
    "router-solicitation": (133, 0, 0xFF),
    "router-advertisement": (134, 0, 0xFF),
    "neighbour-solicitation": (135, 0, 0xFF),
    "neighbor-solicitation": (135, 0, 0xFF),
    "neighbour-advertisement": (136, 0, 0xFF),
    "neighbor-advertisement": (136, 0, 0xFF),
    "redirect": (137, 0, 0xFF),
}


class Skip(Exception):
    """A section fw4 would skip; the message is its warning."""


@dataclass(frozen=True)
class IcmpType:
    family: int
    type4: int | None
    code4: tuple[int, int] | None
    type6: int | None
    code6: tuple[int, int] | None


@dataclass
class Defaults:
    input: str = "drop"
    output: str = "drop"
    forward: str = "drop"
    drop_invalid: bool = False
    synflood: bool = False
    synflood_rate: tuple[int, str] = (25, "second")
    synflood_burst: str = "50"
    tcp_reject_code: str = "tcp-reset"
    any_reject_code: str = "port-unreachable"


@dataclass
class MatchRule:
    """One way of recognising a zone's traffic: devices and/or subnets of one family."""

    family: int
    devices_pos: list[str]
    devices_neg: list[str]
    subnets_pos: list[str] = field(default_factory=list)
    subnets_neg: list[str] = field(default_factory=list)


@dataclass
class Zone:
    name: str
    family: int
    networks: list[str]
    devices: list[str]
    input: str
    output: str
    forward: str
    masq: bool
    masq6: bool
    masq_allow_invalid: bool
    mtu_fix: bool
    counter: bool
    match_rules: list[MatchRule] = field(default_factory=list)
    sflags: set[str] = field(default_factory=set)
    dflags: set[str] = field(default_factory=set)


@dataclass
class Proto:
    name: str
    any: bool = False


@dataclass
class Rule:
    """One nft rule of a rule or forwarding section (fw4 may make several from one section)."""

    chain: str
    name: str
    family: int
    proto: Proto
    target: str | None = None
    jump_chain: str | None = None
    counter: bool = True
    saddrs: tuple[list[str], list[str]] = ([], [])
    daddrs: tuple[list[str], list[str]] = ([], [])
    sports: tuple[list[str], list[str]] = ([], [])
    dports: tuple[list[str], list[str]] = ([], [])
    icmp_types: list[int] = field(default_factory=list)
    icmp_codes: list[str] = field(default_factory=list)
    limit: tuple[int, str] | None = None
    limit_burst: str = ""
    iifnames: list[str] = field(default_factory=list)
    oifnames: list[str] = field(default_factory=list)

    @property
    def has_addrs(self) -> bool:
        return any(self.saddrs) or any(self.daddrs)

    @property
    def has_ports(self) -> bool:
        return any(self.sports) or any(self.dports)


@dataclass
class Firewall:
    defaults: Defaults
    zones: list[Zone]
    rules: list[Rule]
    warnings: list[str]

    def rules_for(self, chain: str) -> list[Rule]:
        return [r for r in self.rules if r.chain == chain]


def parse_enum(value: str, choices: tuple[str, ...]) -> str | None:
    """fw4's parse_enum: a case-insensitive prefix of one of the choices."""
    lowered = value.lower()
    return next((c for c in choices if lowered and c.startswith(lowered)), None)


def parse_bool(value: str) -> bool | None:
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    return None


def parse_family(value: str) -> int | None:
    if not value:
        return None
    if value in ("any", "all", "*"):
        return 0
    if value == "inet" or "4" in value:
        return 4
    return 6 if "6" in value else None


def _bool(section: Section, name: str, default: bool) -> bool:
    value = option(section, name)
    if not value:
        return default
    parsed = parse_bool(value)
    if parsed is None:
        raise Skip(f"option '{name}' specifies invalid value '{value}'")
    return parsed


def _policy(section: Section, name: str, default: str) -> str:
    value = option(section, name)
    if not value:
        return default
    policy = parse_enum(value, POLICIES)
    if policy is None:
        raise Skip(f"option '{name}' specifies invalid value '{value}'")
    return policy


def parse_limit(value: str) -> tuple[int, str] | None:
    match = re.fullmatch(r"([0-9]+)(/([a-z]+))?", value.strip())
    if match is None:
        return None
    unit = parse_enum(match.group(3), LIMIT_UNITS) if match.group(3) else "second"
    return (int(match.group(1)), unit) if unit else None


def parse_defaults(section: Section | None) -> Defaults:
    if section is None:
        return Defaults()
    defaults = Defaults(
        input=_policy(section, "input", "drop"),
        output=_policy(section, "output", "drop"),
        forward=_policy(section, "forward", "drop"),
        drop_invalid=_bool(section, "drop_invalid", False),
    )
    protect = option(section, "synflood_protect") or option(section, "syn_flood")
    defaults.synflood = parse_bool(protect) is True
    rate = parse_limit(option(section, "synflood_rate", "25/second"))
    defaults.synflood_rate = rate or defaults.synflood_rate
    defaults.synflood_burst = option(section, "synflood_burst", "50")
    return defaults


def _invert(value: str) -> tuple[bool, str]:
    text = value.strip()
    if text.startswith("!"):
        return True, text[1:].strip()
    return False, text


def parse_zone(section: Section, defaults: Defaults, devices: Mapping[str, str]) -> Zone | None:
    """A zone, or None when disabled; `devices` maps netifd interfaces to their devices."""
    if not _bool(section, "enabled", True):
        return None
    name = option(section, "name")
    if not re.fullmatch(r"[a-zA-Z_.][a-zA-Z0-9/_.-]*", name):
        raise Skip("option 'name' is mandatory but not set" if not name else "invalid name")
    networks = list(items(section, "network"))
    pos: list[str] = []
    neg: list[str] = []
    for entry in [*(devices.get(n) for n in networks), *items(section, "device")]:
        if entry:
            invert, device = _invert(entry)
            (neg if invert else pos).append(device[:-1] + "*" if device.endswith("+") else device)
    zone = Zone(
        name=name,
        family=parse_family(option(section, "family")) or 0,
        networks=networks,
        devices=list(dict.fromkeys(pos)),
        input=_policy(section, "input", defaults.input),
        output=_policy(section, "output", defaults.output),
        forward=_policy(section, "forward", defaults.forward),
        masq=_bool(section, "masq", False),
        masq6=_bool(section, "masq6", False),
        masq_allow_invalid=_bool(section, "masq_allow_invalid", False),
        mtu_fix=_bool(section, "mtu_fix", False),
        counter=_bool(section, "counter", True),
    )
    _zone_matches(zone, section, pos, neg)
    zone.sflags.add(zone.input)
    zone.dflags.update((zone.output, zone.forward))
    if zone.masq or zone.masq6:
        zone.dflags.add("snat")
    return zone


def _zone_matches(zone: Zone, section: Section, pos: list[str], neg: list[str]) -> None:
    subnets: dict[int, tuple[list[str], list[str]]] = {4: ([], []), 6: ([], [])}
    for entry in items(section, "subnet"):
        invert, text = _invert(entry)
        network = ipaddress.ip_network(text, strict=False)
        subnets[network.version][1 if invert else 0].append(_cidr(network))
    pos, neg = list(dict.fromkeys(pos)), list(dict.fromkeys(neg))
    if not (pos or neg or any(subnets[4]) or any(subnets[6])):
        return
    if not any(subnets[4]) and not any(subnets[6]) and not zone.family:
        zone.match_rules.append(MatchRule(0, pos, neg))
        return
    # fw4 emits a rule for each family the zone allows, even one without subnets of its own.
    for version in (4, 6):
        if zone.family in (0, version):
            zone.match_rules.append(MatchRule(version, pos, neg, *subnets[version]))


def _cidr(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return (
        str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
    )


def zone_ref(value: str, zones: list[Zone]) -> Zone | str | None:
    """'*' for any zone, the Zone, or None when unset; Skip when the zone is unknown."""
    if not value:
        return None
    if value == "*":
        return "*"
    for zone in zones:
        if zone.name == value:
            return zone
    raise Skip(f"option refers to unknown zone '{value}'")


def parse_icmp_type(value: str) -> IcmpType | None:
    in4, in6 = ICMP4.get(value), ICMP6.get(value)
    if in4 is not None or in6 is not None:
        family = 0 if in4 and in6 else (4 if in4 else 6)
        return IcmpType(
            family,
            in4[0] if in4 else None,
            (in4[1], in4[2]) if in4 else None,
            in6[0] if in6 else None,
            (in6[1], in6[2]) if in6 else None,
        )
    match = re.fullmatch(r"([0-9]+)(/([0-9]+))?", value)
    if match is None:
        return None
    kind = int(match.group(1))
    codes = (int(match.group(3)),) * 2 if match.group(3) else (0, 0xFF)
    if kind > 0xFF or codes[0] > 0xFF:
        return None
    return IcmpType(0, kind, (codes[0], codes[1]), kind, (codes[0], codes[1]))


def parse_protocols(values: tuple[str, ...]) -> list[tuple[bool, Proto]]:
    out: list[tuple[bool, Proto]] = []
    for value in values or ("tcpudp",):
        invert, name = _invert(value.lower())
        if name in ("all", "any", "*"):
            out.append((invert, Proto("all", any=True)))
        elif name == "tcpudp":
            out += [(invert, Proto("tcp")), (invert, Proto("udp"))]
        else:
            aliases = {"1": "icmp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp", "6": "tcp"}
            out.append((invert, Proto(aliases.get(name, "udp" if name == "17" else name))))
    return out


def parse_ports(values: tuple[str, ...]) -> tuple[list[str], list[str]]:
    pos: list[str] = []
    neg: list[str] = []
    for value in values:
        invert, text = _invert(value)
        match = re.fullmatch(r"([0-9]{1,5})([-:]([0-9]{1,5}))?", text)
        if match is None or int(match.group(1)) > 65535:
            raise Skip(f"invalid port '{value}'")
        low, high = int(match.group(1)), int(match.group(3) or match.group(1))
        (neg if invert else pos).append(str(low) if low == high else f"{low}-{high}")
    return pos, neg


def parse_addresses(values: tuple[str, ...]) -> dict[int, tuple[list[str], list[str]]]:
    out: dict[int, tuple[list[str], list[str]]] = {4: ([], []), 6: ([], [])}
    for value in values:
        invert, text = _invert(value)
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise Skip(f"address '{value}' is not modelled in the lab") from exc
        out[network.version][1 if invert else 0].append(_cidr(network))
    return out


def device_map(network: Package | None) -> dict[str, str]:
    """netifd interface -> device, as fw4 learns it: wireguard interfaces are their device."""
    out: dict[str, str] = {}
    for section in network.sections if network else []:
        if section.type != "interface" or section.name is None:
            continue
        if option(section, "proto") == "wireguard":
            out[section.name] = section.name
        elif option(section, "device") or option(section, "ifname"):
            out[section.name] = option(section, "device") or option(section, "ifname")
    return out
