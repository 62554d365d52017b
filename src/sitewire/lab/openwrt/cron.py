"""`/etc/init.d/cron` of a lab router: busybox crond over /etc/crontabs, as OpenWrt runs it.

OpenWrt's script refuses to start while /etc/crontabs is empty (reference §4). In a real lab
router (root `/`) a busybox crond is started and its pid recorded; with SITEWIRE_LAB_ROOT the
crontab's commands would not exist on the host, so only the running state is recorded.
Debian's busybox (what scripts/bootstrap installs) is built without crond: there `crond` below
runs the same crontabs minute by minute, so the lab's cron jobs do run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sitewire.lab.openwrt import initd
from sitewire.lab.openwrt.env import ensure_router, guarded, lab_path, lab_root, log

CRONTABS = "/etc/crontabs"
STATE = "/var/run/lab-cron.json"


def _state() -> dict[str, int | bool]:
    try:
        data = json.loads(lab_path(STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(running: bool, pid: int = 0) -> None:
    path = lab_path(STATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"running": running, "pid": pid}) + "\n", encoding="utf-8")


def running() -> bool:
    return bool(_state().get("running"))


def start() -> int:
    if running():
        return 0
    folder = lab_path(CRONTABS)
    if not folder.is_dir() or not any(folder.iterdir()):
        return 1
    ensure_router()
    pid = 0
    if lab_root() == Path("/"):
        argv = _crond_argv()
        log("[#] " + " ".join(argv))
        pid = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ).pid
    _save(True, pid)
    return 0


def _crond_argv() -> list[str]:
    busybox = shutil.which("busybox") or "/usr/bin/busybox"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=False)
    if "crond" in applets.stdout.split():
        return [busybox, "crond", "-f", "-c", CRONTABS, "-l", "5"]
    return [sys.executable, "-m", __name__, "crond", CRONTABS]


def due(crontab: str, now: time.struct_time) -> list[str]:
    """The commands of `crontab` whose five time fields match `now` (numbers, *, a-b, /n, ,)."""
    values = (now.tm_min, now.tm_hour, now.tm_mday, now.tm_mon, (now.tm_wday + 1) % 7)
    limits = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
    out = []
    for line in crontab.splitlines():
        words = line.split(None, 5)
        if len(words) < 6 or words[0].startswith("#"):
            continue
        try:
            if all(
                _matches(f, v, *lim) or (lim[1] == 7 and v == 0 and _matches(f, 7, *lim))
                for f, v, lim in zip(words[:5], values, limits, strict=True)
            ):
                out.append(words[5])
        except ValueError:
            continue  # names (jan, mon) and @reboot are not emulated
    return out


def _matches(field: str, value: int, low: int, high: int) -> bool:
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if slash else 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = int(first), int(last)
        else:
            start = int(span)
            end = high if slash else start
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


def crond(folder: str) -> int:
    """busybox crond -f for a host whose busybox has none: each minute, run what is due."""
    ensure_router()
    while True:
        time.sleep(60 - time.time() % 60)
        now = time.localtime()
        for table in sorted(lab_path(folder).iterdir()):
            try:
                commands = due(table.read_text(encoding="utf-8"), now)
            except OSError:
                continue
            for command in commands:
                log(f"crond: USER {table.name} cmd {command}")
                subprocess.Popen(
                    ["/bin/sh", "-c", command],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )


def stop() -> int:
    pid = int(_state().get("pid") or 0)
    if pid and _is_crond(pid):
        log(f"[#] kill {pid}")
        os.kill(pid, signal.SIGTERM)
    _save(False)
    return 0


def _is_crond(pid: int) -> bool:
    try:
        return b"crond" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def initd_main(argv: list[str] | None = None) -> int:
    actions = {
        "start": start,
        "boot": start,
        "stop": stop,
        "restart": lambda: stop() or start(),
        "reload": lambda: stop() or start(),
    }
    args = sys.argv[1:] if argv is None else argv
    return guarded("cron", lambda: initd.dispatch("cron", args, actions))


if __name__ == "__main__" and sys.argv[1:2] == ["crond"]:
    sys.exit(crond(sys.argv[2] if len(sys.argv) > 2 else CRONTABS))
