"""`lab up --configured`: put what `render` produced on the lab routers over SSH, as apply will.

Until `sitewire apply` exists this is how a lab router gets its configuration: the same files,
through the router's own package manager, `uci batch`, network restart and firewall reload.
Listeners are configured before dialers, so a dialer's first handshake is answered at once.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Mapping, Sequence

from sitewire.deploy.ssh import Credentials, RemoteError, Session, Target, connect
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.render import Rendered, Secrets, render_site
from sitewire.spec.model import Platform

STAGING = "/tmp/sitewire"


async def configure_sites(
    plan: Plan, secrets: Secrets, targets: Mapping[str, Target], creds: Credentials
) -> None:
    sites = [plan.site(name) for name in plan.site_names]
    for group in ([s for s in sites if s.endpoint], [s for s in sites if not s.endpoint]):
        await asyncio.gather(
            *(_configure(plan, site, secrets, targets[site.name], creds) for site in group)
        )


async def _configure(
    plan: Plan, site: SitePlan, secrets: Secrets, target: Target, creds: Credentials
) -> None:
    rendered = render_site(plan, site.name, secrets)
    session = await connect(target, creds)
    async with session:
        if site.platform is Platform.OPENWRT:
            await _configure_openwrt(session, site, rendered)
        else:
            await _configure_linux(session, site, rendered)


async def _configure_openwrt(session: Session, site: SitePlan, rendered: Rendered) -> None:
    packages = " ".join(site.packages())
    await session.check(
        "if command -v apk >/dev/null 2>&1; then apk update && apk add "
        f"{packages}; else opkg update && opkg install {packages}; fi"
    )
    await session.put(f"{STAGING}/uci-batch", rendered.text("uci-batch"), 0o600)
    # uci batch exits 0 even when a line fails (reference §1.6): its stderr is the verdict.
    result = await session.run(f"uci batch < {STAGING}/uci-batch; rm -f {STAGING}/uci-batch")
    if result.rc != 0 or result.stderr.strip():
        raise RemoteError(f"uci batch failed: {result.stderr.strip()}", where=site.name)
    # The wireguard proto handler is only loaded when netifd starts (reference §1.5).
    await session.check("/etc/init.d/network restart")
    await session.check("/etc/init.d/firewall reload")
    await _commands(session, rendered.commands)


async def _configure_linux(session: Session, site: SitePlan, rendered: Rendered) -> None:
    for f in rendered.files:
        if f.device_path is not None:
            # wg-quick warns about a world-readable config even without keys in it.
            private = f.secret or f.device_path.startswith("/etc/wireguard/")
            await session.put(f.device_path, rendered.text(f.path), 0o600 if private else 0o644)
    iface = shlex.quote(site.interface)
    wg_quick = "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go wg-quick"
    await session.run(f"{wg_quick} down {iface} 2>/dev/null")
    await session.check(f"{wg_quick} up {iface}")
    # Outside systemd (as in the lab) there is nothing to enable; the rest is the same.
    await _commands(session, [c for c in rendered.commands if not c.startswith("systemctl ")])


async def _commands(session: Session, commands: Sequence[str]) -> None:
    for command in commands:
        await session.check(command)
