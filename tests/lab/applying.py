"""Helpers for apply tests: run `apply_network` against a lab, and count pings lost meanwhile."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitewire.cli.apply import lab_reach
from sitewire.cli.report import lines_for
from sitewire.deploy.apply import apply_network
from sitewire.deploy.changes import plan_with
from sitewire.deploy.decide import Dial, settle
from sitewire.deploy.events import Event
from sitewire.deploy.run import Options, Outcome
from sitewire.lab.host import host_argv, router_argv
from sitewire.lab.state import LabState
from sitewire.pipeline import open_workspace


@dataclass
class Recorder:
    """The apply's observer: keeps every event and the lines a person would read; answers yes."""

    lines: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def event(self, event: Event) -> None:
        self.events.append(event)
        self.lines += lines_for(event)

    def ask(self, question: str) -> bool:
        self.lines.append(f"? {question}")
        return True

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def write_spec(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def apply_lab(
    state: LabState, spec_path: Path, dial: Dial | None = None, **options: Any
) -> tuple[Outcome, Recorder]:
    """`sitewire apply SPEC --lab --yes` in-process, against `state` (built from a superset);
    `dial` opens the connections (default: SSH)."""
    ws0 = open_workspace(spec_path)
    where = lab_reach(state, ws0.spec.sites)
    ws = open_workspace(spec_path, where.lock_path, where.keys_path)
    opts = Options(**{"yes": True, "env": where.env, **options})
    ui = Recorder()
    outcome = asyncio.run(apply_network(ws, where.targets, where.creds, opts, ui, dial=dial))
    return outcome, ui


def settle_lab(state: LabState, spec_path: Path, verb: str) -> tuple[int, Recorder]:
    """`sitewire confirm|rollback SPEC --lab` in-process: how many sites had one pending."""
    ws0 = open_workspace(spec_path)
    where = lab_reach(state, ws0.spec.sites)
    ws = open_workspace(spec_path, where.lock_path, where.keys_path)
    ui = Recorder()
    done = asyncio.run(settle(plan_with(ws, {}, {}), where.targets, where.creds, verb, ui))
    return done, ui


def router(state: LabState, site: str, *argv: str) -> str:
    done = subprocess.run(
        router_argv(state, site, argv), capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def config_files(state: LabState, site: str) -> dict[str, bytes]:
    """The router's files apply may touch, byte for byte ("" when absent)."""
    out = {}
    for path in ("/etc/config/network", "/etc/config/firewall", "/etc/crontabs/root"):
        done = subprocess.run(
            router_argv(state, site, ["cat", path]), capture_output=True, check=False, timeout=30
        )
        out[path] = done.stdout if done.returncode == 0 else b""
    return out


class Pinger:
    """`ping -i 0.01` from SITE's LAN host to ADDRESS, for as long as the `with` lasts.

    ping counts a request whose reply is still on its way at SIGINT as lost (idle, half-second
    runs lost 1 packet in 2 of 40 here): one unanswered request at the very end is not a loss;
    a gap anywhere, or more than one at the end, is.
    """

    def __init__(self, state: LabState, site: str, address: str) -> None:
        self._argv = host_argv(state, site, ["ping", "-D", "-n", "-i", "0.01", address])
        self._proc: subprocess.Popen[str] | None = None
        self.sent = self.received = 0
        # The longest time without a reply, in seconds: WireGuard queues what it cannot send
        # while it handshakes and delivers it after, so `lost` alone understates an outage.
        self.gap = 0.0

    def __enter__(self) -> Pinger:
        self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)
        out, _ = self._proc.communicate(timeout=30)
        match = re.search(r"(\d+) packets transmitted", out)
        assert match is not None, out[-500:]
        replied = {int(n) for n in re.findall(r"icmp_seq=(\d+)", out)}
        times = [float(t) for t in re.findall(r"^\[(\d+\.\d+)\].*icmp_seq=", out, re.MULTILINE)]
        self.gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        sent = int(match[1])
        self.sent = sent - 1 if sent - max(replied, default=0) == 1 else sent
        self.received = len(replied)

    @property
    def lost(self) -> int:
        return self.sent - self.received


def unreachable(state: LabState, spec_path: Path) -> list[str]:
    """`lab test` for a lab built without a spec path: the probes the plan says must succeed."""
    from sitewire.lab.probe import run_probes
    from sitewire.lab.rehearse import await_handshakes, probes
    from sitewire.pipeline import make_plan

    plan = make_plan(open_workspace(spec_path, state.dir / "network.lock"))
    await_handshakes(state, plan)
    outcomes = asyncio.run(run_probes(list(probes(state, plan))))
    return [f"{o.probe.source} -> {o.probe.target}" for o in outcomes if o.failed]


def settled(state: LabState, site: str, iface: str = "wg0", seconds: float = 20.0) -> None:
    """Wait until netifd has IFACE up on an OpenWrt router: `ifup` and `network restart` return
    once netifd has the request, and the handler re-creates the device after that."""
    import json
    import time

    from sitewire.lab.host import router_exec

    deadline = time.monotonic() + seconds
    while True:
        done = router_exec(state, site, ["ubus", "call", f"network.interface.{iface}", "status"])
        try:
            status = json.loads(done.stdout) if done.returncode == 0 else {}
        except ValueError:
            status = {}
        device = router_exec(state, site, ["test", "-e", f"/sys/class/net/{iface}"])
        if status.get("up") is True and device.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{site}: {iface} not up {seconds:g} s after ifup: {status}")
        time.sleep(0.1)


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.5) -> bool:
    """Whether `condition` holds within `seconds` (checked every `step`)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
