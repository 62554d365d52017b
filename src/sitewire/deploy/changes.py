"""What apply will change: the devices' keys (or stand-ins for unborn ones), the plan, each diff."""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Mapping, Sequence

from sitewire.deploy.diff import describe, planned_changes
from sitewire.deploy.live import (
    drift_lines,
    file_diff,
    tailscale_differs,
)
from sitewire.deploy.run import (
    ApplyError,
    SiteRun,
)
from sitewire.diagnose.parse import HIDDEN
from sitewire.errors import InputError, SitewireError
from sitewire.pipeline import Workspace
from sitewire.plan import Plan, plan_network
from sitewire.render.linux import render_linux
from sitewire.render.model import Rendered
from sitewire.render.openwrt import SECRET_OPTIONS, render_openwrt
from sitewire.spec.model import Platform

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


class ClientSecrets:
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


def render_for(plan: Plan, run: SiteRun, secrets: ClientSecrets) -> Rendered:
    site = plan.site(run.name)
    if run.platform is Platform.OPENWRT:
        facts = run.must_facts()
        current = {p.name: p for p in (facts.network, facts.firewall) if p is not None}
        return render_openwrt(plan, site, secrets, current)
    return render_linux(plan, site, secrets)


def diff_site(
    plan: Plan, run: SiteRun, secrets: ClientSecrets, placeholders: Mapping[str, str]
) -> None:
    rendered = render_for(plan, run, secrets)
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
