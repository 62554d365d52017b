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
import base64
import fcntl
import hashlib
import os
import shlex
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from sitewire.deploy import safety
from sitewire.deploy.diff import describe, planned_changes
from sitewire.deploy.keys import ensure_preshared_key, ensure_private_key
from sitewire.deploy.live import (
    Step,
    drift_lines,
    file_diff,
    linux_revert,
    linux_steps,
    mask_secrets,
    openwrt_revert,
    openwrt_steps,
    tailscale_differs,
)
from sitewire.deploy.read import *  # noqa
from sitewire.deploy.read import linux_paths, read_site, stale_psks
from sitewire.deploy.run import *  # noqa
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
    ran_out,
    seconds_left,
    timed,
)
from sitewire.deploy.ssh import Credentials, RemoteError, Target, connect
from sitewire.deploy.verify import *  # noqa
from sitewire.deploy.verify import Evidence, evidence_lines, judge, parse_evidence, verify_script
from sitewire.diagnose.collect import (
    DeviceFacts,
)
from sitewire.diagnose.parse import HIDDEN
from sitewire.errors import InputError, SitewireError
from sitewire.pipeline import Workspace
from sitewire.plan import Plan, plan_network
from sitewire.plan.model import SitePlan
from sitewire.render.linux import CONF_DIR, render_linux
from sitewire.render.model import STAGING, Rendered
from sitewire.render.openwrt import SECRET_OPTIONS, render_openwrt
from sitewire.spec.lock import Lock, save_lock
from sitewire.spec.model import Platform

OPENWRT_BACKUP = ("/etc/config/network", "/etc/config/firewall", "/etc/crontabs/root")
PACKAGE_TIMEOUT = 600.0


# --- keys: the live ones, and stand-ins for the ones not yet born ---------------------------------


def placeholder_key(site: str) -> str:
    """A well-formed key standing for one to be made on `site`; shown as such in the diff."""
    return base64.b64encode(
        hashlib.sha256(f"sitewire: to be made on {site}".encode()).digest()
    ).decode()


def plan_with(ws: Workspace, keys: Mapping[str, str], clients: Mapping[str, str]) -> Plan:
    """Plan with the devices' keys, overriding whatever the lock remembered for sites."""
    lock = ws.lock
    if lock is not None:
        sites = {
            name: entry.model_copy(update={"public_key": keys.get(name)})
            for name, entry in lock.sites.items()
        }
        lock = lock.model_copy(update={"sites": sites})
    return plan_network(
        ws.spec,
        lock,
        {**clients, **keys},
        source=str(ws.spec_path),
        lock_source=str(ws.lock_path),
    )


class _ClientSecrets:
    """Secrets for apply: sites' keys stay on the devices; only clients' come from --local-keys."""

    def __init__(self, ws: Workspace, plan_clients: Sequence[str]) -> None:
        self._keys = ws.keys
        self._clients = set(plan_clients)

    def private_key(self, name: str) -> str | None:
        return None

    def preshared_key(self, a: str, b: str) -> str | None:
        if self._keys is None or not ({a, b} & self._clients):
            return None
        return self._keys.preshared_key(a, b)


def client_keys(ws: Workspace) -> dict[str, str]:
    """Public keys of clients that made no key of their own, from --local-keys (made if missing)."""
    need = [n for n, c in ws.spec.clients.items() if c.public_key is None]
    locked = {
        n: e.public_key for n, e in (ws.lock.clients.items() if ws.lock else ()) if e.public_key
    }
    if ws.keys is None:
        missing = [n for n in need if n not in locked]
        if missing:
            raise InputError(
                "has no public key, and apply never makes a client's private key unasked",
                where=f"{ws.spec_path}: clients.{missing[0]}",
                fix=f"set clients.{missing[0]}.public_key (made on the device), "
                "or pass --local-keys FILE to keep the client keys there",
            )
        return {}
    ws.keys_changed |= ws.keys.ensure(need, ())
    public = ws.keys.public_keys()
    return {n: public[n] for n in need}


# --- 2. diff --------------------------------------------------------------------------------------


def _render(plan: Plan, run: SiteRun, secrets: _ClientSecrets) -> Rendered:
    site = plan.site(run.name)
    if run.platform is Platform.OPENWRT:
        facts = run.must_facts()
        current = {p.name: p for p in (facts.network, facts.firewall) if p is not None}
        return render_openwrt(plan, site, secrets, current)
    return render_linux(plan, site, secrets)


