"""A lab's record on the host: its layout and all `up` made, so `down` can undo exactly that."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitewire.errors import InputError
from sitewire.fileio import write_atomic
from sitewire.lab.layout import LabLayout, layout_from_json, layout_to_json

STATE_ROOT = Path("/run/sitewire-lab")
STATE_VERSION = 1


@dataclass
class LabState:
    """What a lab is and what exists of it; saved after every change, before each creation."""

    layout: LabLayout
    openwrt_release: str
    spec_path: str | None = None
    created: list[dict[str, str]] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # site -> dropbear
    notes: list[str] = field(default_factory=list)
    owner: int = field(default_factory=os.getpid)  # the process that brought the lab up

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    @property
    def shared(self) -> Path:
        return self.dir / "shared"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def router_dir(self, site: str) -> Path:
        return self.dir / "routers" / site

    def mnt(self, site: str) -> Path:
        return self.router_dir(site) / "mnt"

    def record(self, kind: str, name: str) -> None:
        """Note a thing before creating it: `down` copes with things that never came to be."""
        self.created.append({"kind": kind, "name": name})
        self.save()

    def made(self, kind: str) -> list[str]:
        return [item["name"] for item in self.created if item["kind"] == kind]

    def save(self) -> None:
        write_atomic(self.dir / "state.json", json.dumps(state_to_json(self), indent=2) + "\n")


def lab_dir(name: str) -> Path:
    return STATE_ROOT / name


def state_to_json(state: LabState) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "name": state.name,
        "openwrt_release": state.openwrt_release,
        "spec_path": state.spec_path,
        "layout": layout_to_json(state.layout),
        "created": state.created,
        "pids": state.pids,
        "notes": state.notes,
        "owner": state.owner,
    }


def state_from_json(data: dict[str, Any], where: str) -> LabState:
    if data.get("version") != STATE_VERSION:
        raise InputError(
            f"state version {data.get('version')!r} is not {STATE_VERSION}",
            where=where,
            fix="bring the lab down with the sitewire that brought it up",
        )
    return LabState(
        layout=layout_from_json(data["layout"]),
        openwrt_release=str(data["openwrt_release"]),
        spec_path=data.get("spec_path"),
        created=[dict(item) for item in data["created"]],
        pids={str(k): int(v) for k, v in data["pids"].items()},
        notes=[str(n) for n in data["notes"]],
        owner=int(data.get("owner", 0)),
    )


def load_state(name: str) -> LabState:
    path = lab_dir(name) / "state.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"no lab named {name!r} is up",
            where="lab",
            fix="'sitewire lab status' lists the labs that are up",
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable lab state: {exc}", where=str(path)) from exc
    return state_from_json(data, str(path))


def lab_names() -> list[str]:
    """Labs with a state directory, in name order."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))


def owner_alive(name: str) -> bool:
    """Whether the process that brought lab `name` up still runs (unknown owner: no)."""
    try:
        owner = int(json.loads((lab_dir(name) / "state.json").read_text()).get("owner", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    if owner <= 0:
        return False
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def numbers_in_use() -> set[int]:
    """Management numbers k of the labs recorded on this machine."""
    used = set()
    for name in lab_names():
        try:
            data = json.loads((lab_dir(name) / "state.json").read_text())
            used.add(int(data["layout"]["k"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return used


def make_lab_dir(name: str) -> Path:
    """Create the lab's state directory; refuse if the lab exists."""
    STATE_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = lab_dir(name)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise InputError(
            f"a lab named {name!r} is already up",
            where="lab up",
            fix=f"run 'sitewire lab down --name {name}' first, or pick another --name",
        ) from None
    return path
