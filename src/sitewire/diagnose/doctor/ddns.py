"""Check 5: a dialled DNS name that no longer leads to the listener's WAN address."""

from __future__ import annotations

from dataclasses import dataclass

from sitewire.diagnose.doctor.model import Finding, Live, dump_line, live_peer
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import WgPeer
from sitewire.diagnose.probes import Probes
from sitewire.driver import driver_for
from sitewire.plan.model import SitePlan


@dataclass(frozen=True, slots=True)
class _Dialled:
    """One peer dialled by name, as both ends see it."""

    other: str
    name: str
    endpoint: str  # the address WireGuard sends to
    resolved: tuple[str, ...]  # what the name resolves to on the dialling site
    works: bool  # small pings cross the tunnel
    held: frozenset[str]  # every address the other site holds

    @property
    def dns_off(self) -> bool:
        return bool(self.resolved) and not (set(self.resolved) & self.held)

    @property
    def latent(self) -> bool:
        return self.dns_off and self.works and self.endpoint not in self.resolved

    @property
    def stale_endpoint(self) -> bool:
        return self.endpoint not in self.held and not self.works


def _wan4(facts: DeviceFacts | None) -> list[str]:
    """The router's own IPv4 address(es) on its WAN device, from the connected route."""
    if facts is None or facts.wan_device is None:
        return []
    return [str(r.src) for r in facts.routes if r.dev == facts.wan_device and r.src is not None]


def check_ddns(live: Live, site: SitePlan) -> list[Finding]:
    """5. A dialled DNS name whose address is not the listener's current WAN address.

    Two shapes: WireGuard still sends to an address the listener no longer holds (it resolved
    the name once; the tunnel is down), and the name itself resolves to none of the listener's
    addresses while the tunnel runs on the right one (it breaks at the next resolve). A
    listener behind a port-forwarding router holds neither its public address nor the
    endpoint; there the name and the working endpoint agree, and nothing is reported.
    """
    out = []
    for peer in site.peers:
        if peer.dial is None or peer.dial.endpoint.kind != "name" or peer.kind != "site":
            continue
        theirs = live.probes.get(peer.name)
        running = live_peer(live, site, peer.name)
        if theirs is None or running is None or running.endpoint is None:
            continue
        name = peer.dial.endpoint.host
        seen = _Dialled(
            peer.name,
            name,
            str(running.endpoint.ip),
            live.probes[site.name].resolved.get(name, ()),
            live.probes[site.name].small.get(peer.name) is True,
            frozenset(theirs.addresses),
        )
        if not seen.stale_endpoint and not seen.latent:
            continue
        target = peer.dial.endpoint.with_port(peer.dial.endpoint.port or 51820)
        reset = f"wg set {site.interface} peer {running.public_key} endpoint {target}"
        problem, fix = _explain(live, site, seen, reset)
        evidence = _evidence(site, seen, running, theirs)
        out.append(Finding("ddns-stale", site.name, problem, evidence, fix))
    return out


def _evidence(site: SitePlan, seen: _Dialled, running: WgPeer, theirs: Probes) -> tuple[str, ...]:
    wan = [a for a in theirs.addresses if not a.startswith(("127.", "::1", "fe80"))]
    return (
        "$ wg show all dump  (the endpoint in use)",
        dump_line(site.interface, running),
        f"$ ip -o addr  (on {seen.other})",
        " ".join(wan),
        f"$ nslookup {seen.name}  (on {site.name})",
        " ".join(seen.resolved) or "(no answer)",
    )


def _explain(live: Live, site: SitePlan, seen: _Dialled, reset: str) -> tuple[str, str]:
    """The problem and its fix: the DNS record is wrong (now, or at the next resolve), or only
    WireGuard still holds the old address."""
    other, name, endpoint, resolved = seen.other, seen.name, seen.endpoint, seen.resolved
    address = ", ".join(_wan4(live.facts.get(other))) or f"{other}'s WAN address"
    update = (
        f"update the DNS record of {name} to {address} (if {other} sits behind "
        "another router that forwards the port, check that forward instead)"
    )
    if seen.latent:
        problem = (
            f"{name} resolves to {' '.join(resolved)}, which {other} does not have: "
            f"the tunnel runs on {endpoint} now, but breaks the next time {site.name} "
            "resolves the name (ifup, reboot, the watchdog)"
        )
        return problem, update
    if seen.dns_off:
        again = (
            "still resolves to the old address"
            if endpoint in resolved
            else f"resolves to {' '.join(resolved)}, which {other} does not have either"
        )
        problem = f"talks to {other} at {endpoint}, which {other} no longer has; {name} {again}"
        return problem, f"{update}; then: {reset}"
    problem = (
        f"talks to {other} at {endpoint}, which {other} no longer has: {name} "
        "resolves to its new address, but WireGuard resolved the name once and kept "
        "the old one"
    )
    job = driver_for(site.platform).reresolve.format(iface=site.interface)
    # Apply compares no resolved endpoint with the plan: it would not change this.
    fix = (
        f"{reset}   ({job} does this after 150 s without a handshake: check that "
        f"cron runs on {site.name})"
    )
    return problem, fix
