"""A wg-quick file's words: `[Interface]` and `[Peer]` sections of `Key = value` lines. Pure.

As wg-quick reads them: keys are case-insensitive, a `#` starts a comment, a key may repeat
(Address, PostUp) and list values are comma-separated. Read from what a host holds (keys hidden
by the device) and from files a person hands to `sitewire adopt`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from sitewire.diagnose.parse.base import UnexpectedOutput, parse_number

Words = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class WgQuick:
    interface: Words  # lower-cased key -> its values, in file order
    peers: tuple[Words, ...]

    def first(self, key: str) -> str | None:
        values = self.interface.get(key)
        return values[0] if values else None


def parse_wg_quick(text: str) -> WgQuick:
    """The sections of `text`; UnexpectedOutput (naming the line) for anything else."""
    interface: dict[str, list[str]] = {}
    peers: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower() == "[interface]":
            current = interface
        elif line.lower() == "[peer]":
            current = {}
            peers.append(current)
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current.setdefault(key.strip().lower(), []).append(value.strip())
        else:
            raise UnexpectedOutput(f"line {n} is neither a section nor Key = value")
    return WgQuick(
        {k: tuple(v) for k, v in interface.items()},
        tuple({k: tuple(v) for k, v in peer.items()} for peer in peers),
    )


def listed(values: tuple[str, ...] | None) -> list[str]:
    """Comma-separated values of every occurrence of a key, in order."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


# [Interface] keys wg-quick itself acts on at `up` (beside the private key and the PostUp and
# PostDown commands): any other value is a different device.
_DEVICE_KEYS = ("dns", "table", "fwmark", "preup", "predown", "saveconfig")


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """What `wg-quick up` makes of a file's [Interface], as far as the device is concerned."""

    addresses: frozenset[ipaddress.IPv4Interface | ipaddress.IPv6Interface]
    listen_port: int | None
    mtu: int | None
    others: tuple[tuple[str, tuple[str, ...]], ...]


def device_settings(conf: WgQuick) -> DeviceSettings:
    try:
        addresses = frozenset(ipaddress.ip_interface(a) for a in listed(conf.interface["address"]))
    except (KeyError, ValueError):
        addresses = frozenset()
    return DeviceSettings(
        addresses,
        _number(conf.first("listenport")),
        _number(conf.first("mtu")),
        tuple((k, conf.interface[k]) for k in _DEVICE_KEYS if k in conf.interface),
    )


def _number(text: str | None) -> int | None:
    return parse_number(text) if text is not None else None