def _diff(
    plan: Plan, run: SiteRun, secrets: _ClientSecrets, placeholders: Mapping[str, str]
) -> None:
    rendered = _render(plan, run, secrets)
    facts = run.must_facts()
    site = plan.site(run.name)
    lines: list[str] = []
    if run.missing_packages:
        lines.append(f"{run.name}: install {', '.join(run.missing_packages)}")
    if run.key is None:
        lines.append(f"{run.name}: private key: made on the device (only its public key returns)")
    if run.platform is Platform.OPENWRT:
        current = {p.name: p for p in (facts.network, facts.firewall) if p is not None}
        try:
            changes = planned_changes(current, rendered.text("uci-batch"))
        except SitewireError as exc:
            raise ApplyError(
                exc.message, where=run.name, fix="report this with 'uci export network'"
            ) from None
        # A secret can't be compared (the device hides it): unchanged unless the section is new.
        run.changes = [
            c for c in changes if not (c.option in SECRET_OPTIONS and c.before == HIDDEN)
        ]
        lines += describe(run.name, run.changes) if run.changes else []
        if run.cron_missing:
            lines.append(f"{run.name}: cron: wireguard_watchdog every minute")
    else:
        for f in rendered.files:
            if f.device_path is not None:
                lines += file_diff(
                    run.name,
                    f.device_path,
                    run.files_before.get(f.device_path),
                    rendered.text(f.path),
                )
    if (
        site.tailscale is not None
        and facts.tailscale.installed
        and tailscale_differs(site.tailscale, facts.tailscale.prefs)
    ):
        lines.append(f"{run.name}: tailscale: {shlex.join(site.tailscale.command())}")
    if (
        facts.tailscale.installed
        and site.tailscale is None
        and facts.tailscale.prefs
        and facts.tailscale.prefs.route_all
    ):
        run.problems.append(
            "warning: Tailscale accepts subnet routes here and the spec says nothing about "
            "Tailscale for this site; add a tailscale table to the site to have it fixed"
        )
    if not lines:
        # The files agree; the running peers may not (24.10's reload ignores them, or by hand).
        lines = drift_lines(site, facts)
    for name, key in placeholders.items():
        lines = [line.replace(key, f"(key to be made on {name})") for line in lines]
    run.diff = lines


# --- 3-4. arm and prepare -------------------------------------------------------------------------


def _backup_paths(plan: Plan, run: SiteRun, secrets: _ClientSecrets) -> list[str]:
    if run.platform is Platform.OPENWRT:
        return list(OPENWRT_BACKUP)
    site = plan.site(run.name)
    paths = linux_paths(render_linux(plan, site, secrets))
    paths.append(f"{CONF_DIR}/{site.interface}.key")
    paths += [f"{CONF_DIR}/{site.interface}-{p.name}.psk" for p in site.peers if p.preshared]
    return paths


async def _arm(plan: Plan, run: SiteRun, opts: Options, secrets: _ClientSecrets) -> None:
    site = plan.site(run.name)
    facts = run.must_facts()
    if run.platform is Platform.OPENWRT:
        reload_cmds = openwrt_revert(site, facts)
    else:
        reload_cmds = linux_revert(site, facts, opts.env)
    token = safety.new_token()
    # Taken before the router starts its timer: never later than the router's own deadline.
    deadline = asyncio.get_running_loop().time() + opts.revert_after
    await safety.arm(
        run.must_session(),
        token,
        _backup_paths(plan, run, secrets),
        opts.revert_after,
        reload_cmds,
        device=run.device,
    )
    run.token = token
    run.deadline = deadline


_INSTALL = {
    "opkg": "opkg update && opkg install {}",
    "apk": "apk update && apk add {}",
    "apt-get": "DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
    "dnf": "dnf install -y {}",
    "yum": "yum install -y {}",
    "pacman": "pacman -S --noconfirm {}",
    "zypper": "zypper --non-interactive install {}",
}


