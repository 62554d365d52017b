"""`sitewire apply`: the plan onto live devices, under the routers' own dead-man switch.

The order (DESIGN.md decisions 2, 5-7):

1. read: connect to every site in parallel; facts, the live public key, the safety switch's
   state. Nothing is changed; any refusal here stops the whole apply.
2. diff: plan with the live keys (keys still to be born show as such), render, compare with the
   devices; show it and ask. `--dry-run` ends here, and so does a network with no change.
3. arm: back up what will be touched and start each changed site's revert timer. If one site
   is busy with another commit, the ones already armed are released and the apply is refused.
4. prepare: install missing packages, make missing private keys on the devices, share
   preshared keys device to device. A failure here releases or rolls back every site.
5. configure: listeners first, then dialers; the files, then only the steps that make the change
   live (deploy.live): `wg set` or `renew` for peers, re-creation only for interface changes.
6. verify: over NEW connections, handshakes and pings across the tunnel, and the route a LAN
   host's packet would take; each site is confirmed or rolled back on its own evidence.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from sitewire.deploy import safety
from sitewire.deploy.changes import (
    ClientSecrets,
    client_keys,
    diff_site,
    placeholder_key,
    plan_with,
    render_for,
)
from sitewire.deploy.live import (
    Step,
    linux_steps,
    mask_secrets,
    openwrt_steps,
)
from sitewire.deploy.prepare import arm_site, prepare_site, share_psks
from sitewire.deploy.read import linux_paths, read_site, stale_psks
from sitewire.deploy.run import (
    GUARD_MARGIN,
    ApplyError,
    Options,
    Outcome,
    Result,
    SiteRun,
    T,
    Ui,
    guarded,
    seconds_left,
    timed,
)
from sitewire.deploy.ssh import Credentials, RemoteError, Target, connect
from sitewire.deploy.verify import Evidence, evidence_lines, judge, parse_evidence, verify_script
from sitewire.diagnose.collect import (
    DeviceFacts,
)
from sitewire.errors import SitewireError
from sitewire.pipeline import Workspace
from sitewire.plan import Plan
from sitewire.render.linux import CONF_DIR, render_linux
from sitewire.spec.lock import Lock, save_lock
from sitewire.spec.model import Platform

# --- 5. configure ---------------------------------------------------------------------------------

# uci batch reads stdin; a bad line shows only on its stderr, which fails the step.
UCI_BATCH = 'uci batch 2>&1 >/dev/null | (if read -r l; then { echo "$l"; cat; } >&2; exit 1; fi)'


async def _configure(
    plan: Plan, run: SiteRun, secrets: ClientSecrets, opts: Options, ui: Ui
) -> None:
    session = run.must_session()
    site = plan.site(run.name)
    facts = run.must_facts()
    rendered = render_for(plan, run, secrets)
    steps: list[Step]
    if run.platform is Platform.OPENWRT:
        run.touched = True
        # On stdin, never in a file: no other local user can read or swap it (issue 9), and a
        # dropped session leaves no key behind in /tmp.
        await guarded(run, UCI_BATCH, "uci batch ran", stdin=rendered.text("uci-batch"))
        steps = openwrt_steps(
            site,
            facts,
            run.changes,
            handler_fresh=run.handler_fresh,
            cron_missing=run.cron_missing,
        )
    else:
        await guarded(run, "true", "its files were written")
        run.touched = True
        after: dict[str, str] = {}
        for f in rendered.files:
            if f.device_path is None:
                continue
            text = rendered.text(f.path)
            after[f.device_path] = mask_secrets(text)
            if run.files_before.get(f.device_path) != after[f.device_path]:
                private = f.device_path.startswith(f"{CONF_DIR}/")
                await session.put(f.device_path, text, 0o600 if private else f.mode)
        steps = linux_steps(site, facts, run.files_before, after, opts.env)
    await _run_steps(run, steps, ui)


def _shown(step: Step) -> str:
    return step.command if "\n" not in step.command else step.command.splitlines()[1] + " ..."


async def _run_steps(run: SiteRun, steps: Sequence[Step], ui: Ui) -> None:
    for n, step in enumerate(steps):
        ui.say(f"{run.name}: [#] {_shown(step)}  ({step.why})")
        try:
            await guarded(run, step.command, f"the step '{step.why}'")
        except RemoteError as exc:
            if "connection lost" in exc.message or "no answer" in exc.message:
                # A restart may cut this session; the verification over a new one decides,
                # after running the steps left (a step cut short runs again: they all may).
                run.problems.append(f"the session dropped during {_shown(step).split()[0]!r}")
                run.steps_left = list(steps[n:])
                return
            raise


# --- 6. verify ------------------------------------------------------------------------------------


async def _verify(
    plan: Plan,
    run: SiteRun,
    facts: Mapping[str, DeviceFacts | None],
    creds: Credentials,
    opts: Options,
    ui: Ui,
) -> Evidence:
    deadline = asyncio.get_running_loop().time() + opts.reconnect_timeout
    while True:
        try:
            session = await connect(run.target, creds, timeout=5.0)
            break
        except RemoteError:
            if asyncio.get_running_loop().time() >= deadline:
                run.lost = True
                return Evidence()
            await asyncio.sleep(1.0)
    old, run.session = run.session, session
    if old is not None:
        old.abort()  # the old channel may hang on a dead path
    assert run.token is not None
    try:
        switch = await timed(safety.status(session, device=run.device), 30, run.name, "status")
    except SitewireError as exc:
        return Evidence(reached=True, failed=f"could not read its revert timer: {exc}")
    state = switch.commits.get(run.token, safety.Outcome.UNKNOWN)
    if state is not safety.Outcome.PENDING:
        why = (
            f"the connection dropped during the step '{run.steps_left[0].why}' and came back only "
            f"after its revert timer fired (commit {state.value}): the change cut the way in "
            "(locked out?)"
            if run.steps_left
            else f"its revert timer fired before it could be verified (commit {state.value}): "
            "the change cut the way in (locked out?) or --revert-after is too short"
        )
        return Evidence(reached=True, failed=why)
    if run.steps_left:
        steps, run.steps_left = run.steps_left, []
        try:
            await _run_steps(run, steps, ui)
        except SitewireError as exc:
            return Evidence(reached=True, failed=str(exc))
        if run.steps_left:
            return Evidence(reached=True, failed="the session dropped again during the change")
    # Verified in time to confirm before the router reverts by itself.
    budget = min(float(opts.verify_timeout), seconds_left(run) - 2 * GUARD_MARGIN)
    if budget < 3:
        return Evidence(
            reached=True,
            failed="too little of its revert timer was left to verify it (use a longer "
            "--revert-after)",
        )
    try:
        script = verify_script(plan, run.name, facts, budget)
        result = await timed(
            session.script(script), seconds_left(run) - GUARD_MARGIN, run.name, "verify"
        )
    except RemoteError:
        return Evidence(reached=True, failed="its verification did not finish before its timer")
    return parse_evidence(result.stdout)


# --- the whole apply ------------------------------------------------------------------------------


@contextmanager
def exclusive(spec_path: Path) -> Iterator[None]:
    """One apply per network on this machine: an flock on the spec file itself."""
    fd = os.open(spec_path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ApplyError(
                "another sitewire apply, confirm or rollback is running for this network",
                where=str(spec_path),
                fix="wait for it to finish",
            ) from None
        yield
    finally:
        os.close(fd)


async def _clocked(run: SiteRun, work: Awaitable[T]) -> T:
    """`work` for `run`, its time added to run.seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        return await work
    finally:
        run.seconds += loop.time() - start


