"""What sitewire decided: per-site peers, AllowedIPs, endpoints, MTU, firewall, Tailscale."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from sitewire.spec.model import Platform, Tunnel
from sitewire.spec.types import Endpoint
from sitewire.strict import IPAddress, IPNetwork

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
NodeKind = Literal["site", "client"]

ZONE = "sitewire"
LAN_ZONE = "lan"
WAN_ZONE = "wan"
WATCHDOG_CRON = "* * * * * /usr/bin/wireguard_watchdog"


@dataclass(frozen=True, slots=True)
class Dial:
    """This side initiates: it knows where the peer is and keeps the path open."""

    endpoint: Endpoint  # always with a port
    keepalive: int


@dataclass(frozen=True, slots=True)
class PeerPlan:
    name: str
    kind: NodeKind
    public_key: str | None  # None until the key exists (born on the device at apply)
    allowed_ips: tuple[IPNetwork, ...]
    dial: Dial | None
    reached_through: tuple[str, ...]  # other nodes whose prefixes ride on this peer
    preshared: bool


@dataclass(frozen=True, slots=True)
class FirewallPlan:
    zone: str
    interface: str
    open_port: int | None  # WAN accept rule for the listen port; None for a site nobody dials
    forwardings: tuple[tuple[str, str], ...]
    masquerade_clients: tuple[IPNetwork, ...]  # full-tunnel clients leaving through the WAN


@dataclass(frozen=True, slots=True)
class TailscalePlan:
    accept_routes: bool
    advertise_routes: tuple[IPNetwork, ...]
    exit_node: bool
    # When accepted routes are kept, these WireGuard-routed prefixes are pinned to `main`
    # at a priority below tailscaled's `lookup 52` rule (reference §6.4).
    pins: tuple[IPNetwork, ...]
    pin_priority: int

    def command(self) -> list[str]:
        routes = ",".join(str(p) for p in self.advertise_routes)
        exit_flag = "--advertise-exit-node" if self.exit_node else "--advertise-exit-node=false"
        return [
            "tailscale",
            "set",
            f"--accept-routes={'true' if self.accept_routes else 'false'}",
            f"--advertise-routes={routes}",
            exit_flag,
        ]


@dataclass(frozen=True, slots=True)
class SitePlan:
    name: str
    platform: Platform
    interface: str
    listen_port: int
    endpoint: Endpoint | None  # how others dial this site (with port); None = dials out only
    addresses: tuple[IPInterface, ...]
    lan: tuple[IPNetwork, ...]
    public_key: str | None
    mtu: int
    mtu_reason: str
    peers: tuple[PeerPlan, ...]
    firewall: FirewallPlan
    tailscale: TailscalePlan | None
    watchdog: bool  # dials a peer by DNS name, so re-resolve it when handshakes stop
    luci: bool
    ssh: str | None

    @property
    def role(self) -> str:
        return "listener" if self.endpoint else "dialer"

    @property
    def routes(self) -> tuple[IPNetwork, ...]:
        return tuple(p for peer in self.peers for p in peer.allowed_ips)

    def peer(self, name: str) -> PeerPlan:
        for peer in self.peers:
            if peer.name == name:
                return peer
        raise KeyError(name)

    def packages(self) -> tuple[str, ...]:
        if self.platform is Platform.OPENWRT:
            # wireguard-tools depends on kmod-wireguard, so one name pulls both.
            return (
                ("wireguard-tools", "luci-proto-wireguard") if self.luci else ("wireguard-tools",)
            )
        return ("wireguard-tools", "nftables")


@dataclass(frozen=True, slots=True)
class ClientPlan:
    name: str
    via: str
    tunnel: Tunnel
    addresses: tuple[IPInterface, ...]
    public_key: str | None
    device_made_key: bool  # the device generated its own key; sitewire never has the private half
    server_public_key: str | None
    allowed_ips: tuple[IPNetwork, ...]
    endpoint: Endpoint
    keepalive: int
    dns: tuple[IPAddress, ...]
    mtu: int | None
    preshared: bool


@dataclass(frozen=True, slots=True)
class Link:
    """A direct WireGuard peering between two sites (or a client and its site)."""

    a: str
    b: str
    dialers: tuple[str, ...]
