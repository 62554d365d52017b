"""`ip rule`, `ip route` and `ip link` output (iproute2 or BusyBox) as values."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sitewire import strict
from sitewire.diagnose.parse.base import (
    V4_DEFAULT,
    V6_DEFAULT,
    UnexpectedOutput,
    field_int,
    is_json_int,
    load_json,
    parse_number,
)
from sitewire.strict import IPAddress, IPInterface, IPNetwork

# --- ip rule

_RULE_ACTIONS = frozenset({"unreachable", "blackhole", "prohibit", "nop"})
_RULE = re.compile(r"([0-9]+):\s*(.*)")


@dataclass(frozen=True, slots=True)
class IpRule:
    priority: int
    action: str  # lookup, goto, unreachable, blackhole, prohibit, nop
    table: str | None  # for lookup: main, default, local or a number
    src: str | None = None  # None = from all
    dest: str | None = None
    fwmark: str | None = None
    iif: str | None = None
    oif: str | None = None
    invert: bool = False
    extra: tuple[tuple[str, str], ...] = ()  # selectors sitewire does not model

    @property
    def has_selector(self) -> bool:
        return any((self.src, self.dest, self.fwmark, self.iif, self.oif, self.extra))


def parse_ip_rules(text: str) -> list[IpRule]:
    """`ip rule show` / `ip -6 rule show` (iproute2 or BusyBox)."""
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _RULE.fullmatch(line.strip())
        priority = parse_number(match[1]) if match is not None else None
        if match is None or priority is None:
            raise UnexpectedOutput(f"line {number}: {line.strip()!r} does not start with 'N:'")
        rules.append(_rule(priority, match[2].split()))
    return rules


def _rule(priority: int, words: list[str]) -> IpRule:
    known: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    action, table, invert = "", None, False
    tokens = iter(words)
    for word in tokens:
        if word == "not":
            invert = True
        elif word in _RULE_ACTIONS:
            action = word
        elif word.startswith("["):
            extra.append((word, ""))
        elif word in ("lookup", "table"):
            action, table = "lookup", next(tokens, "")
        elif word == "goto":
            action = "goto"
            extra.append((word, next(tokens, "")))
        elif word in ("from", "to", "fwmark", "iif", "oif"):
            known[word] = next(tokens, "")
        elif word == "l3mdev":
            extra.append((word, ""))
        else:
            extra.append((word, next(tokens, "")))
    src = known.get("from")
    return IpRule(
        priority=priority,
        action=action or "unknown",
        table=table,
        src=None if src in (None, "all") else src,
        dest=known.get("to"),
        fwmark=known.get("fwmark"),
        iif=known.get("iif"),
        oif=known.get("oif"),
        invert=invert,
        extra=tuple(extra),
    )


def lookup52_priority(rules: Sequence[IpRule]) -> int | None:
    """Priority of Tailscale's `lookup 52` rule: 5270, or 1370 beside mwan3 (reference §6.1)."""
    found = [r.priority for r in rules if r.action == "lookup" and r.table == "52" and not r.invert]
    return min(found) if found else None


# --- ip route

_ROUTE_TYPES = frozenset(
    {"unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole"}
    | {"nat", "anycast"}
)
_ROUTE_FLAGS = frozenset(
    {"linkdown", "onlink", "pervasive", "offload", "trap", "dead", "notify", "rt_offload"}
    | {"rt_trap", "rt_offload_failed"}
)


@dataclass(frozen=True, slots=True)
class Route:
    dest: IPNetwork
    type: str = "unicast"
    dev: str | None = None
    via: IPAddress | None = None
    proto: str | None = None
    scope: str | None = None
    src: IPAddress | None = None
    metric: int | None = None
    table: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def is_default(self) -> bool:
        return self.dest.prefixlen == 0


def parse_routes(text: str, family: int = 4) -> list[Route]:
    """`ip [-6] route show [table N]`; `family` says what `default` means.

    Continuation lines (multipath `nexthop`, `cache`) are skipped.
    """
    routes = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line[0].isspace():
            continue
        routes.append(_route(line.split(), family, number))
    return routes


def _route(words: list[str], family: int, number: int) -> Route:
    kind = words.pop(0) if words[0] in _ROUTE_TYPES else "unicast"
    if not words:
        raise UnexpectedOutput(f"line {number}: {kind} route without a destination")
    dest_text = words.pop(0)
    try:
        if dest_text == "default":
            dest: IPNetwork = V6_DEFAULT if family == 6 else V4_DEFAULT
        else:
            dest = strict.network(dest_text, strict=False)
    except ValueError:
        raise UnexpectedOutput(f"line {number}: {dest_text!r} is not a destination") from None
    fields: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    tokens = iter(words)
    for word in tokens:
        if word in _ROUTE_FLAGS:
            extra.append((word, ""))
            continue
        value = next(tokens, "")
        if word == "via" and value in ("inet", "inet6"):
            value = next(tokens, "")
        if word in ("dev", "via", "proto", "scope", "src", "metric", "table"):
            fields[word] = value
        else:
            extra.append((word, value))
    try:
        via = strict.address(fields["via"]) if "via" in fields else None
        src = strict.address(fields["src"]) if "src" in fields else None
    except ValueError as exc:
        raise UnexpectedOutput(f"line {number}: {exc}") from None
    return Route(
        dest=dest,
        type=kind,
        dev=fields.get("dev"),
        via=via,
        proto=fields.get("proto"),
        scope=fields.get("scope"),
        src=src,
        metric=field_int(fields["metric"], number, "metric") if "metric" in fields else None,
        table=fields.get("table"),
        extra=tuple(extra),
    )


