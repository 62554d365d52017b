"""What tailscaled does when another program deletes its policy rules: it puts them back.

netifd flushes every `ip rule` when it (re)starts (iprule.c: system_flush_iprules), so on a real
OpenWrt router `/etc/init.d/network restart` removes tailscaled's rules 5210-5270; tailscaled
watches netlink and restores them (wgengine/router's onIPRuleDeleted). The stand-in has no
daemon of its own, so `tailscale lab-watch` is that part: it follows `ip -o monitor rule` and,
after a rule of its range is deleted, runs what `lab-sync` runs. `lab-provision` starts it, in a
session of its own, with its PID in /var/run/lab-tailscaled.pid (lab down kills it by PID with
everything else in the router's namespaces).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from sitewire.errors import SitewireError
from sitewire.lab.tailnet import engine
from sitewire.lab.tailnet.base import Paths
from sitewire.lab.tailnet.routing import BASE_PRIORITY, MWAN3_BASE_PRIORITY
from sitewire.lab.tailnet.state import router_lock

PID_FILE = Path("/var/run/lab-tailscaled.pid")
LOG_FILE = Path("/tmp/log/tailscaled.log")
SETTLE = 0.3  # seconds: one restore after a burst of deletions, as tailscaled's limiter does
_PRIORITY = re.compile(r"^Deleted\s+(\d+):")


def ours(line: str) -> bool:
    """A `Deleted <prio>: ...` line of `ip monitor rule` for one of tailscaled's rules."""
    match = _PRIORITY.match(line)
    if match is None:
        return False
    priority = int(match[1])
    return any(base <= priority < base + 100 for base in (BASE_PRIORITY, MWAN3_BASE_PRIORITY))


def running() -> bool:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def start() -> None:
    """Start the watcher unless one runs (inside a lab router only: it needs the real paths)."""
    if running():
        return
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOG_FILE.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitewire.lab.tailscale", "lab-watch"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    PID_FILE.write_text(f"{proc.pid}\n")


def run(paths: Paths) -> None:
    monitor = subprocess.Popen(
        ["ip", "-o", "monitor", "rule"], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert monitor.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_feed, args=(monitor.stdout, lines), daemon=True).start()
    while True:
        if not ours(lines.get()):
            continue
        time.sleep(SETTLE)
        with contextlib.suppress(queue.Empty):
            while True:  # the rest of the burst: one restore for all of it
                lines.get_nowait()
        try:
            with router_lock(paths):
                engine.apply(paths)
            print("router: somebody deleted ip rules; restored Tailscale's", flush=True)
        except SitewireError as exc:
            print(f"router: restoring ip rules failed: {exc}", flush=True)


def _feed(source: Iterable[str], lines: queue.Queue[str]) -> None:
    for line in source:
        lines.put(line)
