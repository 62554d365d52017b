"""The --local-keys file: private and preshared keys for offline rendering, kept 0600."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitewire.errors import KeyFileError
from sitewire.fileio import write_atomic
from sitewire.keys import generate_preshared_key, generate_private_key, public_key
from sitewire.spec.types import parse_wg_key
from sitewire.strict import loads_json

KEYS_VERSION = 2  # 2 added psk_seed; a version 1 file (every key listed) is read as it was
_READABLE = (1, KEYS_VERSION)


def pair_id(a: str, b: str) -> str:
    return f"{a}+{b}" if a < b else f"{b}+{a}"


@dataclass
class LocalKeys:
    """Secrets by node name (private) and by unordered pair 'A+B' (preshared).

    A pair's preshared key is the one listed for it, else derived from `psk_seed`: BLAKE2s
    keyed with the seed over the pair's name (a keyed hash is a pseudorandom function, so each
    key is as good as a random one and tells nothing of the others or the seed). A thousand
    sites have half a million pairs; one seed in the file stands for all of them.
    """

    private_keys: dict[str, str] = field(default_factory=dict)
    preshared_keys: dict[str, str] = field(default_factory=dict)
    psk_seed: str | None = None
    _seed: tuple[str, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def private_key(self, name: str) -> str | None:
        return self.private_keys.get(name)

    def preshared_key(self, a: str, b: str) -> str | None:
        pid = pair_id(a, b)
        listed = self.preshared_keys.get(pid)
        if listed is not None or self.psk_seed is None:
            return listed
        return derive_psk(self._seed_bytes(), pid)

    def preshared_keys_with(self, site: str, peers: Sequence[str]) -> list[str | None]:
        """preshared_key(site, peer) for each of `peers`: a thousand-site mesh asks a million
        times, so the keyed hash is set up once and copied."""
        listed = self.preshared_keys
        if self.psk_seed is None:
            return [listed.get(pair_id(site, peer)) for peer in peers]
        keyed = hashlib.blake2s(key=self._seed_bytes(), person=_PERSON).copy
        encode = binascii.b2a_base64
        out: list[str | None] = []
        for peer in peers:
            pid = f"{site}+{peer}" if site < peer else f"{peer}+{site}"
            key = listed.get(pid) if listed else None
            if key is None:
                h = keyed()
                h.update(pid.encode())
                key = encode(h.digest(), newline=False).decode("ascii")
            out.append(key)
        return out

    def _seed_bytes(self) -> bytes:
        assert self.psk_seed is not None
        if self._seed is None or self._seed[0] != self.psk_seed:
            self._seed = (self.psk_seed, base64.b64decode(self.psk_seed))
        return self._seed[1]

    def public_keys(self) -> dict[str, str]:
        return {name: public_key(key) for name, key in self.private_keys.items()}

    def ensure(self, nodes: Iterable[str], pairs: Iterable[tuple[str, str]]) -> bool:
        """Generate whatever private keys are missing, and the seed the first time a pair has
        no preshared key listed; return whether any were made."""
        added = False
        for name in nodes:
            if name not in self.private_keys:
                self.private_keys[name] = generate_private_key()
                added = True
        listed = self.preshared_keys
        if self.psk_seed is None and any(pair_id(a, b) not in listed for a, b in pairs):
            self.psk_seed = generate_preshared_key()
            added = True
        return added

    def to_json(self) -> str:
        data: dict[str, Any] = {
            # Version 1 while there is no seed: an older sitewire still reads such a file.
            "version": KEYS_VERSION if self.psk_seed is not None else 1,
            "private_keys": dict(sorted(self.private_keys.items())),
            "preshared_keys": dict(sorted(self.preshared_keys.items())),
        }
        if self.psk_seed is not None:
            data["psk_seed"] = self.psk_seed
        return json.dumps(data, indent=2) + "\n"


_PERSON = b"sitewire"  # BLAKE2s personalization: these hashes are sitewire's PSKs, nothing else


def derive_psk(seed: bytes, pid: str) -> str:
    digest = hashlib.blake2s(pid.encode(), key=seed, person=_PERSON).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


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
    if not isinstance(data, dict) or data.get("version") not in _READABLE:
        raise KeyFileError(
            f'not a sitewire key file (expected "version": {KEYS_VERSION})',
            where=source,
            fix="point --local-keys at the file sitewire created, or at a new path",
        )
    unknown = set(data) - {"version", "private_keys", "preshared_keys", "psk_seed"}
    if unknown:
        raise KeyFileError(f"unknown key {sorted(unknown)[0]!r}", where=source)
    return LocalKeys(
        private_keys=_keys(data.get("private_keys", {}), f"{source}: private_keys"),
        preshared_keys=_keys(data.get("preshared_keys", {}), f"{source}: preshared_keys"),
        psk_seed=_seed(data, source),
    )


def _seed(data: dict[str, Any], source: str) -> str | None:
    if "psk_seed" not in data:
        return None
    if data["version"] < 2:
        raise KeyFileError('"psk_seed" needs "version": 2', where=source)
    return _keys({"psk_seed": data["psk_seed"]}, source)["psk_seed"]


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
