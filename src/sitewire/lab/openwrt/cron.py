"""`/etc/init.d/cron` of a lab router: busybox crond over /etc/crontabs, as OpenWrt runs it.

OpenWrt's script refuses to start while /etc/crontabs is empty (reference §4). In a real lab
router (root `/`) a busybox crond is started and its pid recorded; with SITEWIRE_LAB_ROOT the
crontab's commands would not exist on the host, so only the running state is recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
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
        busybox = shutil.which("busybox") or "/usr/bin/busybox"
        argv = [busybox, "crond", "-f", "-c", CRONTABS, "-l", "5"]
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
