"""The loaded nftables ruleset (`nft -j list ruleset`), and each rule's own line (`nft -a list
ruleset`), as values doctor can walk a packet through.

Only what a verdict depends on is kept: base chains (hook, priority, policy), every chain's
rules (their JSON expressions, handle, comment), and named sets' elements. The JSON is read
depth-bounded like every other router output; a rule is kept as the JSON nft printed, and
sitewire.diagnose.nftwalk reads what it understands of it and says "cannot tell" for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sitewire.diagnose.parse.base import UnexpectedOutput, is_json_int, load_json

# nft's named priorities (libnftables' standard priority names), for JSON that spells one.
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50}
_PRIORITIES |= {"srcnat": 100, "out": 100}
ChainKey = tuple[str, str, str]  # family, table, chain


@dataclass(frozen=True, slots=True)
class NftChain:
    family: str
    table: str
    name: str
    hook: str | None = None  # a base chain's hook; None for a chain reached by jump/goto
    priority: int = 0
    policy: str = "accept"
    type: str = "filter"
    device: str | None = None  # a netdev ingress chain's device

    @property
    def key(self) -> ChainKey:
        return (self.family, self.table, self.name)

    def where(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass(frozen=True, slots=True)
class NftRule:
    chain: ChainKey
    handle: int
    expr: tuple[object, ...]
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Ruleset:
    chains: Mapping[ChainKey, NftChain] = field(default_factory=dict)
    rules: Mapping[ChainKey, tuple[NftRule, ...]] = field(default_factory=dict)
    sets: Mapping[ChainKey, tuple[object, ...]] = field(default_factory=dict)  # named sets, maps
    lines: Mapping[tuple[str, str, str, int], str] = field(default_factory=dict)  # rule's text

    def base_chains(self, hook: str, family: int) -> list[NftChain]:
        """The base chains a packet of IP `family` passes at `hook`, in the order the kernel
        runs them (lowest priority first)."""
        fits = {"inet", "ip" if family == 4 else "ip6"}
        found = [c for c in self.chains.values() if c.hook == hook and c.family in fits]
        return sorted(found, key=lambda c: c.priority)

    def line(self, rule: NftRule) -> str:
        """The rule as `nft list ruleset` prints it (its JSON's outline where no text came)."""
        family, table, chain = rule.chain
        text = self.lines.get((family, table, chain, rule.handle))
        # counters change between two reads; the rule is the same
        return _COUNTER.sub("", text) if text else f"(rule handle {rule.handle})"


def parse_nft_json(text: str, listing: str = "") -> Ruleset:
    """`nft -j list ruleset`; `listing` is `nft -a list ruleset` for the rules' own lines."""
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("nftables"), list):
        raise UnexpectedOutput("nft -j: no top-level 'nftables' list")
    chains: dict[ChainKey, NftChain] = {}
    rules: dict[ChainKey, list[NftRule]] = {}
    sets: dict[ChainKey, tuple[object, ...]] = {}
    dormant: set[tuple[str, str]] = set()  # a table with flags dormant runs none of its chains
    for item in data["nftables"]:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((kind, body),) = item.items()
        if not isinstance(body, dict):
            continue
        if kind == "table":
            flags = body.get("flags")
            if flags == "dormant" or (isinstance(flags, list) and "dormant" in flags):
                dormant.add((str(body.get("family")), str(body.get("name"))))
            continue
        key = _key(body, "chain" if kind == "rule" else "name")
        if key is None:
            continue
        if kind == "chain":
            chains[key] = _chain(key, body)
        elif kind == "rule":
            rule = _rule(key, body)
            if rule is not None:
                rules.setdefault(key, []).append(rule)
        elif kind in ("set", "map"):
            elements = body.get("elem", [])
            sets[key] = tuple(elements) if isinstance(elements, list) else ()
    chains = {k: c for k, c in chains.items() if (k[0], k[1]) not in dormant}
    return Ruleset(
        chains, {k: tuple(v) for k, v in rules.items()}, sets, parse_nft_listing(listing)
    )


def _key(body: Mapping[str, object], name_field: str) -> ChainKey | None:
    family, table, name = body.get("family"), body.get("table"), body.get(name_field)
    if isinstance(family, str) and isinstance(table, str) and isinstance(name, str):
        return (family, table, name)
    return None


def _chain(key: ChainKey, body: Mapping[str, object]) -> NftChain:
    hook, prio, policy = body.get("hook"), body.get("prio", 0), body.get("policy", "accept")
    if isinstance(prio, str):
        prio = _PRIORITIES.get(prio, 0)
    device = body.get("dev")
    return NftChain(
        *key,
        hook=hook if isinstance(hook, str) else None,
        priority=prio if is_json_int(prio) else 0,
        policy=policy if isinstance(policy, str) else "accept",
        type=str(body.get("type", "filter")),
        device=device if isinstance(device, str) else None,
    )


def _rule(key: ChainKey, body: Mapping[str, object]) -> NftRule | None:
    handle, expr, comment = body.get("handle"), body.get("expr"), body.get("comment")
    if not is_json_int(handle) or not isinstance(expr, list):
        return None
    return NftRule(key, handle, tuple(expr), comment if isinstance(comment, str) else None)


_COUNTER = re.compile(r"counter packets [0-9]+ bytes [0-9]+ ")
_TABLE = re.compile(r"table (\S+) (\S+) \{")
_CHAIN = re.compile(r"chain (\S+) \{")
_HANDLE = re.compile(r"(.*?)\s*# handle ([0-9]+)$")


def parse_nft_listing(text: str) -> dict[tuple[str, str, str, int], str]:
    """`nft -a list ruleset`: each rule's line by (family, table, chain, handle)."""
    out: dict[tuple[str, str, str, int], str] = {}
    table: tuple[str, str] | None = None
    chain: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if m := _TABLE.match(line):
            table, chain = (m.group(1), m.group(2)), None
        elif m := _CHAIN.match(line):
            chain = m.group(1)
        elif line == "}":
            chain = None
        elif (m := _HANDLE.match(line)) and table is not None and chain is not None:
            out[(*table, chain, int(m.group(2)))] = m.group(1)
    return out
