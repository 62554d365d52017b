"""The on-device dead-man switch: back up, arm a detached revert timer, confirm or roll back.

NAPALM's commit-confirm vocabulary (`commit(revert_in)`, `confirm`, `rollback`,
`has_pending_commit`), carried out by the router itself, because the change being applied can
cut the SSH connection the controller would roll back over (DESIGN.md decision 5). rpcd's
rollback is not used: a reload of rpcd or a reboot forgets it (reference §3.1).

Everything a device runs is a `SafetyScript` value (POSIX sh for BusyBox ash and dash); the
async helpers at the bottom are the one edge that sends them over a `Session`.

On the device, for commit <token>:

    /tmp/sitewire/lock              symlink -> pending-<token>: one pending commit per device
    /tmp/sitewire/<token>/          manifest, files/<n>, sums, owner, deadline, revert.sh, log
                          decision  symlink -> confirm | revert: whoever makes it first wins
                          confirmed, reverted   what happened, for status and people
    /var/run/sitewire-revert.pid    the detached timer
    /etc/sitewire/pending/<token>/  the backup again, on flash, for the boot hook (boot.py)
                                    that puts it back when the device restarts in the window

A lock is held while the shell that took it or the timer of its commit runs (pid alive and
its command line names the token); otherwise it is stale and the next arm clears it.

OpenWrt detaches with BusyBox `start-stop-daemon -b` (no setsid, nohup or timeout there),
Linux with a `setsid` double fork. Hosts running systemd could use
`systemd-run --on-active=<s> /bin/sh .../revert.sh` instead; the double fork is used on every
Linux host so that the lab's (no systemd running) and real hosts run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

from sitewire.deploy.safety import boot
from sitewire.deploy.safety.answers import Answer, error_for, parse_answer, parse_status
from sitewire.deploy.safety.model import (
    BASE,
    LINUX,
    OPENWRT,
    PIDFILE,
    ROLLBACK_WAIT,
    Boot,
    CommitInProgress,
    Device,
    Launcher,
    Outcome,
    PendingCommit,
    Remote,
    SafetyError,
    SafetyScript,
    SwitchStatus,
    new_token,
)
from sitewire.deploy.safety.scripts import (
    arm_script,
    backup_and_arm_script,
    backup_script,
    confirm_script,
    revert_text,
    rollback_script,
    status_script,
)

__all__ = [
    "BASE",
    "LINUX",
    "OPENWRT",
    "PIDFILE",
    "ROLLBACK_WAIT",
    "Answer",
    "Boot",
    "CommitInProgress",
    "Device",
    "Launcher",
    "Outcome",
    "PendingCommit",
    "SafetyError",
    "SafetyScript",
    "SwitchStatus",
    "arm",
    "arm_script",
    "backup_and_arm_script",
    "backup_script",
    "boot",
    "confirm",
    "confirm_script",
    "error_for",
    "new_token",
    "outcome",
    "parse_answer",
    "parse_status",
    "pending",
    "revert_text",
    "rollback",
    "rollback_script",
    "status",
    "status_script",
]


async def _run(session: Remote, script: SafetyScript, *ok: str) -> Answer:
    result = await session.run(script.command, script.text)
    answer = parse_answer(result.stdout)
    if answer is None or not answer.ok or answer.words[0] not in ok:
        raise error_for(answer, result, session.target.name, script.verb)
    return answer


async def arm(
    session: Remote,
    token: str,
    paths: Sequence[str],
    seconds: int,
    reload_cmds: Sequence[str],
    *,
    device: Device = OPENWRT,
    live: str | None = None,
) -> None:
    """commit(revert_in=seconds): back up `paths` and start the timer that restores them; with
    `live`, that interface's running peers too, which `live_restore IFACE` puts back."""
    script = backup_and_arm_script(token, paths, seconds, reload_cmds, device, live)
    await _run(session, script, "armed")


async def confirm(session: Remote, token: str, *, device: Device = OPENWRT) -> None:
    await _run(session, confirm_script(token, device), "confirmed")


async def rollback(session: Remote, token: str, *, device: Device = OPENWRT) -> Outcome:
    """REVERTED, or REVERTING when the reloads outlast the wait (the timer finishes alone).

    A reload that cuts this connection raises RemoteError; the revert goes on regardless.
    """
    answer = await _run(session, rollback_script(token, device), "reverted", "reverting")
    return Outcome.REVERTED if answer.words[:1] == ("reverted",) else Outcome.REVERTING


async def status(session: Remote, *, device: Device = OPENWRT) -> SwitchStatus:
    script = status_script(device)
    result = await session.run(script.command, script.text)
    answer = parse_answer(result.stdout)
    if answer is None or not answer.ok:
        raise error_for(answer, result, session.target.name, "status")
    return parse_status(result.stdout)


async def pending(session: Remote, *, device: Device = OPENWRT) -> PendingCommit | None:
    """has_pending_commit: the commit holding the device's lock, if its owner or timer runs."""
    return (await status(session, device=device)).pending


async def outcome(session: Remote, token: str, *, device: Device = OPENWRT) -> Outcome:
    return (await status(session, device=device)).commits.get(token, Outcome.UNKNOWN)
