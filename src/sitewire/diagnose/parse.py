"""Device output as typed values: wg dumps, ip rules/routes/links, Tailscale prefs, releases.

Pure: text in, frozen values out. Nothing here keeps a private or preshared key; a dump line
that carries one is read for everything else and the key is dropped on the spot. Router output
is hostile until read (issue 9): addresses go through sitewire.strict (no zone IDs, only the
characters an address is written with), numbers are ASCII digits, JSON is depth-bounded, and
anything else raises UnexpectedOutput, never another exception.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TypeGuard

from sitewire import strict
from sitewire.errors import SitewireError
from sitewire.strict import IPAddress, IPNetwork

NONE = "(none)"
# What the fact-gathering script puts on the router in place of a key before anything is sent.
HIDDEN = "(hidden)"
MARK = "@@sitewire"

_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")
_V4_DEFAULT = strict.network("0.0.0.0/0")
_V6_DEFAULT = strict.network("::/0")
# A link-local endpoint's zone as getnameinfo prints it: an interface name (IFNAMSIZ).
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_HEX = re.compile(r"(?:0x)?[0-9A-Fa-f]{1,16}")


class UnexpectedOutput(SitewireError):
    """Device output that does not read as the command's documented format.

    Messages name the line number and what was wrong, never the line itself: a dump line
    may carry a key.
    """


def parse_number(text: str) -> int | None:
    """ASCII digits, at most 20 (a u64), as an int; else None. `'²'.isdigit()` is True but
    `int('²')` raises; `int()` takes `1_000`, `٣` and ` 3 `, and refuses 5,000 digits."""
    return strict.digits(text) if len(text) <= 20 else None


# --- script sections -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptSection:
    name: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {self.rc}"


def parse_sections(text: str) -> dict[str, ScriptSection]:
    """Split `@@sitewire begin/stderr/end` framed output into its sections.

    The script prints a newline before each closing marker, so the last newline of every
    part belongs to the framing and output without a final newline survives exactly.
    """
    sections: dict[str, ScriptSection] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line.startswith(f"{MARK} begin "):
            continue
        name = line.removeprefix(f"{MARK} begin ").strip()
        stdout = _until(lines, f"{MARK} stderr {name}")
        stderr = _until(lines, f"{MARK} end {name} ")
        if stdout is None or stderr is None:
            raise UnexpectedOutput(f"section {name!r} is cut short")
        body, end = stderr
        rc = parse_number(end.removeprefix(f"{MARK} end {name} ").strip())
        if rc is None:
            raise UnexpectedOutput(f"section {name!r} ends without an exit status")
        sections[name] = ScriptSection(name, rc, stdout[0], body)
    return sections


def _until(lines: Iterator[str], marker: str) -> tuple[str, str] | None:
    taken: list[str] = []
    for line in lines:
        if line.startswith(marker):
            return "\n".join(taken), line
        taken.append(line)
    return None


# --- wg show all dump ------------------------------------------------------------------------


class SecretState(StrEnum):
    UNSET = "unset"  # "(none)"
    REDACTED = "redacted"  # hidden on the device before it was sent
    SENT = "sent"  # arrived in clear and was dropped here

    @property
    def is_set(self) -> bool:
        return self is not SecretState.UNSET


@dataclass(frozen=True, slots=True)
class SocketAddress:
    ip: IPAddress  # never with a zone: that is `zone`, checked to be an interface name
    port: int
    zone: str | None = None  # the interface of a link-local IPv6 endpoint (`fe80::1%eth0`)

    def __str__(self) -> str:
        if self.ip.version == 4:
            return f"{self.ip}:{self.port}"
        zone = f"%{self.zone}" if self.zone else ""
        return f"[{self.ip}{zone}]:{self.port}"


@dataclass(frozen=True, slots=True)
class WgPeer:
    public_key: str
    preshared_key: SecretState
    endpoint: SocketAddress | None
    allowed_ips: tuple[IPNetwork, ...]
    latest_handshake: int | None  # UNIX seconds; None = never
    rx_bytes: int
    tx_bytes: int
    keepalive: int | None  # seconds; None = off

    @property
    def preshared_key_set(self) -> bool:
        return self.preshared_key.is_set


@dataclass(frozen=True, slots=True)
class WgInterface:
    name: str
    private_key: SecretState
    public_key: str | None
    listen_port: int
    fwmark: int | None  # None = off
    peers: tuple[WgPeer, ...]

    @property
    def private_key_set(self) -> bool:
        return self.private_key.is_set

    def peer(self, public_key: str) -> WgPeer | None:
        return next((p for p in self.peers if p.public_key == public_key), None)


@dataclass(frozen=True, slots=True)
class WgDump:
    interfaces: tuple[WgInterface, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.interfaces)

    def interface(self, name: str) -> WgInterface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    @property
    def secrets_sent(self) -> bool:
        """A key crossed the wire in clear: dropped here, but the device should have hidden it."""
        return any(
            i.private_key is SecretState.SENT
            or any(p.preshared_key is SecretState.SENT for p in i.peers)
            for i in self.interfaces
        )


def parse_wg_dump(text: str, interface: str | None = None) -> WgDump:
    """`wg show all dump`, or `wg show <interface> dump` when `interface` is given.

    Interface lines carry 4 fields and peer lines 8 (plus the interface name with `all`).
    """
    prefix = 0 if interface is not None else 1
    order: list[str] = []
    heads: dict[str, tuple[SecretState, str | None, int, int | None]] = {}
    peers: dict[str, list[WgPeer]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        name = interface if interface is not None else fields[0]
        body = fields[prefix:]
        if len(body) == 4:
            if name in heads:
                raise UnexpectedOutput(f"line {number}: second interface line for {name!r}")
            heads[name] = _wg_interface(body, number)
            order.append(name)
            peers[name] = []
        elif len(body) == 8:
            if name not in heads:
                raise UnexpectedOutput(f"line {number}: peer line before its interface line")
            peers[name].append(_wg_peer(body, number))
        else:
            raise UnexpectedOutput(
                f"line {number}: {len(fields)} tab-separated fields "
                f"(expected {4 + prefix} or {8 + prefix})"
            )
    return WgDump(tuple(WgInterface(n, *heads[n], tuple(peers[n])) for n in order))


def _wg_interface(
    fields: Sequence[str], number: int
) -> tuple[SecretState, str | None, int, int | None]:
    private, public, port, fwmark = fields
    return (
        _secret(private),
        None if public == NONE else _public_key(public, number),
        _port(port, number, "listen port"),
        None if fwmark == "off" else _hex(fwmark, number, "fwmark"),
    )


def _wg_peer(fields: Sequence[str], number: int) -> WgPeer:
    public, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
    when = _int(handshake, number, "latest handshake")
    return WgPeer(
        public_key=_public_key(public, number),
        preshared_key=_secret(psk),
        endpoint=None if endpoint == NONE else _socket(endpoint, number),
        allowed_ips=() if allowed == NONE else _networks(allowed.split(","), number),
        latest_handshake=when or None,
        rx_bytes=_int(rx, number, "rx bytes"),
        tx_bytes=_int(tx, number, "tx bytes"),
        keepalive=None if keepalive == "off" else _int(keepalive, number, "keepalive"),
    )


def _secret(field: str) -> SecretState:
    if field == NONE:
        return SecretState.UNSET
    return SecretState.REDACTED if field == HIDDEN else SecretState.SENT


def _public_key(field: str, number: int) -> str:
    if not _KEY.fullmatch(field):
        raise UnexpectedOutput(f"line {number}: public key is not 44 characters of base64")
    return field


def _socket(field: str, number: int) -> SocketAddress:
    host, sep, port = field.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    text, percent, zone = host.partition("%")
    try:
        ip = strict.address(text)
        if not sep or (percent and (ip.version != 6 or not _ZONE.fullmatch(zone))):
            raise ValueError(field)
    except ValueError:
        raise UnexpectedOutput(f"line {number}: endpoint {field!r} is not ip:port") from None
    return SocketAddress(ip, _port(port, number, "endpoint port"), zone if percent else None)


def _networks(items: Sequence[str], number: int) -> tuple[IPNetwork, ...]:
    try:
        return tuple(strict.network(i.strip(), strict=False) for i in items if i.strip())
    except ValueError as exc:
        raise UnexpectedOutput(f"line {number}: {exc}") from None


def _int(field: str, number: int, what: str) -> int:
    value = parse_number(field)
    if value is None:
        raise UnexpectedOutput(f"line {number}: {what} {field!r} is not a number")
    return value


def _port(field: str, number: int, what: str) -> int:
    value = _int(field, number, what)
    if value > 65535:
        raise UnexpectedOutput(f"line {number}: {what} {value} is not a port")
    return value


def _hex(field: str, number: int, what: str) -> int:
    if not _HEX.fullmatch(field):
        raise UnexpectedOutput(f"line {number}: {what} {field!r} is not a hex number")
    return int(field, 16)


# --- ip rule ---------------------------------------------------------------------------------

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


# --- ip route --------------------------------------------------------------------------------

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
            dest: IPNetwork = _V6_DEFAULT if family == 6 else _V4_DEFAULT
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
        metric=_int(fields["metric"], number, "metric") if "metric" in fields else None,
        table=fields.get("table"),
        extra=tuple(extra),
    )


def default_route(routes: Sequence[Route]) -> Route | None:
    """The default route the kernel prefers in this table: lowest metric, then first listed."""
    candidates = [r for r in routes if r.is_default and r.type == "unicast" and r.dev]
    return min(candidates, key=lambda r: r.metric or 0) if candidates else None


# --- ip link ---------------------------------------------------------------------------------

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
                index=_int(match[1], number, "index"),
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
    data = _json(text)
    if not isinstance(data, list):
        raise UnexpectedOutput("expected a JSON list of links")
    links = []
    for number, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise UnexpectedOutput(f"link {number} is not a JSON object")
        index, name, mtu = item.get("ifindex", 0), item.get("ifname"), item.get("mtu")
        flags = item.get("flags", [])
        if not (_json_int(index) and _json_int(mtu) and isinstance(name, str)):
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


def _json(text: str) -> object:
    try:
        return strict.loads_json(text)
    except ValueError as exc:  # also nesting past strict.MAX_DEPTH and 5,000-digit numbers
        raise UnexpectedOutput(f"not JSON: {exc}") from None


def _json_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_text(item: dict[str, object], key: str, number: int) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise UnexpectedOutput(f"link {number}: {key} is not text")
    return value


# --- netifd's view: ubus call network.interface dump ----------------------------------------

_UCI_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_WORD = re.compile(r"[A-Za-z0-9_.-]{0,64}")


@dataclass(frozen=True, slots=True)
class NetifdInterface:
    """One interface as netifd runs it (not as UCI says it should be)."""

    name: str
    up: bool
    proto: str  # "none" when netifd had no handler for the configured proto at its start
    errors: tuple[str, ...]  # netifd's error codes, e.g. NO_DEVICE, SETUP_FAILED


def parse_netifd_dump(text: str) -> dict[str, NetifdInterface]:
    """`ubus call network.interface dump`: every interface netifd knows, by name."""
    data = _json(text)
    items = data.get("interface") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UnexpectedOutput("no interface list in netifd's dump")
    out = {}
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise UnexpectedOutput(f"interface {number} is not an object")
        name, up, proto = item.get("interface"), item.get("up"), item.get("proto", "")
        errors = item.get("errors", [])
        if not isinstance(name, str) or not _UCI_NAME.fullmatch(name):
            raise UnexpectedOutput(f"interface {number}: the name is not a uci name")
        if not isinstance(up, bool) or not isinstance(proto, str) or not _WORD.fullmatch(proto):
            raise UnexpectedOutput(f"interface {name}: up or proto is not what netifd sends")
        if not isinstance(errors, list):
            raise UnexpectedOutput(f"interface {name}: errors is not a list")
        codes = []
        for error in errors:
            code = error.get("code") if isinstance(error, dict) else None
            if not isinstance(code, str) or not _WORD.fullmatch(code):
                raise UnexpectedOutput(f"interface {name}: an error without a code")
            codes.append(code)
        out[name] = NetifdInterface(name, up, proto, tuple(codes))
    return out


# --- tailscale debug prefs -------------------------------------------------------------------


class NetfilterMode(IntEnum):
    OFF = 0
    NODIVERT = 1
    ON = 2


@dataclass(frozen=True, slots=True)
class TailscalePrefs:
    route_all: bool  # --accept-routes
    advertise_routes: tuple[IPNetwork, ...]
    exit_node_id: str | None
    exit_node_ip: IPAddress | None
    exit_node_allow_lan_access: bool
    netfilter_mode: NetfilterMode
    no_snat: bool
    want_running: bool
    shields_up: bool

    @property
    def uses_exit_node(self) -> bool:
        return self.exit_node_id is not None or self.exit_node_ip is not None

    @property
    def advertises_exit_node(self) -> bool:
        return _V4_DEFAULT in self.advertise_routes or _V6_DEFAULT in self.advertise_routes

    @property
    def advertised_subnets(self) -> tuple[IPNetwork, ...]:
        return tuple(p for p in self.advertise_routes if p.prefixlen != 0)


def parse_tailscale_prefs(json_text: str) -> TailscalePrefs:
    """`tailscale debug prefs`: JSON of ipn.Prefs, keys already stripped by tailscale."""
    start = json_text.find("{")
    data = _json(json_text[start:]) if start >= 0 else None
    if not isinstance(data, dict) or "RouteAll" not in data:
        raise UnexpectedOutput("no RouteAll in the prefs")
    routes = data.get("AdvertiseRoutes") or []
    mode = data.get("NetfilterMode", NetfilterMode.ON)
    exit_id = data.get("ExitNodeID") or None
    exit_ip = data.get("ExitNodeIP") or None
    if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
        raise UnexpectedOutput("prefs: AdvertiseRoutes is not a list of prefixes")
    if not isinstance(exit_id, str | None) or not isinstance(exit_ip, str | None):
        raise UnexpectedOutput("prefs: ExitNodeID or ExitNodeIP is not text")
    if not _json_int(mode) or mode not in set(NetfilterMode):
        raise UnexpectedOutput(f"prefs: NetfilterMode {mode!r} is not 0, 1 or 2")
    try:
        return TailscalePrefs(
            route_all=_bool(data, "RouteAll"),
            advertise_routes=tuple(strict.network(r, strict=False) for r in routes),
            exit_node_id=exit_id,
            exit_node_ip=strict.address(exit_ip) if exit_ip else None,
            exit_node_allow_lan_access=_bool(data, "ExitNodeAllowLANAccess"),
            netfilter_mode=NetfilterMode(mode),
            no_snat=_bool(data, "NoSNAT"),
            want_running=_bool(data, "WantRunning"),
            shields_up=_bool(data, "ShieldsUp"),
        )
    except ValueError as exc:
        raise UnexpectedOutput(f"prefs: {exc}") from None


def _bool(data: dict[str, object], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise UnexpectedOutput(f"{key} is {value!r}, not true or false")
    return value


# --- releases and packages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenWrtRelease:
    release: str  # 24.10.0, 25.12.1, SNAPSHOT
    revision: str
    target: str
    arch: str
    description: str

    @property
    def series(self) -> str:
        """24.10 for 24.10.2; SNAPSHOT stays SNAPSHOT."""
        parts = self.release.split(".")
        numbered = len(parts) >= 2 and parse_number(parts[0]) is not None
        return ".".join(parts[:2]) if numbered else self.release


@dataclass(frozen=True, slots=True)
class OsRelease:
    id: str
    version_id: str
    name: str
    pretty_name: str
    id_like: tuple[str, ...] = ()


def parse_openwrt_release(text: str) -> OpenWrtRelease:
    """/etc/openwrt_release: shell assignments `DISTRIB_RELEASE='24.10.0'`."""
    values = _assignments(text)
    if "DISTRIB_RELEASE" not in values:
        raise UnexpectedOutput("no DISTRIB_RELEASE")
    return OpenWrtRelease(
        release=values["DISTRIB_RELEASE"],
        revision=values.get("DISTRIB_REVISION", ""),
        target=values.get("DISTRIB_TARGET", ""),
        arch=values.get("DISTRIB_ARCH", ""),
        description=values.get("DISTRIB_DESCRIPTION", ""),
    )


def parse_os_release(text: str) -> OsRelease:
    """/etc/os-release (os-release(5))."""
    values = _assignments(text)
    if "ID" not in values and "NAME" not in values:
        raise UnexpectedOutput("neither ID nor NAME")
    return OsRelease(
        id=values.get("ID", "linux"),
        version_id=values.get("VERSION_ID", ""),
        name=values.get("NAME", "Linux"),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", "Linux")),
        id_like=tuple(values.get("ID_LIKE", "").split()),
    )


def _assignments(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#") or not key.isidentifier():
            continue
        try:
            values[key] = " ".join(shlex.split(raw))
        except ValueError:
            values[key] = raw.strip("'\"")
    return values


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class InstalledPackages:
    packages: tuple[InstalledPackage, ...] = ()

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.packages)

    def __len__(self) -> int:
        return len(self.packages)

    def version(self, name: str) -> str | None:
        return next((p.version for p in self.packages if p.name == name), None)


def parse_opkg_installed(text: str) -> InstalledPackages:
    """`opkg list-installed`: `name - version` per line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, rest = line.partition(" - ")
        if not sep or not name.strip():
            raise UnexpectedOutput(f"line {number}: {line.strip()!r} is not 'name - version'")
        found.append(InstalledPackage(name.strip(), rest.split(" - ")[0].strip()))
    return InstalledPackages(tuple(found))


