"""The revert switch's scripts: syntax under BusyBox ash and dash, then run for real under
`busybox sh` against a temp directory standing in for the router's root."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewire.deploy import safety
from sitewire.deploy.safety import (
    CommitInProgress,
    Device,
    Launcher,
    Outcome,
    SafetyError,
    SafetyScript,
)
from sitewire.deploy.ssh import RemoteResult, Target

BUSYBOX = shutil.which("busybox")
DASH = shutil.which("dash")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox")

NETWORK = "/etc/config/network"
FIREWALL = "/etc/config/firewall"
CRONTAB = "/etc/crontabs/root"  # absent before the commit
PATHS = (NETWORK, FIREWALL, CRONTAB)
FAKE_UCI = """#!/bin/sh
[ "$1" = changes ] && cat "$BOX/uci-changes" 2>/dev/null
exit 0
"""


class Box:
    """A router's root in a temp dir, BusyBox applets first on PATH, a fake `uci`."""

    def __init__(self, root: Path, launcher: Launcher) -> None:
        self.root = root
        bin_dir = root / "bin"
        bin_dir.mkdir()
        assert BUSYBOX is not None
        for applet in ("sh", "start-stop-daemon", "setsid"):
            (bin_dir / applet).symlink_to(BUSYBOX)
        (bin_dir / "uci").write_text(FAKE_UCI)
        (bin_dir / "uci").chmod(0o755)
        self.device = Device(launcher, root=str(root), shell=str(bin_dir / "sh"))
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "BOX": str(root)}
        (root / "etc/config").mkdir(parents=True)
        # Bytes a text-mode copy would mangle: no final newline, a tab, a NUL, CRLF, UTF-8.
        self.write(NETWORK, b"config interface 'lan'\n\toption x '\xc3\xa9'\r\n\x00tail", 0o600)
        self.write(FIREWALL, b"config defaults\n\toption input 'REJECT'\n")

    def path(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def write(self, device_path: str, data: bytes, mode: int = 0o644) -> None:
        path = self.path(device_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    def snapshot(self) -> dict[str, tuple[bytes, int] | None]:
        out: dict[str, tuple[bytes, int] | None] = {}
        for p in PATHS:
            path = self.path(p)
            out[p] = (path.read_bytes(), path.stat().st_mode) if path.exists() else None
        return out

    def change(self) -> None:
        self.write(NETWORK, b"config interface 'lan'\n\toption proto 'none'\n")
        self.path(FIREWALL).unlink()
        self.write(CRONTAB, b"* * * * * /usr/bin/wireguard_watchdog\n")

    def run(self, script: SafetyScript) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.device.shell, *script.argv],
            input=script.text,
            text=True,
            capture_output=True,
            env=self.env,
            timeout=30,
            check=False,
        )

    def ok(self, script: SafetyScript) -> list[str]:
        done = self.run(script)
        answer = safety.parse_answer(done.stdout)
        assert answer is not None and answer.ok, done.stdout + done.stderr
        return list(answer.words)

    def commit_dir(self, token: str) -> Path:
        return self.root / "tmp/sitewire" / token

    def wait_for(self, token: str, marker: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.commit_dir(token) / marker).exists():
            assert time.monotonic() < deadline, f"no {marker!r} after {timeout} s"
            time.sleep(0.05)

    def timer_pid(self) -> int | None:
        try:
            return int((self.root / "var/run/sitewire-revert.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop_timer(self) -> None:
        pid = self.timer_pid()
        if pid is None:
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.root).encode() in cmdline:  # ours, not a reused pid
            os.kill(pid, signal.SIGTERM)

    def session(self) -> LocalShell:
        return LocalShell(self)


class LocalShell:
    """The async helpers' side of a Session, run by a local BusyBox instead of over SSH."""

    def __init__(self, box: Box) -> None:
        self.box = box
        self.target = Target("A", "127.0.0.1")
        self.commands: list[str] = []

    async def run(self, command: str, stdin: str | None = None) -> RemoteResult:
        self.commands.append(command)
        proc = await asyncio.create_subprocess_exec(
            self.box.device.shell,
            "-c",
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.box.env,
        )
        out, err = await proc.communicate((stdin or "").encode())
        return RemoteResult(proc.returncode or 0, out.decode(), err.decode())


@pytest.fixture(params=list(Launcher))
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Box]:
    made = Box(tmp_path, request.param)
    try:
        yield made
    finally:
        made.stop_timer()


