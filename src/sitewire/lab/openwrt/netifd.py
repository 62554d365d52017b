"""The netifd emulator: interfaces of /etc/config/network brought up, reloaded and torn down.

The behaviours that matter for WireGuard follow the reference (§1.3-§1.5): proto handlers are
scanned only when netifd starts, `network reload` re-creates an interface only when an option
its handler declares changed (so peer edits are ignored), `ifup` is reload + down + up, renew
exists only for the 25.12 handler, and an interface that comes up reloads the firewall when the
last loaded firewall puts it in a zone. `static` and `none` are the other protos it runs.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from sitewire.lab.openwrt import netstate as ns
from sitewire.lab.openwrt import wgproto
from sitewire.lab.openwrt.env import RouterError, log, run
from sitewire.lab.openwrt.netconf import (
    Interface,
    interfaces,
    option,
    policy_rules,
    static_addresses,
    static_routes,
)
from sitewire.lab.openwrt.uci_cli import load_config
from sitewire.render.uci import Package

LOOPBACK = "lo"


class Netifd:
    """One invocation's view: the recorded state and the configuration as libuci loads it."""

    def __init__(self) -> None:
        self.state = ns.load_state()
        self.package = load_config("network") or Package("network")
        self.configured = interfaces(self.package)
        self.came_up: list[str] = []

    def save(self) -> None:
        ns.save_state(self.state)

    def start(self) -> None:
        if self.state.running:
            return
        self.state.running = True
        self.state.handlers = {"static": "static", "none": "none"}
        flavour = wgproto.scan_handler()
        if flavour is not None:
            self.state.handlers["wireguard"] = flavour
        self._apply_rules()
        for name, iface in self.configured.items():
            self.state.interfaces[name] = ns.IfState(iface.proto, self._fingerprint(iface))
            if iface.auto:
                self.up(name)

    def stop(self) -> None:
        for name, st in self.state.interfaces.items():
            if st.up:
                self._teardown(name, st, cascade=False)
        self._apply_rules(remove_only=True)
        for device in self.state.devices:
            if ns.link_exists(device):
                run([ns.IP, "link", "del", "dev", device], check=False)
        self.state = ns.State()

    def restart(self) -> None:
        """netifd re-execs: every interface down, handlers scanned again, all up."""
        self.stop()
        self.start()

    def reload(self) -> None:
        """`ubus call network reload`: only declared-option changes re-create an interface."""
        if not self.state.running:
            self.start()
            return
        known = self.state.interfaces
        for name in [n for n in known if n not in self.configured]:
            if known[name].up:
                self._teardown(name, known[name])
            del known[name]
        for name, iface in self.configured.items():
            self._reload_one(name, iface)
        self._apply_rules()

    def _reload_one(self, name: str, iface: Interface) -> None:
        fingerprint = self._fingerprint(iface)
        st = self.state.interfaces.get(name)
        if st is None:
            self.state.interfaces[name] = ns.IfState(iface.proto, fingerprint)
        elif st.fingerprint == fingerprint:
            return
        else:
            log(f"netifd: interface '{name}' changed, reloading")
            if st.up:
                self._teardown(name, st)
            st.fingerprint, st.proto = fingerprint, iface.proto
        if iface.auto:
            self.up(name)

    def up(self, name: str) -> bool:
        """False when netifd knows no such interface (ubus: "Not found")."""
        iface, st = self.configured.get(name), self.state.interfaces.get(name)
        if iface is None or st is None:
            return False
        if st.up:
            return True
        try:
            self._setup(name, iface, st)
        except RouterError as err:
            log(f"netifd: interface '{name}' setup failed: {err}")
            st.up = False
            st.errors = ["SETUP_FAILED"]
        if st.up:
            log(f"netifd: interface '{name}' is now up")
            self.came_up.append(name)
            self._wake_dependents(name)
        return True

    def down(self, name: str) -> bool:
        st = self.state.interfaces.get(name)
        if st is None:
            return False
        if st.up:
            self._teardown(name, st)
        st.waiting = False
        return True

    def renew(self, name: str) -> bool:
        iface, st = self.configured.get(name), self.state.interfaces.get(name)
        if iface is None or st is None:
            return False
        flavour = self.state.handlers.get(iface.proto)
        if iface.proto == "wireguard" and flavour is not None:
            wgproto.renew(st, iface, self.package, flavour, self._owner)
        return True

    def _setup(self, name: str, iface: Interface, st: ns.IfState) -> None:
        flavour = self.state.handlers.get(iface.proto)
        if flavour is None:
            # netifd found no handler for this proto when it started (reference §1.5).
            st.errors = ["INVALID_PROTO"]
        elif iface.proto == "wireguard":
            if name not in self.state.devices:
                self.state.devices.append(name)
            self.configured[name] = wgproto.setup(st, iface, self.package, flavour, self._owner)
        else:
            self._static_up(name, iface, st)

    def _static_up(self, name: str, iface: Interface, st: ns.IfState) -> None:
        device = iface.device
        if not device or not ns.link_exists(device):
            st.errors = ["NO_DEVICE"]
            return
        run([ns.IP, "link", "set", "dev", device, "up"])
        if iface.proto == "static":
            for address in static_addresses(iface.section):
                ns.add_address(st, address, device)
            for key, version in (("gateway", 4), ("ip6gw", 6)):
                gateway = option(iface.section, key)
                if gateway:
                    spec = ns.route_spec(
                        "default", device, iface.metric, iface.table(version), gateway
                    )
                    ns.add_route(st, spec)
            for route in static_routes(self.package):
                if route.interface == name:
                    spec = ns.route_spec(
                        route.target, device, route.metric, route.table, route.gateway
                    )
                    ns.add_route(st, spec)
        st.mark_up(device)

    def _teardown(self, name: str, st: ns.IfState, cascade: bool = True) -> None:
        if cascade:
            self._tear_dependents(name)
        if st.proto == "wireguard":
            wgproto.teardown(st, name)
            if name in self.state.devices:
                self.state.devices.remove(name)
            return
        device = st.device
        for spec in st.routes:
            ns.del_route(spec)
        # lo keeps its addresses and stays up: other tools of the router use 127.0.0.1 while
        # the network restarts, and the kernel gave lo that address in the first place.
        if device and device != LOOPBACK:
            for address in st.addresses:
                ns.del_address(address, device)
        st.up, st.addresses, st.routes = False, [], []
        if device and device != LOOPBACK and not self._device_in_use(device):
            run([ns.IP, "link", "set", "dev", device, "down"], check=False)

    def _device_in_use(self, device: str) -> bool:
        return any(st.up and st.device == device for st in self.state.interfaces.values())

    def _tear_dependents(self, name: str) -> None:
        """An interface holding a host route through `name` loses it and goes down (§1.3)."""
        for other, st in self.state.interfaces.items():
            if st.up and name in st.depends_on:
                depends_on = list(st.depends_on)
                self._teardown(other, st)
                st.depends_on, st.waiting = depends_on, True

    def _wake_dependents(self, name: str) -> None:
        for other, st in list(self.state.interfaces.items()):
            if st.waiting and name in st.depends_on:
                self.up(other)

    def _owner(self, device: str, exclude: str) -> str | None:
        for name, st in self.state.interfaces.items():
            if name != exclude and st.up and st.device == device:
                return name
        return None

    def _fingerprint(self, iface: Interface) -> dict[str, Any]:
        return dict(ns.as_json(iface.fingerprint(self.state.handlers.get("wireguard"))))

    def _apply_rules(self, remove_only: bool = False) -> None:
        devices = {n: i.device or n for n, i in self.configured.items()}
        wanted = [] if remove_only else policy_rules(self.package, devices)
        if wanted == self.state.rules:
            return
        for argv in self.state.rules:
            run([ns.IP, *argv[:2], "del", *argv[3:]], check=False)
        for argv in wanted:
            run([ns.IP, *argv], check=False)
        self.state.rules = wanted

    def status(self, name: str) -> dict[str, Any] | None:
        iface, st = self.configured.get(name), self.state.interfaces.get(name)
        if iface is None or st is None:
            return None
        return _status(name, iface, st, self.state.handlers)

    def dump(self) -> dict[str, Any]:
        out = []
        for name in self.configured:
            status = self.status(name)
            if status is not None:
                out.append({"interface": name, **status})
        return {"interface": out}


