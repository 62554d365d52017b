"""Bringing a router's kernel and wireguard-go in line with its prefs and the control file."""

from __future__ import annotations

import re
from dataclasses import replace

from sitewire.keys import generate_private_key
from sitewire.lab.tailnet import kernel, wireguard
from sitewire.lab.tailnet.base import LISTEN_PORT, Paths, TailnetError
from sitewire.lab.tailnet.control import (
    Endpoint,
    Node,
    Tailnet,
    ipv6_for,
    read_tailnet,
    tailnet_ipv4,
    tailnet_ipv6,
    update_tailnet,
)
from sitewire.lab.tailnet.prefs import DEFAULT_CONTROL_URL, Prefs
from sitewire.lab.tailnet.routing import (
    BASE_PRIORITY,
    MWAN3_BASE_PRIORITY,
    netstate,
    policy_rules,
    rule_base,
)
from sitewire.lab.tailnet.state import (
    Identity,
    load_prefs,
    read_identity,
    save_prefs,
    write_identity,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def publish(paths: Paths, prefs: Prefs) -> None:
    """Tell control what this node advertises and whether it is up (tailscaled's map poll)."""
    identity = read_identity(paths)
    if identity is None:
        return

    def change(tailnet: Tailnet) -> Tailnet:
        return tailnet.updated(
            identity.name, advertise_routes=prefs.advertise_routes, online=prefs.want_running
        )

    update_tailnet(paths.control, change)


def apply(paths: Paths) -> None:
    """Install exactly what tailscaled would for the saved prefs and the current netmap."""
    identity = read_identity(paths)
    if identity is None:
        return
    prefs = load_prefs(paths)
    if not prefs.want_running:
        teardown(paths)
        return
    tailnet = read_tailnet(paths.control)
    me = tailnet.get(identity.name)
    if me is None:
        raise TailnetError(
            f"{identity.name} is not in {paths.control}",
            fix=f"run: tailscale lab-join --name {identity.name} --ip 100.64.0.N "
            "--endpoint ADDR:PORT",
        )
    state = netstate(me, prefs, tailnet, kernel.local_prefixes())
    wireguard.ensure_running(paths, kernel.link_exists())
    kernel.configure_link(state.addresses)
    wireguard.configure_device(identity.private_key, LISTEN_PORT, state.peers)
    kernel.sync_table(state.routes, state.throws)
    base = rule_base(paths.mwan3.exists(), kernel.ipv4_rules())
    other = MWAN3_BASE_PRIORITY if base == BASE_PRIORITY else BASE_PRIORITY
    kernel.remove_rules(policy_rules(other))
    kernel.ensure_rules(policy_rules(base))


def teardown(paths: Paths) -> None:
    """What `tailscaled --cleanup` leaves: no rules, no table 52, no tailscale0, no process."""
    for base in (BASE_PRIORITY, MWAN3_BASE_PRIORITY):
        kernel.remove_rules(policy_rules(base))
    kernel.flush_table()
    wireguard.stop(paths)
    if kernel.link_exists():
        kernel.delete_link()


def join(paths: Paths, name: str, ip: str, ip6: str, endpoint: str) -> None:
    """Register this router in the control file (like a login) and bring it up."""
    if not _NAME.fullmatch(name):
        raise TailnetError(f"lab-join: node name {name!r} is not a host name")
    ipv4 = tailnet_ipv4(ip)
    ipv6 = tailnet_ipv6(ip6) if ip6 else ipv6_for(ipv4)
    old = read_identity(paths)
    identity = Identity(name, old.private_key if old else generate_private_key())
    prefs = load_prefs(paths)
    prefs = replace(
        prefs,
        control_url=prefs.control_url or DEFAULT_CONTROL_URL,
        want_running=True,
        logged_out=False,
    )
    node = Node(
        name, ipv4, ipv6, identity.public_key, Endpoint.parse(endpoint), prefs.advertise_routes
    )

    def register(tailnet: Tailnet) -> Tailnet:
        if old and old.name != name:
            tailnet = Tailnet(tuple(n for n in tailnet.nodes if n.name != old.name))
        return tailnet.with_node(node)

    update_tailnet(paths.control, register)
    write_identity(paths, identity)
    save_prefs(paths, prefs)
    apply(paths)
