"""Validated scalar types of the spec: names, prefixes, ports, keys, endpoints."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from sitewire import strict
from sitewire.strict import IPAddress, IPNetwork

TAILSCALE_CGNAT = ipaddress.ip_network("100.64.0.0/10")
TAILSCALE_ULA = ipaddress.ip_network("fd7a:115c:a1e0::/48")
TAILSCALE_PORT = 41641

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_IFNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_SSH = re.compile(
    r"(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_][A-Za-z0-9._-]*))(?::(?P<port>[0-9]{1,5}))?"
)


def _parse_name(value: Any) -> str:
    # Names become UCI section names and file names, so they follow UCI's identifier rule.
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name (use a letter, then letters, digits or _, "
            "at most 32 characters)"
        )
    return value


def _parse_ifname(value: Any) -> str:
    # The UCI section name is the kernel netdev name: IFNAMSIZ and uci's name rule both apply.
    if not isinstance(value, str) or not _IFNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid interface name (at most 15 characters of A-Z a-z 0-9 _, "
            "e.g. 'wg0')"
        )
    return value


def _refuse_zone(value: str) -> None:
    # ipaddress takes anything after '%' as a zone ID and str() gives it back verbatim (issue 9).
    if "%" in value:
        raise ValueError(
            f"{value!r} has a zone ID after '%', which sitewire never uses "
            "(write it without the '%…' part)"
        )


def parse_prefix(value: Any) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return strict.network(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a prefix (write it as a string like '192.168.3.0/24')")
    _refuse_zone(value)
    if "/" not in value:
        raise ValueError(f"{value!r} has no prefix length (write it like '192.168.3.0/24')")
    try:
        return strict.network(value, strict=True)
    except ValueError as exc:
        try:
            loose = strict.network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 or IPv6 prefix (write it like '192.168.3.0/24')"
            ) from exc
        raise ValueError(f"{value!r} has host bits set (did you mean '{loose}'?)") from exc


def _parse_prefix_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _parse_address(value: Any) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return strict.address(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an address (write it as a string like '192.168.5.1')")
    _refuse_zone(value)
    try:
        return strict.address(value)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not an IPv4 or IPv6 address (write it like '192.168.5.1', no /len)"
        ) from exc


def _parse_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{value!r} is not a UDP port (use a number from 1 to 65535)")
    if value == TAILSCALE_PORT:
        raise ValueError(f"{value} is Tailscale's port (pick another WireGuard port, e.g. 51820)")
    return value


def parse_wg_key(value: Any) -> str:
    """A WireGuard key is 32 bytes in standard base64: 44 characters ending in '='."""
    if isinstance(value, str) and len(value) == 44 and value.endswith("="):
        try:
            if len(base64.b64decode(value, validate=True)) == 32:
                return value
        except (binascii.Error, ValueError):
            pass
    # No part of the value is shown: it may be a private key pasted into the wrong field.
    raise ValueError(
        "the value is not a WireGuard key (expected 44 base64 characters, as 'wg pubkey' prints)"
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a site can be dialled: a DNS name or an address literal, and an optional port."""

    host: str
    port: int | None = None
    kind: Literal["ipv4", "ipv6", "name"] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            kind = "ipv4" if strict.address(self.host).version == 4 else "ipv6"
        except ValueError:
            if not _is_dns_name(self.host):
                raise ValueError(f"{self.host!r} is neither an address nor a DNS name") from None
            kind = "name"
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"{self.port!r} is not a port")
        object.__setattr__(self, "kind", kind)

    def with_port(self, port: int) -> str:
        host = f"[{self.host}]" if self.kind == "ipv6" else self.host
        return f"{host}:{port}"

    def __str__(self) -> str:
        if self.port is None:
            return self.host
        return self.with_port(self.port)


def parse_endpoint(value: Any) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not an endpoint (write a DNS name or an address)")
    host, port = _split_host_port(value)
    if port is not None:
        _parse_port(port)
    _refuse_zone(host)
    try:
        strict.address(host)
    except ValueError:
        if not _is_dns_name(host):
            raise ValueError(
                f"{value!r} is not a DNS name or IP address (e.g. 'a.example.net', "
                "'2001:db8::1', '[2001:db8::1]:51820')"
            ) from None
    return Endpoint(host, port)


