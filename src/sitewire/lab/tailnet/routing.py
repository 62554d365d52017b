"""What tailscaled installs for a set of prefs and a netmap, as values (no side effects).

Sources: wgengine/router/osrouter/router_linux.go (rules, table 52, mwan3 base),
ipn/ipnlocal/local.go (routes: peers' addresses, quad-100, subnet routes only with RouteAll;
with an exit node, the default routes through it, and with --exit-node-allow-lan-access the
node's own subnets thrown back to the main table).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sitewire.lab.tailnet.base import Prefix
from sitewire.lab.tailnet.control import Endpoint, Node, Tailnet
from sitewire.lab.tailnet.prefs import EXIT_ROUTES, Prefs

TABLE = 52
BYPASS_MARK = 0x80000
MARK_MASK = 0xFF0000
BASE_PRIORITY = 5200
MWAN3_BASE_PRIORITY = 1300
KEEPALIVE = 25
QUAD_100: tuple[Prefix, ...] = (
    ipaddress.IPv4Network("100.100.100.100/32"),
    ipaddress.IPv6Network("fd7a:115c:a1e0::53/128"),
)


@dataclass(frozen=True)
class Rule:
    """One of tailscaled's baseIPRules; installed for IPv4 and IPv6 alike."""

    priority: int
    marked: bool
    table: str  # "main", "default", "52", or "" for the unreachable action

    def ip_args(self) -> list[str]:
        mark = ["fwmark", f"{BYPASS_MARK:#x}/{MARK_MASK:#x}"] if self.marked else []
        action = ["table", self.table] if self.table else ["unreachable"]
        return ["priority", str(self.priority), *mark, *action]

    def matches(self, shown: Mapping[str, object]) -> bool:
        """Whether one entry of `ip -j rule show` is this rule."""
        mark = (f"{BYPASS_MARK:#x}", f"{MARK_MASK:#x}") if self.marked else (None, None)
        action = {"table": self.table} if self.table else {"action": "unreachable"}
        return (
            shown.get("priority") == self.priority
            and (shown.get("fwmark"), shown.get("fwmask")) == mark
            and all(shown.get(k) == v for k, v in action.items())
            and not any(k in shown for k in ("dst", "iif", "oif", "to"))
            and shown.get("src", "all") == "all"
        )


def policy_rules(base: int) -> tuple[Rule, ...]:
    return (
        Rule(base + 10, True, "main"),
        Rule(base + 30, True, "default"),
        Rule(base + 50, True, ""),
        Rule(base + 70, False, str(TABLE)),
    )


def rule_base(mwan3_configured: bool, ipv4_rules: Iterable[Mapping[str, object]]) -> int:
    """checkOpenWRTUsingMWAN3: mwan3 config plus a marked rule at 2001-2004 moves us to 1300."""
    if mwan3_configured and any(
        isinstance(p := r.get("priority"), int) and 2001 <= p <= 2004 and "fwmark" in r
        for r in ipv4_rules
    ):
        return MWAN3_BASE_PRIORITY
    return BASE_PRIORITY


@dataclass(frozen=True)
class Peer:
    public_key: str
    endpoint: Endpoint
    allowed_ips: tuple[Prefix, ...]


@dataclass(frozen=True)
class Netstate:
    """Everything `apply` installs for one node: device addresses, WireGuard peers, table 52."""

    addresses: tuple[Prefix, ...]
    peers: tuple[Peer, ...]
    routes: tuple[Prefix, ...]
    throws: tuple[Prefix, ...] = ()  # `throw` routes in table 52: looked up in main instead


def accepted_routes(me: Node, prefs: Prefs, tailnet: Tailnet) -> dict[str, tuple[Prefix, ...]]:
    """Each peer's primary subnet routes this node takes in, which is none without RouteAll."""
    primary = tailnet.primary_routes()
    return {p.name: primary[p.name] if prefs.route_all else () for p in tailnet.peers_of(me.name)}


def exit_peer(me: Node, prefs: Prefs, tailnet: Tailnet) -> str | None:
    """The peer this node sends everything else to: the one --exit-node names by its tailnet
    address, while it offers to be an exit node."""
    if not prefs.exit_node_ip:
        return None
    return next(
        (
            p.name
            for p in tailnet.peers_of(me.name)
            if prefs.exit_node_ip in (str(p.ipv4), str(p.ipv6)) and p.exit_node_option
        ),
        None,
    )


def netstate(me: Node, prefs: Prefs, tailnet: Tailnet, local: Iterable[Prefix] = ()) -> Netstate:
    """`local`: the subnets of the node's own interfaces (thrown back to main when it uses an
    exit node and allows LAN access)."""
    accepted = accepted_routes(me, prefs, tailnet)
    via = exit_peer(me, prefs, tailnet)
    peers = tuple(
        Peer(
            p.public_key,
            p.endpoint,
            (*p.addresses, *accepted[p.name], *(EXIT_ROUTES if p.name == via else ())),
        )
        for p in tailnet.peers_of(me.name)
    )
    routes = [r for p in peers for r in p.allowed_ips]
    throws = tuple(local) if via is not None and prefs.exit_node_allow_lan_access else ()
    return Netstate(me.addresses, peers, tuple(dict.fromkeys([*QUAD_100, *routes])), throws)
