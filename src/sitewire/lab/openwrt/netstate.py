"""What the netifd emulator has done, kept between invocations, and the `ip` calls that do it.

netifd is a daemon; the lab's is a command that runs and exits, so everything it would hold in
memory (which handlers it scanned, which interfaces are up, which addresses, routes, rules and
devices it added) lives in /var/run/lab-netifd/state.json. Teardown undoes exactly what is
recorded there and nothing else: a device the configuration does not name is never touched.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sitewire.fileio import write_atomic
from sitewire.lab.openwrt.env import lab_path, run

STATE_FILE = "/var/run/lab-netifd/state.json"
IP = "ip"


@dataclass
class IfState:
    proto: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    up: bool = False
    device: str | None = None
    addresses: list[str] = field(default_factory=list)
    routes: list[list[str]] = field(default_factory=list)
    host_routes: list[list[str]] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    waiting: bool = False
    since: float = 0.0
    errors: list[str] = field(default_factory=list)

    def mark_up(self, device: str) -> None:
        if not self.up:
            self.since = time.time()
        self.up = True
        self.waiting = False
        self.device = device
        self.errors = []


@dataclass
class State:
    running: bool = False
    handlers: dict[str, str] = field(default_factory=dict)
    interfaces: dict[str, IfState] = field(default_factory=dict)
    rules: list[list[str]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)


def load_state() -> State:
    try:
        data = json.loads(lab_path(STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return State()
    interfaces = {name: IfState(**value) for name, value in data.get("interfaces", {}).items()}
    return State(
        running=bool(data.get("running")),
        handlers=dict(data.get("handlers", {})),
        interfaces=interfaces,
        rules=list(data.get("rules", [])),
        devices=list(data.get("devices", [])),
    )


def save_state(state: State) -> None:
    write_atomic(lab_path(STATE_FILE), json.dumps(asdict(state), indent=1) + "\n", 0o600)


def as_json(value: Any) -> Any:
    """Tuples become lists, as they will after a round trip through the state file."""
    return json.loads(json.dumps(value))


def link_exists(device: str) -> bool:
    return run([IP, "link", "show", "dev", device], check=False).returncode == 0


def link_index(device: str) -> int | None:
    proc = run([IP, "-o", "link", "show", "dev", device], check=False)
    if proc.returncode != 0:
        return None
    return int(proc.stdout.split(":", 1)[0])


def family(prefix: str) -> str:
    return "-6" if ":" in prefix else "-4"


def add_address(st: IfState, address: str, device: str) -> None:
    extra = ["nodad"] if ":" in address else []
    run([IP, family(address), "addr", "replace", address, "dev", device, *extra])
    if address not in st.addresses:
        st.addresses.append(address)


def del_address(address: str, device: str) -> None:
    run([IP, family(address), "addr", "del", address, "dev", device], check=False)


def add_route(st: IfState, spec: list[str]) -> None:
    """`spec` is what follows `ip route replace`; recorded so teardown can delete it."""
    run([IP, family(spec[0] if spec[0] != "default" else spec[2]), "route", "replace", *spec])
    if spec not in st.routes:
        st.routes.append(spec)


def del_route(spec: list[str]) -> None:
    head = spec[0] if spec[0] != "default" else spec[2]
    run([IP, family(head), "route", "del", *spec], check=False)


def route_spec(target: str, device: str, metric: str, table: str, via: str = "") -> list[str]:
    spec = [target]
    if via:
        spec += ["via", via]
    spec += ["dev", device, "proto", "static"]
    if metric and metric != "0":
        spec += ["metric", metric]
    if table:
        spec += ["table", table]
    return spec
