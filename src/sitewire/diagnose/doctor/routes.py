"""The routing checks: no route to a remote LAN, and Tailscale's table 52 capturing one."""

from __future__ import annotations

from sitewire.diagnose.doctor.model import APPLY, Finding, Live
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import NetifdInterface
from sitewire.driver import driver_for
from sitewire.plan.model import SitePlan
from sitewire.render.openwrt import peer_section
from sitewire.strict import IPNetwork


def _netifd_down(facts: DeviceFacts, iface: str) -> NetifdInterface | None:
    """netifd's state of IFACE when netifd says it is not up (None: up, or not known)."""
    state = (facts.netifd or {}).get(iface)
    return state if state is not None and not state.up else None


def _routed(facts: DeviceFacts, prefix: IPNetwork, iface: str) -> bool:
    return any(r.dest == prefix and r.dev == iface for r in facts.routes)


def check_routes(live: Live, site: SitePlan) -> list[Finding]:
    """6. `route_allowed_ips` off: no route to a remote LAN, which leaks to the WAN default."""
    facts = live.facts[site.name]
    if facts.wg.interface(site.interface) is None or _netifd_down(facts, site.interface):
        return []
    out = []
    for peer in site.peers:
        if peer.kind != "site":
            continue
        missing = [
            p
            for p in peer.allowed_ips
            if p.prefixlen < p.max_prefixlen and not _routed(facts, p, site.interface)
        ]
        if not missing:
            continue
        section = facts.network.section(peer_section(peer.name)) if facts.network else None
        flag = section.options.get("route_allowed_ips") if section is not None else None
        routed = live.probes[site.name].route_router
        probe = next((routed[k] for p in missing if (k := (peer.name, p)) in routed), "")
        probe = probe or next((v for (n, _), v in routed.items() if n == peer.name), "")
        evidence = [f"$ ip route show  (no route for {', '.join(map(str, missing))})"]
        if probe:
            evidence += [f"$ ip route get {probe.split()[0]}", probe]
        if section is not None:
            evidence += [
                f"$ uci get network.{peer_section(peer.name)}.route_allowed_ips",
                str(flag or "(unset: 0)"),
            ]
        out.append(
            Finding(
                "no-route",
                site.name,
                f"no route to {', '.join(map(str, missing))} through {site.interface}"
                + (" (route_allowed_ips is off)" if flag != "1" else "")
                + ": that traffic leaves through the WAN default route",
                tuple(evidence),
                driver_for(site.platform).fix_route.format(iface=site.interface, peer=peer.name)
                + f"   (or: {APPLY})",
            )
        )
    return out


def _covers(outer: IPNetwork, inner: IPNetwork) -> bool:
    return (
        outer.version == inner.version
        and inner.network_address in outer
        and inner.prefixlen >= outer.prefixlen
    )


def check_tailscale(live: Live, site: SitePlan) -> list[Finding]:
    """1. Tailscale's accepted routes capture a WireGuard-routed prefix (table 52 first): one
    finding a cause (accepted routes, or an exit node) for every prefix it takes."""
    facts = live.facts[site.name]
    probes = live.probes[site.name]
    pinned = site.tailscale is not None and site.tailscale.accept_routes
    prefs = facts.tailscale.prefs
    # by cause: (the other site, the prefix taken, evidence, what the router's own ping crossed)
    found: dict[bool, list[tuple[str, IPNetwork, list[str], str | None]]] = {}
    for (other, prefix), line in probes.route_lan.items():
        if "tailscale0" not in line and " table 52" not in line:
            continue
        in52 = [r for r in facts.table52 if _covers(r.dest, prefix)]
        six = "-6 " if prefix.version == 6 else ""
        rule = facts.lookup52 if not six else facts.lookup52_v6
        router_ok = bool(probes.ping_router.get((other, prefix)))
        source, device = probes.source(prefix.version) or ("?", "?")
        evidence = [
            f"$ ip {six}rule show",
            f"{rule}:\tfrom all lookup 52" if rule is not None else "(no lookup 52 rule)",
            f"$ ip {six}route show table 52",
            *(f"{r.dest} dev {r.dev}" for r in in52),
            f"$ ip route get {line.split()[0]} from {source} iif {device}",
            line,
        ]
        mine = probes.route_router.get((other, prefix), "")
        if router_ok:
            dst = mine.split()[:1] or [f"<{other} LAN>"]
            evidence.append(f"$ ping -c 2 {dst[0]}   → ok  (from the router itself)")
        # An exit node puts a default route in table 52: it takes every LAN, not one prefix.
        exit_node = bool(
            prefs is not None and prefs.uses_exit_node and in52 and all(r.is_default for r in in52)
        )
        over = "the tailnet" if "tailscale0" in mine else "WireGuard"
        found.setdefault(exit_node, []).append(
            (other, prefix, evidence, over if router_ok else None)
        )
    return [_captured(site, exit_node, captures, pinned) for exit_node, captures in found.items()]


def _captured(
    site: SitePlan,
    exit_node: bool,
    captures: list[tuple[str, IPNetwork, list[str], str | None]],
    pinned: bool,
) -> Finding:
    prefixes = " and ".join(str(prefix) for _, prefix, _, _ in captures)
    others = " and ".join(dict.fromkeys(other for other, _, _, _ in captures))
    what = (
        "exit node (a default route in table 52) takes" if exit_node else "accepted routes capture"
    )
    over = next((o for _, _, _, o in captures if o), None)
    shape = (
        f" (pings from the router itself still get through, over {over}: it works from "
        "the router and fails from the LAN)"
        if over
        else ""
    )
    return Finding(
        "tailscale-captures-route",
        site.name,
        f"Tailscale's {what} {prefixes}: LAN traffic to {others} goes "
        f"into tailscale0, not {site.interface}{shape}",
        tuple(dict.fromkeys(line for _, _, evidence, _ in captures for line in evidence)),
        _tailscale_fix(site.name, prefixes, pinned, exit_node),
    )


def _tailscale_fix(site: str, prefix: str, pinned: bool, exit_node: bool) -> str:
    if pinned:
        # The spec keeps accepted routes: apply restores the rules that pin the WireGuard
        # prefixes to main ahead of table 52 (turning them off would fight it).
        return f"{APPLY}   (it puts back the rules that pin {prefix} to main ahead of table 52)"
    if exit_node:
        return (
            "tailscale set --exit-node=   (or keep it: accept_routes = true under "
            f"sites.{site}.tailscale pins the WireGuard prefixes ahead of table 52; then {APPLY})"
        )
    return (
        "tailscale set --accept-routes=false   (or keep them: accept_routes = true "
        f"under sites.{site}.tailscale pins the WireGuard prefixes; then {APPLY})"
    )