def gone(pid: int) -> bool:
    """Exited, or a zombie: init in a container need not reap the detached timer."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def arm(box: Box, token: str, seconds: int = 1) -> list[str]:
    reloads = [f"echo reloaded >> {box.root}/reloads", "/etc/init.d/nowhere reload"]
    script = safety.backup_and_arm_script(token, PATHS, seconds, reloads, box.device)
    return box.ok(script)


def every_script(device: Device) -> list[tuple[str, str]]:
    token = "0123456789abcdef"
    reloads = ["/etc/init.d/network restart", "/etc/init.d/firewall reload"]
    scripts = [
        safety.backup_script(token, PATHS, device),
        safety.arm_script(token, 5, reloads, device),
        safety.backup_and_arm_script(token, PATHS, 5, reloads, device),
        safety.backup_and_arm_script(token, PATHS, 5, ["live_restore wg0"], device, "wg0"),
        safety.confirm_script(token, device),
        safety.rollback_script(token, device),
        safety.status_script(device),
    ]
    texts = [(s.verb, s.text) for s in scripts]
    return [*texts, ("revert.sh", safety.revert_text(token, reloads, device))]


@pytest.mark.parametrize("device", [safety.OPENWRT, safety.LINUX], ids=["openwrt", "linux"])
@pytest.mark.parametrize("shell", ["busybox", "dash"])
def test_every_script_is_posix_sh_for_ash_and_dash(device: Device, shell: str) -> None:
    argv = [BUSYBOX, "sh", "-n"] if shell == "busybox" else [DASH, "-n"]
    if argv[0] is None:
        pytest.skip(f"needs {shell}")
    for verb, text in every_script(device):
        done = subprocess.run(
            [str(a) for a in argv], input=text, text=True, capture_output=True, check=False
        )
        assert done.returncode == 0, f"{verb}: {done.stderr}"


def test_scripts_are_values_with_the_token_on_the_command_line() -> None:
    script = safety.confirm_script("00ff00ff00ff00ff")
    assert script.command == "sh -s -- sitewire-confirm 00ff00ff00ff00ff"
    assert "T=00ff00ff00ff00ff" in script.text
    assert safety.status_script().command == "sh -s -- sitewire-status"
    openwrt = safety.arm_script("00ff00ff00ff00ff", 30, ["/etc/init.d/network restart"])
    assert 'start-stop-daemon -S -b -m -p "$P" -x "$SH" --' in openwrt.text
    linux = safety.arm_script("00ff00ff00ff00ff", 30, [], safety.LINUX)
    assert '(setsid "$SH"' in linux.text and "start-stop-daemon -S" not in linux.text


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: safety.confirm_script("XYZ"), "is not 8-64 lowercase hex"),
        (lambda: safety.backup_script("00ff00ff", ["etc/config/network"]), "plain absolute"),
        (lambda: safety.backup_script("00ff00ff", ["/etc/x y"]), "plain absolute"),
        (lambda: safety.backup_script("00ff00ff", ["/etc/../shadow"]), "plain absolute"),
        (lambda: safety.backup_script("00ff00ff", [NETWORK, NETWORK]), "duplicate"),
        (lambda: safety.backup_script("00ff00ff", []), "nothing to back up"),
        (lambda: safety.arm_script("00ff00ff", 0, []), "at least 1 s"),
        (lambda: safety.arm_script("00ff00ff", 5, ["a\nb"]), "one non-empty line"),
        (lambda: safety.backup_script("00ff00ff", PATHS, live="wg0; reboot"), "interface name"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=message):
        call()


def test_revert_restores_byte_identical_files_and_deletes_new_ones(box: Box) -> None:
    before = box.snapshot()
    assert before[CRONTAB] is None
    token = safety.new_token()
    assert arm(box, token, seconds=1) == ["armed", token, "1"]
    box.change()
    box.wait_for(token, "reverted")
    assert box.snapshot() == before  # bytes and modes; the crontab is gone again
    assert (box.root / "reloads").read_text() == "reloaded\n"
    log = (box.commit_dir(token) / "log").read_text()
    assert "reverting: not confirmed in time" in log
    assert "restored 3 of 3 files byte for byte" in log
    assert "[#] /etc/init.d/nowhere reload" in log and "exit 127" in log
    assert not (box.root / "tmp/sitewire/lock").exists()
    assert not (box.commit_dir(token) / "files").exists()
    assert box.ok(safety.status_script(box.device)) == ["status"]


def test_confirm_prevents_the_revert(box: Box) -> None:
    token = safety.new_token()
    arm(box, token, seconds=1)
    box.change()
    changed = box.snapshot()
    timer = box.timer_pid()
    assert box.ok(safety.confirm_script(token, box.device)) == ["confirmed", token]
    time.sleep(1.5)
    assert box.snapshot() == changed
    assert not (box.root / "reloads").exists()
    assert (box.commit_dir(token) / "confirmed").exists()
    assert timer is not None and gone(timer)
    assert not (box.root / "tmp/sitewire/lock").exists()
    # A confirm that lost its answer is sent again: still confirmed.
    assert box.ok(safety.confirm_script(token, box.device)) == ["confirmed", token]


def test_a_second_arm_is_refused_while_one_is_pending(box: Box) -> None:
    first, second = safety.new_token(), safety.new_token()
    arm(box, first, seconds=30)
    reloads = ["true"]
    script = safety.backup_and_arm_script(second, PATHS, 30, reloads, box.device)
    done = box.run(script)
    answer = safety.parse_answer(done.stdout)
    assert answer is not None and not answer.ok and answer.words[:2] == ("busy", first)
    error = safety.error_for(answer, RemoteResult(3, done.stdout, ""), "A", "arm")
    assert isinstance(error, CommitInProgress) and error.token == first
    assert str(error).startswith(f"A: another apply is in progress (commit {first}, reverts in")
    assert not box.commit_dir(second).exists()
    assert box.ok(safety.confirm_script(first, box.device)) == ["confirmed", first]
    assert arm(box, second, seconds=30)[0] == "armed"
    assert not box.commit_dir(first).exists()  # pruned: it was decided


def test_a_lock_whose_owner_and_timer_are_gone_is_stale(box: Box) -> None:
    # The SSH session died right after the backup: nothing was changed, nobody will revert.
    stale = safety.new_token()
    assert box.ok(safety.backup_script(stale, PATHS, box.device)) == ["backup", stale, "3"]
    status = safety.parse_status(box.run(safety.status_script(box.device)).stdout)
    assert status.pending is None and status.stale_lock == stale
    assert status.commits == {stale: Outcome.ABANDONED}
    token = safety.new_token()
    assert arm(box, token, seconds=30)[0] == "armed"
    log = (box.commit_dir(token) / "log").read_text()
    assert f"took the stale lock of commit {stale}: nobody held it" in log
    assert not box.commit_dir(stale).exists()
    status = safety.parse_status(box.run(safety.status_script(box.device)).stdout)
    assert status.pending is not None and status.pending.token == token
    assert status.pending.seconds_left is not None and 28 <= status.pending.seconds_left <= 30


def test_of_two_arms_at_the_same_moment_exactly_one_wins(box: Box) -> None:
    tokens = [safety.new_token() for _ in range(4)]
    scripts = [safety.backup_and_arm_script(t, PATHS, 30, ["true"], box.device) for t in tokens]
    procs = [
        subprocess.Popen(
            [box.device.shell, *script.argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=box.env,
        )
        for script in scripts
    ]
    answers = [
        safety.parse_answer(proc.communicate(script.text, timeout=30)[0])
        for proc, script in zip(procs, scripts, strict=True)
    ]
    won = [t for t, a in zip(tokens, answers, strict=True) if a is not None and a.ok]
    assert len(won) == 1
    refused = [a.words[:2] for a in answers if a is not None and not a.ok]
    assert refused == [("busy", won[0])] * 3


def test_a_script_cut_short_in_transit_runs_nothing(box: Box) -> None:
    before = box.snapshot()
    text = safety.backup_and_arm_script(safety.new_token(), PATHS, 1, ["true"], box.device).text
    ends = [len(text) - n for n in range(2, 40)]  # inside `main "$@" </dev/null` and `}`
    # (the whole text but its final newline is the whole script: not a cut)
    for cut in [*range(0, len(text) - 1, len(text) // 20), *ends]:
        subprocess.run(
            [box.device.shell, "-s"], input=text[:cut], text=True, capture_output=True, env=box.env
        )
        assert not (box.root / "tmp/sitewire").exists(), f"cut at {cut}: {text[cut - 40 : cut]!r}"
    assert box.snapshot() == before


def test_rollback_reverts_at_once(box: Box) -> None:
    before = box.snapshot()
    token = safety.new_token()
    arm(box, token, seconds=60)
    box.change()
    started = time.monotonic()
    assert box.ok(safety.rollback_script(token, box.device)) == ["reverted", token]
    assert time.monotonic() - started < 5
    assert box.snapshot() == before
    assert "rollback requested" in (box.commit_dir(token) / "log").read_text()
    # Too late to confirm now; the failure says so.
    done = box.run(safety.confirm_script(token, box.device))
    answer = safety.parse_answer(done.stdout)
    assert answer is not None and answer.words == ("reverted", token)


def test_rollback_of_a_commit_whose_timer_died_still_reverts(box: Box) -> None:
    before = box.snapshot()
    token = safety.new_token()
    arm(box, token, seconds=60)
    box.change()
    box.stop_timer()
    assert box.ok(safety.rollback_script(token, box.device)) == ["reverted", token]
    assert box.snapshot() == before


def test_uncommitted_uci_changes_refuse_to_arm(box: Box) -> None:
    (box.root / "uci-changes").write_text("network.lan.ipaddr='10.0.0.1'\n-firewall.cfg01\n")
    token = safety.new_token()
    done = box.run(safety.backup_and_arm_script(token, PATHS, 5, [], box.device))
    answer = safety.parse_answer(done.stdout)
    assert answer is not None and answer.words == ("uci-changes", "firewall", "network")
    error = safety.error_for(answer, RemoteResult(3, done.stdout, ""), "B", "arm")
    assert str(error) == (
        "B: uncommitted uci changes in 'firewall', 'network' (look at them with 'uci changes'"
        " on the router, then 'uci commit' or 'uci revert')"
    )
    assert not (box.root / "tmp/sitewire/lock").exists()


def test_the_async_helpers_drive_a_whole_commit(box: Box) -> None:
    before = box.snapshot()
    session = box.session()
    reloads = [f"echo reloaded >> {box.root}/reloads"]

    async def scenario() -> None:
        assert await safety.pending(session, device=box.device) is None
        token = safety.new_token()
        await safety.arm(session, token, PATHS, 30, reloads, device=box.device)
        found = await safety.pending(session, device=box.device)
        assert found is not None and found.token == token
        other = safety.new_token()
        with pytest.raises(CommitInProgress, match=f"commit {token}, reverts in"):
            await safety.arm(session, other, PATHS, 30, reloads, device=box.device)
        box.change()
        assert await safety.rollback(session, token, device=box.device) is Outcome.REVERTED
        assert await safety.outcome(session, token, device=box.device) is Outcome.REVERTED
        with pytest.raises(SafetyError, match="already reverted by the router's timer"):
            await safety.confirm(session, token, device=box.device)
        await safety.arm(session, other, PATHS, 30, reloads, device=box.device)
        await safety.confirm(session, other, device=box.device)
        assert await safety.outcome(session, other, device=box.device) is Outcome.CONFIRMED
        with pytest.raises(SafetyError, match="A: no commit 0000000000000000 on the router"):
            await safety.confirm(session, "0" * 16, device=box.device)

    asyncio.run(scenario())
    assert box.snapshot() == before
    assert session.commands[0] == "sh -s -- sitewire-status"
    assert session.commands[1].startswith("sh -s -- sitewire-arm ")


def test_nonsense_from_the_device_is_an_error_naming_the_site() -> None:
    result = RemoteResult(127, "", "sh: cp: not found\n")
    error = safety.error_for(safety.parse_answer(result.stdout), result, "B", "arm")
    assert str(error).startswith("B: unexpected answer to arm: 'sh: cp: not found' (")


def test_status_lines_parse() -> None:
    status = safety.parse_status(
        "lock pending 00ff00ff00ff00ff 17\n"
        "commit 00ff00ff00ff00ff pending\ncommit 11ff00ff00ff00ff reverted\nok status\n"
    )
    assert status.pending == safety.PendingCommit("00ff00ff00ff00ff", 17)
    assert status.commits["11ff00ff00ff00ff"] is Outcome.REVERTED
    arming = safety.parse_status("lock pending 00ff00ff00ff00ff -\nok status\n")
    assert arming.pending == safety.PendingCommit("00ff00ff00ff00ff", None)


@pytest.mark.parametrize("kind", ["world-writable", "group-writable", "someone-elses", "symlink"])
def test_a_commit_dir_that_is_not_roots_alone_is_refused(box: Box, kind: str) -> None:
    """Issue 9: another local user who made /tmp/sitewire first could swap revert.sh (run as
    root by the timer) or plant `.guard` as a symlink that the lock's redirect truncates."""
    base = box.root / "tmp/sitewire"
    base.parent.mkdir(parents=True, exist_ok=True)
    elsewhere = box.root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if kind in ("world-writable", "group-writable"):
        base.mkdir()
        base.chmod(0o1777 if kind == "world-writable" else 0o775)
    elif kind == "someone-elses":
        base.mkdir(mode=0o700)
        os.chown(base, 65534, 65534)
    else:
        base.symlink_to(elsewhere)
    planted = box.root / "etc/passwd-standin"
    planted.write_text("root:x:0:0\n")
    if kind != "symlink":
        (base / ".guard").symlink_to(planted)
    before = box.snapshot()
    token = safety.new_token()
    done = box.run(safety.backup_and_arm_script(token, PATHS, 5, ["true"], box.device))
    answer = safety.parse_answer(done.stdout)
    assert answer is not None and not answer.ok and answer.words[0] == "unsafe", done.stdout
    error = safety.error_for(answer, RemoteResult(3, done.stdout, ""), "B", "arm")
    assert str(error).startswith(
        f"B: {box.root}/tmp/sitewire is not a directory only this user can write"
    )
    assert "ls -ld" in str(error)
    assert box.snapshot() == before
    assert planted.read_text() == "root:x:0:0\n"
    assert not (base / token).exists() and not (base / "lock").exists()
    assert list(elsewhere.iterdir()) == []
    assert box.timer_pid() is None


