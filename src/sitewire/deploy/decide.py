"""6. verify and decide: each changed site judged over a NEW connection, then kept or undone.

Also the other ends of a commit: releasing armed sites when the apply cannot go on, and
`sitewire confirm|rollback` for what a --no-confirm apply left pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sitewire.deploy import safety
from sitewire.deploy.events import (
    Decided,
    Event,
    Observer,
    ReleaseFailed,
    Result,
    Settled,
    Verified,
)
from sitewire.deploy.live import fresh_start_script
from sitewire.deploy.problems import ApplyError, Kind, Problem
from sitewire.deploy.remote import Credentials, RemoteError, Shell, Target
from sitewire.deploy.run import GUARD_MARGIN, Armed, Before, Configured, Site, run_steps, timed
from sitewire.deploy.runner import one_line, run_on_sites
from sitewire.deploy.verify import Evidence, evidence_lines, judge, parse_evidence, verify_script
from sitewire.diagnose.facts import DeviceFacts
from sitewire.driver import driver_for
from sitewire.errors import SitewireError
from sitewire.plan import Plan

if TYPE_CHECKING:
    from sitewire.deploy.apply import Run


class Dial(Protocol):
    """Opens a connection: sitewire.deploy.ssh.connect, or a test's fake transport."""

    def __call__(
        self, target: Target, creds: Credentials, timeout: float = 10.0
    ) -> Awaitable[Shell]: ...


def _ssh() -> Dial:
    from sitewire.deploy.ssh import connect  # the SSH edge, loaded only when it is used

    return connect


class Sessions:
    """The apply's one connection per site; verification replaces each with a new one."""

    def __init__(
        self, targets: Mapping[str, Target], creds: Credentials, dial: Dial | None = None
    ) -> None:
        self.targets = targets
        self.creds = creds
        self.dial = dial or _ssh()
        self.live: dict[str, Shell] = {}

    def __getitem__(self, name: str) -> Shell:
        return self.live[name]

    async def open(self, name: str, timeout: float = 10.0) -> Shell:
        session = await self.dial(self.targets[name], self.creds, timeout)
        old, self.live[name] = self.live.get(name), session
        if old is not None:
            old.abort()  # the old channel may hang on a dead path
        return session

    async def close_all(self) -> None:
        async def close(session: Shell) -> None:
            with suppress(TimeoutError, OSError, RemoteError):
                await asyncio.wait_for(session.close(), 5)

        await asyncio.gather(*(close(s) for s in self.live.values()))


@dataclass(frozen=True, slots=True)
class Decision:
    result: Result
    problems: tuple[Problem, ...] = ()


async def verify_site(
    run: Run,
    final: Plan,
    before: Mapping[str, Before],
    name: str,
    armed: Armed,
    configured: Configured,
    others_done: Sequence[asyncio.Event] = (),
    recreated: Collection[str] = (),
) -> Evidence:
    """One site's evidence, as soon as its own change is done: the new connection and its
    timer's state at once, the probes once every other changed site is done too
    (`others_done`: the probes reach every site, and a site still configuring would count
    against this one). The wait is not this site's own time. A failure is evidence too."""
    facts: dict[str, DeviceFacts | None] = {n: b.facts for n, b in before.items()}
    waited: list[float] = []

    async def ready() -> None:
        start = asyncio.get_running_loop().time()
        for event in others_done:
            await event.wait()
        waited.append(asyncio.get_running_loop().time() - start)

    async def check(site: str) -> Evidence:
        return await _verify(run, final, site, facts, armed, configured, ready, recreated)

    results = await run_on_sites([name], check)
    run.clock.add({n: t - sum(waited) for n, t in results.seconds.items()})
    if name in results.failed:
        exc = results.failed[name]
        return Evidence(reached=True, failed=Problem(_kind(exc), one_line(exc)))
    return results.ok[name]


async def decide_all(
    run: Run,
    final: Plan,
    armed: Mapping[str, Armed],
    configured: Mapping[str, Configured],
    evidence: Mapping[str, Evidence],
) -> dict[str, Decision]:
    """Every changed site kept or undone, once all are verified: each on its own evidence, with
    only healthy sites as judges of the others."""
    # A site counts as a fair judge of others when it was not changed, or when it answered
    # over a new connection and its own routing is right; not one whose change failed before
    # it could be verified (it is going back to what it was).
    healthy = {
        n
        for n in run.sites
        if n not in configured
        or (n in evidence and evidence[n].reached and not judge(final, n, evidence[n], set()))
    }

    async def decide(name: str) -> Decision:
        ev = evidence.get(name)
        problems = [p for p in (configured[name].problem,) if p is not None]
        lines: list[str] = []
        if ev is not None:
            problems = [p for p in problems if p.kind is not Kind.DROPPED]
            problems += judge(final, name, ev, healthy - {name})
            lines = evidence_lines(ev)
            lines += [
                f"cannot reach {peer}'s overlay address"
                for peer, ok in ev.overlay.items()
                if not ok and peer in healthy
            ]
        run.emit(Verified(name, tuple(lines), tuple(problems)))
        decided = await _decide(run, name, armed[name], tuple(problems))
        run.emit(
            Decided(name, decided.result, decided.problems, _within(run, decided, armed[name]))
        )
        return decided

    decisions = await run_on_sites(armed, decide)
    run.clock.add(decisions.seconds)
    out = dict(decisions.ok)
    for name, exc in decisions.failed.items():
        # Nothing more is sent to it: its own timer reverts whatever it was left holding.
        out[name] = Decision(Result.REVERTING, (Problem(_kind(exc), one_line(exc)),))
        run.emit(Decided(name, out[name].result, out[name].problems))
    return out