# apk joins name and version with '-'; the version is the shortest tail that reads as one.
_APK_ENTRY = re.compile(r"(?P<name>\S+?)-(?P<version>\d[^-\s]*(?:-r\d+)?)")


def parse_apk_installed(text: str) -> InstalledPackages:
    """`apk list --installed`: `name-version arch {origin} (license) [installed]` per line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _APK_ENTRY.fullmatch(line.split()[0])
        if match is None:
            raise UnexpectedOutput(f"line {number}: {line.split()[0]!r} is not name-version")
        found.append(InstalledPackage(match["name"], match["version"]))
    return InstalledPackages(tuple(found))


# --- small device facts ----------------------------------------------------------------------


class Handler(StrEnum):
    """netifd's WireGuard proto handler (reference §0, §1.3-1.5)."""

    CLASSIC = "classic"  # wg setconf, link re-created on every setup, no renew
    SYNCCONF = "syncconf"  # wg syncconf, renew_handler=1: peer changes without teardown
    UCODE = "ucode"  # proto-ucode: peer changes reload the whole interface
    ABSENT = "absent"  # wireguard-tools not installed: proto 'wireguard' does nothing


def parse_handler(text: str) -> Handler:
    """The collector's handler probe: `file <path>`, `syncconf`, `renew` lines."""
    words = text.split()
    files = [w for w in words if w.startswith("/")]
    if any(f.endswith("wireguard.uc") for f in files):
        return Handler.UCODE
    if not any(f.endswith("wireguard.sh") for f in files):
        return Handler.ABSENT
    return Handler.SYNCCONF if {"syncconf", "renew"} & set(words) else Handler.CLASSIC


@dataclass(frozen=True, slots=True)
class RcLocal:
    """/etc/rc.local lines (not comments) that run `tailscale up`, by line number."""

    tailscale_up_lines: tuple[int, ...] = ()
    accept_routes_lines: tuple[int, ...] = ()

    @property
    def runs_tailscale_up(self) -> bool:
        return bool(self.tailscale_up_lines)


def parse_rc_local_probe(text: str) -> RcLocal:
    """The collector's rc.local probe: `<line> accept-routes|-` per `tailscale up` line."""
    up: list[int] = []
    accept: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        line_number = parse_number(words[0])
        if line_number is None:
            raise UnexpectedOutput(f"line {number}: expected a line number")
        up.append(line_number)
        if "accept-routes" in words[1:]:
            accept.append(line_number)
    return RcLocal(tuple(up), tuple(accept))
