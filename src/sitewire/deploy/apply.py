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
import ipaddress
import os
import re
import shlex
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar

from sitewire.deploy import safety
from sitewire.deploy.diff import Change, describe, planned_changes
from sitewire.deploy.keys import ensure_preshared_key, ensure_private_key, psk_read_command
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
from sitewire.deploy.ssh import Credentials, RemoteError, Session, Target, connect
from sitewire.diagnose.collect import (
    FACT_SECTIONS,
    DeviceFacts,
    facts_from_sections,
    run_sections,
)
from sitewire.diagnose.parse import HIDDEN, ScriptSection
from sitewire.errors import InputError, SitewireError
from sitewire.pipeline import Workspace
from sitewire.plan import Plan, plan_network
from sitewire.plan.model import WATCHDOG_CRON, SitePlan
from sitewire.render.linux import CONF_DIR, render_linux
from sitewire.render.model import STAGING, Rendered
from sitewire.render.openwrt import SECRET_OPTIONS, render_openwrt
from sitewire.spec.lock import Lock, save_lock
from sitewire.spec.model import Platform
from sitewire.spec.types import IPNetwork

T = TypeVar("T")

OPENWRT_BACKUP = ("/etc/config/network", "/etc/config/firewall", "/etc/crontabs/root")
STEP_TIMEOUT = 120.0  # one command on a device; package installs get PACKAGE_TIMEOUT
PACKAGE_TIMEOUT = 600.0


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


# --- 1. read --------------------------------------------------------------------------------------


def _psk_section(site: SitePlan) -> tuple[str, str]:
    """`<peer> <sha256 of the preshared key held for it>` (or `-`), computed on the device."""
    lines = []
    for peer in site.peers:
        if peer.kind == "site" and peer.preshared:
            read = psk_read_command(site.platform, site.interface, peer.name)
            lines.append(
                f'_k=$({read}); if [ -n "$_k" ]; then echo "{peer.name} '
                '$(printf %s "$_k" | sha256sum | cut -d" " -f1)"; '
                f"else echo '{peer.name} -'; fi"
            )
    return ("sw_psk", "\n".join(lines) + "\nreturn 0")


