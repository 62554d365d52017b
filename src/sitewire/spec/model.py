"""The network a person asks for (network.toml), as frozen, validated types with defaults merged."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sitewire.spec.types import (
    Address,
    EndpointField,
    InterfaceName,
    Name,
    Overlay4,
    Overlay6,
    Port,
    PrefixList,
    SshTarget,
    WgKey,
)

DEFAULT_PORT = 51820
DEFAULT_KEEPALIVE = 25


class Platform(StrEnum):
    OPENWRT = "openwrt"
    LINUX = "linux"


class Tunnel(StrEnum):
    SPLIT = "split"
    FULL = "full"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class TailscaleSpec(_Frozen):
    """What Tailscale on a site should do next to WireGuard."""

    advertise_routes: PrefixList = ()
    exit_node: bool = False
    accept_routes: bool = Field(
        default=False,
        description="Keep accepting other nodes' subnet routes; sitewire then pins its own "
        "prefixes to the main table with policy rules instead of turning this off.",
    )
    pin_priority: Annotated[int, Field(ge=1, le=32765)] = Field(
        default=5100,
        description="ip rule priority for the pins; must be below Tailscale's 'lookup 52' rule.",
    )


class SiteSpec(_Frozen):
    """One router (OpenWrt) or Linux host joining its LANs to the others."""

    platform: Platform = Platform.OPENWRT
    lan: PrefixList = ()
    endpoint: EndpointField | None = Field(
        default=None,
        description="How other sites dial this one (DNS name or address, optional :port). "
        "A site without an endpoint only dials out.",
    )
    port: Port | None = Field(default=None, description="Listen port; default network.port.")
    ssh: SshTarget | None = None
    interface: InterfaceName = "wg0"
    address: Address | None = Field(default=None, description="IPv4 overlay address.")
    address6: Address | None = Field(default=None, description="IPv6 overlay address.")
    wan_mtu: Annotated[int, Field(ge=1280, le=9000)] | None = None
    pppoe: bool = Field(default=False, description="WAN is PPPoE (1492 bytes) unless wan_mtu.")
    mtu: Annotated[int, Field(ge=1280, le=8940)] | None = Field(
        default=None, description="Force the WireGuard MTU instead of computing it."
    )
    tailscale: TailscaleSpec | None = None
    relay: Name | None = Field(
        default=None,
        description="Relay site to use when this site and another both lack endpoints.",
    )
    can_relay: bool = Field(default=True, description="May forward traffic between other sites.")
    luci: bool = Field(default=True, description="OpenWrt: also install luci-proto-wireguard.")


class ClientSpec(_Frozen):
    """A phone or laptop that dials one site."""

    via: Name
    tunnel: Tunnel = Tunnel.SPLIT
    address: Address | None = None
    address6: Address | None = None
    public_key: WgKey | None = Field(
        default=None, description="Set when the device made its own key; sitewire never sees it."
    )
    dns: tuple[Address, ...] = ()
    mtu: Annotated[int, Field(ge=1280, le=8940)] | None = None


class NetworkSpec(_Frozen):
    name: Name
    overlay: Overlay4 | None = None
    overlay6: Overlay6 | None = None
    port: Port = DEFAULT_PORT
    keepalive: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_KEEPALIVE
    preshared_keys: bool = Field(default=True, description="A preshared key for every peer pair.")

    @model_validator(mode="after")
    def _needs_an_overlay(self) -> NetworkSpec:
        if self.overlay is None and self.overlay6 is None:
            raise ValueError(
                "no overlay (set overlay = '192.168.5.0/24' or overlay6 = 'fdxx:…::/64')"
            )
        return self


class Spec(_Frozen):
    """The whole network.toml."""

    network: NetworkSpec
    sites: dict[Name, SiteSpec] = Field(min_length=1)
    clients: dict[Name, ClientSpec] = {}

    def site_port(self, name: str) -> int:
        return self.sites[name].port or self.network.port

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        schema = cls.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = "sitewire network.toml"
        return schema