def default_route(routes: Sequence[Route]) -> Route | None:
    """The default route the kernel prefers in this table: lowest metric, then first listed."""
    candidates = [r for r in routes if r.is_default and r.type == "unicast" and r.dev]
    return min(candidates, key=lambda r: r.metric or 0) if candidates else None


# --- ip link

_LINK = re.compile(r"([0-9]+):\s+([^:\s]+?)(?:@([^:\s]+))?:\s+<([^>]*)>(.*)")


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    mtu: int
    flags: frozenset[str]
    state: str | None = None
    link_type: str | None = None  # ether, none, loopback, ...
    parent: str | None = None  # the part after @ (if3, eth0)

    @property
    def up(self) -> bool:
        return "UP" in self.flags


def parse_ip_links(text: str) -> list[Link]:
    """`ip -o link show` (iproute2 or BusyBox)."""
    links = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINK.fullmatch(line.strip())
        if match is None:
            raise UnexpectedOutput(f"line {number}: not an `ip -o link` line")
        words = match[5].replace("\\", " ").split()
        following = dict(itertools.zip_longest(words, words[1:], fillvalue=""))
        mtu = parse_number(following.get("mtu", ""))
        if mtu is None:
            raise UnexpectedOutput(f"line {number}: {match[2]} has no mtu")
        link_type = next((w.split("/", 1)[1] for w in words if w.startswith("link/")), None)
        links.append(
            Link(
                index=field_int(match[1], number, "index"),
                name=match[2],
                mtu=mtu,
                flags=frozenset(f for f in match[4].split(",") if f),
                state=following.get("state"),
                link_type=link_type,
                parent=match[3],
            )
        )
    return links


def parse_ip_links_json(text: str) -> list[Link]:
    """`ip -j link show` (iproute2 only; BusyBox `ip` has no JSON)."""
    data = load_json(text)
    if not isinstance(data, list):
        raise UnexpectedOutput("expected a JSON list of links")
    links = []
    for number, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise UnexpectedOutput(f"link {number} is not a JSON object")
        index, name, mtu = item.get("ifindex", 0), item.get("ifname"), item.get("mtu")
        flags = item.get("flags", [])
        if not (is_json_int(index) and is_json_int(mtu) and isinstance(name, str)):
            raise UnexpectedOutput(f"link {number} without an ifindex, ifname or mtu")
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise UnexpectedOutput(f"link {number}: flags are not a list of words")
        links.append(
            Link(
                index=index,
                name=name,
                mtu=mtu,
                flags=frozenset(flags),
                state=_json_text(item, "operstate", number),
                link_type=_json_text(item, "link_type", number),
                parent=_json_text(item, "link", number),
            )
        )
    return links


def _json_text(item: dict[str, object], key: str, number: int) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise UnexpectedOutput(f"link {number}: {key} is not text")
    return value


# --- ip neigh

_LIVE_NEIGHBOUR = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"})


@dataclass(frozen=True, slots=True)
class Neighbour:
    address: IPAddress
    dev: str


def parse_neighbours(text: str) -> list[Neighbour]:
    """`ip neigh show`: the hosts a router has lately heard from on each device (an entry
    with a link-layer address, in a state other than FAILED or INCOMPLETE). A line that does
    not read as one is skipped: the table says who might answer, nothing more."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[1] != "dev" or "lladdr" not in words:
            continue
        if words[-1] not in _LIVE_NEIGHBOUR or not re.fullmatch(r"[A-Za-z0-9_.@-]+", words[2]):
            continue
        try:
            address = strict.address(words[0])
        except ValueError:
            continue
        out.append(Neighbour(address, words[2]))
    return out


@dataclass(frozen=True, slots=True)
class HeldAddress:
    """An address a router holds, with its prefix length, on one device."""

    interface: IPInterface
    dev: str


def parse_addresses(text: str) -> list[HeldAddress]:
    """`ip -o addr show`: each address the router holds and its device (an IPv6 LAN's
    connected route names no source address, so this is where a router's address in it
    shows). A line that does not read as one is skipped."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or words[2] not in ("inet", "inet6"):
            continue
        dev = words[1].split("@")[0]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", dev):
            continue
        if {"tentative", "dadfailed"} & set(words):
            continue  # not usable as a source (yet, or ever)
        try:
            held = strict.interface(words[3])
        except ValueError:
            continue
        out.append(HeldAddress(held, dev))
    return out
