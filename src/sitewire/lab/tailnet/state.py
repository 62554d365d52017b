"""This router's own stand-in files: its prefs and its node identity (name + private key)."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sitewire.fileio import write_atomic
from sitewire.keys import public_key
from sitewire.lab.tailnet.base import Paths, TailnetError
from sitewire.lab.tailnet.prefs import Prefs, prefs_from_json, prefs_to_json


@dataclass(frozen=True)
class Identity:
    name: str
    private_key: str

    @property
    def public_key(self) -> str:
        return public_key(self.private_key)


def load_prefs(paths: Paths) -> Prefs:
    try:
        text = paths.prefs.read_text()
    except FileNotFoundError:
        return Prefs()
    return prefs_from_json(text, str(paths.prefs))


def save_prefs(paths: Paths, prefs: Prefs) -> None:
    write_atomic(paths.prefs, json.dumps(prefs_to_json(prefs), indent="\t") + "\n", mode=0o600)


def read_identity(paths: Paths) -> Identity | None:
    try:
        data = json.loads(paths.node.read_text())
        identity = Identity(str(data["name"]), str(data["private_key"]))
        _ = identity.public_key
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise TailnetError(
            f"{paths.node}: not a lab node file ({exc})", fix="run tailscale lab-join again"
        ) from exc
    return identity


def write_identity(paths: Paths, identity: Identity) -> None:
    data = {"name": identity.name, "private_key": identity.private_key}
    write_atomic(paths.node, json.dumps(data, indent=2) + "\n", mode=0o600)


@contextmanager
def router_lock(paths: Paths) -> Iterator[None]:
    """One stand-in command at a time per router, as one tailscaled would serialise them."""
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.run_dir / "lab.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
