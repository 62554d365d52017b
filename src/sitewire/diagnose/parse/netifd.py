"""netifd's view of the network: `ubus call network.interface dump`, and its WireGuard handler."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sitewire.diagnose.parse.base import UnexpectedOutput, load_json

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
    data = load_json(text)
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
