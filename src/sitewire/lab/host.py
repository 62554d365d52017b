"""Bringing a lab up and down on this machine, and running commands inside it."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sitewire.errors import InputError, SitewireError
from sitewire.lab import router as routers
from sitewire.lab.layout import (
    MAX_LAB_NUMBER,
    LabLayout,
    RouterLayout,
    compute_layout,
    hosts_text,
    netns_name,
)
from sitewire.lab.netns import (
    LabError,
    NsId,
    in_netns,
    in_router,
    is_mounted,
    kill_pids,
    lab_netns,
    link_delete,
    link_exists,
    log,
    netns_delete,
    netns_path,
    ns_id,
    pids_in,
    router_env,
    run,
    unmount,
)
from sitewire.lab.openwrt import userland
from sitewire.lab.state import (
    LabState,
    lab_dir,
    lab_names,
    load_state,
    make_lab_dir,
    numbers_in_use,
)
from sitewire.lab.wiring import build_backbone, move_wan, wire_router
from sitewire.plan import Plan
from sitewire.spec.model import Platform

RELEASES = ("24.10", "25.12")
TOOLS = (
    *("ip", "nsenter", "unshare", "mount", "umount", "sysctl", "nft"),
    *("busybox", "dropbear", "dropbearkey"),
)
_LAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")

AfterUp = Callable[[LabState], None]


def lab_up(
    plan: Plan,
    lab_name: str,
    openwrt_release: str = "24.10",
    *,
    spec_path: str | None = None,
    then: AfterUp | None = None,
) -> LabState:
    """Build every site of the plan; `then` runs on the finished lab inside the same rollback.

    Everything is recorded in the state file before it is made; on any failure (in `then` too)
    what was made is removed again and the error re-raised.
    """
    check_lab_name(lab_name)
    _check_host(openwrt_release)
    if any(site.platform == Platform.OPENWRT for site in plan.topology.spec.sites.values()):
        userland.userland(openwrt_release)  # refused here, before anything is made
    layout = compute_layout(plan.topology.spec, lab_name, _free_number())
    make_lab_dir(lab_name)
    state = LabState(layout, openwrt_release, spec_path)
    try:
        state.save()
        _build(state)
        if then is not None:
            then(state)
    except BaseException:
        _teardown(lab_name, state)
        raise
    return state


def check_lab_name(name: str) -> None:
    if not _LAB_NAME.fullmatch(name):
        raise InputError(
            f"{name!r} is not a valid lab name",
            where="lab",
            fix="use a letter, then letters, digits or _, at most 32 characters",
        )


def _check_host(release: str) -> None:
    if release not in RELEASES:
        raise InputError(
            f"OpenWrt release {release!r} is not in the lab",
            where="lab",
            fix=f"use one of {RELEASES}",
        )
    require_root()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"missing tools: {', '.join(missing)}", where="lab", fix="run scripts/bootstrap as root"
        )


def require_root() -> None:
    if os.geteuid() != 0:
        raise InputError(
            "the lab needs root (namespaces, mounts, veth)",
            where="lab",
            fix="run it as root, e.g. sudo sitewire lab up network.toml",
        )


def _free_number() -> int:
    used = numbers_in_use()
    taken = _root_ipv4_networks()
    for k in range(1, MAX_LAB_NUMBER + 1):
        net = ipaddress.IPv4Network(f"198.19.{k}.0/24")
        if k in used or link_exists(f"swl{k}") or any(net.overlaps(t) for t in taken):
            continue
        return k
    raise LabError(
        f"all {MAX_LAB_NUMBER} lab numbers are in use", where="lab up", fix="bring a lab down"
    )


def _root_ipv4_networks() -> list[ipaddress.IPv4Network]:
    out = run("root", ["ip", "-o", "-4", "address", "show"]).stdout
    nets = []
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    return nets


def _build(state: LabState) -> None:
    _bind_private(state)
    state.shared.mkdir(mode=0o755, exist_ok=True)
    build_backbone(state)
    client_public = routers.make_client_key(state)
    host_keys = {}
    for router in state.layout.routers:
        wire_router(state, router)
        host_keys[router.site] = routers.prepare_files(state, router, client_public)
        routers.make_mount_ns(state, router)
        routers.provision(state, router)
        routers.start_dropbear(state, router)
    routers.write_known_hosts(state, host_keys)


def _bind_private(state: LabState) -> None:
    # `unshare --mount=<file>` needs the file on a private mount (docs/lab.md).
    path = str(state.dir)
    state.record("bind", path)
    run("root", ["mount", "--bind", path, path])
    run("root", ["mount", "--make-private", path])


def lab_down(lab_name: str, *, missing_ok: bool = False) -> None:
    """Remove everything the lab made, from its state file, even if `up` stopped half-way."""
    check_lab_name(lab_name)
    leftovers = lab_netns(netns_name(lab_name, ""))
    if not lab_dir(lab_name).exists() and not leftovers:
        if missing_ok:
            return
        load_state(lab_name)  # raises the "no lab named" error
    try:
        state: LabState | None = load_state(lab_name)
    except InputError:
        state = None  # a state file that never got written: clean up by name
    _teardown(lab_name, state)


def _teardown(lab_name: str, state: LabState | None) -> None:
    errors: list[SitewireError] = []
    mnts = _mount_ns_files(lab_name, state)
    namespaces = _netns_to_remove(lab_name, state)
    ids = [i for i in (ns_id(p) for p in [*mnts, *map(netns_path, namespaces)]) if i is not None]
    _attempt(errors, partial(_kill_all, ids))
    for mnt in reversed(mnts):
        _attempt(errors, partial(unmount, mnt))
    for link in state.made("link") if state else []:
        _attempt(errors, partial(link_delete, link))
    for name in namespaces:
        _attempt(errors, partial(netns_delete, name))
    _attempt(errors, partial(unmount, lab_dir(lab_name)))
    _attempt(errors, partial(_remove_dir, lab_dir(lab_name)))
    routers.reap_detached()
    if errors:
        raise LabError(
            f"could not remove everything: {errors[0]}",
            where=f"lab {lab_name}",
            fix=f"fix that, then run 'sitewire lab down --name {lab_name}' again",
        )


def _attempt(errors: list[SitewireError], step: Callable[[], None]) -> None:
    try:
        step()
    except SitewireError as exc:
        log.debug("lab down: %s", exc)
        errors.append(exc)


def _mount_ns_files(lab_name: str, state: LabState | None) -> list[Path]:
    found = sorted((lab_dir(lab_name) / "routers").glob("*/mnt"))
    recorded = [Path(p) for p in state.made("mntns")] if state else []
    return [*recorded, *(p for p in found if p not in recorded)]


def _netns_to_remove(lab_name: str, state: LabState | None) -> list[str]:
    recorded = set(state.made("netns")) if state else set()
    present = set(lab_netns(netns_name(lab_name, "")))
    order = list(state.layout.netns_names()) if state else []
    return [*(n for n in order if n in recorded | present), *sorted(present - set(order))]


def _kill_all(ids: Sequence[NsId]) -> None:
    # A dying process may have forked; look again until nobody is left.
    for _ in range(5):
        pids = pids_in(ids)
        if not pids:
            return
        kill_pids(pids)
    raise LabError("processes keep appearing in the lab's namespaces", where="lab down")


def _remove_dir(path: Path) -> None:
    if not path.exists():
        return
    if is_mounted(path):
        raise LabError("still mounted, not removed", where=str(path))
    log.debug("[#] root: rm -rf %s", path)
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise LabError(f"cannot remove: {exc}", where=str(path)) from exc


def router_argv(state: LabState, site: str, argv: Sequence[str]) -> list[str]:
    """`argv` as run inside the router (its network and mount namespaces)."""
    router = state.layout.router(site)
    return in_router(state.mnt(site), router.netns, argv)


def host_argv(state: LabState, site: str, argv: Sequence[str], lan: int = 0) -> list[str]:
    """`argv` as run on the host of the site's LAN `lan` (its network namespace only)."""
    return in_netns(_host_netns(state, site, lan), argv)


