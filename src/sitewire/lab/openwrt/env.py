"""Where a lab router's files are, which OpenWrt release it plays, and how its tools run commands.

Every tool reads and writes the real OpenWrt paths (`/etc/config`, `/tmp/.uci`, `/var/run`), each
prefixed by `SITEWIRE_LAB_ROOT` (default `/`), so the tools can be tested against a temporary
directory without a mount namespace.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sitewire.errors import SitewireError

ROOT_ENV = "SITEWIRE_LAB_ROOT"
RELEASE_FILE = "/etc/openwrt_release"
RUN_DIR = "/var/run"
VERBOSE_ENV = "SITEWIRE_LAB_VERBOSE"
# What provisioning learnt about the lab: the management device, the Python the shims run.
LAB_FILE = "/etc/sitewire-lab.json"


class RouterError(SitewireError):
    """A lab router's tool was asked for something it cannot do here."""


def lab_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/")


def lab_path(path: str) -> Path:
    """The real location of an OpenWrt path such as `/etc/config/network`."""
    if not path.startswith("/"):
        return Path(path)
    return lab_root() / path.lstrip("/")


@dataclass(frozen=True)
class Release:
    """The OpenWrt release a router plays, from DISTRIB_RELEASE in /etc/openwrt_release."""

    version: str

    @property
    def series(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def uses_apk(self) -> bool:
        """25.12 switched from opkg to apk (reference §0)."""
        return _version_tuple(self.series) >= (25, 12)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def read_release() -> Release:
    path = lab_path(RELEASE_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouterError(
            "no /etc/openwrt_release", where=str(path), fix="provision the router first"
        ) from exc
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "DISTRIB_RELEASE":
            return Release(value.strip().strip("'\""))
    raise RouterError("DISTRIB_RELEASE missing", where=str(path))


def lab_setting(name: str, default: str) -> str:
    try:
        data = json.loads(lab_path(LAB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) else default


def ensure_router() -> None:
    """Refuse to run a router tool on the host itself.

    In the lab a router is a mount namespace whose /etc is an overlay; with SITEWIRE_LAB_ROOT
    every file write stays under that directory, so only the bare host needs refusing.
    """
    if lab_root() != Path("/"):
        return
    if not _is_overlay("/etc"):
        raise RouterError(
            "refusing to run: /etc is not a lab router's overlay",
            where="sitewire lab openwrt",
            fix="run it inside a lab router (nsenter) or set SITEWIRE_LAB_ROOT to a test directory",
        )


def _is_overlay(mount_point: str) -> bool:
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if (
            len(fields) > 4
            and fields[4] == mount_point
            and "overlay" in fields[fields.index("-") :]
        ):
            return True
    return False


def log(message: str) -> None:
    """One line to the router's log (a file under /var/run), and to stderr when verbose."""
    path = lab_path(f"{RUN_DIR}/lab-openwrt.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(message + "\n")
    if os.environ.get(VERBOSE_ENV):
        print(message, file=sys.stderr)


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    secret: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one command, logged first as `[#] <command>` (stdin never logged when `secret`)."""
    log("[#] " + shlex.join(argv) + (" < (secret)" if secret and stdin else ""))
    try:
        proc = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as exc:
        raise RouterError(f"{argv[0]!r} is not installed", where="lab router") from exc
    if proc.returncode != 0:
        log(f"    rc={proc.returncode}: {proc.stderr.strip()}")
    if check and proc.returncode != 0:
        raise RouterError(
            f"'{shlex.join(argv)}' exited {proc.returncode}: {proc.stderr.strip()}",
            where="lab router",
        )
    return proc


def guarded(name: str, action: Callable[[], int]) -> int:
    """A router command's edge: a refusal becomes one line on stderr and exit status 1."""
    try:
        return action()
    except SitewireError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 1


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialise one tool's invocations, as netifd's and fw4's own locks do."""
    path = lab_path(f"{RUN_DIR}/{name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
