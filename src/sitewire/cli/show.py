"""Plans as text for people and as JSON for programs; never a secret."""

from __future__ import annotations

from typing import Any

from sitewire.plan import Plan
from sitewire.plan.model import ClientPlan, PeerPlan, SitePlan


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _join(items: Any) -> str:
    text = ", ".join(str(i) for i in items)
    return text or "[none]"


def plan_text(plan: Plan) -> str:
    sites = list(plan.sites())
    clients = list(plan.clients())
    lines = [
        f"network '{plan.name}': {count(len(sites), 'site')}, {count(len(clients), 'client')}; "
        f"overlay {_join(plan.overlays)}",
    ]
    for site in sites:
        lines.append("")
        lines.extend(_site_lines(site))
    if clients:
        lines.append("")
        lines.append("clients")
        lines.extend(_client_line(c) for c in clients)
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _site_lines(site: SitePlan) -> list[str]:
    reach = f"dialled at {site.endpoint}" if site.endpoint else "no endpoint: dials out only"
    lines = [
        f"{site.name}  ({site.platform.value}, {site.role}, {reach})",
        f"  {site.interface}: {_join(site.addresses)}, listen {site.listen_port}, "
        f"MTU {site.mtu} ({site.mtu_reason})",
        f"  key: {site.public_key or '(born on the router at apply)'}",
    ]
    width = max((len(p.name) for p in site.peers), default=0)
    for peer in site.peers:
        lines.append(f"  peer {peer.name:<{width}}  {_peer_summary(peer)}")
    fw = site.firewall
    forwards = ", ".join(f"{a}→{b}" for a, b in fw.forwardings)
    opens = f"WAN accepts udp/{fw.open_port}" if fw.open_port else "nothing opened on the WAN"
    lines.append(f"  firewall: zone '{fw.zone}' ({fw.interface}) {forwards}; {opens}")
    if site.tailscale is not None:
        lines.append(f"  tailscale: {' '.join(site.tailscale.command())}")
        if site.tailscale.pins:
            lines.append(
                f"  tailscale: pin {len(site.tailscale.pins)} prefixes to main at priority "
                f"{site.tailscale.pin_priority} (below 'lookup 52')"
            )
    if site.watchdog:
        lines.append("  watchdog: re-resolve DNS endpoints after 150 s without a handshake")
    return lines


def _peer_summary(peer: PeerPlan) -> str:
    parts = [f"allowed_ips {_join(peer.allowed_ips)}"]
    if peer.dial:
        parts.append(f"we dial {peer.dial.endpoint}, keepalive {peer.dial.keepalive}")
    else:
        parts.append("it dials us")
    if peer.reached_through:
        parts.append(f"also carries {_join(peer.reached_through)}")
    if peer.kind == "client":
        parts.append("client")
    return "; ".join(parts)


def _client_line(client: ClientPlan) -> str:
    return (
        f"  {client.name} via {client.via} ({client.tunnel.value} tunnel): "
        f"{_join(client.addresses)}; allowed_ips {_join(client.allowed_ips)}; "
        f"dials {client.endpoint}"
    )


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "network": plan.name,
        "overlays": [str(n) for n in plan.overlays],
        "sites": [_site_json(s) for s in plan.sites()],
        "clients": [_client_json(c) for c in plan.clients()],
        "links": [{"a": k.a, "b": k.b, "dialers": list(k.dialers)} for k in plan.links()],
        "notes": list(plan.notes),
    }


def _site_json(site: SitePlan) -> dict[str, Any]:
    ts = site.tailscale
    return {
        "name": site.name,
        "platform": site.platform.value,
        "role": site.role,
        "interface": site.interface,
        "listen_port": site.listen_port,
        "endpoint": str(site.endpoint) if site.endpoint else None,
        "addresses": [str(a) for a in site.addresses],
        "lan": [str(p) for p in site.lan],
        "public_key": site.public_key,
        "mtu": site.mtu,
        "mtu_reason": site.mtu_reason,
        "peers": [
            {
                "name": p.name,
                "kind": p.kind,
                "public_key": p.public_key,
                "allowed_ips": [str(n) for n in p.allowed_ips],
                "endpoint": str(p.dial.endpoint) if p.dial else None,
                "persistent_keepalive": p.dial.keepalive if p.dial else None,
                "reached_through": list(p.reached_through),
                "preshared_key": p.preshared,
            }
            for p in site.peers
        ],
        "firewall": {
            "zone": site.firewall.zone,
            "open_port": site.firewall.open_port,
            "forwardings": [list(f) for f in site.firewall.forwardings],
        },
        "tailscale": None
        if ts is None
        else {
            "command": ts.command(),
            "pins": [str(p) for p in ts.pins],
            "pin_priority": ts.pin_priority,
        },
        "watchdog": site.watchdog,
        "packages": list(site.packages()),
    }


def _client_json(client: ClientPlan) -> dict[str, Any]:
    return {
        "name": client.name,
        "via": client.via,
        "tunnel": client.tunnel.value,
        "addresses": [str(a) for a in client.addresses],
        "public_key": client.public_key,
        "allowed_ips": [str(n) for n in client.allowed_ips],
        "endpoint": str(client.endpoint),
    }
