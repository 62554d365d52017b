"""`sitewire apply`: the plan onto live devices, under the routers' own dead-man switch.

The order (DESIGN.md decisions 2, 5-7); each stage returns one value per site (deploy.run):

1. read: connect to every site in parallel; facts, the live public key, the safety switch's
   state. Nothing is changed; any refusal here stops the whole apply.
2. diff: plan with the live keys (keys still to be born show as such), render, compare with the
   devices; show it and ask. `--dry-run` ends here, and so does a network with no change.
3. arm: back up what will be touched and start each changed site's revert timer. If one site
   is busy with another commit, the ones already armed are released and the apply is refused.
4. prepare: install missing packages, make missing private keys on the devices, and write
   each device's new preshared keys (made here in memory for the pairs whose ends did not
   match when read) in one command. A failure here releases or rolls back every site.
5. configure: a dialer once the listeners it dials are done; the files, then only the steps
   that make the change live (the driver's live steps): `wg set` or `renew` for peers,
   re-creation only for interface changes.
6. verify: each site as soon as its own change is done, over a NEW connection: handshakes and
   pings across the tunnel, and the route a LAN host's packet would take. Once every site is
   verified, each is confirmed or rolled back on its own evidence.

Every fan-out goes through deploy.runner; every message for a person is an event.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sitewire.deploy import safety
from sitewire.deploy.changes import (
    ClientSecrets,
    client_keys,
    diff_site,
    gone_keys,
    placeholder_key,
    plan_with,
)
from sitewire.deploy.decide import Dial, Sessions, decide_all, release, verify_site
from sitewire.deploy.events import Armed as ArmedEvent
from sitewire.deploy.events import (
    Event,
    NothingToChange,
    Observer,
    Planned,
    PskShared,
    Read,
    Result,
)
from sitewire.deploy.keys import new_psks, psks_by_site
from sitewire.deploy.prepare import arm_site, prepare_site
from sitewire.deploy.problems import ApplyError, Kind, Problem, Touched
from sitewire.deploy.read import read_site, stale_psks
from sitewire.deploy.remote import Credentials, Target
from sitewire.deploy.rotate import Rotation, renewed_psks
from sitewire.deploy.run import (
    Armed,
    Before,
    Clock,
    Configured,
    Diffed,
    Options,
    Outcome,
    Prepared,
    Site,
    SiteReport,
    guarded,
    run_steps,
)
from sitewire.deploy.runner import run_on_sites
from sitewire.deploy.verify import Evidence
from sitewire.driver import Command, driver_for
from sitewire.pipeline import Workspace, save_keys
from sitewire.plan import Plan
from sitewire.spec.lock import Lock, save_lock


@dataclass(frozen=True)
class Run:
    """What every stage of one apply shares; only the sessions and the clock change."""

    ws: Workspace
    sites: Mapping[str, Site]
    clients: Mapping[str, str]
    secrets: ClientSecrets
    opts: Options
    observer: Observer
    sessions: Sessions
    clock: Clock

    def emit(self, event: Event) -> None:
        self.observer.event(event)

    def plan(self, keys: Mapping[str, str]) -> Plan:
        return plan_with(self.ws, keys, self.clients)


async def apply_network(
    ws: Workspace,
    targets: Mapping[str, Target],
    creds: Credentials,
    opts: Options,
    observer: Observer,
    *,
    dial: Dial | None = None,
) -> Outcome:
    """The whole apply; `dial` opens a connection (default: SSH; tests give a fake transport)."""
    clients = client_keys(ws)
    first = plan_with(ws, {}, clients)  # addresses, roles; keys come next
    sites = {n: Site(n, driver_for(first.site(n).platform), targets[n]) for n in first.site_names}
    sessions = Sessions(targets, creds, dial)
    run = Run(
        ws, sites, clients, ClientSecrets(ws, first.client_names), opts, observer, sessions, Clock()
    )
    try:
        return await _apply(run, first)
    finally:
        await sessions.close_all()


async def _apply(run: Run, first: Plan) -> Outcome:
    before = await _read(run, first)
    rotate = run.opts.rotate
    keys = {n: b.key for n, b in before.items() if b.key is not None and n not in rotate}
    placeholders = {n: placeholder_key(n) for n in run.sites if n not in keys}
    draft = run.plan({**keys, **placeholders})
    # Pairs whose ends do not hold the same preshared key (the hashes read), or renewed.
    psk_pairs = sorted({*stale_psks(draft, before), *renewed_psks(run.opts, draft)})
    diffs = _diff(run, draft, before, placeholders, psk_pairs)
    changed = [n for n in run.sites if diffs[n].lines]
    unchanged = {
        n: SiteReport(n, Result.UNCHANGED, seconds=run.clock.seconds.get(n, 0.0)) for n in run.sites
    }
    if not changed:
        lock_changed = save_lock(run.ws.lock_path, draft.lock)
        run.emit(NothingToChange())
        return Outcome(unchanged, lock_changed)
    if run.opts.dry_run:
        return Outcome(unchanged)
    question = f"apply these changes to {len(changed)} site(s)?"
    if not run.opts.yes and not run.observer.ask(question):
        raise ApplyError(
            "nothing was changed", where="apply", fix="run again and answer yes, or pass --yes"
        )
    armed = await _arm(run, draft, before, diffs, changed)
    prepared = await _prepare(run, first, draft, before, armed, new_psks(psk_pairs))
    final = run.plan({**keys, **{n: p.key for n, p in prepared.items()}})
    configured, evidence = await _configure(run, final, before, diffs, armed, prepared)
    decided = await decide_all(run, final, armed, configured, evidence)
    reports = {
        n: SiteReport(n, d.result, d.problems, run.clock.seconds.get(n, 0.0), armed[n].token)
        for n, d in decided.items()
    }
    kept = {n for n in run.sites if n not in reports or reports[n].result in _KEPT}
    if run.ws.keys is not None and run.ws.keys_changed and run.ws.keys_path is not None:
        save_keys(run.ws)
    lock_changed = save_lock(run.ws.lock_path, _lock_for(final.lock, before, kept))
    return Outcome({**unchanged, **reports}, lock_changed)


_KEPT = (Result.CONFIRMED, Result.PENDING, Result.UNCHANGED)


# --- 1. read --------------------------------------------------------------------------------------


async def _read(run: Run, first: Plan) -> dict[str, Before]:
    # Which files a Linux site holds: rendered with stand-in keys (its site plan must come from
    # the same plan: `first` has no keys, and a Linux peer block needs one).
    stand_in = run.plan({n: placeholder_key(n) for n in run.sites})
    paths = {
        n: s.driver.read_paths(stand_in, stand_in.site(n), run.secrets)
        for n, s in run.sites.items()
    }

    async def one(name: str) -> Before:
        session = await run.sessions.open(name)
        return await read_site(session, run.sites[name], first, paths[name])

    results = await run_on_sites(run.sites, one)
    run.clock.add(results.seconds)
    results.raise_first(prefer=safety.CommitInProgress)
    for name, before in results.ok.items():
        run.emit(Read(name, before.facts.summary().splitlines()[0]))
    return dict(results.ok)


# --- 2. diff --------------------------------------------------------------------------------------


def _diff(
    run: Run,
    draft: Plan,
    before: Mapping[str, Before],
    placeholders: Mapping[str, str],
    psk_pairs: Sequence[tuple[str, str]],
) -> dict[str, Diffed]:
    gone = gone_keys(run.ws)
    diffs = {
        n: diff_site(
            draft,
            site,
            before[n],
            run.secrets,
            placeholders,
            remove_foreign=run.opts.remove_foreign,
            gone=gone,
            rotating=n in run.opts.rotate,
        )
        for n, site in run.sites.items()
    }
    extra: dict[str, list[str]] = {n: [] for n in run.sites}
    for a, b in psk_pairs:
        # Neither end shows it otherwise (keys are hidden): both must be armed to share anew.
        extra[a].append(f"{a}: preshared key with {b}: made anew, written to both ends")
        extra[b].append(f"{b}: preshared key with {a}: made anew, written to both ends")
    out = {}
    for n, d in diffs.items():
        out[n] = replace(d, lines=(*d.lines, *extra[n]))
        run.emit(Planned(n, out[n].lines, out[n].warnings))
    return out


# --- 3-4. arm, prepare ----------------------------------------------------------------------------


async def _arm(
    run: Run,
    draft: Plan,
    before: Mapping[str, Before],
    diffs: Mapping[str, Diffed],
    changed: Sequence[str],
) -> dict[str, Armed]:
    async def one(name: str) -> Armed:
        site, hitless = run.sites[name], diffs[name].hitless
        session = run.sessions[name]
        return await arm_site(session, site, draft, before[name], run.opts, run.secrets, hitless)

    results = await run_on_sites(changed, one)
    run.clock.add(results.seconds)
    if results.failed:
        await release(run.sessions, run.sites, results.ok, set(), run.emit)
        raise results.first_error(prefer=safety.CommitInProgress)
    for name in changed:
        run.emit(ArmedEvent(name, run.opts.revert_after))
    return dict(results.ok)


async def _prepare(
    run: Run,
    first: Plan,
    draft: Plan,
    before: Mapping[str, Before],
    armed: Mapping[str, Armed],
    psks: Mapping[tuple[str, str], str],
) -> dict[str, Prepared]:
    mine = psks_by_site(psks)

    async def one(name: str) -> Prepared:
        site = run.sites[name]
        # Hand-made sections are told by the keys the devices really hold: the draft's.
        held = replace(before[name].held, drop_foreign=run.opts.remove_foreign)
        took_over = site.driver.takeover(draft.site(name), held)
        return await prepare_site(
            run.sessions[name],
            site,
            first,
            before[name],
            armed[name],
            run.emit,
            took_over,
            replace_key=name in run.opts.rotate,
            psks=mine.get(name, []),
        )

    results = await run_on_sites(armed, one)
    run.clock.add(results.seconds)
    touched = {n for n, p in results.ok.items() if p.touched}
    touched |= {n for n, exc in results.failed.items() if isinstance(exc, Touched)}
    if results.failed:
        # A pair written on one end only goes back with it: every touched site is rolled back.
        await release(run.sessions, run.sites, armed, touched, run.emit)
        raise results.first_error()
    for a, b in psks:
        run.emit(PskShared(a, b))
    return dict(results.ok)


# --- 5. configure ---------------------------------------------------------------------------------


async def _configure(
    run: Run,
    final: Plan,
    before: Mapping[str, Before],
    diffs: Mapping[str, Diffed],
    armed: Mapping[str, Armed],
    prepared: Mapping[str, Prepared],
) -> tuple[dict[str, Configured], dict[str, Evidence]]:
    rotation = Rotation(run.opts, armed) if run.opts.rotate else None
    recreated: set[str] = set()

    async def one(name: str) -> Configured:
        try:
            return await configure(name)
        finally:
            if rotation is not None:  # a site that failed anywhere holds no gate shut
                rotation.leave(name)

    async def configure(name: str) -> Configured:
        site, planned = run.sites[name], final.site(name)
        session = run.sessions[name]
        drop = run.opts.remove_foreign
        held = replace(before[name].held, keep_peers=diffs[name].keep_peers, drop_foreign=drop)
        rendered = site.driver.render(final, planned, run.secrets, held.facts, drop_foreign=drop)
        for item in site.driver.push(rendered, held):
            if isinstance(item, Command):
                await guarded(session, armed[name], item.command, item.what, stdin=item.stdin)
            else:
                await session.put(item.path, item.text, item.mode)
        if rotation is not None:  # every site's files first, then the switch everywhere at once
            rotation.pushed.arrive(name)
            await rotation.pushed.opened.wait()
        steps = site.driver.live_steps(
            planned,
            held,
            rendered,
            diffs[name].changes,
            handler_fresh=prepared[name].handler_fresh,
            env=run.opts.env,
        )
        fresh = prepared[name].handler_fresh
        if fresh or site.driver.recreates(planned, held, rendered, diffs[name].changes):
            recreated.add(name)  # its tunnels' sessions are gone: their dialers start afresh
        if rotation is not None:
            return await rotation.run(session, armed[name], planned, site.driver, steps, run.emit)
        return await run_steps(session, armed[name], steps, run.emit)

    return await _pipelines(run, final, before, armed, one, recreated)


async def _pipelines(
    run: Run,
    final: Plan,
    before: Mapping[str, Before],
    armed: Mapping[str, Armed],
    one: Callable[[str], Awaitable[Configured]],
    recreated: set[str],
) -> tuple[dict[str, Configured], dict[str, Evidence]]:
    """Each armed site configured by `one`, then verified, every site on its own pace."""
    # Every site at once, each at its own pace: its verification starts as soon as its own
    # change is done, its probes once every site's is (they reach every site). A dialer whose
    # first handshake went out before its listener was up re-creates that peer first
    # (live.fresh_start_script), so nobody waits for WireGuard's 5 s retry. A rotation's gate
    # makes every site switch at the same moment.
    done = {n: asyncio.Event() for n in armed}
    out: dict[str, Configured] = {}
    evidence: dict[str, Evidence] = {}

    async def pipeline(name: str) -> None:
        try:
            results = await run_on_sites([name], one)
        finally:
            done[name].set()
        run.clock.add(results.seconds)
        if name in results.failed:
            out[name] = Configured(problem=Problem(Kind.CONFIGURE, str(results.failed[name])))
            return
        out[name] = results.ok[name]
        problem = out[name].problem
        if problem is None or problem.kind is Kind.DROPPED:
            others = [event for other, event in done.items() if other != name]
            evidence[name] = await verify_site(
                run, final, before, name, armed[name], out[name], others, recreated
            )

    await asyncio.gather(*(pipeline(n) for n in armed))
    return out, evidence


# --- the whole apply ------------------------------------------------------------------------------


def _lock_for(lock: Lock, before: Mapping[str, Before], kept: set[str]) -> Lock:
    """The lock to save: a site that went back keeps the key it had before."""
    sites = {
        name: entry
        if name in kept or name not in before
        else entry.model_copy(update={"public_key": before[name].key})
        for name, entry in lock.sites.items()
    }
    return lock.model_copy(update={"sites": sites})


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
