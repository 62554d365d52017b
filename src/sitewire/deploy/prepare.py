"""3-4. Before the configuration changes: each site's backup and revert timer, packages, keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from sitewire.deploy import safety
from sitewire.deploy.changes import ClientSecrets
from sitewire.deploy.events import Event, KeyMade, StepStarted
from sitewire.deploy.keys import ensure_private_key
from sitewire.deploy.problems import ApplyError, Touched
from sitewire.deploy.remote import Shell
from sitewire.deploy.run import (
    Armed,
    Before,
    Options,
    Prepared,
    Site,
    guarded,
    timed,
)
from sitewire.deploy.runner import one_line
from sitewire.driver import Command, install_command
from sitewire.errors import SitewireError
from sitewire.plan import Plan

PACKAGE_TIMEOUT = 600.0


async def arm_site(
    session: Shell,
    site: Site,
    plan: Plan,
    before: Before,
    opts: Options,
    secrets: ClientSecrets,
    hitless: bool = False,
) -> Armed:
    """`hitless`: a peers-only change, whose revert puts the old peers back live."""
    planned = plan.site(site.name)
    token = safety.new_token()
    revert = site.driver.revert(planned, before.facts, opts.env, hitless=hitless)
    # Taken before the router starts its timer: never later than the router's own deadline.
    deadline = asyncio.get_running_loop().time() + opts.revert_after
    await safety.arm(
        session,
        token,
        site.driver.backup_paths(plan, planned, secrets),
        opts.revert_after,
        revert.commands,
        device=site.device,
        live=revert.live,
    )
    return Armed(token, deadline)


async def prepare_site(
    session: Shell,
    site: Site,
    plan: Plan,
    before: Before,
    armed: Armed,
    emit: Callable[[Event], None],
    took_over: Command | None = None,
    replace_key: bool = False,
    psks: Sequence[tuple[str, str]] = (),
) -> Prepared:
    """Packages, hand-made sections taken over (`took_over`, from the plan with the live
    keys), the device's private key (made there if it has none, or `replace_key`), then its
    new preshared keys (`psks`: peer and key), all in one command."""
    planned, driver = plan.site(site.name), site.driver
    handler_fresh = False
    if before.missing_packages:
        emit(StepStarted(site.name, _install_command(before)))
        await _install(session, site, before)
        handler_fresh = driver.fresh_handler(before.missing_packages)
    probe = None if handler_fresh else driver.handler_probe(planned, before.facts)
    if probe is not None:
        loaded = await timed(session.run(probe), 30, site.name, probe)
        handler_fresh = driver.handler_absent(loaded.stdout)
    if took_over is not None:
        emit(StepStarted(site.name, took_over.command.split()[0] + " ...", took_over.what))
        try:
            await guarded(session, armed, took_over.command, took_over.what, stdin=took_over.stdin)
        except SitewireError as exc:
            raise Touched(exc) from exc
    touched = took_over is not None
    try:
        making = before.key is None or replace_key
        if making:
            await guarded(session, armed, "true", "its private key was made")
            touched = True
        key = await ensure_private_key(session, driver, planned.interface, replace=replace_key)
        if psks:
            touched = True
            command = driver.psk_write(planned.interface, [peer for peer, _ in psks])
            stdin = "".join(f"{psk}\n" for _, psk in psks)
            what = "its preshared keys were written"
            await guarded(session, armed, command, what, stdin=stdin, in_script=True)
    except Exception as exc:
        if not touched:
            raise
        # The key may be written: roll back, to be sure, whatever the error was.
        cause = exc if isinstance(exc, SitewireError) else SitewireError(one_line(exc))
        raise Touched(cause) from exc
    if making:
        emit(KeyMade(site.name, key, replaced=replace_key))
    return Prepared(key, handler_fresh, touched)


def _install_command(before: Before) -> str:
    manager = before.facts.package_manager
    assert manager is not None  # the driver refused a device that cannot install
    return install_command(manager.value, before.missing_packages)


async def _install(session: Shell, site: Site, before: Before) -> None:
    command = _install_command(before)
    result = await timed(session.run(command), PACKAGE_TIMEOUT, site.name, command)
    if result.rc != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [
            f"exit {result.rc}"
        ]
        raise ApplyError(
            f"could not install {', '.join(before.missing_packages)}: {detail[0]}",
            where=site.name,
            fix="check the router's package feeds and free space (df -h /overlay)",
        )
