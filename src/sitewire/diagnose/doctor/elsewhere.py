"""route-elsewhere: a LAN host's packet (or one a relay forwards) that the kernel routes away
from the tunnel, with the policy rule or the routes that do it and their own delete."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sitewire import strict
from sitewire.diagnose.doctor.model import APPLY, Finding, Live
from sitewire.diagnose.doctor.trace import Hop, Path
from sitewire.diagnose.parse import IpRule
from sitewire.strict import IPAddress, IPNetwork


def route_elsewhere(live: Live, path: Path, hop: Hop) -> Finding:
    """The route hop that failed: the policy rules that took the packet to another table
    (or refused it a route), else the routes in main that send it elsewhere."""
    facts = live.facts[hop.site]
    iface = live.plan.site(hop.site).interface
    prefix = path.prefix
    bad = [
        r
        for r in facts.routes
        if r.dest.version == prefix.version
        and (r.dest.network_address in prefix or prefix.network_address in r.dest)
        and r.dest.prefixlen > 0
        and (r.dev != iface or r.type != "unicast")
    ]
    six = "-6 " if prefix.version == 6 else ""
    lan = live.probes[path.source].source(prefix.version)
    relayed = hop.site != path.source
    # the packet comes in from the LAN on its first router, from the tunnel on a relay
    iif = iface if relayed else (lan[1] if lan else None)
    family = facts.rules4 if not six else facts.rules6
    rules = _deciding_rules(family, prefix, lan[0] if lan else None, iif, hop.evidence[-1])
    evidence = [*hop.evidence]
    if rules or not bad:
        listed = rules or [r for r in family if r.priority not in _SYSTEM_RULES]
        evidence += [f"$ ip {six}rule show", *map(_rule_line, listed)]
        fix = (
            " && ".join(f"ip {six}rule del pref {r.priority}" for r in rules)
            or f"ip {six}rule show; delete the rule that sends it elsewhere (ip rule del pref N)"
        )
    else:
        evidence += ["$ ip route show", *(_route_line(r.type, str(r.dest), r.dev) for r in bad)]
        fix = " && ".join(f"ip route del {r.type} {r.dest}" for r in bad)
    return Finding(
        "route-elsewhere",
        hop.site,
        f"LAN traffic to {path.dest} ({prefix}){' that it relays' if relayed else ''} "
        f"is {hop.detail}, not {iface}: "
        f"it never reaches the tunnel",
        tuple(evidence),
        f"{fix}   (then: {APPLY}, which puts back {iface}'s routes)",
    )


_SYSTEM_RULES = (0, 32766, 32767)  # lookup local, main, default


def _deciding_rules(
    rules: Sequence[IpRule], prefix: IPNetwork, host: str | None, iif: str | None, line: str
) -> list[IpRule]:
    """The policy rules that took the packet away from main: those looking up the table the
    kernel's answer names (not Tailscale's 52: tailscale-captures-route is its finding), or,
    where it found no route, the rules whose action refuses one; each for a packet from
    `host`, arriving on `iif`, to the prefix (a rule on a mark or an outgoing device is not
    this packet's)."""
    table = re.search(r"\btable (\S+)", line)
    if table is not None and table[1] in ("main", "52"):
        return []
    if table is None and re.search(r"\bdev \S+", line):
        return []  # main's own route decided: the routes are the cause

    def within(text: str | None, fits: Callable[[IPNetwork], bool]) -> bool:
        if text is None:
            return True
        try:
            return fits(strict.network(text, strict=False))
        except ValueError:
            return False

    def covers(rule: IpRule) -> bool:
        if rule.fwmark or rule.oif or rule.extra or rule.iif not in (None, iif):
            return False
        source = _address(host)
        return within(
            rule.dest, lambda d: d.version == prefix.version and bool(d.overlaps(prefix))
        ) and within(rule.src, lambda s: source is not None and source in s)

    return [
        r
        for r in rules
        if r.priority not in _SYSTEM_RULES
        and not r.invert
        and covers(r)
        and (
            (table is not None and r.action == "lookup" and r.table == table[1])
            or (
                table is None
                and r.action in ("unreachable", "blackhole", "prohibit")
                and r.priority < 32766  # past main, it refuses only what main has no route for
            )
        )
    ]


def _address(text: str | None) -> IPAddress | None:
    try:
        return strict.address(text) if text else None
    except ValueError:
        return None


def _rule_line(rule: IpRule) -> str:
    """A rule as `ip rule show` prints it, from what sitewire read of it."""
    where = f"from {rule.src or 'all'}" + "".join(
        f" {word} {value}"
        for word, value in (("to", rule.dest), ("fwmark", rule.fwmark), ("iif", rule.iif))
        if value
    )
    action = f"lookup {rule.table}" if rule.action == "lookup" else rule.action
    return f"{rule.priority}:\t{'not ' if rule.invert else ''}{where} {action}"


def _route_line(kind: str, dest: str, dev: str | None) -> str:
    head = f"{kind} {dest}" if kind != "unicast" else dest
    return f"{head} dev {dev}" if dev else head