def _status(
    name: str, iface: Interface, st: ns.IfState, handlers: dict[str, str]
) -> dict[str, Any]:
    """The fields of `ubus call network.interface.<if> status` the lab can fill honestly."""
    status: dict[str, Any] = {
        "up": st.up,
        "pending": False,
        "available": iface.proto in handlers,
        "autostart": iface.auto,
        "dynamic": False,
    }
    if st.up:
        status["uptime"] = int(time.time() - st.since)
        status["l3_device"] = st.device
    status["proto"] = iface.proto
    if iface.device is not None and (st.up or iface.proto != "wireguard"):
        status["device"] = iface.device
    status.update(
        {
            "metric": int(iface.metric or 0),
            "dns_metric": 0,
            "delegation": True,
            "ipv4-address": _addresses(st.addresses, 4),
            "ipv6-address": _addresses(st.addresses, 6),
            "ipv6-prefix": [],
            "ipv6-prefix-assignment": [],
            "route": [_route(spec) for spec in st.routes],
            "dns-server": [],
            "dns-search": [],
            "neighbors": [],
            "inactive": {"ipv4-address": [], "ipv6-address": [], "route": [], "dns-server": []},
            "data": {},
        }
    )
    if st.errors:
        status["errors"] = [{"subsystem": "interface", "code": code} for code in st.errors]
    return status


def _addresses(addresses: list[str], version: int) -> list[dict[str, Any]]:
    out = []
    for text in addresses:
        address = ipaddress.ip_interface(text)
        if address.version == version:
            out.append({"address": str(address.ip), "mask": address.network.prefixlen})
    return out


def _route(spec: list[str]) -> dict[str, Any]:
    via = spec[spec.index("via") + 1] if "via" in spec else None
    target = spec[0]
    if target == "default":
        target = "::/0" if via and ":" in via else "0.0.0.0/0"
    network = ipaddress.ip_network(target)
    route: dict[str, Any] = {
        "target": str(network.network_address),
        "mask": network.prefixlen,
        "nexthop": via or ("::" if network.version == 6 else "0.0.0.0"),
        "source": "::/0" if network.version == 6 else "0.0.0.0/0",
    }
    return route
