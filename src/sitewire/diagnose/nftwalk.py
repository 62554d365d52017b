"""One packet walked through a loaded nftables ruleset: the verdict the kernel would give it.

Pure. The packet is what doctor's trace stands for (a LAN host's ping to another site, a
dialer's first handshake): its family, devices, addresses, protocol and port, conntrack state
`new`. Every base chain of the hook runs in priority order, as the kernel runs them; an
accept ends one base chain, a drop or reject ends the packet. A match this module cannot read
(fib, a mark a rule set elsewhere, xt compat, ...) is "cannot tell": the rule is kept aside
as uncertain and the walk goes on as if it did not match, so a verdict that passed such a rule
says it is uncertain, and doctor names only certain drops as a cause.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sitewire.diagnose.parse.nft import ChainKey, NftChain, NftRule, Ruleset
from sitewire.strict import IPAddress

_NAT = ("masquerade", "snat", "dnat", "redirect")
_TERMINAL = ("accept", "drop", "reject", "jump", "goto", "return", "queue", *_NAT)
_MAX_DEPTH = 16  # nft itself refuses deeper jump chains


@dataclass(frozen=True, slots=True)
class Packet:
    family: int  # 4 or 6
    saddr: IPAddress
    daddr: IPAddress
    proto: str  # "icmp" (echo-request; icmpv6 for IPv6), "udp", "tcp"
    iif: str | None = None
    oif: str | None = None
    dport: int | None = None
    sport: int | None = None
    ct: str = "new"
    mark: int | None = 0  # None: set by a rule to what cannot be read


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # "accept", "drop", "reject"
    chain: NftChain | None = None  # where it was decided (a base chain's policy: that chain)
    rule: NftRule | None = None  # the deciding rule; None for a base chain's policy
    nat: tuple[tuple[str, NftRule], ...] = ()  # (kind, rule) of every NAT the packet met
    uncertain: tuple[NftRule, ...] = ()  # rules passed whose match could not be read
    trail: tuple[NftRule, ...] = ()  # the jumps that led to the deciding rule

    @property
    def dropped(self) -> bool:
        return self.action in ("drop", "reject")


@dataclass
class _Walk:
    ruleset: Ruleset
    packet: Packet
    nat: list[tuple[str, NftRule]] = field(default_factory=list)
    uncertain: list[NftRule] = field(default_factory=list)
    table: tuple[str, str] = ("", "")  # the table of the chain being walked, for @sets
    calls: list[NftRule] = field(default_factory=list)  # the jump rules being followed
    trail: tuple[NftRule, ...] = ()


def walk(ruleset: Ruleset, packet: Packet, hook: str) -> Verdict:
    """The verdict for `packet` at `hook` (prerouting, input, forward, output, postrouting)."""
    state = _Walk(ruleset, packet)
    for base in ruleset.base_chains(hook, packet.family):
        action, rule, chain = _run(state, base.key, 0)
        if action is None:
            action, rule, chain = base.policy, None, base
        if action in ("drop", "reject"):
            nat, unsure = tuple(state.nat), tuple(state.uncertain)
            return Verdict(action, chain, rule, nat, unsure, state.trail)
    return Verdict("accept", None, None, tuple(state.nat), tuple(state.uncertain))


def _run(
    state: _Walk, key: ChainKey, depth: int
) -> tuple[str | None, NftRule | None, NftChain | None]:
    """(action, rule, chain) when a rule decides; (None, ...) when the chain runs out or
    returns (the caller goes on)."""
    if depth > _MAX_DEPTH:
        return None, None, None
    for rule in state.ruleset.rules.get(key, ()):
        state.table = (key[0], key[1])
        outcome = _rule(state, rule)
        if outcome is None:
            continue
        verb, target = outcome
        if verb == "return":
            return None, None, None
        if verb in ("jump", "goto"):
            called = (key[0], key[1], target)
            state.calls.append(rule)
            action, decided, chain = _run(state, called, depth + 1)
            state.calls.pop()
            if action is not None or verb == "goto":
                return action, decided, chain
            continue
        state.trail = tuple(state.calls)
        return verb, rule, state.ruleset.chains.get(key)
    state.trail = tuple(state.calls)
    return None, None, None


_AS_MATCH = "as-match"  # a statement that filters like a match, and cannot be read here
_AS_VERDICT = "as-verdict"  # a statement that may decide, and cannot be read here
# Statements that let a packet through or not, as a match does: `limit rate over`, `quota
# over`, `ct count`, iptables-nft's xt matches. Read as "cannot tell".
_FILTERING = ("limit", "quota", "ct count", "connlimit", "numgen", "hash", "osf", "socket")


def _rule(state: _Walk, rule: NftRule) -> tuple[str, str] | None:
    """(verb, jump target) when the rule's matches hold and it ends in a verdict; None when
    it does not match, or matches and goes on. Statements run in order, as nft runs them; a
    rule with a part that cannot be read changes nothing and is kept aside as uncertain."""
    sure = True
    for expr in rule.expr:
        if not isinstance(expr, dict) or len(expr) != 1:
            continue
        ((kind, body),) = expr.items()
        if kind == "match":
            held = _match(state, body)
            if held is False:
                return None
            sure = sure and held is True
            continue
        verb = _statement(state, rule, kind, body, sure)
        if verb == _AS_MATCH:
            sure = False
            continue
        if verb == _AS_VERDICT or (verb is not None and not sure):
            state.uncertain.append(rule)
            return None
        if isinstance(verb, tuple):
            return verb
    return None


def _statement(
    state: _Walk, rule: NftRule, kind: str, body: object, sure: bool
) -> tuple[str, str] | str | None:
    if kind == "vmap":
        return _vmap(state, body)
    if kind in _NAT:
        if sure:  # a side effect only when the rule surely runs
            state.nat.append((kind, rule))
        return ("accept", "")  # a NAT statement ends the chain, as accept
    if kind == "mangle" and isinstance(body, dict):
        if sure and body.get("key") == {"meta": {"key": "mark"}}:
            value = body.get("value")
            mark = value if isinstance(value, int) and not isinstance(value, bool) else None
            state.packet = replace(state.packet, mark=mark)
        return None
    if kind == "xt" and isinstance(body, dict):
        return _AS_VERDICT if body.get("type") == "target" else _AS_MATCH
    if kind == "queue":
        return _AS_VERDICT  # accepted with `bypass` or a reader, dropped without: unknown
    if kind in _FILTERING and (kind != "limit" or (isinstance(body, dict) and body.get("inv"))):
        return _AS_MATCH  # (a plain `limit rate` lets the packets of a probe through)
    if kind in _TERMINAL:
        return _verb(kind, body)
    return None  # counter, limit, log, ct helper, notrack, ...: no verdict


def _vmap(state: _Walk, body: object) -> tuple[str, str] | str | None:
    """A verdict map: the verdict of the packet's key, none when it is not in the map, and
    "cannot tell" when the key or the map cannot be read."""
    if not isinstance(body, dict):
        return _AS_VERDICT
    value = _value(state, body.get("key"))
    data = body.get("data")
    if value is _UNKNOWN:
        return _AS_VERDICT
    if value is _ABSENT:
        return None
    if isinstance(data, str) and data.startswith("@"):
        pairs: object = state.ruleset.sets.get((*state.table, data[1:]))
    else:
        pairs = data.get("set") if isinstance(data, dict) else None
    if not isinstance(pairs, list | tuple):
        return _AS_VERDICT
    for pair in pairs:
        if isinstance(pair, dict) and isinstance(pair.get("elem"), list):
            pair = pair["elem"]
        if not (isinstance(pair, list) and len(pair) == 2):
            return _AS_VERDICT
        held = _equal(state, value, pair[0])
        if held is None:
            return _AS_VERDICT
        if held:
            verdict = pair[1]
            if isinstance(verdict, dict) and len(verdict) == 1:
                ((verb, target),) = verdict.items()
                return _verb(verb, target) or _AS_VERDICT
            return _AS_VERDICT
    return None


def _verb(verb: str, target: object) -> tuple[str, str] | None:
    if verb in ("jump", "goto"):
        name = target.get("target") if isinstance(target, dict) else None
        return (verb, name) if isinstance(name, str) else None
    return (verb, "") if verb in _TERMINAL and verb != "queue" else None


# --- matches -----------------------------------------------------------------------------

_UNKNOWN = object()  # a value this module cannot read for the packet
_ABSENT = object()  # a header the packet does not have (its match is false)


def _match(state: _Walk, body: object) -> bool | None:
    if not isinstance(body, dict):
        return None
    op, left, right = body.get("op", "=="), body.get("left"), body.get("right")
    value = _value(state, left)
    if value is _ABSENT:
        return False
    if value is _UNKNOWN:
        return None
    if op == "in":
        wanted = right if isinstance(right, list) else [right]
        found = [_equal(state, value, w) for w in wanted]
        return True if True in found else None if None in found else False
    if op in ("==", "!="):
        held = _equal(state, value, right)
        return None if held is None else (held if op == "==" else not held)
    if op in ("<", ">", "<=", ">=") and isinstance(value, int) and isinstance(right, int):
        return {"<": value < right, ">": value > right}.get(
            op, value <= right if op == "<=" else value >= right
        )
    return None


def _value(state: _Walk, left: object) -> object:
    """The packet's value for a match's left side: _ABSENT when the packet lacks the header
    (nft's implied protocol check fails), _UNKNOWN when this module cannot read it."""
    p = state.packet
    if not isinstance(left, dict) or len(left) != 1:
        return _UNKNOWN
    ((kind, body),) = left.items()
    if kind == "meta" and isinstance(body, dict):
        return _meta(p, str(body.get("key")))
    if kind == "payload" and isinstance(body, dict):
        return _payload(p, str(body.get("protocol")), str(body.get("field")))
    if kind == "ct" and isinstance(body, dict) and body.get("key") == "state":
        return p.ct
    if kind == "concat" and isinstance(body, list):
        parts = [_value(state, part) for part in body]
        if _ABSENT in parts:
            return _ABSENT
        return _UNKNOWN if _UNKNOWN in parts else tuple(parts)
    if kind == "&" and isinstance(body, list):
        inner = [_value(state, part) for part in body if isinstance(part, dict)]
        return _ABSENT if _ABSENT in inner else _UNKNOWN
    return _UNKNOWN


def _meta(p: Packet, key: str) -> object:
    if key in ("iifname", "iif"):
        return p.iif if p.iif is not None else _UNKNOWN
    if key in ("oifname", "oif"):
        return p.oif if p.oif is not None else _UNKNOWN
    if key == "nfproto":
        return f"ipv{p.family}"
    if key == "l4proto":
        return _l4(p)
    if key in ("protocol",):
        return _UNKNOWN
    if key == "mark":
        return p.mark if p.mark is not None else _UNKNOWN
    return _UNKNOWN


def _l4(p: Packet) -> str:
    # nft prints IPv6's ICMP as `ipv6-icmp` for l4proto (and `icmpv6` for its header).
    return "ipv6-icmp" if p.proto == "icmp" and p.family == 6 else p.proto


def _payload(p: Packet, protocol: str, name: str) -> object:
    if protocol in ("ip", "ip6"):
        if p.family != (4 if protocol == "ip" else 6):
            return _ABSENT
        return {"saddr": p.saddr, "daddr": p.daddr}.get(name, _UNKNOWN)
    if protocol == "th" and p.proto not in ("udp", "tcp"):
        return _UNKNOWN  # `th` has no protocol of its own: on ICMP it reads type and code
    if protocol in ("udp", "tcp", "th"):
        if protocol not in ("th", p.proto):
            return _ABSENT
        port = {"dport": p.dport, "sport": p.sport}.get(name)
        return port if port is not None else _UNKNOWN
    if protocol in ("icmp", "icmpv6"):
        if (p.family, p.proto) != (4 if protocol == "icmp" else 6, "icmp"):
            return _ABSENT
        return "echo-request" if name == "type" else 0 if name == "code" else _UNKNOWN
    return _ABSENT if protocol in ("sctp", "dccp", "esp", "ah", "udplite") else _UNKNOWN


def _equal(state: _Walk, value: object, right: object) -> bool | None:
    """Whether the packet's `value` is (in) `right`: a literal, prefix, range, set or @set."""
    if isinstance(right, str) and right.startswith("@"):
        key = (*state.table, right[1:])
        return _in(state, value, state.ruleset.sets.get(key, ()))
    if isinstance(right, dict) and len(right) == 1:
        ((kind, body),) = right.items()
        if kind == "set" and isinstance(body, list):
            return _in(state, value, body)
        if kind == "prefix" and isinstance(body, dict):
            return _in_prefix(value, body.get("addr"), body.get("len"))
        if kind == "range" and isinstance(body, list) and len(body) == 2:
            return _in_range(value, body[0], body[1])
        if kind == "elem" and isinstance(body, dict):
            return _equal(state, value, body.get("val"))
        return None
    if isinstance(value, tuple) and isinstance(right, dict | list):
        parts = right.get("concat") if isinstance(right, dict) else right
        if isinstance(parts, list) and len(parts) == len(value):
            checks = [_equal(state, v, r) for v, r in zip(value, parts, strict=True)]
            return None if None in checks else all(checks)
        return None
    return _literal(value, right)


def _in(state: _Walk, value: object, elements: Sequence[object]) -> bool | None:
    results = [_equal(state, value, e) for e in elements]
    if any(r is True for r in results):
        return True
    return None if None in results else False


def _literal(value: object, right: object) -> bool | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) and isinstance(right, str):
        try:
            return value == ipaddress.ip_address(right)
        except ValueError:
            return None
    if isinstance(value, str) and isinstance(right, str):
        if right.endswith("*") and not right.endswith("\\*"):
            return value.startswith(right[:-1])
        return value == right
    if isinstance(value, int) and isinstance(right, int):
        return value == right
    return None


def _in_prefix(value: object, addr: object, length: object) -> bool | None:
    if not isinstance(addr, str) or not isinstance(length, int):
        return None
    try:
        net = ipaddress.ip_network(f"{addr}/{length}", strict=False)
    except ValueError:
        return None
    if not isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return None
    return value.version == net.version and value in net


def _in_range(value: object, low: object, high: object) -> bool | None:
    if isinstance(value, int) and isinstance(low, int) and isinstance(high, int):
        return low <= value <= high
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        try:
            a, b = ipaddress.ip_address(str(low)), ipaddress.ip_address(str(high))
        except ValueError:
            return None
        return a.version == value.version and int(a) <= int(value) <= int(b)
    return None
