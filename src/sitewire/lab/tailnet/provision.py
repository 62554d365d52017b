"""Installing the stand-in in a lab router: the shim, the spec's prefs, and the join."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from sitewire.fileio import write_atomic
from sitewire.lab.tailnet import engine
from sitewire.lab.tailnet.base import Paths, TailnetError
from sitewire.lab.tailnet.control import Endpoint, tailnet_ipv4
from sitewire.lab.tailnet.prefs import DEFAULT_CONTROL_URL, calc_advertise_routes
from sitewire.lab.tailnet.state import load_prefs, save_prefs

_BOOT = "import sys; from sitewire.lab.tailscale import main; sys.exit(main(sys.argv[1:]))"
_SHIM = """\
#!{python}
import sys

from sitewire.lab.tailscale import main

sys.exit(main(sys.argv[1:]))
"""


# The package's service, started at boot: tailscaled re-applies the prefs it saved (never a
# `tailscale up`), which `lab-boot` does for the stand-in. OpenWrt: START=80 as the package's
# init script; Linux: a unit in multi-user.target, as the Debian package's tailscaled.service.
_INIT = """\
#!/bin/sh /etc/rc.common
# sitewire lab: the tailscale package's service, for the lab's stand-in (docs/lab.md).
START=80

start() {
	/usr/sbin/tailscale lab-boot
}
"""
_UNIT = """\
[Unit]
Description=Tailscale node agent (the sitewire lab's stand-in, docs/lab.md)
Wants=network-pre.target
After=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/sbin/tailscale lab-boot

[Install]
WantedBy=multi-user.target
"""
UNIT = "/etc/systemd/system/tailscaled.service"


def install_service(paths: Paths) -> None:
    """The service file and its enable link, as the package's install leaves them."""
    if paths.openwrt:
        write_atomic(paths.at("/etc/init.d/tailscale"), _INIT, 0o755)
        link, target = paths.at("/etc/rc.d/S80tailscale"), "../init.d/tailscale"
    else:
        write_atomic(paths.at(UNIT), _UNIT, 0o644)
        link = paths.at("/etc/systemd/system/multi-user.target.wants/tailscaled.service")
        target = UNIT
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target)


@dataclass(frozen=True)
class NodeSpec:
    """What the lab knows about a router's Tailscale when it provisions it (from the spec)."""

    name: str
    ip: str
    endpoint: str
    advertise_routes: tuple[str, ...] = ()
    exit_node: bool = False
    accept_routes: bool = False
    ip6: str = ""

    @classmethod
    def parse(cls, data: object) -> NodeSpec:
        if not isinstance(data, dict):
            raise TailnetError("lab-provision: node JSON must be an object")
        unknown = data.keys() - {f.name for f in fields(cls)}
        if unknown:
            raise TailnetError(f"lab-provision: unknown node keys {sorted(unknown)}")
        routes = data.get("advertise_routes", [])
        if not isinstance(routes, list):
            raise TailnetError("lab-provision: advertise_routes must be a list of prefixes")
        try:
            spec = cls(**{**data, "advertise_routes": tuple(routes)})
        except TypeError as exc:
            raise TailnetError(f"lab-provision: node JSON: {exc}") from exc
        spec.check()
        return spec

    def check(self) -> None:
        for key in ("name", "ip", "endpoint", "ip6"):
            if not isinstance(getattr(self, key), str):
                raise TailnetError(f"lab-provision: {key} must be a string")
        for key in ("exit_node", "accept_routes"):
            if not isinstance(getattr(self, key), bool):
                raise TailnetError(f"lab-provision: {key} must be true or false")
        if not all(isinstance(r, str) for r in self.advertise_routes):
            raise TailnetError("lab-provision: advertise_routes must be a list of prefixes")
        tailnet_ipv4(self.ip)
        Endpoint.parse(self.endpoint)
        calc_advertise_routes(",".join(self.advertise_routes), self.exit_node)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["advertise_routes"] = list(self.advertise_routes)
        return data


def provision(paths: Paths, node: NodeSpec) -> None:
    """What installing the package and a first `tailscale up` leave on a router, then join."""
    write_atomic(paths.shim, _SHIM.format(python=sys.executable), 0o755)
    install_service(paths)
    routes = calc_advertise_routes(",".join(node.advertise_routes), node.exit_node)
    prefs = replace(
        load_prefs(paths),
        control_url=DEFAULT_CONTROL_URL,
        route_all=node.accept_routes,
        advertise_routes=routes,
        want_running=True,
    )
    save_prefs(paths, prefs)
    engine.join(paths, node.name, node.ip, node.ip6, node.endpoint)


def provision_command(node_json: Mapping[str, object]) -> list[str]:
    """The argv the lab runs inside a router to install the stand-in and join the lab tailnet.

    `node_json`: {"name", "ip": "100.64.0.N", "endpoint": "198.18.0.X:41641",
    "advertise_routes": [...], "exit_node": bool, "accept_routes": bool, optional "ip6"}.
    """
    data = dict(node_json)
    if isinstance(routes := data.get("advertise_routes"), tuple):
        data["advertise_routes"] = list(routes)
    spec = NodeSpec.parse(data)
    return [sys.executable, "-c", _BOOT, "lab-provision", json.dumps(spec.to_json())]