def _split_host_port(value: str) -> tuple[str, int | None]:
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r} is not an endpoint (write '[2001:db8::1]:51820')")
        return host, _port_digits(value, rest[1:]) if rest else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, _port_digits(value, port)
    return value, None


def _port_digits(whole: str, text: str) -> int:
    port = strict.digits(text)
    if port is None:
        raise ValueError(f"{whole!r} has a bad port {text!r} (use a number from 1 to 65535)")
    return port


def _is_dns_name(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels)


def _parse_ssh(value: Any) -> str:
    match = _SSH.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not an SSH target (write 'user@host' or 'user@host:port')")
    port = strict.digits(match["port"]) if match["port"] else 22
    if port is None or not 1 <= port <= 65535:
        raise ValueError(f"{value!r} has port {match['port']} (use a number from 1 to 65535)")
    if match["v6"] is not None:
        try:
            strict.address(match["v6"])
        except ValueError:
            raise ValueError(f"{value!r}: [{match['v6']}] is not an IPv6 address") from None
    return match[0]


def _refuse_tailscale_overlay(net: IPNetwork) -> IPNetwork:
    for reserved in (TAILSCALE_CGNAT, TAILSCALE_ULA):
        if net.version == reserved.version and net.overlaps(reserved):
            raise ValueError(
                f"'{net}' overlaps Tailscale's {reserved}, whose traffic tailscaled drops unless "
                "it arrives on tailscale0 (pick another range, e.g. 192.168.5.0/24 or a ULA /64)"
            )
    return net


def _require_family(version: int) -> AfterValidator:
    def check(net: IPNetwork) -> IPNetwork:
        if net.version != version:
            raise ValueError(f"'{net}' is not an IPv{version} prefix")
        return net

    return AfterValidator(check)


_str = PlainSerializer(str, return_type=str)

Name = Annotated[
    str,
    BeforeValidator(_parse_name),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,31}$"}),
]
InterfaceName = Annotated[
    str,
    BeforeValidator(_parse_ifname),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_]{1,15}$", "default": "wg0"}),
]
Prefix = Annotated[
    IPNetwork,
    BeforeValidator(parse_prefix),
    _str,
    WithJsonSchema(
        {"type": "string", "description": "an IPv4 or IPv6 prefix, e.g. 192.168.3.0/24"}
    ),
]
PrefixList = Annotated[
    tuple[Prefix, ...],
    BeforeValidator(_parse_prefix_list),
    WithJsonSchema(
        {"type": "array", "items": {"type": "string"}, "description": "prefixes like 10.0.0.0/24"}
    ),
]
Overlay4 = Annotated[
    IPNetwork,
    BeforeValidator(parse_prefix),
    _require_family(4),
    AfterValidator(_refuse_tailscale_overlay),
    _str,
    WithJsonSchema({"type": "string", "description": "IPv4 overlay prefix, e.g. 192.168.5.0/24"}),
]
Overlay6 = Annotated[
    IPNetwork,
    BeforeValidator(parse_prefix),
    _require_family(6),
    AfterValidator(_refuse_tailscale_overlay),
    _str,
    WithJsonSchema({"type": "string", "description": "IPv6 (ULA) overlay prefix, e.g. fd42::/64"}),
]
Address = Annotated[
    IPAddress,
    BeforeValidator(_parse_address),
    _str,
    WithJsonSchema({"type": "string", "description": "an address without /len"}),
]
Port = Annotated[
    int,
    BeforeValidator(_parse_port),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535, "not": {"const": 41641}}),
]
WgKey = Annotated[
    str,
    BeforeValidator(parse_wg_key),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"}),
]
EndpointField = Annotated[
    Endpoint,
    BeforeValidator(parse_endpoint),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "DNS name or address, optionally with :port ([v6]:port)",
        }
    ),
]
SshTarget = Annotated[
    str,
    BeforeValidator(_parse_ssh),
    WithJsonSchema({"type": "string", "description": "user@host[:port]"}),
]