def _extra_sections(site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
    return [_psk_section(site), *_key_sections(site, paths)]


def _key_sections(site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
    iface = site.interface
    if site.platform is Platform.OPENWRT:
        option = shlex.quote(f"network.{iface}.private_key")
        pubkey = (
            "has wg || return 0\n"
            f"_k=$(uci -q get {option}) || return 0\n"
            '[ -n "$_k" ] && printf "%s\\n" "$_k" | wg pubkey'
        )
        line = shlex.quote(WATCHDOG_CRON)
        cron = (
            f"grep -qxF {line} /etc/crontabs/root 2>/dev/null && echo line\n"
            "/etc/init.d/cron enabled 2>/dev/null && echo enabled\nreturn 0"
        )
        return [("sw_pubkey", pubkey), ("sw_cron", cron)]
    key = shlex.quote(f"{CONF_DIR}/{iface}.key")
    out = [("sw_pubkey", f"has wg || return 0\n[ -s {key} ] || return 0\nwg pubkey < {key}")]
    hide = r"sed -E 's/^([[:space:]]*(PrivateKey|PresharedKey)[[:space:]]*=).*/\1 (hidden)/'"
    for n, path in enumerate(paths):
        quoted = shlex.quote(path)
        out.append((f"sw_file{n}", f"[ -f {quoted} ] || return 3\n{hide} {quoted}"))
    return out


def _linux_paths(rendered: Rendered) -> list[str]:
    return [f.device_path for f in rendered.files if f.device_path is not None]


async def _read(run: SiteRun, plan: Plan, creds: Credentials, linux_paths: Sequence[str]) -> None:
    run.session = await connect(run.target, creds)
    site = plan.site(run.name)
    sections = await run_sections(
        run.session, (*FACT_SECTIONS, *_extra_sections(site, linux_paths))
    )
    run.facts = facts_from_sections(run.name, run.platform, sections)
    run.psk_hashes = dict(
        line.split() for line in sections["sw_psk"].stdout.splitlines() if len(line.split()) == 2
    )
    pubkey = sections["sw_pubkey"].stdout.strip()
    run.key_before = run.key = pubkey if re.fullmatch(r"[A-Za-z0-9+/]{43}=", pubkey) else None
    if run.platform is Platform.OPENWRT:
        cron = sections["sw_cron"].stdout.split()
        run.cron_missing = site.watchdog and not {"line", "enabled"} <= set(cron)
    for n, path in enumerate(linux_paths):
        found: ScriptSection = sections[f"sw_file{n}"]
        run.files_before[path] = found.stdout if found.rc == 0 else None
    _preflight(run, site)
    switch = await safety.status(run.session, device=run.device)
    if switch.pending is not None:
        left = switch.pending.seconds_left
        raise safety.CommitInProgress(
            f"another apply is in progress (commit {switch.pending.token}, "
            + (f"reverts in {left} s)" if left is not None else "being armed)"),
            where=run.name,
            fix="wait for it to finish, or end it with: sitewire confirm / sitewire rollback",
            token=switch.pending.token,
        )


def _preflight(run: SiteRun, site: SitePlan) -> None:
    facts = run.must_facts()
    if facts.pending_changes:
        raise ApplyError(
            f"uci holds {len(facts.pending_changes)} uncommitted change(s)",
            where=run.name,
            fix="look at them with 'uci changes' on the router, then 'uci commit' or 'uci revert'",
        )
    if run.platform is Platform.OPENWRT:
        if facts.openwrt is None:
            raise ApplyError(
                "is not an OpenWrt router (no /etc/openwrt_release)",
                where=run.name,
                fix=f'set sites.{run.name}.platform = "linux" if it is a Linux host',
            )
        missing = tuple(p for p in site.packages() if p not in facts.packages)
        if missing and facts.package_manager is None:
            raise ApplyError(
                f"needs {', '.join(missing)} and has no package manager",
                where=run.name,
                fix="install WireGuard support on the router by hand (opkg or apk)",
            )
        run.missing_packages = missing
    elif not facts.wireguard_tools:
        if facts.package_manager is None:
            raise ApplyError(
                "has no 'wg' and no package manager sitewire knows",
                where=run.name,
                fix="install wireguard-tools on the host by hand",
            )
        run.missing_packages = ("wireguard-tools",)
    pins = site.tailscale.pins if site.tailscale is not None else ()
    for version, rule52 in ((4, facts.lookup52), (6, facts.lookup52_v6)):
        if not any(p.version == version for p in pins) or rule52 is None:
            continue
        assert site.tailscale is not None
        if site.tailscale.pin_priority >= rule52:
            # mwan3 moves tailscaled's rule to 13xx (reference §6.1): a pin behind it does nothing.
            raise ApplyError(
                f"pin_priority {site.tailscale.pin_priority} is not below Tailscale's "
                f"'lookup 52' rule, which runs at priority {rule52} here (IPv{version})",
                where=run.name,
                fix=f"set sites.{run.name}.tailscale.pin_priority to less than {rule52}",
            )
    if facts.rc_local.runs_tailscale_up:
        run.problems.append(
            "warning: /etc/rc.local runs `tailscale up` at every boot and may undo "
            "`tailscale set`; remove that line"
        )


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
    paths = _linux_paths(render_linux(plan, site, secrets))
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


# A change starts on a device only while this much of its revert timer is left: whatever it
# writes must be in place before the timer restores the backup, never after.
GUARD_MARGIN = 5


class TimerRanOut(ApplyError):
    """The site's revert timer fired (or nearly) before the change was made: nothing written."""


def _seconds_left(run: SiteRun) -> float:
    if run.deadline is None:
        return float("inf")
    return run.deadline - asyncio.get_running_loop().time()


def _ran_out(run: SiteRun, what: str) -> TimerRanOut:
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


async def _guarded(run: SiteRun, command: str, what: str | None = None) -> str:
    """session.check(command), only while the site's commit is pending with time to spare."""
    shown = command.split()[0]
    what = what or f"{shown!r} ran"
    if _seconds_left(run) <= GUARD_MARGIN:
        raise _ran_out(run, what)
    assert run.token is not None
    # Past the deadline the router reverts whatever this does: no use waiting longer.
    seconds = min(STEP_TIMEOUT, max(_seconds_left(run), 1.0))
    result = await _timed(
        run.must_session().run(guard(run.token) + command), seconds, run.name, command
    )
    if result.rc == _GUARD_RC and "no longer pending" in result.stderr:
        raise _ran_out(run, what)
    if result.rc != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
        raise RemoteError(f"{shown} failed: {detail[0]}", where=run.name)
    return result.stdout


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
        result = await _timed(session.run(command), PACKAGE_TIMEOUT, run.name, command)
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
        loaded = await _timed(
            session.run("ubus call network get_proto_handlers"), 30, run.name, "ubus"
        )
        run.handler_fresh = '"wireguard"' not in loaded.stdout
    if run.key is None:
        await _guarded(run, "true", "its private key was made")
        run.touched = True
    run.key = await ensure_private_key(session, run.platform, site.interface)
    if run.key_before is None:
        ui.say(f"{run.name}: private key made on the device; public key {run.key}")


async def _timed(work: Awaitable[T], seconds: float, site: str, what: str) -> T:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise RemoteError(
            f"no answer within {seconds:.0f} s to {what.split()[0]!r} (connection lost?)",
            where=site,
        ) from None


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
                if _seconds_left(run) <= GUARD_MARGIN:
                    raise _ran_out(run, f"the preshared key with {(a, b)[run is a].name} was made")
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
        await _guarded(
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
        await _guarded(run, "true", "its files were written")
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
            await _guarded(run, step.command, f"the step '{step.why}'")
        except RemoteError as exc:
            if "connection lost" in exc.message or "no answer" in exc.message:
                # A restart may cut this session; the verification over a new one decides,
                # after running the steps left (a step cut short runs again: they all may).
                run.problems.append(f"the session dropped during {_shown(step).split()[0]!r}")
                run.steps_left = list(steps[n:])
                return
            raise


# --- 6. verify ------------------------------------------------------------------------------------


def lan_address(facts: DeviceFacts | None, prefix: object) -> tuple[str, str] | None:
    """(the device's own address in `prefix`, the device it sits on), from its routes."""
    if facts is None:
        return None
    for route in facts.routes:
        if route.dest == prefix and route.src is not None and route.dev is not None:
            return str(route.src), route.dev
    return None


def _lan_host(lans: Sequence[IPNetwork], router: str) -> str:
    """An address in the router's LAN that is not the router's own: a LAN host's packet."""
    address = ipaddress.ip_address(router)
    lan = next(p for p in lans if address in p)
    candidates = [lan.broadcast_address - 1, lan.broadcast_address - 2, lan.network_address + 2]
    return str(next(c for c in candidates if c != address))


def verify_script(
    plan: Plan, name: str, facts: Mapping[str, DeviceFacts | None], timeout: float
) -> str:
    site = plan.site(name)
    iface = shlex.quote(site.interface)
    lines = [
        "now() { cut -d. -f1 /proc/uptime; }",
        f"end=$(( $(now) + {int(timeout)} ))",
        # Any reply before the deadline counts: a path through a relay may need a second try.
        'reach() { while :; do ping -c 1 -W 1 "$@" >/dev/null 2>&1 && return 0; '
        '[ "$(now)" -ge "$end" ] && return 1; done; }',
    ]
    for peer in site.peers:
        if peer.kind != "site" or peer.public_key is None:
            continue
        other = plan.site(peer.name)
        target = str(other.addresses[0].ip)
        key = shlex.quote(peer.public_key)
        lines += [
            "while :; do",
            f"  t=$(wg show {iface} latest-handshakes | awk -v k={key} '$1 == k {{ print $2 }}')",
            f'  if [ -n "$t" ] && [ "$t" != 0 ]; then echo "hs {peer.name} ok"; break; fi',
            f'  if [ "$(now)" -ge "$end" ]; then echo "hs {peer.name} none"; break; fi',
            f"  ping -c 1 -W 1 {target} >/dev/null 2>&1 || sleep 1",
            "done",
        ]
    local = next((a for p in site.lan if (a := lan_address(facts.get(name), p))), None)
    for other_name in plan.site_names:
        if other_name == name:
            continue
        other = plan.site(other_name)
        target = str(other.addresses[0].ip)
        lines.append(
            f"reach {target} && echo 'ping overlay {other_name} ok' "
            f"|| echo 'ping overlay {other_name} fail'"
        )
        remote = next((a for p in other.lan if (a := lan_address(facts.get(other_name), p))), None)
        if local is None or remote is None:
            continue
        src, dev = local
        dst = remote[0]
        host = _lan_host(site.lan, src)
        lines.append(
            f"reach -I {src} {dst} && echo 'ping lan {other_name} ok' "
            f"|| echo 'ping lan {other_name} fail'"
        )
        lines.append(
            f'echo "route {other_name} '
            f'$(ip route get {dst} from {host} iif {dev} 2>&1 | head -n 1)"'
        )
    return "\n".join(lines) + "\n"


@dataclass
class Evidence:
    reached: bool = False  # the new SSH connection worked
    failed: str | None = None  # reached, but could not be verified (e.g. already reverted)
    handshakes: dict[str, bool] = field(default_factory=dict)
    overlay: dict[str, bool] = field(default_factory=dict)
    lan: dict[str, bool] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)


def parse_evidence(stdout: str) -> Evidence:
    ev = Evidence(reached=True)
    for line in stdout.splitlines():
        words = line.split()
        match words:
            case ["hs", peer, state]:
                ev.handshakes[peer] = state == "ok"
            case ["ping", "overlay", peer, state]:
                ev.overlay[peer] = state == "ok"
            case ["ping", "lan", peer, state]:
                ev.lan[peer] = state == "ok"
            case ["route", peer, *rest]:
                ev.routes[peer] = " ".join(rest)
    return ev


def judge(plan: Plan, name: str, ev: Evidence, healthy: set[str]) -> list[str]:
    """What is wrong with `name`, from its own evidence; empty = confirm it."""
    if not ev.reached:
        return ["no new SSH connection after the change (locked out?)"]
    if ev.failed is not None:
        return [ev.failed]
    iface = plan.site(name).interface
    out: list[str] = []
    for peer, dev in ev.routes.items():
        if f" dev {iface}" not in f" {dev} ":
            out.append(f"a LAN host's packet to {peer} would not use {iface}: {dev}")
    # Every site that passed its own checks must answer, on its overlay address and its LAN
    # address: a site that cannot say the same of itself is not a fair judge of others.
    others = [o for o in plan.site_names if o != name and o in healthy]
    lost = [o for o in others if ev.overlay.get(o) is False]
    if lost:
        out.append(f"cannot reach {', '.join(lost)} across the tunnel")
    lan = [o for o in others if o not in lost and ev.lan.get(o) is False]
    if lan:
        out.append(f"cannot reach the LAN of {', '.join(lan)} from its own LAN address")
    return out


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
        switch = await _timed(safety.status(session, device=run.device), 30, run.name, "status")
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
    budget = min(float(opts.verify_timeout), _seconds_left(run) - 2 * GUARD_MARGIN)
    if budget < 3:
        return Evidence(
            reached=True,
            failed="too little of its revert timer was left to verify it (use a longer "
            "--revert-after)",
        )
    try:
        script = verify_script(plan, run.name, facts, budget)
        result = await _timed(
            session.run(script), _seconds_left(run) - GUARD_MARGIN, run.name, "verify"
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
            _linux_paths(render_linux(stand_in, stand_in.site(name), secrets))
            if run.platform is Platform.LINUX
            else []
        )
        for name, run in runs.items()
    }
    failed = await _each(list(runs.values()), lambda r: _read(r, first, creds, paths[r.name]))
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
    for a, b in _stale_psks(draft, runs):
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
        run.evidence = _evidence_lines(ev)
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


def _evidence_lines(ev: Evidence) -> list[str]:
    out = [f"handshake with {p}: {'yes' if ok else 'none'}" for p, ok in ev.handshakes.items()]
    out += [f"ping {p} overlay: {'ok' if ok else 'FAILED'}" for p, ok in ev.overlay.items()]
    out += [
        f"ping {p} LAN from LAN address: {'ok' if ok else 'FAILED'}" for p, ok in ev.lan.items()
    ]
    return out


def _stale_psks(plan: Plan, runs: Mapping[str, SiteRun]) -> list[tuple[str, str]]:
    """Site pairs whose ends do not hold the same preshared key (or none at all)."""
    out = []
    for name in plan.site_names:
        for peer in plan.site(name).peers:
            if peer.kind != "site" or not peer.preshared or peer.name < name:
                continue
            mine = runs[name].psk_hashes.get(peer.name, "-")
            theirs = runs[peer.name].psk_hashes.get(name, "-")
            if mine == "-" or mine != theirs:
                out.append((name, peer.name))
    return out


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
                f"within {max(0, round(_seconds_left(run)))} s"
            )
            return
        try:
            state = await _timed(
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
        await _timed(
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
