"""Where the stand-in keeps its files, its error type and the address types it shares."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from sitewire.errors import SitewireError

Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

INTERFACE = "tailscale0"
LISTEN_PORT = 41641
MTU = 1280
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
ULA = ipaddress.IPv6Network("fd7a:115c:a1e0::/48")


class TailnetError(SitewireError):
    """The stand-in refuses a command or cannot do what it asks; exits 1 like the real CLI."""


@dataclass(frozen=True)
class Paths:
    """Every file the stand-in touches, under SITEWIRE_LAB_ROOT (default /)."""

    root: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(Path(os.environ.get("SITEWIRE_LAB_ROOT", "/")))

    def _at(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def prefs(self) -> Path:
        return self._at("/etc/tailscale/lab-prefs.json")

    @property
    def node(self) -> Path:
        return self._at("/etc/tailscale/lab-node.json")

    @property
    def control(self) -> Path:
        return self._at("/etc/lab/tailnet.json")

    @property
    def mwan3(self) -> Path:
        return self._at("/etc/config/mwan3")

    @property
    def shim(self) -> Path:
        return self._at("/usr/sbin/tailscale")

    @property
    def openwrt(self) -> bool:
        return self._at("/etc/openwrt_release").exists()

    def at(self, absolute: str) -> Path:
        return self._at(absolute)

    @property
    def run_dir(self) -> Path:
        return self._at("/run/tailscale")

    @property
    def wireguard_pid(self) -> Path:
        return self.run_dir / "lab-wireguard-go.pid"

    @property
    def wireguard_log(self) -> Path:
        return self.run_dir / "lab-wireguard-go.log"


def parse_prefix(text: str) -> Prefix:
    """A CIDR prefix with no host bits, as `tailscale --advertise-routes` demands."""
    try:
        if "/" not in text:
            raise ValueError(text)
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise TailnetError(f"{text!r} is not a valid IP address or CIDR prefix") from exc
    if _strict_or_none(text) != loose:
        raise TailnetError(f"{text} has non-address bits set; expected {loose}")
    return loose


def _strict_or_none(text: str) -> Prefix | None:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None


def host_prefix(address: Address) -> Prefix:
    return ipaddress.ip_network(address)
