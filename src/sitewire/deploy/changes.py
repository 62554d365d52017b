"""What apply will change: the devices' keys (or stand-ins for unborn ones), the plan, each diff."""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace

from sitewire.deploy.live import drift_lines, tailscale_differs
from sitewire.deploy.problems import Problem, warning
from sitewire.deploy.run import Before, Diffed, Site
from sitewire.diagnose.facts import DeviceFacts
from sitewire.errors import InputError
from sitewire.pipeline import Workspace
from sitewire.plan import Plan, plan_network
from sitewire.plan.model import SitePlan

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

    def preshared_keys_with(self, site: str, peers: Sequence[str]) -> list[str | None]:
        return [self.preshared_key(site, peer) for peer in peers]


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


def gone_keys(ws: Workspace) -> frozenset[str]:
    """Public keys the lock remembers for nodes no longer in the spec (their peers go)."""
    lock = ws.lock
    if lock is None:
        return frozenset()
    spec = ws.spec
    return frozenset(
        entry.public_key
        for group in (lock.sites, lock.clients, lock.retired)
        for name, entry in group.items()
        if entry.public_key and name not in spec.sites and name not in spec.clients
    )


def foreign_peers(
    plan: Plan, site: SitePlan, facts: DeviceFacts, gone: frozenset[str] = frozenset()
) -> frozenset[str]:
    """Running peers of the interface the plan does not know: not planned, not a retired node,
    holding none of the planned prefixes (a planned prefix under another key is a wrong key,
    and goes). Someone added them for themselves; sitewire keeps them (issue 12)."""
    live = facts.wg.interface(site.interface)
    if live is None:
        return frozenset()
    planned = {p.public_key for p in site.peers}
    retired = {e.public_key for e in plan.lock.retired.values() if e.public_key} | gone
    retired |= _owned_keys(facts)
    carried = {prefix for p in site.peers for prefix in p.allowed_ips}
    return frozenset(
        p.public_key
        for p in live.peers
        if p.public_key not in planned | retired and not set(p.allowed_ips) & carried
    )


def _owned_keys(facts: DeviceFacts) -> set[str]:
    """Keys in sitewire's own peer sections (OpenWrt): a stale one of ours is no stranger's."""
    if facts.network is None:
        return set()
    return {
        key
        for s in facts.network.sections
        if (s.name or "").startswith("sw_") and isinstance(key := s.options.get("public_key"), str)
    }


def _configured_keys(facts: DeviceFacts) -> set[str]:
    if facts.network is None:
        return set()
    return {k for s in facts.network.sections if isinstance(k := s.options.get("public_key"), str)}


def _tailscale_lines(planned: SitePlan, facts: DeviceFacts, warnings: list[Problem]) -> list[str]:
    """The `tailscale set` the plan makes, or (the spec silent) a warning that it would."""
    ts, prefs = planned.tailscale, facts.tailscale.prefs
    if ts is not None and facts.tailscale.installed and tailscale_differs(ts, prefs):
        return [f"{planned.name}: tailscale: {shlex.join(ts.command())}"]
    if ts is None and facts.tailscale.installed and prefs and prefs.route_all:
        warnings.append(
            warning(
                "Tailscale accepts subnet routes here and the spec says nothing about "
                "Tailscale for this site; add a tailscale table to the site to have it fixed"
            )
        )
    return []


def diff_site(
    plan: Plan,
    site: Site,
    before: Before,
    secrets: ClientSecrets,
    placeholders: Mapping[str, str],
    *,
    remove_foreign: bool = False,
    gone: frozenset[str] = frozenset(),
    rotating: bool = False,
) -> Diffed:
    """What the apply would change on `site`, as lines (none: nothing), and its warnings.
    `rotating`: its private key is replaced (`sitewire rotate`)."""
    planned = plan.site(site.name)
    facts = before.facts
    foreign = frozenset() if remove_foreign else foreign_peers(plan, planned, facts, gone)
    held = replace(before.held, keep_peers=foreign, drop_foreign=remove_foreign)
    rendered = site.driver.render(plan, planned, secrets, facts, drop_foreign=remove_foreign)
    found = site.driver.diff(planned, held, rendered)
    lines: list[str] = []
    if before.missing_packages:
        lines.append(f"{site.name}: install {', '.join(before.missing_packages)}")
    if before.key is None:
        lines.append(f"{site.name}: private key: made on the device (only its public key returns)")
    elif rotating:
        lines.append(
            f"{site.name}: private key: replaced by a new one made on the device "
            "(only its public key returns; the old one is gone once confirmed)"
        )
    lines += found.lines
    warnings = list(before.warnings)
    configured = _configured_keys(facts)
    warnings += [
        warning(
            f"{planned.interface}: peer {key[:8]}… runs here and is not planned: kept "
            "(apply --remove-foreign removes it)"
            if key in configured
            else f"{planned.interface}: peer {key[:8]}… runs here, is not planned and is in no "
            "configuration: left running, gone at the interface's next renew or re-creation"
        )
        for key in sorted(foreign)
    ]
    lines += _tailscale_lines(planned, facts, warnings)
    if not lines:
        # The files agree; the running peers may not (24.10's reload ignores them, or by hand).
        lines = drift_lines(planned, facts, site.driver.held_psks(planned, facts), foreign)
    for name, key in placeholders.items():
        lines = [line.replace(key, f"(key to be made on {name})") for line in lines]
    hitless = (
        not before.missing_packages
        and before.key is not None
        and not rotating  # the old private key goes back by re-creating the interface
        and not site.driver.recreates(planned, held, rendered, found.changes)
    )
    return Diffed(tuple(lines), found.changes, tuple(warnings), foreign, hitless)
