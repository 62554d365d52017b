"""`lab up --configured`: put what `render` produced on the lab routers over SSH, as apply will.

Until `sitewire apply` exists this is how a lab router gets its configuration: the same files,
through the router's own package manager, `uci batch`, network restart and firewall reload.
Listeners are configured before dialers, so a dialer's first handshake is answered at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sitewire.deploy.runner import run_on_sites
from sitewire.deploy.ssh import Credentials, Session, Target, connect
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.render import Secrets, render_site

USERSPACE = "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go"


async def configure_sites(
    plan: Plan, secrets: Secrets, targets: Mapping[str, Target], creds: Credentials
) -> None:
    sites = [plan.site(name) for name in plan.site_names]
    for group in ([s for s in sites if s.endpoint], [s for s in sites if not s.endpoint]):
        done = await run_on_sites(
            [s.name for s in group],
            lambda name: _configure(plan, plan.site(name), secrets, targets[name], creds),
        )
        done.raise_first()


async def _configure(
    plan: Plan, site: SitePlan, secrets: Secrets, target: Target, creds: Credentials
) -> None:
    """Exactly what `render` produced: its files at their device paths, then its commands."""
    rendered = render_site(plan, site.name, secrets)
    session = await connect(target, creds)
    async with session:
        for f in rendered.files:
            if f.device_path is not None:
                # wg-quick warns about a world-readable config even without keys in it.
                private = f.device_path.startswith("/etc/wireguard/")
                await session.put(
                    f.device_path, rendered.text(f.path), 0o600 if private else f.mode
                )
        await _commands(session, rendered.commands)


async def _commands(session: Session, commands: Sequence[str]) -> None:
    for command in commands:
        # The lab's routers have no WireGuard module: wg-quick must know its fallback.
        await session.check(f"export {USERSPACE}; {command}")
