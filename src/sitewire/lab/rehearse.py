"""What runs on a built lab: Tailscale as the person has it, the rendered configuration, the pings.

The lab keeps its own copy of the network's lock and its own key file in its state directory,
so rehearsing never touches the person's network.lock and never needs their keys.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from sitewire.deploy.ssh import Credentials, Target
from sitewire.errors import InputError
from sitewire.lab.configure import configure_sites
from sitewire.lab.host import router_exec
from sitewire.lab.netns import LabError
from sitewire.lab.probe import Probe
from sitewire.lab.state import LabState
from sitewire.lab.tailscale import provision_command
from sitewire.pipeline import Workspace, make_plan, open_workspace, save_state
from sitewire.plan import Plan
from sitewire.spec.lock import load_lock, lock_path_for, save_lock
from sitewire.spec.model import Platform

TAILNET_PORT = 41641

# How people let their phones into the LAN over Tailscale on OpenWrt (reference §6.6): a zone
# for tailscale0 that may forward into the LAN. Nothing forwards from the LAN into the tailnet,
# so when accepted routes capture a remote LAN the router still reaches it and its LAN hosts
# do not: the hand-made setup's symptom. The WAN rule stands in for what lets a real tailnet's
# packets in (NAT traversal, DERP): the stand-in's nodes dial each other's WAN port directly.
TAILSCALE_ZONE = """\
set firewall.lab_tailscale=zone
set firewall.lab_tailscale.name='tailscale'
set firewall.lab_tailscale.input='ACCEPT'
set firewall.lab_tailscale.output='ACCEPT'
set firewall.lab_tailscale.forward='ACCEPT'
add_list firewall.lab_tailscale.device='tailscale0'
set firewall.lab_tailscale_lan=forwarding
set firewall.lab_tailscale_lan.src='tailscale'
set firewall.lab_tailscale_lan.dest='lan'
set firewall.lab_tailscale_wan=rule
set firewall.lab_tailscale_wan.name='lab-tailnet'
set firewall.lab_tailscale_wan.src='wan'
set firewall.lab_tailscale_wan.proto='udp'
set firewall.lab_tailscale_wan.dest_port='41641'
set firewall.lab_tailscale_wan.target='ACCEPT'
commit firewall
"""


def lab_workspace(state: LabState) -> Workspace:
    if state.spec_path is None:
        raise InputError("the lab does not know its spec", where=state.name, fix="lab down, up")
    return open_workspace(
        Path(state.spec_path), state.dir / "network.lock", state.dir / "keys.json"
    )


def adopt_lock(state: LabState) -> None:
    """Start from the person's allocation, so lab addresses are the ones the routers will get.

    Only the addresses: the lab's routers have keys of their own, not the real ones.
    """
    if state.spec_path is None:
        return
    theirs = load_lock(lock_path_for(Path(state.spec_path)))
    if theirs is None:
        return
    bare = {
        group: {name: e.model_copy(update={"public_key": None}) for name, e in entries.items()}
        for group, entries in (("sites", theirs.sites), ("clients", theirs.clients))
    }
    save_lock(state.dir / "network.lock", theirs.model_copy(update=bare))


def lab_plan(state: LabState) -> Plan:
    """Addresses and links for probing; keys as the lab's lock has them (apply puts the
    routers' own there), never derived from the key file."""
    if state.spec_path is None:
        raise InputError("the lab does not know its spec", where=state.name, fix="lab down, up")
    ws = open_workspace(Path(state.spec_path), state.dir / "network.lock")
    plan = make_plan(ws)
    save_state(ws, plan)
    return plan


def after_up(state: LabState, *, configured: bool, accept_routes: bool) -> None:
    """Tailscale as the spec says the person runs it, then optionally the rendered config."""
    adopt_lock(state)
    ws = lab_workspace(state)
    plan = make_plan(ws)
    save_state(ws, plan)
    tailscale_sites = [s for s in plan.site_names if plan.topology.spec.sites[s].tailscale]
    for site in tailscale_sites:
        _provision_tailscale(state, plan, site, accept_routes)
    if configured:
        targets = {name: _target(state, name) for name in plan.site_names}
        creds = Credentials((state.client_key,), state.known_hosts, use_user_config=False)
        asyncio.run(configure_sites(plan, ws.secrets, targets, creds))
    if configured and accept_routes:
        # The hand-made setup's failure: accepted routes came back (a reboot, an rc.local
        # `tailscale up --accept-routes`) after the fix. Re-assert them over the config.
        for site in tailscale_sites:
            _tailscale(state, site, "set", "--accept-routes=true")
    for site in tailscale_sites:
        _tailscale(state, site, "lab-sync")


def _target(state: LabState, site: str) -> Target:
    return Target(site, str(state.layout.router(site).mgmt.ip))


