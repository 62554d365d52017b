"""`wg show all dump` as values; a key that arrives in clear is dropped on the spot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sitewire import strict
from sitewire.diagnose.parse.base import HIDDEN, NONE, UnexpectedOutput, field_int
from sitewire.strict import IPAddress, IPNetwork

_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")
# A link-local endpoint's zone as getnameinfo prints it: an interface name (IFNAMSIZ).
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_HEX = re.compile(r"(?:0x)?[0-9A-Fa-f]{1,16}")


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
    when = field_int(handshake, number, "latest handshake")
    return WgPeer(
        public_key=_public_key(public, number),
        preshared_key=_secret(psk),
        endpoint=None if endpoint == NONE else _socket(endpoint, number),
        allowed_ips=() if allowed == NONE else _networks(allowed.split(","), number),
        latest_handshake=when or None,
        rx_bytes=field_int(rx, number, "rx bytes"),
        tx_bytes=field_int(tx, number, "tx bytes"),
        keepalive=None if keepalive == "off" else field_int(keepalive, number, "keepalive"),
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


def _port(field: str, number: int, what: str) -> int:
    value = field_int(field, number, what)
    if value > 65535:
        raise UnexpectedOutput(f"line {number}: {what} {value} is not a port")
    return value


def _hex(field: str, number: int, what: str) -> int:
    if not _HEX.fullmatch(field):
        raise UnexpectedOutput(f"line {number}: {what} {field!r} is not a hex number")
    return int(field, 16)
