"""firewall4's rules and forwardings: which chain each lands in and what it jumps to (§2.2, §2.3).

A rule with `src` and no `dest` filters traffic to the router (input_<src>), with both it filters
forwarded traffic (forward_<src>), with only `dest` the router's own output. A forwarding is
`jump accept_to_<dest>` in forward_<src>: the only way traffic crosses from one zone to another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

from sitewire.lab.openwrt.fw4_model import (
    TARGETS,
    Defaults,
    Firewall,
    IcmpType,
    Proto,
    Rule,
    Skip,
    Zone,
    device_map,
    parse_addresses,
    parse_bool,
    parse_defaults,
    parse_enum,
    parse_family,
    parse_icmp_type,
    parse_limit,
    parse_ports,
    parse_protocols,
    parse_zone,
    zone_ref,
)
from sitewire.lab.openwrt.netconf import items, option
from sitewire.render.uci import Package, Section

# Options whose meaning the lab does not model: a section using one is skipped, loudly.
_UNMODELLED = (
    "ipset", "helper", "set_helper", "mark", "set_mark", "set_xmark", "dscp", "set_dscp",
    "src_mac", "start_date", "stop_date", "start_time", "stop_time", "weekdays", "log",
)  # fmt: skip
_FULL_RANGE = (0, 0xFF)
_T = TypeVar("_T")


def parse_firewall(firewall: Package, network: Package | None) -> Firewall:
    warnings: list[str] = []
    defaults_sections = firewall.sections_of_type("defaults")
    first = _first(defaults_sections)
    defaults = _guarded(warnings, "@defaults[0]", partial(parse_defaults, first)) or Defaults()
    devices = device_map(network)
    zones: list[Zone] = []
    for ref, section in _refs(firewall, "zone"):
        zone = _guarded(warnings, ref, partial(parse_zone, section, defaults, devices))
        if zone is not None:
            zones.append(zone)
    rules: list[Rule] = []
    for ref, section in _refs(firewall, "rule"):
        rules += _guarded(warnings, ref, partial(_rule, section, ref, zones)) or []
    for ref, section in _refs(firewall, "forwarding"):
        rules += _guarded(warnings, ref, partial(_forwarding, section, zones)) or []
    return Firewall(defaults, zones, rules, warnings)


def _first(sections: list[Section]) -> Section | None:
    return sections[0] if sections else None


def _refs(package: Package, section_type: str) -> list[tuple[str, Section]]:
    """(section id as fw4 names it in warnings, section): `@rule[3]` for anonymous ones."""
    return [
        (s.name or f"@{section_type}[{i}]", s)
        for i, s in enumerate(package.sections_of_type(section_type))
    ]


def _guarded(warnings: list[str], ref: str, parse: Callable[[], _T]) -> _T | None:
    try:
        return parse()
    except Skip as skip:
        warnings.append(f"Section {ref} {skip}, skipping")
        return None


def _forwarding(section: Section, zones: list[Zone]) -> list[Rule]:
    if parse_bool(option(section, "enabled", "1")) is False:
        return []
    src, dest = zone_ref(option(section, "src"), zones), zone_ref(option(section, "dest"), zones)
    if src is None or dest is None:
        raise Skip("option 'src' and 'dest' are mandatory")
    family = _infer(parse_family(option(section, "family")), [src, dest])
    src_name = src if isinstance(src, str) else src.name
    dest_name = "any" if isinstance(dest, str) else dest.name
    label = f"IPv{family} " if family else ""
    rule = Rule(
        chain="forward" if isinstance(src, str) else f"forward_{src_name}",
        name=option(section, "name")
        or f"Accept {'any' if src_name == '*' else src_name} to {dest_name} {label}forwarding",
        family=family,
        proto=Proto("all", any=True),
        counter=False,
    )
    if isinstance(dest, str):
        rule.target = "accept"
    else:
        rule.jump_chain = f"accept_to_{dest.name}"
        dest.dflags.add("accept")
    return [rule]


def _rule(section: Section, ref: str, zones: list[Zone]) -> list[Rule]:
    if parse_bool(option(section, "enabled", "1")) is False:
        return []
    used = [name for name in _UNMODELLED if name in section.options]
    if used:
        raise Skip(f"uses option '{used[0]}', which the lab does not model")
    target = _target(section)
    src, dest = zone_ref(option(section, "src"), zones), zone_ref(option(section, "dest"), zones)
    base = Rule(
        chain=_chain(src, dest),
        name=option(section, "name") or ref,
        family=0,
        proto=Proto("all", any=True),
        target=target,
        counter=parse_bool(option(section, "counter", "1")) is not False,
        limit=_limit(section),
        limit_burst=option(section, "limit_burst"),
    )
    if target and isinstance(dest, Zone):
        base.jump_chain = f"{target}_to_{dest.name}"
        dest.dflags.add(target)
    elif target == "reject":
        base.jump_chain = "handle_reject"
    device = option(section, "device")
    if device:
        direction = option(section, "direction")
        outward = direction in ("out", "egress")
        base.oifnames, base.iifnames = ([device], []) if outward else ([], [device])
    return _expand(section, base, [z for z in (src, dest) if isinstance(z, Zone)])


def _target(section: Section) -> str | None:
    value = option(section, "target")
    if not value:
        return None
    target = parse_enum(value, TARGETS)
    if target is None:
        raise Skip(f"option 'target' specifies invalid value '{value}'")
    if target not in ("accept", "reject", "drop"):
        raise Skip(f"target '{target}' is not modelled in the lab")
    return target


def _limit(section: Section) -> tuple[int, str] | None:
    value = option(section, "limit")
    if not value:
        return None
    limit = parse_limit(value)
    if limit is None:
        raise Skip(f"option 'limit' specifies invalid value '{value}'")
    return limit


def _chain(src: Zone | str | None, dest: Zone | str | None) -> str:
    if src is not None:
        prefix = "forward" if dest is not None else "input"
        return prefix if isinstance(src, str) else f"{prefix}_{src.name}"
    if isinstance(dest, Zone):
        return f"output_{dest.name}"
    return "output"


def _expand(section: Section, base: Rule, zones: list[Zone]) -> list[Rule]:
    """One rule per protocol, and per address family where addresses or ICMP types differ."""
    icmp = [_icmp(v) for v in items(section, "icmp_type")]
    sip = parse_addresses(items(section, "src_ip"))
    dip = parse_addresses(items(section, "dest_ip"))
    out: list[Rule] = []
    for invert, proto in parse_protocols(items(section, "proto")):
        if invert:
            raise Skip("negated protocols are not modelled in the lab")
        family = parse_family(option(section, "family"))
        types4 = [t for t in icmp if t.family in (0, 4)] if proto.name == "icmp" else []
        types6 = [t for t in icmp if t.family in (0, 6)] if "icmp" in proto.name else []
        if proto.name == "ipv6-icmp":
            family = 6
        rule = replace(base, proto=proto)
        if proto.name in ("tcp", "udp"):
            rule.sports = parse_ports(items(section, "src_port"))
            rule.dports = parse_ports(items(section, "dest_port"))
        has4 = bool(any(sip[4]) or any(dip[4]) or types4)
        has6 = bool(any(sip[6]) or any(dip[6]) or types6)
        families = [_family_of(sip), _family_of(dip), *(z.family or None for z in zones)]
        family = _infer(family, families)
        if family is None:
            family = 4 if has4 and not has6 else 6 if has6 and not has4 else 0
        if not family and not has4 and not has6:
            out.append(rule)
            continue
        for version, types in ((4, types4), (6, types6)):
            if family in (0, version):
                out += _per_family(rule, version, types, sip[version], dip[version])
    return out


def _icmp(value: str) -> IcmpType:
    parsed = parse_icmp_type(value)
    if parsed is None:
        raise Skip(f"option 'icmp_type' specifies invalid value '{value}'")
    return parsed


def _family_of(addresses: dict[int, tuple[list[str], list[str]]]) -> int | None:
    has4, has6 = any(addresses[4]), any(addresses[6])
    return 4 if has4 and not has6 else 6 if has6 and not has4 else None


def _infer(family: int | None, others: Sequence[Zone | str | int | None]) -> int:
    result = family
    for other in others:
        value = other.family if isinstance(other, Zone) else other
        if not isinstance(value, int) or not value or value == result:
            continue
        if result:
            raise Skip(f"is restricted to IPv{result} but references IPv{value} only objects")
        result = value
    return result or 0


def _per_family(
    rule: Rule,
    version: int,
    types: list[IcmpType],
    saddrs: tuple[list[str], list[str]],
    daddrs: tuple[list[str], list[str]],
) -> list[Rule]:
    # fw4 sorts types into "whole type" and "type . code" by the IPv4 code range, even for
    # IPv6: an IPv6-only name such as packet-too-big lands among the codes. Kept as it is.
    whole = [t for t in types if t.code4 == _FULL_RANGE]
    partial = [t for t in types if t.code4 != _FULL_RANGE]
    base = replace(rule, family=version, saddrs=saddrs, daddrs=daddrs)
    out = []
    if whole or not partial:
        out.append(replace(base, icmp_types=[_type(t, version) for t in whole]))
    if partial:
        codes = [f"{_type(t, version)} . {_code(t, version)}" for t in partial]
        out.append(replace(base, icmp_codes=codes))
    return out


def _type(icmp: IcmpType, version: int) -> int:
    value = icmp.type4 if version == 4 else icmp.type6
    return value if value is not None else 0


def _code(icmp: IcmpType, version: int) -> int:
    codes = icmp.code4 if version == 4 else icmp.code6
    return codes[0] if codes else 0
