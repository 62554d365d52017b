"""The stages joined to the disk: load files, plan, render, write results all or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sitewire.errors import InputError
from sitewire.plan import Plan, plan_network
from sitewire.render import NoSecrets, Rendered, Secrets, render_client, render_site
from sitewire.spec.load import load_spec
from sitewire.spec.lock import Lock, load_lock, lock_path_for, save_lock
from sitewire.spec.model import Spec
from sitewire.spec.secrets import LocalKeys, load_local_keys, save_local_keys


@dataclass
class Workspace:
    """A spec with its lock and, for offline rendering, its local key file."""

    spec_path: Path
    spec: Spec
    lock_path: Path
    lock: Lock | None
    keys_path: Path | None = None
    keys: LocalKeys | None = None
    warnings: list[str] = field(default_factory=list)
    keys_changed: bool = False

    @property
    def secrets(self) -> Secrets:
        return self.keys if self.keys is not None else NoSecrets()


def open_workspace(
    spec_path: Path, lock_path: Path | None = None, keys_path: Path | None = None
) -> Workspace:
    spec = load_spec(spec_path)
    lock_path = lock_path or lock_path_for(spec_path)
    ws = Workspace(spec_path, spec, lock_path, load_lock(lock_path), keys_path)
    if keys_path is not None:
        ws.keys, ws.warnings = load_local_keys(keys_path)
    return ws


def make_plan(ws: Workspace) -> Plan:
    """Plan; with local keys, first create whatever keys the network is missing (in memory)."""
    known: dict[str, str] = {}
    if ws.keys is not None:
        own_key = {n for n, c in ws.spec.clients.items() if c.public_key is not None}
        nodes = [n for n in [*ws.spec.sites, *ws.spec.clients] if n not in own_key]
        ws.keys_changed |= ws.keys.ensure(nodes, ())
        known = ws.keys.public_keys()
    plan = plan_network(
        ws.spec, ws.lock, known, source=str(ws.spec_path), lock_source=str(ws.lock_path)
    )
    if ws.keys is not None and ws.spec.network.preshared_keys:
        pairs = ((link.a, link.b) for link in plan.links())
        ws.keys_changed |= ws.keys.ensure((), pairs)
    return plan


def save_keys(ws: Workspace) -> None:
    """Persist new local keys (0600), if any were made."""
    if ws.keys is not None and ws.keys_path is not None and ws.keys_changed:
        save_local_keys(ws.keys_path, ws.keys)
        ws.keys_changed = False


def save_state(ws: Workspace, plan: Plan) -> bool:
    """Persist keys and the lock; return whether the lock changed."""
    save_keys(ws)
    return save_lock(ws.lock_path, plan.lock)


def render_all(plan: Plan, secrets: Secrets) -> Iterator[tuple[str, Rendered]]:
    """(directory, rendered) for every site, then every client under clients/, one at a time."""
    for name in plan.site_names:
        yield name, render_site(plan, name, secrets)
    for name in plan.client_names:
        yield "clients", render_client(plan, plan.client(name), secrets)


MARKER = ".sitewire-render"


def check_output_dir(out: Path) -> None:
    """Refuse to replace a directory that sitewire did not write (`--out .` must not wipe it)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise InputError(
            "exists and was not written by 'sitewire render'",
            where=str(out),
            fix="choose a new or empty directory for --out",
        )


def write_tree(out: Path, rendered: Iterable[tuple[str, Rendered]]) -> list[Path]:
    """Write everything into a fresh directory beside `out`, then swap it in.

    If rendering fails half-way (a missing key, say), `out` is left exactly as it was.
    """
    out = out.resolve()
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    written = []
    try:
        for subdir, result in rendered:
            folder = staging / subdir
            folder.mkdir(exist_ok=True)
            for f in result.files:
                _write_new(folder / f.path, f.content, f.mode)
                written.append(out / subdir / f.path)
        _write_new(
            staging / MARKER, "written by sitewire render; replaced whole each time\n", 0o644
        )
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _write_new(path: Path, content: str | bytes, mode: int) -> None:
    # The staging directory is private and new, and the whole tree appears by one rename, so
    # files need neither their own temporary names nor an fsync each.
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _swap(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
