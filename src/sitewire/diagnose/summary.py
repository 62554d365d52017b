"""DeviceFacts on one screen for a person: system, WireGuard, peers, Tailscale, warnings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sitewire.diagnose.parse import Handler, WgInterface
from sitewire.driver import driver_for

if TYPE_CHECKING:
    from sitewire.diagnose.facts import DeviceFacts


def format_facts(facts: DeviceFacts, now: float | None = None) -> str:
    """A one-screen summary; handshake ages use the router's clock when it was read."""
    clock = facts.clock if facts.clock is not None else (now or time.time())
    lines = [f"{facts.site}: {_system(facts)}"]
    lines.append(f"  wireguard   {_wireguard(facts)}")
    mtu = f", MTU {facts.wan_mtu}" if facts.wan_mtu is not None else ""
    lines.append(f"  wan         {facts.wan_device or '[none]'}{mtu}")
    for iface in facts.wg.interfaces:
        lines.append(f"  {iface.name:<11} {_interface(iface)}")
        lines.extend(f"    {_peer_line(facts, iface, i, clock)}" for i in range(len(iface.peers)))
    configured = [n for n in facts.uci_wireguard_interfaces if n not in facts.wg.names]
    if configured:
        lines.append(f"  uci only    {', '.join(configured)} (configured, not live)")
    lines.append(f"  tailscale   {_tailscale(facts)}")
    if driver_for(facts.platform).uses_uci:
        pending = len(facts.pending_changes)
        lines.append(f"  uci         {pending or 'no'} pending change{'s' if pending != 1 else ''}")
    lines.extend(f"  ! {w}" for w in facts.warnings)
    return "\n".join(lines)


def _system(facts: DeviceFacts) -> str:
    if facts.openwrt is not None:
        o = facts.openwrt
        text = f"OpenWrt {o.release} {o.revision} {o.target}".rstrip()
    elif facts.os_release is not None:
        text = facts.os_release.pretty_name
    else:
        text = "Linux"
    return f"{text}, {facts.package_manager or 'no package manager'}"


def _wireguard(facts: DeviceFacts) -> str:
    if not facts.wireguard_tools:
        return "wireguard-tools not installed"
    version = facts.packages.version("wireguard-tools")
    text = f"wireguard-tools {version}" if version else "wg present"
    if facts.handler is not None:
        renew = {
            Handler.CLASSIC: "peer changes re-create the interface",
            Handler.SYNCCONF: "renew applies peer changes",
            Handler.UCODE: "peer changes reload the interface",
            Handler.ABSENT: "netifd cannot bring up proto wireguard",
        }[facts.handler]
        text += f", handler {facts.handler} ({renew})"
    if "wg-quick" in facts.commands:
        text += ", wg-quick"
    return text


def _interface(iface: WgInterface) -> str:
    key = "" if iface.private_key_set else ", no private key"
    fwmark = f", fwmark {iface.fwmark:#x}" if iface.fwmark is not None else ""
    return f"port {iface.listen_port}{fwmark}{key}, {len(iface.peers)} peer(s)"


def _peer_line(facts: DeviceFacts, iface: WgInterface, index: int, clock: float) -> str:
    peer = iface.peers[index]
    name = _uci_peer_name(facts, iface.name, peer.public_key) or f"{peer.public_key[:8]}…"
    allowed = ", ".join(str(p) for p in peer.allowed_ips) or "[none]"
    endpoint = str(peer.endpoint) if peer.endpoint else "[none]"
    if peer.latest_handshake is None:
        seen = "never"
    else:
        seen = f"{max(0, int(clock - peer.latest_handshake))} s ago"
    return f"{name}: {allowed} via {endpoint}, handshake {seen}"


def _uci_peer_name(facts: DeviceFacts, interface: str, public_key: str) -> str | None:
    if facts.network is None:
        return None
    for section in facts.network.sections_of_type(f"wireguard_{interface}"):
        if section.options.get("public_key") == public_key:
            return section.name
    return None


def _tailscale(facts: DeviceFacts) -> str:
    ts = facts.tailscale
    if not ts.installed:
        return "not installed"
    if ts.prefs is None:
        return f"installed, prefs unreadable ({ts.error})"
    p = ts.prefs
    parts = [f"accept-routes {'on' if p.route_all else 'off'}"]
    advertised = [str(n) for n in p.advertised_subnets]
    if p.advertises_exit_node:
        advertised.append("exit node")
    parts.append(f"advertises {', '.join(advertised) if advertised else '[none]'}")
    if p.uses_exit_node:
        parts.append(f"uses exit node {p.exit_node_ip or p.exit_node_id}")
    parts.append(f"netfilter {p.netfilter_mode.name.lower()}")
    v4, v6 = facts.lookup52, facts.lookup52_v6
    if v4 is not None or v6 is not None:
        parts.append(
            f"lookup 52 at {v4 if v4 is not None else '-'}/{v6 if v6 is not None else '-'}"
        )
    return ", ".join(parts)
