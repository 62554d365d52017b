"""network.lock: what sitewire decided and learned (addresses, public keys), never a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sitewire.errors import LockError
from sitewire.fileio import write_atomic
from sitewire.spec.load import parse_model
from sitewire.spec.types import Address, Name, WgKey
from sitewire.strict import loads_json

LOCK_VERSION = 1
_SECRET_FIELDS = ("private_key", "preshared_key", "privatekey", "presharedkey")


class LockEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    address: Address | None = None
    address6: Address | None = None
    public_key: WgKey | None = None


class Lock(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    network: Name
    sites: dict[Name, LockEntry] = {}
    clients: dict[Name, LockEntry] = {}
    # Nodes removed from the spec: their addresses stay reserved (a revoked phone's address is
    # not handed to the next device) and every render deletes their peer sections. Delete an
    # entry here by hand to free its address for good.
    retired: dict[Name, LockEntry] = {}

    def entry(self, name: str) -> LockEntry:
        return (
            self.sites.get(name) or self.clients.get(name) or self.retired.get(name) or LockEntry()
        )


def lock_path_for(spec_path: Path) -> Path:
    return spec_path.with_suffix(".lock")


def load_lock(path: Path) -> Lock | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"cannot read: {exc}", where=str(path)) from exc
    try:
        data = loads_json(text)
    except json.JSONDecodeError as exc:
        raise LockError(
            f"not valid JSON ({exc.msg} at line {exc.lineno})",
            where=str(path),
            fix="restore it from version control, or delete it to re-allocate addresses",
        ) from None
    except ValueError as exc:
        raise LockError(
            f"not a lock file: {exc}",
            where=str(path),
            fix="restore it from version control, or delete it to re-allocate addresses",
        ) from None
    _refuse_secrets(data, str(path))
    if isinstance(data, dict) and data.get("version") not in (None, LOCK_VERSION):
        raise LockError(
            f"version {data.get('version')!r} is not supported (this sitewire reads version 1)",
            where=f"{path}: version",
            fix="upgrade sitewire",
        )
    return parse_model(Lock, data, str(path), LockError)


def _refuse_secrets(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        return
    for group in ("sites", "clients", "retired"):
        entries = data.get(group)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            for field in _SECRET_FIELDS:
                if isinstance(entry, dict) and field in entry:
                    raise LockError(
                        "a secret key must never be stored in network.lock",
                        where=f"{source}: {group}.{name}.{field}",
                        fix="remove it, and rotate that key: anyone who saw the file has it",
                    )


def lock_text(lock: Lock) -> str:
    data = lock.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def save_lock(path: Path, lock: Lock) -> bool:
    """Write the lock if it changed; return whether it did."""
    text = lock_text(lock)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, text)
    return True
