"""Strict readers for text sitewire did not write: addresses, numbers, JSON, TOML, terminal text.

Every address or prefix sitewire handles, whether from the person's spec or a router's output,
is parsed here. Python's `ipaddress` accepts an IPv6 zone ID after `%` made of any character but
`%` and `/` — newlines, `;`, `$`, quotes — and gives it back verbatim from `str()`, so a value
that reads as an address could carry a shell command or a new line of a config file (issue 9).
Here an address is only the characters an address is written with, and never has a zone.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from typing import Any, TypeVar

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_T = TypeVar("_T", IPAddress, IPNetwork, IPInterface)

# Deep enough for any spec, lock, key file or command output sitewire reads; shallow enough that
# no recursive reader (tomllib, pydantic, our own walks) comes near Python's recursion limit.
MAX_DEPTH = 32

_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_NETWORK_CHARS = re.compile(r"[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?")
_DIGITS = re.compile(r"[0-9]{1,64}")
_DECIMAL = re.compile(r"[0-9]{1,64}(?:\.[0-9]{1,64})?")
# C0 controls but tab and newline, DEL, and C1 controls: what a terminal may act on.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def address(text: object) -> IPAddress:
    """An IPv4 or IPv6 address, no zone, no prefix length; ValueError otherwise."""
    if isinstance(text, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return _no_scope(text)
    if not isinstance(text, str) or not _ADDRESS_CHARS.fullmatch(text):
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address")
    return ipaddress.ip_address(text)


def network(text: object, *, strict: bool = True) -> IPNetwork:
    """A prefix (`/len` optional, as `ipaddress` allows), no zone; ValueError otherwise."""
    if isinstance(text, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return _no_scope(text)
    if not isinstance(text, str) or not _NETWORK_CHARS.fullmatch(text):
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 prefix")
    return ipaddress.ip_network(text, strict=strict)


def interface(text: object) -> IPInterface:
    """An address with its prefix length (`192.168.5.1/24`), no zone; ValueError otherwise."""
    if isinstance(text, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return _no_scope(text)
    if not isinstance(text, str) or not _NETWORK_CHARS.fullmatch(text):
        raise ValueError(f"{text!r} is not an address with a prefix length")
    return ipaddress.ip_interface(text)


def _no_scope(value: _T) -> _T:
    probe = (
        value.network_address
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network)
        else value
    )
    if getattr(probe, "scope_id", None) is not None:
        raise ValueError(f"{str(value)!r} carries a zone ID, which sitewire never uses")
    return value


def digits(text: object) -> int | None:
    """ASCII decimal digits as an int, else None (`'²'.isdigit()` is True; `int('²')` fails)."""
    if isinstance(text, str) and _DIGITS.fullmatch(text):
        return int(text)
    return None


def decimal(text: object) -> float | None:
    """`12` or `12.5` as a float, else None (`float('1..2')` raises, `float('nan')` does not)."""
    if isinstance(text, str) and _DECIMAL.fullmatch(text):
        return float(text)
    return None


def loads_json(text: str | bytes) -> Any:
    """json.loads that refuses nesting deeper than MAX_DEPTH with a ValueError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    check_depth(data)
    return data


def loads_toml(text: str) -> dict[str, Any]:
    """tomllib.loads that refuses nesting deeper than MAX_DEPTH with a TOMLDecodeError."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("nested too deeply") from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:  # an integer past Python's 4300-digit limit for int()
        raise tomllib.TOMLDecodeError("a number has more digits than Python reads") from None
    try:
        check_depth(data)
    except ValueError as exc:
        raise tomllib.TOMLDecodeError(str(exc)) from None
    return data


def check_depth(data: object, limit: int = MAX_DEPTH) -> None:
    """ValueError when lists and mappings nest deeper than `limit`; iterative, so it cannot
    itself run out of stack."""
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= limit:
                raise ValueError(f"nested more than {limit} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def printable(text: str) -> str:
    """Text safe to show on a terminal: control characters (escape sequences, carriage returns,
    backspaces) become visible `\\xNN`, so a router's output cannot rewrite what is on screen."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
