"""The one edge where the lab touches the host: logged commands, namespaces, processes, mounts."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from sitewire.errors import SitewireError

log = logging.getLogger("sitewire.lab")

NETNS_DIR = Path("/run/netns")
ROUTER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
NsId = tuple[int, int]  # (st_dev, st_ino) of an nsfs file: what identifies a namespace


class LabError(SitewireError):
    """Building, running or removing the lab failed on this machine."""


def run(
    where: str,
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    shown: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one command, logged first as `[#] <where>: <command>` (or `shown`), output captured."""
    log.debug("[#] %s: %s", where, shown or shlex.join(argv))
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except FileNotFoundError as exc:
        raise LabError(
            f"{argv[0]!r} is not installed", where=where, fix="run scripts/bootstrap as root"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"'{shlex.join(argv)}' took over {timeout:g}s", where=where) from exc
    if check and proc.returncode != 0:
        raise LabError(
            f"'{shlex.join(argv)}' exited {proc.returncode}: {_last_line(proc.stderr)}",
            where=where,
        )
    return proc


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no message)"


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def router_env() -> dict[str, str]:
    """What a command inside a router sees: OpenWrt's PATH, root's home, no venv leaking in."""
    return {"PATH": ROUTER_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root"}


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    return ["nsenter", f"--net={netns_path(netns)}", "--", *argv]


def in_router(mnt: Path, netns: str, argv: Sequence[str]) -> list[str]:
    return ["nsenter", f"--mount={mnt}", f"--net={netns_path(netns)}", "--", *argv]


def ip(netns: str, *args: str) -> None:
    run(netns, ["ip", "-n", netns, *args])


def netns_add(name: str) -> None:
    run("root", ["ip", "netns", "add", name])


def netns_delete(name: str) -> None:
    if netns_path(name).exists():
        run("root", ["ip", "netns", "delete", name])


def lab_netns(prefix: str) -> list[str]:
    """Names in /run/netns starting with `prefix` (a lab's `swl-<lab>-`)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def sysctl(netns: str, *settings: str) -> None:
    run(netns, in_netns(netns, ["sysctl", "-q", "-w", *settings]))


def link_exists(name: str) -> bool:
    return run("root", ["ip", "link", "show", "dev", name], check=False).returncode == 0


def link_delete(name: str) -> None:
    if link_exists(name):
        run("root", ["ip", "link", "delete", "dev", name])


def ns_id(path: Path | str) -> NsId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        return any(unescape_mount_point(line.split()[4]) == target for line in mounts)


def unescape_mount_point(field: str) -> str:
    """A mount point as /proc/*/mountinfo escapes it, back to a path."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def unmount(path: Path) -> None:
    """Unmount `path` if mounted; lazily if something still holds it, so nothing lingers."""
    if not is_mounted(path):
        return
    if run("root", ["umount", str(path)], check=False).returncode != 0:
        run("root", ["umount", "--lazy", str(path)])


def pids_in(namespaces: Iterable[NsId]) -> list[int]:
    """Live processes whose network or mount namespace is one of `namespaces`."""
    wanted = set(namespaces)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        ids = {ns_id(f"/proc/{entry}/ns/{kind}") for kind in ("net", "mnt")}
        if ids & wanted and _alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def kill_pids(pids: Sequence[int], grace: float = 2.0) -> None:
    """SIGTERM each, wait up to `grace` seconds, SIGKILL what is left, wait again."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in pids if _alive(pid)]
        for pid in alive:
            log.debug("[#] root: kill -%s %d", sig.name.removeprefix("SIG"), pid)
            _signal(pid, sig)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [pid for pid in alive if _alive(pid)]
        if not alive:
            return
    raise LabError(f"processes {list(alive)} survived SIGKILL", where="lab down")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
