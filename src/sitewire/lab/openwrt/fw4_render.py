"""The nftables ruleset firewall4 would load, in the shape of its templates/ruleset.uc.

One transaction: `table inet fw4` / `flush table inet fw4`, then the whole table. A zone's
`forward` policy sits at the end of forward_<zone> as `jump <policy>_to_<zone>`, which matches
only traffic leaving through that zone again; crossing zones needs a forwarding (§2.1).

Lab deviation: `iifname "mgmt" accept` and `oifname "mgmt" accept` come first in the input and
output chains, so the lab's management SSH survives any firewall configuration. Left out because
the lab has no use for them: CT helpers, flow offloading, the `define` sets, includes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sitewire.lab.openwrt.fw4_model import Firewall, MatchRule, Rule, Zone

MGMT_DEVICE = "mgmt"
_FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}
_BARE = re.compile(r"[0-9A-Fa-f:./-]+( \. [0-9A-Fa-f:./-]+)*")


def quote(value: str, force: bool = False) -> str:
    """fw4.quote: addresses, numbers and `a . b` pairs bare, anything else double-quoted."""
    if force or not _BARE.fullmatch(value):
        return '"' + value.replace('"', "'") + '"'
    return value


def nft_set(values: Iterable[str | int], force: bool = False) -> str:
    unique = list(dict.fromkeys(str(v) for v in values))
    if force or len(unique) != 1:
        return "{ " + ", ".join(quote(v) for v in unique) + " }"
    return quote(unique[0])


def human(family: int) -> str:
    return _FAMILY_NAMES.get(family, "IPv4/IPv6")


def nfproto(family: int) -> str:
    return f"meta nfproto ipv{family} " if family else ""


def ipproto(family: int) -> str:
    return "ip6" if family == 6 else "ip"


def render_ruleset(fw: Firewall, mgmt: str | None = MGMT_DEVICE) -> str:
    lines = ["table inet fw4", "flush table inet fw4", "", "table inet fw4 {"]
    lines += _section("Filter rules")
    lines += _input(fw, mgmt) + _forward(fw) + _output(fw, mgmt)
    lines += _chain("prerouting", "type filter hook prerouting priority filter; policy accept;", [])
    lines += _chain("handle_reject", None, _reject(fw))
    if fw.defaults.synflood:
        lines += _chain("syn_flood", None, _synflood(fw))
    for zone in fw.zones:
        lines += _zone_chains(fw, zone)
    lines += _section("NAT rules") + _nat(fw)
    lines += _section("Raw rules (notrack)")
    lines += _chain(
        "raw_prerouting", "type filter hook prerouting priority raw; policy accept;", []
    )
    lines += _chain("raw_output", "type filter hook output priority raw; policy accept;", [])
    lines += _section("Mangle rules") + _mangle(fw)
    return "\n".join([*lines, "}", ""])


def _section(title: str) -> list[str]:
    return ["", "\t#", f"\t# {title}", "\t#", ""]


def _chain(name: str, hook: str | None, body: list[str]) -> list[str]:
    head = [f"\tchain {name} {{"] + ([f"\t\t{hook}", ""] if hook and body else [])
    if hook and not body:
        head.append(f"\t\t{hook}")
    return head + [f"\t\t{line}" for line in body] + ["\t}", ""]


def _policy(policy: str) -> str:
    return "drop" if policy == "reject" else policy


def _input(fw: Firewall, mgmt: str | None) -> list[str]:
    head = ['iifname "lo" accept comment "!fw4: Accept traffic from loopback"']
    if mgmt:
        head.append(f'iifname "{mgmt}" accept comment "!lab: accept the management network"')
    head += _established("inbound", fw)
    if fw.defaults.synflood:
        head.append(
            "tcp flags & (fin | syn | rst | ack) == syn jump syn_flood "
            'comment "!fw4: Rate limit TCP syn packets"'
        )
    return _base_chain(fw, "input", fw.defaults.input, head)


def _forward(fw: Firewall) -> list[str]:
    return _base_chain(fw, "forward", fw.defaults.forward, _established("forwarded", fw))


def _output(fw: Firewall, mgmt: str | None) -> list[str]:
    head = ['oifname "lo" accept comment "!fw4: Accept traffic towards loopback"']
    if mgmt:
        head.append(f'oifname "{mgmt}" accept comment "!lab: accept the management network"')
    head += _established("outbound", fw)
    return _base_chain(fw, "output", fw.defaults.output, head)


def _base_chain(fw: Firewall, hook_name: str, policy: str, head: list[str]) -> list[str]:
    """A hooked chain: its fixed head, the rules, a jump per zone, the default policy."""
    body = head + [_rule(r) for r in fw.rules_for(hook_name)]
    body += [_jump(z, m, hook_name) for z in fw.zones for m in z.match_rules]
    if policy == "reject":
        body.append("jump handle_reject")
    hook = f"type filter hook {hook_name} priority filter; policy {_policy(policy)};"
    return _chain(hook_name, hook, body)


def _established(direction: str, fw: Firewall) -> list[str]:
    lines = [
        "ct state established,related accept comment "
        f'"!fw4: Allow {direction} established and related flows"'
    ]
    if fw.defaults.drop_invalid:
        lines.append(
            'ct state invalid drop comment "!fw4: Drop flows with invalid conntrack state"'
        )
    return lines


def _reject(fw: Firewall) -> list[str]:
    tcp = fw.defaults.tcp_reject_code
    anything = fw.defaults.any_reject_code
    tcp_verdict = "tcp reset" if tcp == "tcp-reset" else f"icmpx type {tcp}"
    any_verdict = "tcp reset" if anything == "tcp-reset" else f"icmpx type {anything}"
    return [
        f'meta l4proto tcp reject with {tcp_verdict} comment "!fw4: Reject TCP traffic"',
        f'reject with {any_verdict} comment "!fw4: Reject any other traffic"',
    ]


def _synflood(fw: Firewall) -> list[str]:
    rate, unit = fw.defaults.synflood_rate
    burst = f" burst {fw.defaults.synflood_burst} packets" if fw.defaults.synflood_burst else ""
    return [
        f"limit rate {rate}/{unit}{burst} return "
        'comment "!fw4: Accept SYN packets below rate-limit"',
        'drop comment "!fw4: Drop excess packets"',
    ]


def _match(rule: MatchRule, egress: bool) -> str:
    word, addr = ("oifname", "daddr") if egress else ("iifname", "saddr")
    parts = []
    if rule.devices_pos:
        parts.append(f"{word} {nft_set(rule.devices_pos)}")
    if rule.devices_neg:
        parts.append(f"{word} != {nft_set(rule.devices_neg)}")
    if rule.subnets_pos:
        parts.append(f"{ipproto(rule.family)} {addr} {nft_set(rule.subnets_pos)}")
    if rule.subnets_neg:
        parts.append(f"{ipproto(rule.family)} {addr} != {nft_set(rule.subnets_neg)}")
    return "".join(f"{p} " for p in parts)


def _jump(zone: Zone, rule: MatchRule, direction: str) -> str:
    egress = direction in ("output", "srcnat")
    return (
        f"{nfproto(rule.family)}{_match(rule, egress)}jump {direction}_{zone.name} "
        f'comment "!fw4: Handle {zone.name} {human(rule.family)} {direction} traffic"'
    )


def _zone_chains(fw: Firewall, zone: Zone) -> list[str]:
    name = zone.name
    lines = _chain(
        f"input_{name}", None, [*map(_rule, fw.rules_for(f"input_{name}")), _tail(zone, "input")]
    )
    lines += _chain(
        f"output_{name}", None, [*map(_rule, fw.rules_for(f"output_{name}")), _tail(zone, "output")]
    )
    forward = [*map(_rule, fw.rules_for(f"forward_{name}")), _tail(zone, "forward")]
    lines += _chain(f"forward_{name}", None, forward)
    for verdict in ("accept", "reject", "drop"):
        if verdict in zone.sflags:
            body = [_verdict(zone, m, False, verdict) for m in zone.match_rules]
            lines += _chain(f"{verdict}_from_{name}", None, body)
        if verdict in zone.dflags:
            body = []
            for m in zone.match_rules:
                if verdict == "accept" and _nat_leak_guard(zone, m):
                    body.append(_nat_leak_guard(zone, m))
                body.append(_verdict(zone, m, True, verdict))
            lines += _chain(f"{verdict}_to_{name}", None, body)
    return lines


def _tail(zone: Zone, direction: str) -> str:
    if direction == "input":
        return f"jump {zone.input}_from_{zone.name}"
    policy = zone.output if direction == "output" else zone.forward
    return f"jump {policy}_to_{zone.name}"


def _verdict(zone: Zone, rule: MatchRule, egress: bool, verdict: str) -> str:
    head = f"{nfproto(rule.family)}{_match(rule, egress)}{'counter ' if zone.counter else ''}"
    label = f"{zone.name} {human(rule.family)} traffic"
    if verdict == "reject":
        return f'{head}jump handle_reject comment "!fw4: reject {label}"'
    return f'{head}{verdict} comment "!fw4: {verdict} {label}"'


def _nat_leak_guard(zone: Zone, rule: MatchRule) -> str:
    """Masqueraded zones drop conntrack-invalid egress so unNATed packets do not leak."""
    if not (zone.masq or zone.masq6) or zone.masq_allow_invalid:
        return ""
    family = (4 if zone.masq else 6) if zone.masq != zone.masq6 else 0
    counter = "counter " if zone.counter else ""
    return (
        f"{nfproto(family)}{_match(rule, True)}ct state invalid {counter}drop "
        'comment "!fw4: Prevent NAT leakage"'
    )


def _rule(rule: Rule) -> str:
    parts = []
    if rule.family and not rule.has_addrs:
        parts.append(f"meta nfproto ipv{rule.family}")
    if not rule.proto.any and not rule.has_ports and not rule.icmp_types and not rule.icmp_codes:
        parts.append(f"meta l4proto {_l4proto(rule)}")
    if rule.iifnames:
        parts.append(f"iifname {nft_set(rule.iifnames)}")
    if rule.oifnames:
        parts.append(f"oifname {nft_set(rule.oifnames)}")
    parts += _addresses(rule)
    parts += _ports(rule)
    parts += _icmp(rule)
    if rule.limit:
        burst = f" burst {rule.limit_burst} packets" if rule.limit_burst else ""
        parts.append(f"limit rate {rule.limit[0]}/{rule.limit[1]}{burst}")
    if rule.counter:
        parts.append("counter")
    if rule.jump_chain:
        parts.append(f"jump {rule.jump_chain}")
    elif rule.target:
        parts.append(rule.target)
    parts.append(f"comment {quote('!fw4: ' + rule.name, True)}")
    return " ".join(parts)


def _l4proto(rule: Rule) -> str:
    if rule.proto.name == "icmp" and rule.family == 0:
        return nft_set(["icmp", "ipv6-icmp"])
    if rule.proto.name == "icmp" and rule.family == 6:
        return "ipv6-icmp"
    return rule.proto.name


def _addresses(rule: Rule) -> list[str]:
    family = ipproto(rule.family)
    return _matches(family, (("saddr", rule.saddrs), ("daddr", rule.daddrs)))


def _ports(rule: Rule) -> list[str]:
    return _matches(rule.proto.name, (("sport", rule.sports), ("dport", rule.dports)))


def _matches(
    prefix: str, selectors: tuple[tuple[str, tuple[list[str], list[str]]], ...]
) -> list[str]:
    """`<prefix> <word> {set}` for wanted values and `!= {set}` for negated ones."""
    parts = []
    for word, (pos, neg) in selectors:
        if pos:
            parts.append(f"{prefix} {word} {nft_set(pos)}")
        if neg:
            parts.append(f"{prefix} {word} != {nft_set(neg)}")
    return parts


def _icmp(rule: Rule) -> list[str]:
    name = "icmp" if rule.family == 4 else "icmpv6"
    if rule.icmp_types:
        return [f"{name} type {nft_set(rule.icmp_types)}"]
    if rule.icmp_codes:
        return [f"{name} type . {name} code {nft_set(rule.icmp_codes, True)}"]
    return []


def _nat(fw: Firewall) -> list[str]:
    lines = _chain("dstnat", "type nat hook prerouting priority dstnat; policy accept;", [])
    snat = [z for z in fw.zones if "snat" in z.dflags]
    jumps = [_jump(z, m, "srcnat") for z in snat for m in z.match_rules]
    lines += _chain("srcnat", "type nat hook postrouting priority srcnat; policy accept;", jumps)
    for zone in snat:
        body = [
            f'meta nfproto ipv{v} masquerade comment "!fw4: Masquerade IPv{v} {zone.name} traffic"'
            for v, on in ((4, zone.masq), (6, zone.masq6))
            if on
        ]
        lines += _chain(f"srcnat_{zone.name}", None, body)
    return lines


def _mangle(fw: Firewall) -> list[str]:
    hooks = {
        "mangle_prerouting": "type filter hook prerouting priority mangle; policy accept;",
        "mangle_postrouting": "type filter hook postrouting priority mangle; policy accept;",
        "mangle_input": "type filter hook input priority mangle; policy accept;",
        "mangle_output": "type route hook output priority mangle; policy accept;",
    }
    lines = [line for name, hook in hooks.items() for line in _chain(name, hook, [])]
    fixes = []
    for zone in fw.zones:
        if not zone.mtu_fix:
            continue
        for m in zone.match_rules:
            for egress, label in ((False, "ingress"), (True, "egress")):
                fixes.append(
                    f"{nfproto(m.family)}{_match(m, egress)}tcp flags syn / syn,fin,rst "
                    "tcp option maxseg size set rt mtu comment "
                    f'"!fw4: Zone {zone.name} {human(m.family)} {label} MTU fixing"'
                )
    hook = "type filter hook forward priority mangle; policy accept;"
    return lines + _chain("mangle_forward", hook, fixes)[:-1]
