"""One site through an apply: who it is, what each stage returned, commands under its timer.

Each stage of deploy.apply returns one of these values (read → diff → armed → prepared →
configured → evidence → decision) instead of filling in a shared record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sitewire.deploy import safety
from sitewire.deploy.diff import Change
from sitewire.deploy.events import Event, Result, StepStarted
from sitewire.deploy.live import Step
from sitewire.deploy.problems import ApplyError, Kind, Problem, TimerRanOut
from sitewire.deploy.remote import ConnectionLost, RemoteError, Shell, Target
from sitewire.diagnose.facts import DeviceFacts
from sitewire.driver import Driver, Held
from sitewire.spec.model import Platform

T = TypeVar("T")

STEP_TIMEOUT = 120.0  # one command on a device; package installs get more

# A change starts on a device only while this much of its revert timer is left: whatever it
# writes must be in place before the timer restores the backup, never after.
GUARD_MARGIN = 5

__all__ = ["ApplyError", "Result", "TimerRanOut"]


@dataclass(frozen=True, slots=True)
class Options:
    yes: bool = False
    dry_run: bool = False
    confirm: bool = True
    revert_after: int = 300
    verify_timeout: float = 30.0
    env: str = ""  # prefixed to Linux wg-quick commands (the lab: the userspace fallback)
    reconnect_timeout: float = 30.0
    remove_foreign: bool = False  # remove running peers the plan does not know (issue 12)
    rotate: frozenset[str] = frozenset()  # sites whose private key is replaced (`rotate`)
    rotate_psk: bool = False  # and the preshared keys of their pairs


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    driver: Driver
    target: Target

    @property
    def platform(self) -> Platform:
        return self.driver.platform

    @property
    def device(self) -> safety.Device:
        return self.driver.device


@dataclass(frozen=True, slots=True)
class Before:
    """1. read: what the device holds and runs, before anything changes."""

    facts: DeviceFacts
    key: str | None  # the device's public key as found
    files: Mapping[str, str | None]  # Linux: device path -> text, keys hidden; None: absent
    psk_hashes: Mapping[str, str]  # peer -> sha256 of the preshared key held for it, or "-"
    watchdog_missing: bool
    missing_packages: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()
    # public key -> the same, for every peer section (a hand-made one too: issue 12)
    psk_by_key: Mapping[str, str] = field(default_factory=dict)

    def psk_hash(self, peer: str, key: str | None) -> str:
        """The hash of the preshared key held for `peer` (whose public key is `key`), "-"."""
        found = self.psk_hashes.get(peer, "-")
        if found == "-" and key is not None:
            return self.psk_by_key.get(key, "-")
        return found

    @property
    def held(self) -> Held:
        return Held(self.facts, self.files, self.watchdog_missing)


@dataclass(frozen=True, slots=True)
class Diffed:
    """2. diff: the lines a person reads (none: no change) and the uci changes behind them."""

    lines: tuple[str, ...]
    changes: tuple[Change, ...] = ()
    warnings: tuple[Problem, ...] = ()
    keep_peers: frozenset[str] = frozenset()  # foreign peers left running (deploy.changes)
    # peers-only: the interface runs and keeps running; a revert puts the old peers back live
    hitless: bool = False


@dataclass(frozen=True, slots=True)
class Armed:
    """3. arm: the commit holding the device's lock, and when the router reverts it."""

    token: str
    deadline: float  # event-loop time, taken before the router started its own timer

    def seconds_left(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


@dataclass(frozen=True, slots=True)
class Prepared:
    """4. prepare: the device's public key, and whether the network must restart for it."""

    key: str
    handler_fresh: bool
    touched: bool  # a key was written: going back needs a rollback, not a release


@dataclass(frozen=True, slots=True)
class Configured:
    """5. configure: the steps a dropped session cut off (run again over the new one)."""

    left: tuple[Step, ...] = ()
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class SiteReport:
    name: str
    result: Result
    problems: tuple[Problem, ...] = ()  # what kept it from being applied
    seconds: float = 0.0  # this site's own work (read .. confirm): the apply if it were alone
    token: str | None = None  # its commit, when it was armed


@dataclass(frozen=True, slots=True)
class Outcome:
    sites: Mapping[str, SiteReport]
    lock_changed: bool = False

    @property
    def ok(self) -> bool:
        return all(
            r.result in (Result.UNCHANGED, Result.CONFIRMED, Result.PENDING) and not r.problems
            for r in self.sites.values()
        )


@dataclass
class Clock:
    """Each site's own time through the stages (the runner measures each of its tasks)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, seconds: Mapping[str, float]) -> None:
        for name, took in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + took


async def timed(work: Awaitable[T], seconds: float, site: str, what: str) -> T:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise ConnectionLost(
            f"no answer within {seconds:.0f} s to {what.split()[0]!r} (connection lost?)",
            where=site,
        ) from None


def ran_out(site: str, what: str) -> TimerRanOut:
    return TimerRanOut(
        f"its revert timer ran out before {what}; nothing more was changed, "
        "the router restores its backup by itself",
        where=site,
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
    session: Shell,
    armed: Armed,
    command: str,
    what: str | None = None,
    *,
    stdin: str | None = None,
    in_script: bool = False,
) -> str:
    """session.check(command), only while the site's commit is pending with time to spare.
    With `stdin` (which may hold secrets, and is never logged) the command goes on the command
    line and `stdin` is its input, or with `in_script` both go in one script on stdin (for a
    command that grows with the peers); else the command is a script sent on stdin."""
    site = session.target.name
    shown = command.split()[0]
    what = what or f"{shown!r} ran"
    if armed.seconds_left() <= GUARD_MARGIN:
        raise ran_out(site, what)
    # Past the deadline the router reverts whatever this does: no use waiting longer.
    seconds = min(STEP_TIMEOUT, max(armed.seconds_left(), 1.0))
    if stdin is None or in_script:
        work = session.script(guard(armed.token) + command, stdin)
    else:
        work = session.run(guard(armed.token) + command, stdin)
    result = await timed(work, seconds, site, command)
    if result.rc == _GUARD_RC and "no longer pending" in result.stderr:
        raise ran_out(site, what)
    if result.rc != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
        raise RemoteError(f"{shown} failed: {detail[0]}", where=site)
    return result.stdout


async def run_steps(
    session: Shell, armed: Armed, steps: Sequence[Step], emit: Callable[[Event], None]
) -> Configured:
    """The live steps in order; a dropped session leaves the rest for the new connection."""
    site = session.target.name
    for n, step in enumerate(steps):
        started = StepStarted(site, step.command, step.why)
        emit(started)
        try:
            await guarded(session, armed, step.command, f"the step '{step.why}'")
        except ConnectionLost:
            # A restart may cut this session; the verification over a new one decides, after
            # running the steps left (a step cut short runs again: they all may).
            dropped = f"the session dropped during {started.shown.split()[0]!r}"
            return Configured(tuple(steps[n:]), Problem(Kind.DROPPED, dropped))
    return Configured()
