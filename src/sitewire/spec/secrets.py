"""The --local-keys file: private and preshared keys for offline rendering, kept 0600."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitewire.errors import KeyFileError
from sitewire.fileio import write_atomic
from sitewire.keys import generate_preshared_key, generate_private_key, public_key
from sitewire.spec.types import parse_wg_key
from sitewire.strict import loads_json

KEYS_VERSION = 1


def pair_id(a: str, b: str) -> str:
    return "+".join(sorted((a, b)))


@dataclass
class LocalKeys:
    """Secrets by node name (private) and by unordered pair 'A+B' (preshared)."""

    private_keys: dict[str, str] = field(default_factory=dict)
    preshared_keys: dict[str, str] = field(default_factory=dict)

    def private_key(self, name: str) -> str | None:
        return self.private_keys.get(name)

    def preshared_key(self, a: str, b: str) -> str | None:
        return self.preshared_keys.get(pair_id(a, b))

    def public_keys(self) -> dict[str, str]:
        return {name: public_key(key) for name, key in self.private_keys.items()}

    def ensure(self, nodes: Iterable[str], pairs: Iterable[tuple[str, str]]) -> bool:
        """Generate whatever private and preshared keys are missing; return whether any were."""
        added = False
        for name in nodes:
            if name not in self.private_keys:
                self.private_keys[name] = generate_private_key()
                added = True
        for a, b in pairs:
            pid = pair_id(a, b)
            if pid not in self.preshared_keys:
                self.preshared_keys[pid] = generate_preshared_key()
                added = True
        return added

    def to_json(self) -> str:
        data = {
            "version": KEYS_VERSION,
            "private_keys": dict(sorted(self.private_keys.items())),
            "preshared_keys": dict(sorted(self.preshared_keys.items())),
        }
        return json.dumps(data, indent=2) + "\n"


def load_local_keys(path: Path) -> tuple[LocalKeys, list[str]]:
    """Return the keys (empty when the file does not exist yet) and warnings about its safety."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LocalKeys(), []
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read: {exc}", where=str(path)) from exc
    warnings = []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(
            f"{path}: readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    return _parse(text, str(path)), warnings


def _parse(text: str, source: str) -> LocalKeys:
    try:
        data = loads_json(text)
    except json.JSONDecodeError as exc:
        # The decoder's message can quote the document; keep the secret file's contents out of it.
        raise KeyFileError(
            f"not valid JSON (line {exc.lineno})", where=source, fix="restore it from a backup"
        ) from None
    except ValueError as exc:
        raise KeyFileError(
            f"not a sitewire key file: {exc}", where=source, fix="restore it from a backup"
        ) from None
    if not isinstance(data, dict) or data.get("version") != KEYS_VERSION:
        raise KeyFileError(
            'not a sitewire key file (expected "version": 1)',
            where=source,
            fix="point --local-keys at the file sitewire created, or at a new path",
        )
    unknown = set(data) - {"version", "private_keys", "preshared_keys"}
    if unknown:
        raise KeyFileError(f"unknown key {sorted(unknown)[0]!r}", where=source)
    return LocalKeys(
        private_keys=_keys(data.get("private_keys", {}), f"{source}: private_keys"),
        preshared_keys=_keys(data.get("preshared_keys", {}), f"{source}: preshared_keys"),
    )


def _keys(table: Any, where: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise KeyFileError("must be an object of name → key", where=where)
    out = {}
    for name, key in table.items():
        try:
            out[name] = parse_wg_key(key if isinstance(key, str) and len(key) == 44 else None)
        except ValueError:
            # Never echo any part of a secret in an error.
            raise KeyFileError(
                "is not a WireGuard key (44 base64 characters)",
                where=f"{where}.{name}",
                fix="delete the entry to generate a new key",
            ) from None
    return out


def save_local_keys(path: Path, keys: LocalKeys) -> None:
    write_atomic(path, keys.to_json(), mode=0o600)