@pytest.mark.parametrize("mode", [None, 0o755])
def test_a_commit_dir_of_ours_is_made_private(box: Box, mode: int | None) -> None:
    """None: made by the backup; 0755: left by an older sitewire or a hand-run commands.sh."""
    if mode is not None:
        (box.root / "tmp/sitewire").mkdir(parents=True)
        (box.root / "tmp/sitewire").chmod(mode)
    token = safety.new_token()
    arm(box, token, seconds=30)
    base = box.root / "tmp/sitewire"
    assert base.stat().st_mode & 0o777 == 0o700 and base.stat().st_uid == os.getuid()
    assert box.ok(safety.confirm_script(token, box.device)) == ["confirmed", token]


# --- a restart inside the window (issue 13): the backup on flash and the boot hook ---------------

FLASH = "etc/sitewire/pending"


def power_cut(box: Box) -> None:
    """What a restart leaves: the timer gone, /tmp and /run empty; flash (/etc) as it was."""
    pid = box.timer_pid()
    box.stop_timer()
    if pid is not None:
        deadline = time.monotonic() + 5
        while not gone(pid):
            assert time.monotonic() < deadline, "the timer did not end"
            time.sleep(0.02)
    for volatile in ("tmp", "var/run"):
        shutil.rmtree(box.root / volatile, ignore_errors=True)


