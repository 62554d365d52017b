"""The stages joined to the disk: load files, plan, render, write results all or nothing."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sitewire.errors import InputError, SitewireError
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


def write_tree(out: Path, plan: Plan, secrets: Secrets) -> list[Path]:
    """Render every site and client into a fresh directory beside `out`, then swap it in.

    If rendering fails half-way (a missing key, say), `out` is left exactly as it was. A large
    network's sites are shared out among this machine's cores (see _fork_sites); the files
    are the same either way.
    """
    out = out.resolve()
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    children: list[_Child] = []
    try:
        names = plan.site_names
        workers = min(_cores(), max(1, len(names) // SITES_PER_WORKER))
        shares = [names[i::workers] for i in range(workers)]
        for share in shares[1:]:  # one by one: a failed fork still kills the ones made
            children.append(_fork_sites(staging, plan, secrets, share))
        written = _write_sites(staging, plan, secrets, shares[0])
        for child in children:
            written.update(child.wait())
        clients = [
            ("clients", render_client(plan, plan.client(n), secrets)) for n in plan.client_names
        ]
        files = [p for name in names for p in written[name]] + _write(staging, clients)
        _write_new(
            staging / MARKER, "written by sitewire render; replaced whole each time\n", 0o644
        )
        _swap(staging, out)
    except BaseException:
        for child in children:
            child.kill()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / f for f in files]


SITES_PER_WORKER = 100  # below this many sites a second process costs more than it saves


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _write_sites(
    staging: Path, plan: Plan, secrets: Secrets, names: Sequence[str]
) -> dict[str, list[str]]:
    return {name: _write(staging, [(name, render_site(plan, name, secrets))]) for name in names}


def _write(staging: Path, rendered: Iterable[tuple[str, Rendered]]) -> list[str]:
    """Write each result into its directory; return the paths written, relative to staging."""
    written = []
    for subdir, result in rendered:
        folder = staging / subdir
        folder.mkdir(exist_ok=True)
        for f in result.files:
            _write_new(folder / f.path, f.content, f.mode)
            written.append(f"{subdir}/{f.path}")
    return written


def _portable(answer: object) -> bytes:
    """The answer pickled; an error that does not pickle, as a SitewireError of its words."""
    try:
        return pickle.dumps(answer)
    except Exception:  # a value that cannot cross: keep what it said
        return pickle.dumps(SitewireError(f"internal error: {type(answer).__name__}: {answer}"))


@dataclass
class _Child:
    pid: int
    reply: int  # the read end of its pipe

    def wait(self) -> dict[str, list[str]]:
        with os.fdopen(self.reply, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        try:
            answer = pickle.loads(data) if data else None
        except Exception as exc:  # an error that does not rebuild: say what it was
            raise SitewireError(
                f"a rendering process failed; its error did not rebuild: {exc}"
            ) from exc
        if isinstance(answer, BaseException):
            raise answer
        if os.waitstatus_to_exitcode(status) != 0 or not isinstance(answer, dict):
            code = os.waitstatus_to_exitcode(status)
            raise SitewireError(f"a rendering process ended with exit status {code}")
        return answer

    def kill(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0


def _fork_sites(staging: Path, plan: Plan, secrets: Secrets, names: Sequence[str]) -> _Child:
    """Render `names` in a forked copy of this process, which sends back the paths it wrote
    (or the error it met, pickled) and exits. Rendering is pure and single-threaded, so a fork
    holds everything it needs; the output is the same as rendering here."""
    reply, send = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, whatever happens (Ctrl-C included)
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent handles the interrupt
            os.close(reply)
            try:
                answer: object = _write_sites(staging, plan, secrets, names)
                code = 0
            except Exception as exc:  # handed whole to the parent, which raises it
                answer = exc
            with os.fdopen(send, "wb") as pipe:
                pipe.write(_portable(answer))
        finally:
            os._exit(code)
    os.close(send)
    return _Child(pid, reply)


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
