"""The peer checks: a dialer without keepalive, a wrong public key, a peer saved but not live,
a name dialled with nothing to re-resolve it."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from sitewire import strict
from sitewire.diagnose.doctor.boot import unsaved_live
from sitewire.diagnose.doctor.model import APPLY, Finding, Live, actual_key, dump_line, live_peer
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import WgPeer
from sitewire.driver import driver_for
from sitewire.plan.model import WATCHDOG_CRON, SitePlan
from sitewire.render.openwrt import peer_section
from sitewire.strict import IPNetwork
from sitewire.uci import Section


def check_keepalive(live: Live, site: SitePlan) -> list[Finding]:
    """4. A dialer without persistent keepalive: the listener cannot start traffic to it."""
    if site.endpoint is not None:
        return []  # reachable itself; keepalive is a courtesy here, not a need
    out = []
    for peer in site.peers:
        if peer.kind != "site" or peer.dial is None:
            continue
        running = live_peer(live, site, peer.name)
        if running is None or running.keepalive:
            continue
        out.append(
            Finding(
                "dialer-without-keepalive",
                site.name,
                f"dials {peer.name} without persistent keepalive from behind a firewall: when "
                f"it falls silent, {peer.name} cannot reach it again",
                (
                    "$ wg show all dump  (keepalive is the last field)",
                    dump_line(site.interface, running),
                ),
                driver_for(site.platform).fix_keepalive.format(
                    iface=site.interface, peer=peer.name, key=running.public_key
                )
                + f"   (or: {APPLY})",
            )
        )
    return out


def check_keys(live: Live, site: SitePlan) -> list[Finding]:
    """7. A public key mismatch: this site holds a key for a peer that the peer does not have."""
    iface = live.facts[site.name].wg.interface(site.interface)
    if iface is None:
        return []
    out = []
    for peer in site.peers:
        if peer.kind != "site":
            continue
        actual = actual_key(live, peer.name)
        if actual is None or iface.peer(actual) is not None:
            continue
        held = next((p for p in iface.peers if set(p.allowed_ips) & set(peer.allowed_ips)), None)
        out.append(
            Finding(
                "wrong-key",
                site.name,
                f"holds the wrong public key for {peer.name}: no handshake can ever succeed",
                (
                    f"$ wg show {site.interface} dump  (on {site.name}: the peer for {peer.name})",
                    dump_line(site.interface, held) if held else "(no such peer)",
                    f"$ wg show {live.plan.site(peer.name).interface} public-key  (on {peer.name})",
                    actual,
                ),
                f"{APPLY}   (it reads each router's real key; or by hand: "
                + driver_for(site.platform).fix_peer_key.format(
                    iface=site.interface, peer=peer.name, key=actual
                )
                + ")",
            )
        )
    return out


def _uci_peer(facts: DeviceFacts, name: str) -> Section | None:
    return facts.network.section(peer_section(name)) if facts.network is not None else None


def check_saved_not_live(live: Live, site: SitePlan) -> list[Finding]:
    """8. A peer change saved in UCI but not running (24.10's `network reload` ignores peers)."""
    facts = live.facts[site.name]
    iface = facts.wg.interface(site.interface)
    if not driver_for(site.platform).uses_uci or iface is None:
        return []
    out = []
    for peer in site.peers:
        section = _uci_peer(facts, peer.name)
        if section is None:
            continue
        key = str(section.options.get("public_key", ""))
        running = iface.peer(key)
        ips = section.options.get("allowed_ips", ())
        saved = _prefixes(ips if isinstance(ips, tuple) else str(ips).split())
        if running is not None and set(running.allowed_ips) == saved:
            continue
        if running is None and peer.kind == "site" and actual_key(live, peer.name) != key:
            continue  # a wrong key: check_keys owns it
        if running is not None and _moved(iface.peers, running, saved):
            continue  # another peer runs with the missing prefixes: the traced path names it
        if (unsaved := unsaved_live(live, site, peer.name, key, saved)) is not None:
            out.append(unsaved)
            continue
        shown = dump_line(site.interface, running) if running else "(not running)"
        out.append(
            Finding(
                "saved-not-live",
                site.name,
                f"peer {peer.name} in /etc/config/network differs from what {site.interface} "
                "runs: the change was saved but never applied",
                (
                    f"$ uci get network.{peer_section(peer.name)}.allowed_ips",
                    " ".join(sorted(map(str, saved))),
                    "$ wg show all dump",
                    shown,
                ),
                f"ifup {site.interface}   (24.10: a network reload ignores peer changes; "
                f"25.12: ubus call network.interface.{site.interface} renew; or: {APPLY})",
            )
        )
    return out


def _moved(peers: Sequence[WgPeer], running: WgPeer, saved: set[IPNetwork | str]) -> bool:
    """The running peer lacks only saved prefixes another running peer holds: WireGuard gave
    them to the peer set last (netifd adds a later section's peer after this one)."""
    missing = saved - set(running.allowed_ips)
    if not missing or set(running.allowed_ips) - saved:
        return False
    held = {p for other in peers if other is not running for p in other.allowed_ips}
    return missing <= held


def _prefixes(items: Sequence[str]) -> set[IPNetwork | str]:
    """uci's allowed_ips as prefixes; what does not read as one stays text, and so differs."""
    out: set[IPNetwork | str] = set()
    for item in items:
        try:
            out.add(strict.network(item, strict=False))
        except ValueError:
            out.add(item)
    return out


def check_watchdog(live: Live, site: SitePlan) -> list[Finding]:
    """A site dialling a peer by DNS name on OpenWrt without wireguard_watchdog run by cron:
    WireGuard resolves the name once, so when the peer's address changes the tunnel stays on the
    old one until the next ifup or reboot."""
    watchdog = live.facts[site.name].watchdog
    if not site.watchdog or watchdog is None or watchdog.runs:
        return []
    names = sorted(
        f"{p.name} ({p.dial.endpoint.host})"
        for p in site.peers
        if p.dial is not None and p.dial.endpoint.kind == "name"
    )
    why = "cron is not enabled at boot" if watchdog.lines else "no cron job runs it"
    line = shlex.quote(WATCHDOG_CRON)
    return [
        Finding(
            "no-watchdog",
            site.name,
            f"dials {', '.join(names)} by name, but {why}: wireguard_watchdog re-resolves the "
            "name when handshakes stop; without it a changed address is not followed",
            (
                "$ grep wireguard_watchdog /etc/crontabs/root; /etc/init.d/cron enabled",
                *(f"line {n}" for n in watchdog.lines),
                "cron: enabled" if watchdog.cron_enabled else "cron: not enabled",
            ),
            f"grep -qxF {line} /etc/crontabs/root || echo {line} >> /etc/crontabs/root; "
            f"/etc/init.d/cron enable && /etc/init.d/cron restart   (or: {APPLY})",
        )
    ]