def _kind(exc: Exception) -> Kind:
    return Kind.VERIFY if isinstance(exc, SitewireError) else Kind.INTERNAL


def _within(run: Run, decided: Decision, armed: Armed) -> int | None:
    if decided.result is Result.PENDING:
        return run.opts.revert_after
    if any(p.kind is Kind.UNREACHABLE for p in decided.problems):
        return max(0, round(armed.seconds_left()))
    return None


async def _verify(
    run: Run,
    plan: Plan,
    name: str,
    facts: Mapping[str, DeviceFacts | None],
    armed: Armed,
    configured: Configured,
    ready: Callable[[], Awaitable[None]] | None = None,
    recreated: Collection[str] = (),
) -> Evidence:
    session = await _reconnect(run, name)
    if session is None:
        return Evidence()
    site = run.sites[name]
    try:
        switch = await timed(safety.status(session, device=site.device), 30, name, "status")
    except SitewireError as exc:
        return _failed(Kind.VERIFY, f"could not read its revert timer: {exc}")
    state = switch.commits.get(armed.token, safety.Outcome.UNKNOWN)
    if state is not safety.Outcome.PENDING:
        return _failed(Kind.LOCKED_OUT, _fired(configured, state))
    if configured.left:
        try:
            again = await run_steps(session, armed, configured.left, run.emit)
        except SitewireError as exc:
            return _failed(Kind.CONFIGURE, str(exc))
        if again.left:
            return _failed(Kind.DROPPED, "the session dropped again during the change")
    if ready is not None:
        await ready()
    # Verified in time to confirm before the router reverts by itself.
    budget = min(float(run.opts.verify_timeout), armed.seconds_left() - 2 * GUARD_MARGIN)
    if budget < 3:
        return _failed(
            Kind.VERIFY,
            "too little of its revert timer was left to verify it (use a longer --revert-after)",
        )
    try:
        fresh = fresh_start_script(plan.site(name), site.driver.psk_read, recreated)
        script = verify_script(plan, name, facts, budget, fresh)
        result = await timed(
            session.script(script), armed.seconds_left() - GUARD_MARGIN, name, "verify"
        )
    except RemoteError:
        return _failed(Kind.VERIFY, "its verification did not finish before its timer")
    return parse_evidence(result.stdout)


def _failed(kind: Kind, text: str) -> Evidence:
    return Evidence(reached=True, failed=Problem(kind, text))


def _fired(configured: Configured, state: safety.Outcome) -> str:
    if state is safety.Outcome.BOOT_REVERTED:
        return (
            "the router restarted during the change, and its boot put back the configuration "
            "it had before (commit boot-reverted)"
        )
    if configured.left:
        return (
            f"the connection dropped during the step '{configured.left[0].why}' and came back "
            f"only after its revert timer fired (commit {state.value}): the change cut the way "
            "in (locked out?)"
        )
    return (
        f"its revert timer fired before it could be verified (commit {state.value}): "
        "the change cut the way in (locked out?) or --revert-after is too short"
    )


async def _reconnect(run: Run, name: str) -> Shell | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run.opts.reconnect_timeout
    while True:
        try:
            return await run.sessions.open(name, timeout=5.0)
        except RemoteError:
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(1.0)


async def _decide(run: Run, name: str, armed: Armed, problems: tuple[Problem, ...]) -> Decision:
    device = run.sites[name].device
    if problems:
        if any(p.kind is Kind.UNREACHABLE for p in problems):
            # The old connection hangs on the path the change cut; only the timer can act.
            return Decision(Result.REVERTING, problems)
        return await _roll_back(run, name, armed, problems)
    if not run.opts.confirm:
        return Decision(Result.PENDING)
    try:
        await timed(
            safety.confirm(run.sessions[name], armed.token, device=device), 60, name, "confirm"
        )
    except SitewireError as exc:
        return await _confirm_unanswered(run, name, armed, str(exc))
    return Decision(Result.CONFIRMED)


