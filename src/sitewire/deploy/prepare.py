"""Before the configuration changes: each site's backup and revert timer, packages, keys."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Mapping

from sitewire.deploy import safety
from sitewire.deploy.changes import ClientSecrets
from sitewire.deploy.keys import ensure_preshared_key, ensure_private_key
from sitewire.deploy.live import (
    linux_revert,
    openwrt_revert,
)
from sitewire.deploy.read import linux_paths
from sitewire.deploy.run import (
    GUARD_MARGIN,
    ApplyError,
    Options,
    SiteRun,
    Ui,
    guarded,
    ran_out,
    seconds_left,
    timed,
)
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.render.linux import CONF_DIR, render_linux
from sitewire.spec.model import Platform

OPENWRT_BACKUP = ("/etc/config/network", "/etc/config/firewall", "/etc/crontabs/root")
PACKAGE_TIMEOUT = 600.0


# --- 3-4. arm and prepare -------------------------------------------------------------------------


def _backup_paths(plan: Plan, run: SiteRun, secrets: ClientSecrets) -> list[str]:
    if run.platform is Platform.OPENWRT:
        return list(OPENWRT_BACKUP)
    site = plan.site(run.name)
    paths = linux_paths(render_linux(plan, site, secrets))
    paths.append(f"{CONF_DIR}/{site.interface}.key")
    paths += [f"{CONF_DIR}/{site.interface}-{p.name}.psk" for p in site.peers if p.preshared]
    return paths


async def arm_site(plan: Plan, run: SiteRun, opts: Options, secrets: ClientSecrets) -> None:
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


async def prepare_site(run: SiteRun, site: SitePlan, ui: Ui) -> None:
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


async def share_psks(plan: Plan, runs: Mapping[str, SiteRun], ui: Ui) -> None:
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
