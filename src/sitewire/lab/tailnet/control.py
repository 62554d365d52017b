"""The lab tailnet's control file: every node's addresses, key, endpoint and advertised routes.

One file is shared by all routers of a lab (bind-mounted at /etc/lab), so every read and
read-modify-write holds a flock on a sidecar lock file; writes go through rename, which would
orphan a lock held on the data file itself.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sitewire.fileio import write_atomic
from sitewire.lab.tailnet.base import (
    CGNAT,
    ULA,
    Prefix,
    TailnetError,
    host_prefix,
    parse_prefix,
)
from sitewire.lab.tailnet.prefs import EXIT_ROUTES

VERSION = 1


@dataclass(frozen=True)
class Endpoint:
    host: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        host, sep, port = text.rpartition(":")
        try:
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(text)
            address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
            if address.version == 6 and not host.startswith("["):
                raise ValueError(text)
        except ValueError as exc:
            raise TailnetError(
                f"endpoint {text!r} is not ADDRESS:PORT",
                fix="e.g. 198.18.0.10:41641 or [fd53::a]:41641",
            ) from exc
        return cls(address, int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.host.version == 6 else str(self.host)
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Node:
    name: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address
    public_key: str
    endpoint: Endpoint
    advertise_routes: tuple[Prefix, ...] = ()
    online: bool = True

    @property
    def addresses(self) -> tuple[Prefix, Prefix]:
        return host_prefix(self.ipv4), host_prefix(self.ipv6)

    @property
    def exit_node_option(self) -> bool:
        return all(r in self.advertise_routes for r in EXIT_ROUTES)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ipv4": str(self.ipv4),
            "ipv6": str(self.ipv6),
            "public_key": self.public_key,
            "endpoint": str(self.endpoint),
            "advertise_routes": [str(r) for r in self.advertise_routes],
            "online": self.online,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        return cls(
            name=str(data["name"]),
            ipv4=tailnet_ipv4(str(data["ipv4"])),
            ipv6=tailnet_ipv6(str(data["ipv6"])),
            public_key=str(data["public_key"]),
            endpoint=Endpoint.parse(str(data["endpoint"])),
            advertise_routes=tuple(parse_prefix(str(r)) for r in data.get("advertise_routes", [])),
            online=bool(data.get("online", True)),
        )


@dataclass(frozen=True)
class Tailnet:
    nodes: tuple[Node, ...] = ()

    def get(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def peers_of(self, name: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.name != name)

    def with_node(self, node: Node) -> Tailnet:
        """Register or re-register `node` (same name keeps its place, like a re-login)."""
        for other in self.nodes:
            if other.name != node.name and node.ipv4 == other.ipv4:
                raise TailnetError(
                    f"tailnet address {node.ipv4} is already {other.name}'s",
                    fix="give every node its own 100.64.0.N",
                )
        if self.get(node.name) is None:
            return Tailnet((*self.nodes, node))
        return Tailnet(tuple(node if n.name == node.name else n for n in self.nodes))

    def updated(self, name: str, **changes: Any) -> Tailnet:
        node = self.get(name)
        if node is None:
            return self
        return self.with_node(replace(node, **changes))

    def primary_routes(self) -> dict[str, tuple[Prefix, ...]]:
        """Control picks one primary node per subnet route: here the first to advertise it."""
        owner: dict[Prefix, str] = {}
        for node in self.nodes:
            for route in node.advertise_routes:
                if route not in EXIT_ROUTES:
                    owner.setdefault(route, node.name)
        return {n.name: tuple(r for r, o in owner.items() if o == n.name) for n in self.nodes}


def tailnet_ipv4(text: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise TailnetError(f"tailnet address {text!r} is not an IPv4 address") from exc
    if address not in CGNAT:
        raise TailnetError(f"tailnet address {text!r} is not in {CGNAT}", fix="use 100.64.0.N")
    return address


def tailnet_ipv6(text: str) -> ipaddress.IPv6Address:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError as exc:
        raise TailnetError(f"tailnet address {text!r} is not an IPv6 address") from exc
    if address not in ULA:
        raise TailnetError(f"tailnet address {text!r} is not in {ULA}")
    return address


def ipv6_for(ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """100.64.0.N ↦ fd7a:115c:a1e0::N (N counted from the start of 100.64.0.0/10)."""
    return ULA.network_address + (int(ipv4) - int(CGNAT.network_address))


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> Tailnet:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Tailnet()
    try:
        data = json.loads(text)
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        return Tailnet(tuple(Node.from_json(n) for n in data["nodes"]))
    except (ValueError, TypeError, KeyError, AttributeError, TailnetError) as exc:
        raise TailnetError(f"{path}: not a lab tailnet file: {exc}") from exc


def read_tailnet(path: Path) -> Tailnet:
    with _locked(path, exclusive=False):
        return _read(path)


def update_tailnet(path: Path, change: Callable[[Tailnet], Tailnet]) -> Tailnet:
    with _locked(path, exclusive=True):
        tailnet = change(_read(path))
        data = {"version": VERSION, "nodes": [n.to_json() for n in tailnet.nodes]}
        write_atomic(path, json.dumps(data, indent=2) + "\n")
        return tailnet