async def _each(
    runs: Sequence[SiteRun], work: Callable[[SiteRun], Awaitable[None]]
) -> list[tuple[SiteRun, BaseException]]:
    results = await asyncio.gather(*(_clocked(r, work(r)) for r in runs), return_exceptions=True)
    failed: list[tuple[SiteRun, BaseException]] = []
    for run, result in zip(runs, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            failed.append((run, result))
    return failed


def _first_error(failed: list[tuple[SiteRun, BaseException]]) -> BaseException:
    for _, exc in failed:
        if isinstance(exc, safety.CommitInProgress):
            return exc
    return failed[0][1]


async def apply_network(
    ws: Workspace,
    targets: Mapping[str, Target],
    creds: Credentials,
    opts: Options,
    ui: Ui,
) -> Outcome:
    clients = client_keys(ws)
    first = plan_with(ws, {}, clients)  # addresses, roles; keys come next
    runs = {
        name: SiteRun(name, first.site(name).platform, targets[name]) for name in first.site_names
    }
    secrets = ClientSecrets(ws, first.client_names)
    try:
        return await _apply(ws, first, runs, clients, secrets, creds, opts, ui)
    finally:
        await asyncio.gather(*(_close(r) for r in runs.values()))


async def _close(run: SiteRun) -> None:
    if run.session is not None:
        with suppress(TimeoutError, OSError, RemoteError):
            await asyncio.wait_for(run.session.close(), 5)


async def _apply(
    ws: Workspace,
    first: Plan,
    runs: dict[str, SiteRun],
    clients: Mapping[str, str],
    secrets: ClientSecrets,
    creds: Credentials,
    opts: Options,
    ui: Ui,
) -> Outcome:
    # 1. read
    # Which files a Linux site holds: rendered with stand-in keys (its site plan must come from
    # the same plan: `first` has no keys, and a Linux peer block needs one).
    stand_in = plan_with(ws, {n: placeholder_key(n) for n in runs}, clients)
    paths = {
        name: (
            linux_paths(render_linux(stand_in, stand_in.site(name), secrets))
            if run.platform is Platform.LINUX
            else []
        )
        for name, run in runs.items()
    }
    failed = await _each(list(runs.values()), lambda r: read_site(r, first, creds, paths[r.name]))
    if failed:
        raise _first_error(failed)
    for run in runs.values():
        ui.say(run.must_facts().summary().splitlines()[0])
    # 2. diff
    placeholders = {n: placeholder_key(n) for n, r in runs.items() if r.key is None}
    keys = {n: r.key or placeholders[n] for n, r in runs.items()}
    draft = plan_with(ws, keys, clients)
    for run in runs.values():
        diff_site(draft, run, secrets, placeholders)
    for a, b in stale_psks(draft, runs):
        # Neither end shows it otherwise (keys are hidden): both must be armed to share anew.
        runs[a].diff.append(f"{a}: preshared key with {b}: made anew on the devices")
        runs[b].diff.append(f"{b}: preshared key with {a}: made anew on the devices")
    for run in runs.values():
        for line in run.diff or [f"{run.name}: no changes"]:
            ui.say(line)
        for problem in run.problems:
            ui.say(f"{run.name}: {problem}")
        run.problems = [p for p in run.problems if not p.startswith("warning:")]
    changed = [r for r in runs.values() if r.needs_change]
    outcome = Outcome(runs)
    if not changed:
        outcome.lock_changed = save_lock(ws.lock_path, plan_with(ws, keys, clients).lock)
        ui.say("nothing to change")
        return outcome
    if opts.dry_run:
        return outcome
    if not opts.yes and not ui.ask(f"apply these changes to {len(changed)} site(s)?"):
        raise ApplyError(
            "nothing was changed", where="apply", fix="run again and answer yes, or pass --yes"
        )
    # 3. arm
    failed = await _each(changed, lambda r: arm_site(draft, r, opts, secrets))
    if failed:
        await _release([r for r in changed if r.token is not None], ui)
        raise _first_error(failed)
    for run in changed:
        ui.say(
            f"{run.name}: backed up; it reverts by itself in {opts.revert_after} s unless confirmed"
        )
    # 4. prepare
    failed = await _each(changed, lambda r: prepare_site(r, first.site(r.name), ui))
    if not failed:
        try:
            await share_psks(first, runs, ui)
        except SitewireError as error:
            failed = [(changed[0], error)]
    if failed:
        await _release(changed, ui)
        raise _first_error(failed)
    final = plan_with(ws, {n: r.key for n, r in runs.items() if r.key}, clients)
    # 5. configure: listeners first, so a dialer's first handshake is answered at once
    for group in (
        [r for r in changed if final.site(r.name).endpoint is not None],
        [r for r in changed if final.site(r.name).endpoint is None],
    ):
        failed = await _each(group, lambda r: _configure(final, r, secrets, opts, ui))
        for run, exc in failed:
            run.problems.append(str(exc))
    # 6. verify
    facts = {n: r.facts for n, r in runs.items()}
    configured = [
        r for r in changed if not r.problems or r.problems[-1].startswith("the session dropped")
    ]
    evidence: dict[str, Evidence] = {}
    results = await asyncio.gather(
        *(_clocked(r, _verify(final, r, facts, creds, opts, ui)) for r in configured)
    )
    evidence = dict(zip((r.name for r in configured), results, strict=True))
    # A site counts as a fair judge of others when it was not changed, or when it answered
    # over a new connection and its own routing is right.
    healthy = {
        n
        for n in runs
        if n not in evidence or (evidence[n].reached and not judge(final, n, evidence[n], set()))
    }
    for run in changed:
        ev = evidence.get(run.name)
        if ev is None:
            continue
        run.problems = [p for p in run.problems if not p.startswith("the session dropped")]
        run.problems += judge(final, run.name, ev, healthy - {run.name})
        run.evidence = evidence_lines(ev)
        for peer, ok in ev.overlay.items():
            if not ok and peer in healthy:
                run.evidence.append(f"cannot reach {peer}'s overlay address")
    await asyncio.gather(*(_clocked(r, _decide(r, opts, ui)) for r in changed))
    kept = {
        n
        for n, r in runs.items()
        if r.result in (Result.CONFIRMED, Result.PENDING, Result.UNCHANGED)
    }
    lock = _lock_for(final.lock, runs, kept)
    if ws.keys is not None and ws.keys_changed and ws.keys_path is not None:
        from sitewire.pipeline import save_keys

        save_keys(ws)
    outcome.lock_changed = save_lock(ws.lock_path, lock)
    return outcome


def _lock_for(lock: Lock, runs: Mapping[str, SiteRun], kept: set[str]) -> Lock:
    """The lock to save: a site that went back keeps the key it had before."""
    sites = {
        name: entry
        if name in kept or name not in runs
        else entry.model_copy(update={"public_key": runs[name].key_before})
        for name, entry in lock.sites.items()
    }
    return lock.model_copy(update={"sites": sites})


async def _decide(run: SiteRun, opts: Options, ui: Ui) -> None:
    token = run.token
    assert token is not None
    for line in run.evidence:
        ui.say(f"{run.name}: {line}")
    if run.problems:
        for problem in run.problems:
            ui.say(f"{run.name}: FAILED: {problem}")
        if run.lost:
            # The old connection hangs on the path the change cut; only the timer can act.
            run.result = Result.REVERTING
            ui.say(
                f"{run.name}: {run.result.value}: the router restores its backup by itself "
                f"within {max(0, round(seconds_left(run)))} s"
            )
            return
        try:
            state = await timed(
                safety.rollback(run.must_session(), token, device=run.device),
                safety.ROLLBACK_WAIT + 30,
                run.name,
                "rollback",
            )
            run.result = (
                Result.ROLLED_BACK if state is safety.Outcome.REVERTED else Result.REVERTING
            )
        except SitewireError:
            run.result = Result.REVERTING
        ui.say(f"{run.name}: {run.result.value}")
        return
    if not opts.confirm:
        run.result = Result.PENDING
        ui.say(
            f"{run.name}: verified; not confirmed (--no-confirm): it reverts within "
            f"{opts.revert_after} s unless you run: sitewire confirm"
        )
        return
    try:
        await timed(
            safety.confirm(run.must_session(), token, device=run.device), 60, run.name, "confirm"
        )
        run.result = Result.CONFIRMED
        ui.say(f"{run.name}: verified and confirmed")
    except SitewireError as exc:
        run.problems.append(f"could not confirm: {exc}")
        run.result = Result.REVERTING
        ui.say(f"{run.name}: could not confirm ({exc}); the router reverts by itself")


async def _release(runs: Sequence[SiteRun], ui: Ui) -> None:
    """Let go of armed sites before the configuration changed (roll back those whose keys did)."""

    async def one(run: SiteRun) -> None:
        if run.token is None:
            return
        try:
            if run.touched:
                await safety.rollback(run.must_session(), run.token, device=run.device)
                run.result = Result.ROLLED_BACK
            else:
                await safety.confirm(run.must_session(), run.token, device=run.device)
                run.result = Result.RELEASED
        except SitewireError as exc:
            ui.say(f"{run.name}: could not release ({exc}); its timer reverts it")
            run.result = Result.REVERTING

    await asyncio.gather(*(one(r) for r in runs))


# --- confirm / rollback for --no-confirm ----------------------------------------------------------


async def settle(
    plan: Plan, targets: Mapping[str, Target], creds: Credentials, verb: str, ui: Ui
) -> int:
    """`sitewire confirm|rollback`: act on every site's pending commit; return how many."""

    async def one(name: str) -> int:
        platform = plan.site(name).platform
        device = safety.device_for(platform)
        session = await connect(targets[name], creds)
        async with session:
            pending = await safety.pending(session, device=device)
            if pending is None:
                ui.say(f"{name}: nothing pending")
                return 0
            if verb == "confirm":
                await safety.confirm(session, pending.token, device=device)
                ui.say(f"{name}: commit {pending.token} confirmed")
            else:
                state = await safety.rollback(session, pending.token, device=device)
                ui.say(f"{name}: commit {pending.token} {state.value}")
            return 1

    results = await asyncio.gather(*(one(n) for n in plan.site_names), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return sum(r for r in results if isinstance(r, int))