async def _prepare(run: SiteRun, site: SitePlan, ui: Ui) -> None:
    session = run.must_session()
    facts = run.must_facts()
    if run.missing_packages:
        assert facts.package_manager is not None
        packages = " ".join(shlex.quote(p) for p in run.missing_packages)
        command = _INSTALL[facts.package_manager.value].format(packages)
        ui.say(f"{run.name}: [#] {command}")
        result = await timed(session.run(command), PACKAGE_TIMEOUT, run.name, command)
        if result.rc != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [
                f"exit {result.rc}"
            ]
            raise ApplyError(
                f"could not install {', '.join(run.missing_packages)}: {detail[0]}",
                where=run.name,
                fix="check the router's package feeds and free space (df -h /overlay)",
            )
        run.handler_fresh = (
            run.platform is Platform.OPENWRT and "wireguard-tools" in run.missing_packages
        )
    if (
        run.platform is Platform.OPENWRT
        and not run.handler_fresh
        and facts.wg.interface(site.interface) is None
    ):
        # Installed earlier without a network restart since (by hand, or by an apply that was
        # then killed or reverted): netifd scans proto handlers only at its start (ref §1.5).
        # Without the ubus method (older netifd) restart to be sure.
        loaded = await timed(
            session.run("ubus call network get_proto_handlers"), 30, run.name, "ubus"
        )
        run.handler_fresh = '"wireguard"' not in loaded.stdout
    if run.key is None:
        await guarded(run, "true", "its private key was made")
        run.touched = True
    run.key = await ensure_private_key(session, run.platform, site.interface)
    if run.key_before is None:
        ui.say(f"{run.name}: private key made on the device; public key {run.key}")


# Pairs a device works on at once. One: dropbear 2022.82 to 2024.85 (the lab runs 2022.83) may
# close a session channel opened as another channel's command exits, before its exec request
# (mkj/dropbear#173, fixed by #326): "Session request failed". Disjoint pairs run in parallel.
PSK_PAIRS_AT_ONCE = 1


async def _share_psks(plan: Plan, runs: Mapping[str, SiteRun], ui: Ui) -> None:
    """Pairs in parallel, at most PSK_PAIRS_AT_ONCE per device (one after another, the 24 pairs
    of a 10-site network took 37 s); gates taken in name order, so no two pairs deadlock."""
    gates = {name: asyncio.Semaphore(PSK_PAIRS_AT_ONCE) for name in runs}

    async def share(name: str, peer: str) -> None:
        a, b = runs[name], runs[peer]
        first, second = sorted((name, peer))
        async with gates[first], gates[second]:
            for run in (a, b):
                if seconds_left(run) <= GUARD_MARGIN:
                    raise ran_out(run, f"the preshared key with {(a, b)[run is a].name} was made")
            start = asyncio.get_running_loop().time()
            made = await ensure_preshared_key(
                (a.must_session(), a.platform, plan.site(name).interface, peer),
                (b.must_session(), b.platform, plan.site(peer).interface, name),
            )
            took = asyncio.get_running_loop().time() - start
            a.seconds += took
            b.seconds += took
        if made:
            a.touched = b.touched = True
            ui.say(f"{name}, {peer}: preshared key made on {name}, copied device to device")

    pairs = [
        (name, peer.name)
        for name in plan.site_names
        for peer in plan.site(name).peers
        if peer.kind == "site" and peer.preshared and peer.name > name and peer.name in runs
        if runs[name].token is not None and runs[peer.name].token is not None
    ]
    results = await asyncio.gather(*(share(*p) for p in pairs), return_exceptions=True)
    for result in results:  # all finished: none is still writing when the caller rolls back
        if isinstance(result, BaseException):
            raise result


# --- 5. configure ---------------------------------------------------------------------------------


async def _configure(
    plan: Plan, run: SiteRun, secrets: _ClientSecrets, opts: Options, ui: Ui
) -> None:
    session = run.must_session()
    site = plan.site(run.name)
    facts = run.must_facts()
    rendered = _render(plan, run, secrets)
    steps: list[Step]
    if run.platform is Platform.OPENWRT:
        batch = f"{STAGING}/uci-batch"
        await session.put(batch, rendered.text("uci-batch"), 0o600)
        errors = f"{STAGING}/uci-batch.err"
        run.touched = True
        await guarded(
            run,
            f"uci batch < {batch} 2> {errors}; rm -f {batch}; "
            f"if [ -s {errors} ]; then cat {errors} >&2; exit 1; fi",
        )
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
            session.run(script), seconds_left(run) - GUARD_MARGIN, run.name, "verify"
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
    secrets = _ClientSecrets(ws, first.client_names)
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
    secrets: _ClientSecrets,
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
        _diff(draft, run, secrets, placeholders)
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
    failed = await _each(changed, lambda r: _arm(draft, r, opts, secrets))
    if failed:
        await _release([r for r in changed if r.token is not None], ui)
        raise _first_error(failed)
    for run in changed:
        ui.say(
            f"{run.name}: backed up; it reverts by itself in {opts.revert_after} s unless confirmed"
        )
    # 4. prepare
    failed = await _each(changed, lambda r: _prepare(r, first.site(r.name), ui))
    if not failed:
        try:
            await _share_psks(first, runs, ui)
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
