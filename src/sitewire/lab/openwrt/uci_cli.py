"""The `uci` command of a lab router: UciStore over /etc/config and uci's delta files.

Each invocation loads every package in the config directory, replays the staged changes from
the delta path (uci reads every delta directory, the save directory last), runs the command in
UciStore, then appends the new changes to the save directory's file the way uci_save does, or
rewrites it after a commit or revert. A commit writes the package file atomically.

Not modelled: `-f`, `-m`, `-S`/`-s` (accepted, no effect), `import`, 25.x's override directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sitewire.errors import UciError
from sitewire.fileio import write_atomic
from sitewire.lab.openwrt.env import lab_path, locked
from sitewire.render.uci import Package, is_package_name, iter_batch, parse_address, quote

# The delta format is private to UciStore (its staged changes are what uci keeps in
# /tmp/.uci); this module is the one place that persists them, so it reaches in here only.
from sitewire.render.uci_store import CommandResult, UciStore, _Delta, _Op

CONFDIR = "/etc/config"
SAVEDIR = "/tmp/.uci"
_OPTION_ARGS = frozenset("cdfpPt")
_IGNORED = frozenset("mSsL")


@dataclass
class Dirs:
    confdir: Path = field(default_factory=lambda: lab_path(CONFDIR))
    savedir: Path = field(default_factory=lambda: lab_path(SAVEDIR))
    delta_paths: list[Path] = field(default_factory=lambda: [lab_path(SAVEDIR)])
    nocommit: bool = False
    input_file: Path | None = None

    def set_savedir(self, path: Path) -> None:
        """uci_set_savedir: the save directory moves to the end of the delta path."""
        self.delta_paths = [p for p in self.delta_paths if p != path] + [path]
        self.savedir = path

    def add_delta_path(self, path: Path) -> None:
        if path not in self.delta_paths:
            self.delta_paths.insert(len(self.delta_paths) - 1, path)


class _NoCommitStore(UciStore):
    """`uci -P`: commit is a silent no-op."""

    def _commit(self, name: str) -> None:
        return


def format_deltas(package: str, deltas: Sequence[_Delta]) -> str:
    """Delta lines as uci_delta_save writes them: `<op><pkg>.<sec>[.<opt>]['=<quoted value>']`."""
    lines = []
    for delta in deltas:
        path = f"{delta.op.value}{package}.{delta.section}"
        if delta.option is not None:
            path += f".{delta.option}"
        if delta.op is _Op.REMOVE and delta.value is None:
            lines.append(path + "\n")
        else:
            lines.append(f"{path}={quote(delta.value or '')}\n")
    return "".join(lines)


_OPS = {op.value: op for op in _Op if op.value}


def parse_deltas(package: str, text: str) -> list[_Delta]:
    """uci_parse_delta: one argument per line; a line that does not parse is skipped."""
    deltas = []
    for _, item in iter_batch(text):
        if not isinstance(item, list) or len(item) != 1:
            continue
        delta = _parse_delta(package, item[0])
        if delta is not None:
            deltas.append(delta)
    return deltas


def _parse_delta(package: str, word: str) -> _Delta | None:
    op = _OPS.get(word[:1], _Op.CHANGE)
    address = parse_address(word[1:] if op is not _Op.CHANGE else word)
    if address is None or address.package != package or address.section is None:
        return None
    if address.extended or (op is not _Op.REMOVE and address.value is None):
        return None
    return _Delta(op, address.section, address.option, address.value)


@dataclass
class _Loaded:
    store: UciStore
    before: dict[str, list[_Delta]]
    readonly: dict[str, list[_Delta]]
    texts: dict[str, str]


def _packages(confdir: Path) -> dict[str, str]:
    if not confdir.is_dir():
        return {}
    return {
        p.name: p.read_text(encoding="utf-8", errors="surrogateescape")
        for p in sorted(confdir.iterdir())
        if p.is_file() and is_package_name(p.name)
    }


def _open(dirs: Dirs) -> _Loaded:
    texts = _packages(dirs.confdir)
    store_type = _NoCommitStore if dirs.nocommit else UciStore
    store = store_type.from_texts(texts)
    before: dict[str, list[_Delta]] = {}
    readonly: dict[str, list[_Delta]] = {}
    for name in texts:
        others = [d for p in dirs.delta_paths if p != dirs.savedir for d in _read(p, name)]
        deltas = others + _read(dirs.savedir, name)
        store._deltas[name] = list(deltas)
        before[name] = deltas
        readonly[name] = others
    return _Loaded(store, before, readonly, texts)


def _read(directory: Path, package: str) -> list[_Delta]:
    try:
        text = (directory / package).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    return parse_deltas(package, text)


def _persist(dirs: Dirs, loaded: _Loaded) -> None:
    for name, original in loaded.texts.items():
        text = loaded.store.committed_text(name)
        if text != original:
            target = dirs.confdir / name
            mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
            write_atomic(target, text.encode("utf-8", errors="surrogateescape"), mode)
        _persist_deltas(dirs, name, loaded.before[name], loaded.readonly[name], loaded.store)


def _persist_deltas(
    dirs: Dirs, name: str, before: list[_Delta], readonly: list[_Delta], store: UciStore
) -> None:
    after = store._deltas[name]
    path = dirs.savedir / name
    unchanged_prefix = len(after) >= len(before) and all(
        a is b for a, b in zip(after, before, strict=False)
    )
    if unchanged_prefix:
        new = after[len(before) :]
        if new:
            _write_deltas(dirs, path, format_deltas(name, new), os.O_APPEND)
        return
    kept = [d for d in after if not any(d is r for r in readonly)]
    if path.exists() or kept:
        _write_deltas(dirs, path, format_deltas(name, kept), os.O_TRUNC)


def _write_deltas(dirs: Dirs, path: Path, text: str, how: int) -> None:
    if not dirs.savedir.is_dir():
        dirs.savedir.mkdir(parents=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | how, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write(text)


def _parse_options(argv: list[str], dirs: Dirs) -> tuple[list[str], list[str]] | None:
    """getopt("c:d:f:LmnNp:P:qsSt:X"): directory options are handled here, the rest by UciStore."""
    passed: list[str] = []
    args = list(argv)
    while args and args[0].startswith("-") and len(args[0]) > 1:
        word = args.pop(0)
        if word == "--":
            break
        letters = word[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in _OPTION_ARGS:
                value = letters or (args.pop(0) if args else None)
                if value is None:
                    return None
                letters = ""
                _directory_option(letter, value, dirs, passed)
            elif letter not in _IGNORED:
                passed.append(f"-{letter}")
    return passed, args


def _directory_option(letter: str, value: str, dirs: Dirs, passed: list[str]) -> None:
    if letter == "d":
        passed += ["-d", value]
    elif letter == "c":
        dirs.confdir = lab_path(value)
    elif letter == "t":
        dirs.set_savedir(lab_path(value))
    elif letter == "P":
        dirs.set_savedir(lab_path(value))
        dirs.nocommit = True
    elif letter == "p":
        dirs.add_delta_path(lab_path(value))
    elif letter == "f":
        dirs.input_file = lab_path(value)


def run_uci(argv: list[str], stdin: str = "") -> CommandResult:
    """One `uci` invocation in-process: what netifd's key generator or reload_config runs."""
    dirs = Dirs()
    parsed = _parse_options(argv, dirs)
    if parsed is None:
        # getopt refused an option: uci prints its usage and exits 0.
        return UciStore({}).run([])
    passed, args = parsed
    if dirs.input_file is not None:
        try:
            stdin = dirs.input_file.read_text(encoding="utf-8")
        except OSError as exc:
            return CommandResult("", f"uci: {exc.strerror}\n", 1)
    # uci holds a lock on the delta file while it reads and appends; one lock does for all.
    with locked("uci"):
        loaded = _open(dirs)
        try:
            result = loaded.store.run([*passed, *args], stdin)
        except UciError as err:
            return CommandResult("", f"uci: {err.message}\n", 1)
        _persist(dirs, loaded)
    return result


def load_config(package: str) -> Package | None:
    """What libuci hands netifd or fw4: the committed file plus the staged changes in /tmp/.uci."""
    dirs = Dirs()
    loaded = _open(dirs)
    if package not in loaded.texts:
        return None
    try:
        return loaded.store.staged(package)
    except UciError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    probe = Dirs()
    parsed = _parse_options(args, probe)
    batch = parsed is not None and bool(parsed[1]) and parsed[1][0].lower() == "batch"
    batch &= probe.input_file is None
    stdin = sys.stdin.read() if batch and sys.stdin is not None else ""
    result = run_uci(args, stdin)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
