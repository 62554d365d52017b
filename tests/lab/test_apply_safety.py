"""`sitewire apply` when things go wrong: a lockout, a killed controller, two applies, bad devices.

Every case ends with each router either as it was (byte for byte) or fully applied, never in
between, and the person told in one line what happened, where, and what to do about it.
Timers are short (15-40 s; apply's default is 300 s), so a revert is seen within the test;
the 30 and 40 s ones leave a busy machine time to reach the step that is cut short.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy import safety
from sitewire.deploy.problems import Kind
from sitewire.deploy.run import Result
from sitewire.deploy.ssh import Credentials, Target, connect
from sitewire.lab.host import lab_down, lab_up, router_exec
from sitewire.lab.state import LabState
from sitewire.plan import plan_network
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, config_files, router, write_spec
from tests.lab.conftest import MakeLab, unique_name

SITES = ("A", "B")
SITEWIRE = str(Path(sys.executable).with_name("sitewire"))
Files = dict[str, dict[str, bytes]]
STARTED: list[Controller] = []  # every `sitewire apply` process a test started


@pytest.fixture
def spec_lab(tmp_path: Path) -> Iterator[tuple[LabState, Path]]:
    """A factory seed lab that knows its spec, so `sitewire apply SPEC --lab` finds it."""
    spec = write_spec(tmp_path / "network.toml", SEED.read_text()).resolve()
    name = unique_name()
    try:
        plan = plan_network(spec_from(spec.read_text()))
        yield lab_up(plan, name, spec_path=str(spec)), spec
    finally:
        while STARTED:  # a test that failed half-way leaves no apply running
            if (controller := STARTED.pop()).proc.poll() is None:
                controller.kill()
        lab_down(name, missing_ok=True)


def all_files(state: LabState) -> Files:
    return {site: config_files(state, site) for site in SITES}


def switch(state: LabState, site: str) -> safety.SwitchStatus:
    script = safety.status_script()
    done = router_exec(state, site, ["sh", *script.argv], script.text)
    return safety.parse_status(done.stdout)


def settle(state: LabState, timeout: float) -> None:
    """Wait until no router has a pending commit: each timer has reverted, or none was armed."""
    end = time.monotonic() + timeout
    for site in SITES:
        while switch(state, site).pending is not None:
            assert time.monotonic() < end, f"{site}: still pending after {timeout} s"
            time.sleep(0.5)


async def ssh_to(state: LabState, site: str) -> None:
    creds = Credentials((state.client_key,), state.known_hosts, use_user_config=False)
    target = Target(site, str(state.layout.router(site).mgmt.ip))
    async with await connect(target, creds, timeout=5) as session:
        assert (await session.check("echo ok")).strip() == "ok"


def cli(state: LabState, spec: Path, *argv: str) -> list[str]:
    return [str(spec), "--lab", "--lab-name", state.name, *argv]


class Controller:
    """`sitewire apply` in its own process, its output read line by line as it comes."""

    def __init__(self, state: LabState, spec: Path, *argv: str) -> None:
        STARTED.append(self)
        self.proc = subprocess.Popen(
            [SITEWIRE, "apply", *cli(state, spec, "--yes", *argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, *markers: str, timeout: float = 120) -> str:
        """The first line containing all `markers`; fails if the apply ends first."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {markers} in {timeout} s:\n" + self.text)
            if line is None:
                pytest.fail(f"apply ended before a line with {markers}:\n" + self.text)
            self.lines.append(line)
            if all(m in line for m in markers):
                return line

    def kill(self) -> None:
        """SIGKILL: no finally, no goodbye on the SSH connections; the routers are on their own."""
        self.proc.kill()
        self.finish(30)

    def finish(self, timeout: float = 180) -> int:
        rc = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        self._queue.put(None)  # finished: a second call returns at once
        return rc

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def one_error_line(err: str, site: str) -> str:
    """The CLI's refusal: one line, naming the site, with the fix in parentheses."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sitewire: {site}"), err
    assert lines[0].endswith(")") and " (" in lines[0], err
    return lines[0]


# --- 1. a change that cuts the controller's own way in -------------------------------------------


@pytest.mark.lab
def test_a_lockout_is_reverted_by_the_router_itself(make_lab: MakeLab, tmp_path: Path) -> None:
    """B's LAN grows by a prefix holding the lab's management network: A's AllowedIPs capture
    it, and the `ip route` for it sends A's answers to the controller into the tunnel.

    `sitewire plan` has no way to know (it plans fine); a /25 rather than the whole /24, so the
    lab's connected mgmt route stays and comes back into use when the revert drops the capture.
    """
    state = make_lab(spec_from(SEED.read_text()))
    seed = write_spec(tmp_path / "network.toml", SEED.read_text())
    outcome, ui = apply_lab(state, seed)
    assert outcome.ok, ui.text
    mgmt = f"198.19.{state.layout.k}.0/25"
    assert state.layout.root_mgmt.ip in ipaddress.ip_network(mgmt)
    cut = write_spec(
        tmp_path / "cut.toml",
        SEED.read_text().replace('lan = ["192.168.7.0/24"]', f'lan = ["192.168.7.0/24", "{mgmt}"]'),
    )
    assert run(["plan", str(cut), "--lock", str(tmp_path / "cut.lock")]) == 0
    before = all_files(state)

    started = time.monotonic()
    outcome, ui = apply_lab(state, cut, revert_after=15)
    took = time.monotonic() - started
    a, b = outcome.sites["A"], outcome.sites["B"]
    assert not outcome.ok
    assert a.result in (Result.REVERTING, Result.ROLLED_BACK), ui.text
    assert any(p.kind is Kind.LOCKED_OUT and "locked out" in p.text for p in a.problems), ui.text
    assert b.result is Result.UNCHANGED, ui.text
    assert took < 15 + 30, f"apply took {took:.0f} s"
    settle(state, 30)
    assert switch(state, "A").commits[a.token or ""] is safety.Outcome.REVERTED
    assert all_files(state) == before  # byte for byte, both routers
    assert "dev mgmt" in router(state, "A", "ip", "route", "get", str(state.layout.root_mgmt.ip))
    asyncio.run(ssh_to(state, "A"))  # the controller's way in is back


# --- 2. the controller killed at each step -------------------------------------------------------


@pytest.mark.lab
def test_a_killed_apply_leaves_old_or_new_and_a_rerun_finishes(
    spec_lab: tuple[LabState, Path],
) -> None:
    state, spec = spec_lab
    before = all_files(state)

    # Before the backup: the first facts arrived, nothing armed yet (or just: then it reverts).
    apply = Controller(state, spec, "--revert-after", "15")
    apply.wait_for("A: OpenWrt")
    apply.kill()
    settle(state, 30)
    assert all_files(state) == before, apply.text

    # After the commit: A's uci batch is committed (its first step is about to run), B's not.
    # (Timers long enough for a busy machine to get there: a step starts only while 5 s are left.)
    apply = Controller(state, spec, "--revert-after", "30")
    apply.wait_for("A: [#]", "(")
    apply.kill()
    assert all_files(state)["A"] != before["A"]
    settle(state, 40)
    assert all_files(state) == before, apply.text

    # Before the confirm: both configured and verified; the confirm may or may not have left.
    apply = Controller(state, spec, "--revert-after", "40")
    apply.wait_for("handshake with")
    apply.kill()
    configured = all_files(state)
    settle(state, 50)
    after = all_files(state)
    for site in SITES:
        assert after[site] in (before[site], configured[site]), f"{site}\n{apply.text}"
        assert configured[site] != before[site]

    again = Controller(state, spec, "--revert-after", "60")
    assert again.finish() == 0, again.text
    assert "summary:" in again.text or "nothing to change" in again.text, again.text
    for site in SITES:
        if after[site] == configured[site]:  # kept by a confirm that left before the kill
            assert switch(state, site).pending is None
    assert run(["lab", "test", "--name", state.name]) == 0


# --- 3. two applies at once ----------------------------------------------------------------------


@pytest.mark.lab
def test_a_second_apply_is_refused_while_one_runs_or_is_pending(
    spec_lab: tuple[LabState, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, spec = spec_lab
    before = all_files(state)
    first = Controller(state, spec, "--no-confirm", "--revert-after", "90")
    first.wait_for("backed up")
    # This machine: the flock on the spec.
    assert run(["apply", *cli(state, spec, "--yes")]) != 0
    out = capsys.readouterr()
    assert "another sitewire apply" in out.err, out
    assert "Traceback" not in out.out + out.err
    assert out.out == ""  # refused before reading a router
    assert first.finish() == 0, first.text
    assert "not confirmed (--no-confirm)" in first.text
    pending = all_files(state)
    assert pending != before

    # The routers: each holds the first apply's pending commit.
    assert run(["apply", *cli(state, spec, "--yes")]) != 0
    out = capsys.readouterr()
    line = one_error_line(out.err, "")
    assert line.startswith(("sitewire: A: ", "sitewire: B: ")), line
    assert "another apply is in progress (commit" in line and "sitewire rollback" in line
    assert "Traceback" not in out.out + out.err
    assert "backed up" not in out.out
    assert all_files(state) == pending

    assert run(["rollback", *cli(state, spec)]) == 0
    assert "2 site(s) rolled back" in capsys.readouterr().out
    assert all_files(state) == before


# --- 4. bad input from the live side -------------------------------------------------------------

BROKEN_OPKG = r"""#!/bin/sh
# a feed without WireGuard: what opkg says for a package it does not know
[ "$1" = install ] || exec /usr/bin/opkg.real "$@"
shift
for p; do echo "Unknown package '$p'."; done
echo "Collected errors:" >&2
for p; do echo " * opkg_install_cmd: Cannot install package $p." >&2; done
exit 255
"""

GARBAGE_UCI = r"""#!/bin/sh
printf 'Segmentation fault\n\001\002 network.lan=?? %s\n' "$*"
"""


@pytest.mark.lab
def test_bad_devices_are_refused_in_one_line_and_nothing_is_half_applied(
    spec_lab: tuple[LabState, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, spec = spec_lab
    before = all_files(state)
    known = state.known_hosts.read_text()
    a_host = str(state.layout.router("A").mgmt.ip)

    def refused(*expected: str) -> str:
        assert run(["apply", *cli(state, spec, "--yes", "--revert-after", "15")]) == 1
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        line = one_error_line(out.err, "A")
        for text in expected:
            assert text in line, line
        assert all_files(state) == before, line
        for site in SITES:
            assert switch(state, site).pending is None, line
        return line

    # (a) a wrong host key: none for A, then B's key under A's address.
    lines = known.splitlines()
    a_line = next(x for x in lines if x.startswith(f"{a_host} "))
    b_line = next(x for x in lines if x != a_line)
    state.known_hosts.write_text(b_line + "\n")
    try:
        refused("host key not in known_hosts", f"ssh-keyscan -p 22 {a_host} >> {state.known_hosts}")
        state.known_hosts.write_text(f"{a_host} {b_line.split(' ', 1)[1]}\n{b_line}\n")
        refused(
            f"A (root@{a_host}): host key differs from the one in {state.known_hosts}",
            f"ssh-keygen -R '{a_host}' -f {state.known_hosts}",
        )
    finally:
        state.known_hosts.write_text(known)

    # (b) no WireGuard support: the router's feed has no wireguard-tools.
    router(state, "A", "mv", "/usr/bin/opkg", "/usr/bin/opkg.real")
    router(state, "A", "sh", "-c", f"cat > /usr/bin/opkg <<'EOF'\n{BROKEN_OPKG}EOF\n")
    router(state, "A", "chmod", "755", "/usr/bin/opkg")
    try:
        refused("could not install wireguard-tools", "Cannot install package", "package feeds")
    finally:
        router(state, "A", "mv", "-f", "/usr/bin/opkg.real", "/usr/bin/opkg")

    # (c) a full /tmp: no room for the backup (one page: the first copy fits, the second not).
    # A tmpfs is 1777 unless told otherwise, which the switch rightly refuses as not private.
    mounted = router_exec(
        state, "A", ["mount", "-t", "tmpfs", "-o", "size=4k,mode=0700", "tmpfs", safety.BASE]
    )
    assert mounted.returncode == 0, mounted.stderr
    try:
        refused("cannot back up /etc/config/", "no space", "df -h /tmp")
    finally:
        router(state, "A", "umount", safety.BASE)

    # (c2) a full flash overlay: `uci commit` would keep the old files and say nothing. The
    # router's /etc/config on a 64 KiB tmpfs holding its own files, filled up.
    fill = (
        "set -e; mkdir -p /tmp/swcfg; cp -a /etc/config/. /tmp/swcfg/; "
        "mount -t tmpfs -o size=64k,mode=0755 tmpfs /etc/config; cp -a /tmp/swcfg/. /etc/config/; "
        "dd if=/dev/zero of=/etc/config/.fill bs=1k count=64 2>/dev/null || true"
    )
    assert router_exec(state, "A", ["sh", "-c", fill]).returncode == 0
    try:
        refused("KiB free in /etc (the flash overlay); a change needs", "df -h /etc")
    finally:
        router(state, "A", "umount", "/etc/config")

    # (d) uci: output it cannot parse, then changes nobody committed.
    router(state, "A", "mv", "/usr/sbin/uci", "/usr/sbin/uci.real")
    router(state, "A", "sh", "-c", f"cat > /usr/sbin/uci <<'EOF'\n{GARBAGE_UCI}EOF\n")
    router(state, "A", "chmod", "755", "/usr/sbin/uci")
    try:
        refused("uci export network", "does not understand", "on the router")
    finally:
        router(state, "A", "mv", "-f", "/usr/sbin/uci.real", "/usr/sbin/uci")
    router(state, "A", "uci", "set", "network.lan.sitewire_test=1")
    try:
        refused("uncommitted change", "'uci changes'", "'uci revert'")
    finally:
        router(state, "A", "uci", "revert", "network")

    # Nothing was left behind: no lock, no stray change; the same apply now goes through.
    assert run(["apply", *cli(state, spec, "--yes", "--revert-after", "60")]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert out.out.count("verified and confirmed") == 2, out.out
