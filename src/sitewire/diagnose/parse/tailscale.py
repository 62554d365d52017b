"""`tailscale debug prefs` as values: accepted and advertised routes, exit node, netfilter mode."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sitewire import strict
from sitewire.diagnose.parse.base import (
    V4_DEFAULT,
    V6_DEFAULT,
    UnexpectedOutput,
    is_json_int,
    load_json,
)
from sitewire.strict import IPAddress, IPNetwork


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
        return V4_DEFAULT in self.advertise_routes or V6_DEFAULT in self.advertise_routes

    @property
    def advertised_subnets(self) -> tuple[IPNetwork, ...]:
        return tuple(p for p in self.advertise_routes if p.prefixlen != 0)


def parse_tailscale_prefs(json_text: str) -> TailscalePrefs:
    """`tailscale debug prefs`: JSON of ipn.Prefs, keys already stripped by tailscale."""
    start = json_text.find("{")
    data = load_json(json_text[start:]) if start >= 0 else None
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
    if not is_json_int(mode) or mode not in set(NetfilterMode):
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