def boot(box: Box) -> subprocess.CompletedProcess[str]:
    """The boot hook as the init system runs it, before anything of the network starts."""
    hook = box.root / "etc/sitewire/boot-restore"
    assert hook.stat().st_mode & 0o777 == 0o755
    return subprocess.run(
        [box.device.shell, str(hook)], env=box.env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("moment", ["after-arm", "after-change"])
def test_a_restart_inside_the_window_boots_the_old_files(box: Box, moment: str) -> None:
    before = box.snapshot()
    token = safety.new_token()
    arm(box, token, seconds=60)
    kept = box.root / FLASH / token
    assert sorted(p.name for p in kept.iterdir()) == ["files", "manifest", "sums"]
    assert kept.parent.stat().st_mode & 0o777 == 0o700
    if moment == "after-change":
        box.change()
    power_cut(box)
    assert boot(box).returncode == 0
    assert box.snapshot() == before  # bytes and modes; the crontab made by the change is gone
    assert not kept.exists()
    assert (box.root / "etc/sitewire/reverted" / token).exists()
    status = safety.parse_status(box.run(safety.status_script(box.device)).stdout)
    assert status.pending is None and status.commits == {token: Outcome.BOOT_REVERTED}
    error = box.run(safety.confirm_script(token, box.device))
    assert safety.parse_answer(error.stdout) == safety.Answer(False, ("unknown", token))
    # The next boot finds nothing to do and changes nothing.
    box.change()
    changed = box.snapshot()
    assert boot(box).returncode == 0 and box.snapshot() == changed


def test_a_restart_after_confirm_keeps_the_new_files(box: Box) -> None:
    token = safety.new_token()
    arm(box, token, seconds=60)
    box.change()
    assert box.ok(safety.confirm_script(token, box.device)) == ["confirmed", token]
    changed = box.snapshot()
    assert not (box.root / FLASH / token).exists()
    power_cut(box)
    assert boot(box).returncode == 0
    assert box.snapshot() == changed
    assert not (box.root / "etc/sitewire/reverted").exists()


def test_a_timer_revert_removes_the_flash_backup(box: Box) -> None:
    token = safety.new_token()
    arm(box, token, seconds=1)
    box.change()
    box.wait_for(token, "reverted")
    assert not (box.root / FLASH / token).exists()


def test_an_arm_cut_off_while_writing_the_flash_backup_restores_nothing(box: Box) -> None:
    half = box.root / FLASH / "0123456789abcdef.new"
    half.mkdir(parents=True)
    (half / "manifest").write_text(f"1 present {NETWORK}\n")
    box.change()
    changed = box.snapshot()
    (box.root / "etc/sitewire").mkdir(exist_ok=True)
    script = safety.boot.hook_text(str(box.root))
    (box.root / "etc/sitewire/boot-restore").write_text(script)
    (box.root / "etc/sitewire/boot-restore").chmod(0o755)
    assert boot(box).returncode == 0
    assert box.snapshot() == changed and not half.exists()


def test_the_boot_hook_is_installed_once_and_enabled(box: Box) -> None:
    if box.device.launcher is Launcher.SETSID:
        pytest.skip("the OpenWrt device; Linux below")
    first = safety.new_token()
    arm(box, first, seconds=60)
    initd = box.root / "etc/init.d/sitewire"
    link = box.root / "etc/rc.d/S15sitewire"
    assert os.readlink(link) == "../init.d/sitewire"
    assert initd.stat().st_mode & 0o777 == 0o755
    text = initd.read_text()
    assert "START=15" in text and "boot() {\n\t/bin/sh /etc/sitewire/boot-restore" in text
    stamp = (initd.stat().st_mtime_ns, (box.root / "etc/sitewire/boot-restore").stat().st_mtime_ns)
    assert box.ok(safety.confirm_script(first, box.device))[0] == "confirmed"
    time.sleep(0.02)
    arm(box, safety.new_token(), seconds=60)
    again = (initd.stat().st_mtime_ns, (box.root / "etc/sitewire/boot-restore").stat().st_mtime_ns)
    assert again == stamp  # no flash write for a hook that is already right


@pytest.mark.parametrize("init", ["systemd", "rcS.d", "none"])
def test_linux_boot_hooks(tmp_path: Path, init: str) -> None:
    box = Box(tmp_path, Launcher.SETSID)
    box.device = Device(
        Launcher.SETSID, root=str(tmp_path), shell=box.device.shell, boot=safety.Boot.SYSTEMD
    )
    if init == "systemd":
        (tmp_path / "lib/systemd/system").mkdir(parents=True)
    elif init == "rcS.d":
        (tmp_path / "etc/rcS.d").mkdir(parents=True)
    try:
        token = safety.new_token()
        arm(box, token, seconds=60)
        unit = tmp_path / "etc/systemd/system/sitewire-boot.service"
        wants = tmp_path / "etc/systemd/system/sysinit.target.wants/sitewire-boot.service"
        sysv = tmp_path / "etc/rcS.d/S01sitewire-boot"
        if init == "systemd":
            assert os.readlink(wants) == "/etc/systemd/system/sitewire-boot.service"
            text = unit.read_text()
            assert "Before=network-pre.target" in text and "DefaultDependencies=no" in text
            assert "ExecStart=/bin/sh /etc/sitewire/boot-restore" in text
            assert not sysv.exists()
        elif init == "rcS.d":
            assert os.readlink(sysv) == "../init.d/sitewire-boot"
            assert not unit.exists()
        else:
            assert not unit.exists() and not sysv.exists()
            assert "no systemd and no /etc/rcS.d" in (box.commit_dir(token) / "log").read_text()
        assert (tmp_path / FLASH / token / "manifest").exists()
    finally:
        box.stop_timer()


def test_a_flash_that_cannot_be_written_refuses_the_arm(box: Box) -> None:
    (box.root / "etc/sitewire").mkdir(parents=True)
    (box.root / "etc/sitewire/pending").write_text("a file where the directory goes\n")
    before = box.snapshot()
    token = safety.new_token()
    done = box.run(safety.backup_and_arm_script(token, PATHS, 30, ["true"], box.device))
    answer = safety.parse_answer(done.stdout)
    assert answer is not None and not answer.ok and answer.words[0] == "flash", done.stdout
    error = safety.error_for(answer, RemoteResult(3, done.stdout, ""), "B", "arm")
    assert "nothing was changed" in str(error) and "df -h /etc" in str(error)
    assert box.snapshot() == before and box.timer_pid() is None
    assert not (box.root / "tmp/sitewire/lock").exists()