def _host_netns(state: LabState, site: str, lan: int) -> str:
    router = state.layout.router(site)
    if not 0 <= lan < len(router.lans):
        raise InputError(
            f"{site} has no LAN {lan}",
            where=f"lab {state.name}",
            fix=f"use a LAN index below {len(router.lans)}" if router.lans else "it has no LAN",
        )
    return router.lans[lan].host_netns


def router_exec(
    state: LabState,
    site: str,
    argv: Sequence[str],
    input: str | None = None,
    *,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command in a router; never raises for its exit status."""
    return _exec(site, router_argv(state, site, argv), input, capture, timeout)


def host_exec(
    state: LabState,
    site: str,
    argv: Sequence[str],
    input: str | None = None,
    *,
    lan: int = 0,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command on a site's LAN host; never raises for its exit status."""
    where = f"{site}-h{lan}"
    return _exec(where, host_argv(state, site, argv, lan), input, capture, timeout)


def _exec(
    where: str, full: list[str], input: str | None, capture: bool, timeout: float | None
) -> subprocess.CompletedProcess[str]:
    log.debug("[#] %s: %s", where, subprocess.list2cmdline(full[full.index("--") + 1 :]))
    return subprocess.run(
        full,
        input=input,
        text=True,
        capture_output=capture,
        env=router_env(),
        timeout=timeout,
        check=False,
    )


def lab_move(state: LabState, site: str) -> tuple[RouterLayout, RouterLayout]:
    """Give a site the next free WAN address and point its DNS name there; (old, new)."""
    old = state.layout.router(site)
    layout = state.layout.moved(site)
    new = layout.router(site)
    move_wan(layout, old, new)
    state.layout = layout
    state.save()
    _write_hosts(state, layout)
    return old, new


def _write_hosts(state: LabState, layout: LabLayout) -> None:
    text = hosts_text(layout)
    for router in layout.routers:
        routers.write_router_file(state, router.site, "/etc/hosts", text)


@dataclass(frozen=True)
class RouterStatus:
    site: str
    platform: str
    wan: tuple[str, str]
    mgmt: str
    up: bool  # its namespace exists
    ssh: bool  # dropbear answers on the management address
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class LabSummary:
    name: str
    k: int
    openwrt_release: str
    spec_path: str | None
    routers: tuple[RouterStatus, ...]
    notes: tuple[str, ...]


def lab_status(lab_name: str | None = None) -> list[LabSummary]:
    """What is up: one lab, or every lab on this machine."""
    names = [lab_name] if lab_name is not None else lab_names()
    return [_summary(load_state(name)) for name in names]


def _summary(state: LabState) -> LabSummary:
    return LabSummary(
        state.name,
        state.layout.k,
        state.openwrt_release,
        state.spec_path,
        tuple(_router_status(r) for r in state.layout.routers),
        tuple(state.notes),
    )


def _router_status(router: RouterLayout) -> RouterStatus:
    up = netns_path(router.netns).exists()
    return RouterStatus(
        router.site,
        router.platform,
        (str(router.wan4), str(router.wan6)),
        str(router.mgmt),
        up,
        up and routers.ssh_banner(str(router.mgmt.ip), timeout=0.5).startswith("SSH-2.0-"),
        tuple(str(a) for lan in router.lans for a in lan.host),
    )
