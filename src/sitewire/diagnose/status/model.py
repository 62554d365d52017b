"""What `sitewire status` reports: each site's state and each site pair's health."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing; a live link with
# keepalive (or traffic) renews its handshake every 2 minutes (REKEY_AFTER_TIME).
RECENT = 180


class Health(StrEnum):
    UP = "up"  # handshake within RECENT seconds (every hop, for a relayed pair)
    STALE = "stale"  # a handshake, but an old one
    DOWN = "down"  # no handshake, or no peer for the other site
    UNKNOWN = "unknown"  # a site could not be read


class Over(StrEnum):
    """What a round trip crossed."""

    WIREGUARD = "wireguard"  # router to router, overlay address to overlay address
    LAN = "lan"  # from the router's LAN address to the other router's LAN address
    TAILNET = "tailnet"  # to the other router's Tailscale address


@dataclass(frozen=True, slots=True)
class TailnetState:
    installed: bool
    state: str | None = None  # tailscaled's BackendState (Running, Stopped, NeedsLogin...)
    ip: str | None = None  # this node's Tailscale IPv4 address
    accept_routes: bool | None = None

    @property
    def running(self) -> bool:
        return self.state == "Running"


@dataclass(frozen=True, slots=True)
class SiteStatus:
    name: str
    lan: tuple[str, ...]
    overlay: str
    interface: str
    reachable: bool
    interface_up: bool | None = None
    tailnet: TailnetState | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A site pair. Bytes and endpoint only for a direct pair: a relay's peer carries many."""

    a: str
    b: str
    relay: str | None
    health: Health
    handshake_age: int | None = None  # seconds; for a relayed pair, its older hop's
    endpoint: str | None = None  # where the dialing side sends (or where the other came from)
    bytes_ab: int | None = None
    bytes_ba: int | None = None
    # Over -> milliseconds, or None when no reply came; a path not tried is absent.
    rtt_ms: dict[str, float | None] = field(default_factory=dict)
    measured_from: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    network: str
    taken_at: float  # UNIX time the gathering started
    seconds: float
    sites: tuple[SiteStatus, ...]
    links: tuple[LinkStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(s.reachable for s in self.sites) and all(
            link.health is Health.UP for link in self.links
        )

    def site(self, name: str) -> SiteStatus | None:
        return next((s for s in self.sites if s.name == name), None)

    def link(self, a: str, b: str) -> LinkStatus | None:
        return next((x for x in self.links if {x.a, x.b} == {a, b}), None)


def format_age(age: int | None, health: Health) -> str:
    if health is Health.UNKNOWN:
        return "?"
    if age is None:
        return "never"
    if age < 60:
        return f"{age} s ago"
    if age < 3600:
        return f"{age // 60} m {age % 60} s ago"
    return f"{age // 3600} h {age % 3600 // 60} m ago"