async def _roll_back(
    run: Run, name: str, armed: Armed, problems: tuple[Problem, ...], again: bool = False
) -> Decision:
    device = run.sites[name].device
    try:
        state = await timed(
            safety.rollback(run.sessions[name], armed.token, device=device),
            safety.ROLLBACK_WAIT + 30,
            name,
            "rollback",
        )
    except SitewireError:
        # No answer: ask the router what became of its commit, over a new connection.
        state = safety.Outcome.UNKNOWN if again else await _ask(run, name, armed)
        # Abandoned: its timer died, so nothing would revert it; the rollback launches one.
        if state in _UNDECIDED and not again:
            return await _roll_back(run, name, armed, problems, again=True)
    if state in (safety.Outcome.REVERTED, safety.Outcome.BOOT_REVERTED):
        return Decision(Result.ROLLED_BACK, problems)
    if state is safety.Outcome.CONFIRMED:  # cannot be undone by a rollback: say so
        held = Problem(Kind.CONFIRM, "the rollback did not go through: the change is confirmed")
        return Decision(Result.CONFIRMED, (*problems, held))
    return Decision(Result.REVERTING, problems)


async def _confirm_unanswered(run: Run, name: str, armed: Armed, error: str) -> Decision:
    """The confirm raised (its reply lost, or the router refused): the router's real state,
    read over a new connection, decides; a commit still pending is confirmed there once more
    (confirm is idempotent)."""
    device = run.sites[name].device
    state = await _ask(run, name, armed)
    # Confirmed already: the reply may have been lost before the confirm removed the backup
    # from flash and released the lock, so it runs once more (a boot would restore that backup).
    if state in (*_UNDECIDED, safety.Outcome.CONFIRMED):
        try:
            await timed(
                safety.confirm(run.sessions[name], armed.token, device=device), 60, name, "confirm"
            )
            return Decision(Result.CONFIRMED)
        except SitewireError as exc:
            error = str(exc)
            state = await _ask(run, name, armed)
    if state is safety.Outcome.CONFIRMED:
        return Decision(Result.CONFIRMED)
    if state in (safety.Outcome.REVERTED, safety.Outcome.BOOT_REVERTED):
        why = f"{error}; the router has since put back what it had (commit {state.value})"
        return Decision(Result.ROLLED_BACK, (Problem(Kind.CONFIRM, why),))
    if state is safety.Outcome.UNKNOWN:
        error += "; and the router could not be asked again: its timer reverts unless it got it"
    return Decision(Result.REVERTING, (Problem(Kind.CONFIRM, error),))


# A commit that nothing has decided yet: its timer still runs, or died (abandoned).
_UNDECIDED = (safety.Outcome.PENDING, safety.Outcome.ABANDONED)


async def _ask(run: Run, name: str, armed: Armed) -> safety.Outcome:
    """What the router holds of this apply's commit, read over a new connection; UNKNOWN when
    it cannot be asked."""
    session = await _reconnect(run, name)
    if session is None:
        return safety.Outcome.UNKNOWN
    try:
        switch = await timed(
            safety.status(session, device=run.sites[name].device), 30, name, "status"
        )
    except SitewireError:
        return safety.Outcome.UNKNOWN
    return switch.commits.get(armed.token, safety.Outcome.UNKNOWN)


async def release(
    sessions: Sessions,
    sites: Mapping[str, Site],
    armed: Mapping[str, Armed],
    touched: set[str],
    emit: Callable[[Event], None],
) -> None:
    """Let go of armed sites before the configuration changed (roll back those whose keys did)."""

    async def one(name: str) -> None:
        session, token, device = sessions[name], armed[name].token, sites[name].device
        if name in touched:
            await safety.rollback(session, token, device=device)
        else:
            await safety.confirm(session, token, device=device)

    results = await run_on_sites(armed, one)
    for name, exc in results.failed.items():
        emit(ReleaseFailed(name, str(exc)))


# --- confirm / rollback for --no-confirm ----------------------------------------------------------


async def settle(
    plan: Plan,
    targets: Mapping[str, Target],
    creds: Credentials,
    verb: str,
    observer: Observer,
    *,
    dial: Dial | None = None,
) -> int:
    """`sitewire confirm|rollback`: act on every site's pending commit; return how many.
    Every site is tried; the sites that failed are named together at the end."""
    connect = dial or _ssh()

    async def one(name: str) -> int:
        device = driver_for(plan.site(name).platform).device
        async with await connect(targets[name], creds) as session:
            pending = await safety.pending(session, device=device)
            if pending is None:
                observer.event(Settled(name, None, "nothing pending"))
                return 0
            if verb == "confirm":
                await safety.confirm(session, pending.token, device=device)
                observer.event(Settled(name, pending.token, "confirmed"))
            else:
                state = await safety.rollback(session, pending.token, device=device)
                observer.event(Settled(name, pending.token, state.value))
            return 1

    results = await run_on_sites(plan.site_names, one)
    _raise_failed(verb, results.failed)
    return sum(results.ok.values())


def _raise_failed(verb: str, failed: Mapping[str, Exception]) -> None:
    if not failed:
        return
    if len(failed) == 1:
        raise next(iter(failed.values()))
    done = {"confirm": "confirmed", "rollback": "rolled back"}[verb]
    raise ApplyError(
        "; ".join(str(e) for e in failed.values()),
        where=verb,
        fix=f"the sites not named here were {done} where anything was pending; "
        f"run 'sitewire {verb}' again for these",
    )
