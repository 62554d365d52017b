"""One site's run through an apply: its record, and commands guarded by its revert timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from sitewire.deploy import safety
from sitewire.deploy.diff import Change
from sitewire.deploy.live import (
    Step,
)
from sitewire.deploy.ssh import RemoteError, Session, Target
from sitewire.diagnose.collect import (
    DeviceFacts,
)
from sitewire.errors import SitewireError
from sitewire.spec.model import Platform

T = TypeVar("T")

STEP_TIMEOUT = 120.0  # one command on a device; package installs get more


class ApplyError(SitewireError):
    """The apply could not go ahead (nothing was changed), or ended with sites not applied."""


class Result(StrEnum):
    UNCHANGED = "unchanged"
    CONFIRMED = "confirmed"
    PENDING = "pending"  # --no-confirm: the router reverts unless `sitewire confirm` runs
    ROLLED_BACK = "rolled back"
    REVERTING = "reverting"  # unreachable or slow: the router's own timer puts it back
    RELEASED = "released"  # armed, then let go before anything changed


@dataclass(frozen=True, slots=True)
class Options:
    yes: bool = False
    dry_run: bool = False
    confirm: bool = True
    revert_after: int = 300
    verify_timeout: float = 30.0
    env: str = ""  # prefixed to Linux wg-quick commands (the lab: the userspace fallback)
    reconnect_timeout: float = 30.0


class Ui(Protocol):
    def say(self, line: str) -> None: ...

    def ask(self, question: str) -> bool: ...


@dataclass
class SiteRun:
    """One site through the apply; the mutable record the stages share."""

    name: str
    platform: Platform
    target: Target
    session: Session | None = None
    facts: DeviceFacts | None = None
    key_before: str | None = None  # the device's public key as found
    key: str | None = None  # and after the key step
    files_before: dict[str, str | None] = field(default_factory=dict)
    psk_hashes: dict[str, str] = field(default_factory=dict)  # peer -> sha256 on the device, "-"
    cron_missing: bool = False
    changes: list[Change] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    missing_packages: tuple[str, ...] = ()
    token: str | None = None
    deadline: float | None = None  # loop time by which the router reverts unless confirmed
    steps_left: list[Step] = field(default_factory=list)  # cut off by a dropped session
    lost: bool = False  # no new connection after the change: only its own timer can act
    touched: bool = False
    handler_fresh: bool = False
    result: Result = Result.UNCHANGED
    problems: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    seconds: float = 0.0  # this site's own work (read .. confirm): the apply if it were alone

    @property
    def device(self) -> safety.Device:
        return safety.device_for(self.platform)

    @property
    def needs_change(self) -> bool:
        return bool(self.diff)

    def must_facts(self) -> DeviceFacts:
        assert self.facts is not None
        return self.facts

    def must_session(self) -> Session:
        assert self.session is not None
        return self.session


@dataclass
class Outcome:
    sites: dict[str, SiteRun]
    lock_changed: bool = False

    @property
    def ok(self) -> bool:
        return all(
            r.result in (Result.UNCHANGED, Result.CONFIRMED, Result.PENDING) and not r.problems
            for r in self.sites.values()
        )


async def timed(work: Awaitable[T], seconds: float, site: str, what: str) -> T:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise RemoteError(
            f"no answer within {seconds:.0f} s to {what.split()[0]!r} (connection lost?)",
            where=site,
        ) from None


# A change starts on a device only while this much of its revert timer is left: whatever it
# writes must be in place before the timer restores the backup, never after.
GUARD_MARGIN = 5


class TimerRanOut(ApplyError):
    """The site's revert timer fired (or nearly) before the change was made: nothing written."""


def seconds_left(run: SiteRun) -> float:
    if run.deadline is None:
        return float("inf")
    return run.deadline - asyncio.get_running_loop().time()


def ran_out(run: SiteRun, what: str) -> TimerRanOut:
    return TimerRanOut(
        f"its revert timer ran out before {what}; nothing more was changed, "
        "the router restores its backup by itself",
        where=run.name,
        fix="run apply again, with a longer --revert-after if the routers are slow",
    )


_GUARD_RC = 97


def guard(token: str, margin: int = GUARD_MARGIN) -> str:
    """Shell that exits 97 unless commit `token` still holds the device's lock, undecided, with
    more than `margin` s left: prefixed to every command that changes a device after arming."""
    d = f"{safety.BASE}/{token}"
    return (
        f'if [ "$(readlink {safety.BASE}/lock 2>/dev/null)" != pending-{token} ] || '
        f"[ -L {d}/decision ] || ! sw_dl=$(cat {d}/deadline 2>/dev/null) || "
        "[ $((sw_dl - $(tr -d . < /proc/uptime | cut -d' ' -f1))) -le "
        f"{margin * 100} ]; then echo 'commit {token}: no longer pending' >&2; "
        f"exit {_GUARD_RC}; fi\n"
    )


async def guarded(
    run: SiteRun, command: str, what: str | None = None, *, stdin: str | None = None
) -> str:
    """session.check(command), only while the site's commit is pending with time to spare.
    With `stdin` (which may hold secrets, and is never logged) the command goes on the command
    line and `stdin` is its input; else the command is a script sent on stdin."""
    shown = command.split()[0]
    what = what or f"{shown!r} ran"
    if seconds_left(run) <= GUARD_MARGIN:
        raise ran_out(run, what)
    assert run.token is not None
    # Past the deadline the router reverts whatever this does: no use waiting longer.
    seconds = min(STEP_TIMEOUT, max(seconds_left(run), 1.0))
    session = run.must_session()
    work = (
        session.script(guard(run.token) + command)
        if stdin is None
        else session.run(guard(run.token) + command, stdin)
    )
    result = await timed(work, seconds, run.name, command)
    if result.rc == _GUARD_RC and "no longer pending" in result.stderr:
        raise ran_out(run, what)
    if result.rc != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
        raise RemoteError(f"{shown} failed: {detail[0]}", where=run.name)
    return result.stdout