def _provision_tailscale(state: LabState, plan: Plan, site: str, accept_routes: bool) -> None:
    spec = plan.topology.spec.sites[site].tailscale
    assert spec is not None
    router = state.layout.router(site)
    node = {
        "name": site,
        "ip": f"100.64.0.{router.index + 1}",
        "ip6": f"fd7a:115c:a1e0::{router.index + 1}",
        "endpoint": f"{router.wan4.ip}:{TAILNET_PORT}",
        "advertise_routes": [str(p) for p in spec.advertise_routes],
        "exit_node": spec.exit_node,
        "accept_routes": accept_routes or spec.accept_routes,
    }
    _check(router_exec(state, site, provision_command(node)), site, "tailscale provisioning")
    if plan.site(site).platform is Platform.OPENWRT:
        _check(router_exec(state, site, ["uci", "batch"], TAILSCALE_ZONE), site, "tailscale zone")
        _check(router_exec(state, site, ["fw4", "reload"]), site, "fw4 reload")


def _tailscale(state: LabState, site: str, *args: str) -> None:
    _check(router_exec(state, site, ["tailscale", *args]), site, f"tailscale {' '.join(args)}")


def _check(result: subprocess.CompletedProcess[str], site: str, what: str) -> None:
    if result.returncode != 0:
        last = (result.stderr or "").strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise LabError(f"{what} failed: {last[0]}", where=site)


def await_handshakes(state: LabState, plan: Plan, timeout: float = 20.0) -> list[str]:
    """Wait until every link a router dials has shaken hands and every OpenWrt router's fw4
    has rules for its WireGuard interface; return what never got there.

    A dialer with persistent keepalive starts its handshake on its own, so a pause here keeps
    `lab test` from racing a busy machine. The handshake can come before fw4's own reload from
    the ifup hotplug (fw4 writes no rules for a device that is down when it loads), and until
    then the zone's forwardings do not apply to the tunnel. A router whose interface is
    configured but not there yet is waited for; one without it (factory state) is not.
    """
    deadline = time.monotonic() + timeout
    waiting = {
        (site.name, peer.name, peer.public_key)
        for site in plan.sites()
        for peer in site.peers
        if peer.dial is not None and peer.public_key is not None
    }
    zoneless = {s.name for s in plan.sites() if s.platform is Platform.OPENWRT}
    while waiting or zoneless:
        for site in sorted({s for s, _, _ in waiting} | zoneless):
            iface = plan.site(site).interface
            shown = router_exec(state, site, ["sh", "-c", _SETTLED.format(iface=iface)])
            if shown.returncode != 0:
                waiting = {w for w in waiting if w[0] != site}
                zoneless.discard(site)
                continue
            lines = shown.stdout.splitlines()
            seen = dict(line.split() for line in lines if line.count("\t") == 1)
            waiting = {w for w in waiting if not (w[0] == site and seen.get(w[2], "0") != "0")}
            if "zoned" in lines:
                zoneless.discard(site)
        if not (waiting or zoneless) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    links = [f"no handshake yet on {site} → {peer}" for site, peer, _ in waiting]
    return sorted(links) + [
        f"fw4 has no rules for {site}'s tunnel yet" for site in sorted(zoneless)
    ]


# Fails only when the interface is neither there nor configured (factory state): one that is
# configured but not there yet (netifd or wg-quick still bringing it up) is waited for. Says
# "zoned" once fw4's input chain jumps for it.
_SETTLED = (
    "if ! wg show {iface} latest-handshakes 2>/dev/null; then "
    "uci -q get network.{iface} >/dev/null 2>&1 || [ -f /etc/wireguard/{iface}.conf ] || exit 1; "
    "exit 0; fi; "
    "if ! command -v fw4 >/dev/null || nft list chain inet fw4 input 2>/dev/null"
    " | grep -qF 'iifname \"{iface}\"'; then echo zoned; fi"
)


def columns(state: LabState, plan: Plan) -> list[str]:
    """Matrix columns in site order: LAN hosts first, then overlay addresses."""
    hosts = [h for r in state.layout.routers for h in r.hosts()]
    out = [f"{h.site} {a.ip}" for h in hosts for a in h.addresses]
    return out + [f"{s.name} wg {a.ip}" for s in plan.sites() for a in s.addresses]


def probes(state: LabState, plan: Plan) -> Iterator[Probe]:
    """Every LAN host to every other site's LAN hosts and to every router's overlay address.

    Every pair of sites has a path in every plan (the planner refuses otherwise), so every
    probe must succeed.
    """
    hosts = [h for r in state.layout.routers for h in r.hosts()]
    for src in hosts:
        label = f"{src.site} host {src.addresses[0].ip}"
        for dst in hosts:
            if dst.site != src.site:
                for address in dst.addresses:
                    target = f"{dst.site} {address.ip}"
                    yield Probe(label, src.netns, target, str(address.ip), True)
        for site in plan.sites():
            for address in site.addresses:
                yield Probe(label, src.netns, f"{site.name} wg {address.ip}", str(address.ip), True)
