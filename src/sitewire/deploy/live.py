"""How a change reaches the running device without dropping tunnels (DESIGN.md decision 6). Pure.

The pieces every platform shares; each driver (sitewire.driver) picks its steps with them,
from what a device runs (its facts) and what it will hold (the plan, the rendered files):

- a first install of the WireGuard handler: `network restart` (handlers load at netifd start);
- an interface-level change (key, port, MTU, addresses) or no live interface: re-create it
  (`ifup` on OpenWrt, `wg-quick down/up` on Linux) — the only case that costs a handshake;
- peer-only changes: `renew` where the handler has one (25.12 syncconf), otherwise `wg set`
  for exactly the peers that differ plus their routes; the UCI/wg-quick files, already
  committed, make the change persistent;
- firewall, policy rules, Tailscale prefs and the watchdog cron job only when they differ.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import shlex
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import TailscalePrefs, WgInterface, WgPeer
from sitewire.plan.model import PeerPlan, SitePlan, TailscalePlan

EXIT_ROUTES = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
_SECRET_LINE = re.compile(r"^\s*(PrivateKey|PresharedKey)\s*=", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Step:
    command: str
    why: str


# --- Tailscale ------------------------------------------------------------------------------------


def tailscale_differs(want: TailscalePlan, prefs: TailscalePrefs | None) -> bool:
    if prefs is None:
        return True
    advertised = set(want.advertise_routes) | (set(EXIT_ROUTES) if want.exit_node else set())
    return prefs.route_all != want.accept_routes or set(prefs.advertise_routes) != advertised


def tailscale_restore(prefs: TailscalePrefs) -> str:
    """The `tailscale set` that puts back what a device had (the revert timer runs it)."""
    routes = ",".join(str(p) for p in prefs.advertise_routes if p not in EXIT_ROUTES)
    exit_node = all(p in prefs.advertise_routes for p in EXIT_ROUTES)
    return shlex.join(
        [
            "tailscale",
            "set",
            f"--accept-routes={'true' if prefs.route_all else 'false'}",
            f"--advertise-routes={routes}",
            f"--advertise-exit-node={'true' if exit_node else 'false'}",
        ]
    )


# --- peers, live ----------------------------------------------------------------------------------


def peer_differs(want: PeerPlan, live: WgPeer | None, psk: bool | None = None) -> bool:
    """Whether the running peer differs from the plan. `psk`: whether the device holds a
    preshared key for it (None: assume the plan's; a client's key may be held nowhere)."""
    if live is None:
        return True
    if set(live.allowed_ips) != set(want.allowed_ips):
        return True
    if live.preshared_key_set != (want.preshared and psk is not False):
        return True
    keepalive = want.dial.keepalive if want.dial is not None else None
    if live.keepalive != keepalive:
        return True
    if want.dial is not None and want.dial.endpoint.kind != "name":
        # A literal endpoint can be compared; a name was resolved and may legitimately differ.
        live_host = str(live.endpoint.ip) if live.endpoint is not None else None
        return live_host != want.dial.endpoint.host or (
            live.endpoint is not None and live.endpoint.port != want.dial.endpoint.port
        )
    return want.dial is not None and live.endpoint is None


# wg opens the `preshared-key` path as a file: its own stdin, the pipe from the key's source.
PSK_PIPE = "/proc/self/fd/0"


def live_peer_script(
    site: SitePlan,
    live: WgInterface,
    psk_source: Callable[[str, str], str],
    psks: Mapping[str, bool | None] | None = None,
    *,
    routes: bool = False,
    keep: frozenset[str] = frozenset(),
) -> str | None:
    """`wg set` for exactly the peers that differ; None when none do and `routes` is off.

    With `routes`, every planned prefix is also routed through the interface (what
    route_allowed_ips does on OpenWrt; Linux's wg-quick routes on its own, Table=auto).

    Preshared keys go from where the device keeps them through a pipe into `wg set` (its
    `preshared-key` file is the pipe); they never touch a file, a command line or the network.
    Where the device has none (a client whose key was never given), the empty input leaves the
    peer without one. Every value is shell-quoted, whatever the spec's types already refused.
    """
    q = shlex.quote
    iface = q(site.interface)
    lines: list[str] = []
    wanted = {p.public_key for p in site.peers if p.public_key}
    # The interface's own prefix (netifd's route for its address) stays whoever claimed it.
    carried = {prefix for p in site.peers for prefix in p.allowed_ips}
    kept = carried | {a.network for a in site.addresses}
    # Unplanned peers first (a wrong key, a removed site); a route stays while a planned peer
    # carries its prefix, whoever held it before.
    for gone in live.peers:
        if gone.public_key in wanted or gone.public_key in keep:
            continue
        lines.append(f"wg set {iface} peer {q(gone.public_key)} remove")
        for old in set(gone.allowed_ips) - kept:
            lines.append(f"ip -{old.version} route del {q(str(old))} dev {iface} 2>/dev/null")
    for peer in site.peers:
        assert peer.public_key is not None
        current = live.peer(peer.public_key)
        if not peer_differs(peer, current, None if psks is None else psks.get(peer.name)):
            continue
        lines.append(_set_peer(site, peer, psk_source))
        if current is not None:
            for old in set(current.allowed_ips) - kept:
                lines.append(f"ip -{old.version} route del {q(str(old))} dev {iface} 2>/dev/null")
    if not lines and not routes:
        return None
    if routes:
        # Every planned prefix, changed peer or not: `replace` is a no-op on a route that is
        # there, and restores one that is not (route_allowed_ips was off, or deleted by hand).
        for prefix in sorted(carried, key=lambda p: (p.version, str(p))):
            lines.append(f"ip -{prefix.version} route replace {q(str(prefix))} dev {iface}")
    if not lines:
        return None
    return "set -e\n" + "\n".join(
        line if " 2>/dev/null" not in line else f"{line} || true" for line in lines
    )


def psk_live_script(
    site: SitePlan, peers: Collection[str], psk_source: Callable[[str, str], str]
) -> str | None:
    """The preshared keys the device now holds for `peers`, given to the running interface
    (`rotate --psk`: a peer whose public key stays is not re-set otherwise), through a pipe."""
    q = shlex.quote
    lines = []
    for peer in site.peers:
        if peer.name not in peers or not peer.preshared or peer.public_key is None:
            continue
        set_psk = f"wg set {q(site.interface)} peer {q(peer.public_key)} preshared-key {PSK_PIPE}"
        lines.append(
            f'sw_k=$({psk_source(site.interface, peer.name)}); echo "$sw_k" | {set_psk}; sw_k='
        )
    return "set -e\n" + "\n".join(lines) if lines else None


def peers_running_script(site: SitePlan, attempts: int = 100) -> str:
    """Wait (up to `attempts` tenths of a second) until the interface runs every planned peer:
    a handler's `renew` applies them after ubus has already answered. Fails if it never does."""
    q = shlex.quote
    keys = " ".join(q(p.public_key) for p in site.peers if p.public_key)
    return (
        f"sw_n=0; while :; do sw_have=$(wg show {q(site.interface)} peers); sw_ok=1; "
        f'for sw_k in {keys}; do printf "%s\\n" "$sw_have" | grep -qxF -e "$sw_k" || sw_ok=0; '
        f"done; [ $sw_ok = 0 ] || break; sw_n=$((sw_n + 1)); [ $sw_n -lt {attempts} ] || break; "
        'sleep 0.1 2>/dev/null || sleep 1; done; [ $sw_ok = 1 ] || { echo "not every planned '
        'peer runs" >&2; exit 1; }'
    )


def rehandshake_script(
    site: SitePlan, peers: Collection[str], psk_source: Callable[[str, str], str]
) -> str | None:
    """`peers` re-created as planned where this end dials them, so their next packet starts a
    handshake at once. After a rotation a first handshake may have gone out in the moment
    before the other end held the new keys; WireGuard would try again only after 5 s
    (REKEY_TIMEOUT). The listening end keeps its peers: it has no endpoint to dial them with."""
    q = shlex.quote
    lines = []
    for peer in site.peers:
        if peer.name in peers and peer.dial is not None and peer.public_key is not None:
            lines.append(f"wg set {q(site.interface)} peer {q(peer.public_key)} remove")
            lines.append(_set_peer(site, peer, psk_source))
    return "set -e\n" + "\n".join(lines) if lines else None


def fresh_start_script(
    site: SitePlan, psk_source: Callable[[str, str], str], recreated: Collection[str] = ()
) -> str | None:
    """Each peer this end dials that has never shaken hands, or whose interface was re-created
    in this apply (`recreated`), re-created as planned, so its next packet starts a handshake
    at once. Sites are configured at the same time: a dialer's first handshake may go out
    before its listener is up, or before the listener's network restart throws its session
    away, and WireGuard would try again only after 5 s (REKEY_TIMEOUT) or much later. Any
    other peer is left alone: its tunnel is up, and re-creating it would cost a packet."""
    q = shlex.quote
    iface = q(site.interface)
    lines = []
    for peer in site.peers:
        if peer.kind != "site" or peer.dial is None or peer.public_key is None:
            continue
        key = q(peer.public_key)
        again = [f"  wg set {iface} peer {key} remove", f"  {_set_peer(site, peer, psk_source)}"]
        if peer.name in recreated:
            lines += ["if :; then", *again, "fi"]
            continue
        lines += [
            f"t=$(wg show {iface} latest-handshakes | awk -v k={key} '$1 == k {{ print $2 }}')",
            'if [ "$t" = 0 ]; then',
            *again,
            "fi",
        ]
    return "\n".join(lines) if lines else None


def _set_peer(site: SitePlan, peer: PeerPlan, psk_source: Callable[[str, str], str]) -> str:
    """The `wg set` line for one planned peer, its preshared key piped from where it is kept."""
    q = shlex.quote
    assert peer.public_key is not None
    args = ["allowed-ips", ",".join(str(p) for p in peer.allowed_ips)]
    if peer.dial is not None:
        args += ["endpoint", peer.dial.endpoint.with_port(peer.dial.endpoint.port or 0)]
        args += ["persistent-keepalive", str(peer.dial.keepalive)]
    else:
        args += ["persistent-keepalive", "off"]
    set_peer = f"wg set {q(site.interface)} peer {q(peer.public_key)} preshared-key"
    words = " ".join(q(a) for a in args)
    if not peer.preshared:
        return f"{set_peer} /dev/null {words}"
    # No key on the device: /dev/null, as wg refuses an empty pipe ("Invalid length").
    # `echo` is the shell's own, so the key is on no process's command line.
    return (
        f"sw_k=$({psk_source(site.interface, peer.name)}) || sw_k=; "
        f'if [ -n "$sw_k" ]; then echo "$sw_k" | {set_peer} {PSK_PIPE} {words}; '
        f"else {set_peer} /dev/null {words}; fi; sw_k="
    )


def drift_lines(
    site: SitePlan,
    facts: DeviceFacts,
    psks: Mapping[str, bool | None] | None,
    keep: frozenset[str] = frozenset(),
) -> list[str]:
    """How the running device's peers differ from the plan (`wg show all dump`), one line each.

    The files may already agree (UCI committed, then a `network reload` that ignores peers, or
    a peer changed by hand): this is the difference only the live comparison sees. Nothing
    when the interface does not run at all (re-creating it is the files' business). Where it is
    unknown whether the device holds a preshared key (Linux), the running state is taken.
    """
    live = facts.wg.interface(site.interface)
    if live is None:
        return []
    if psks is None:
        psks = {
            p.name: running.preshared_key_set
            for p in site.peers
            if (running := live.peer(p.public_key or "")) is not None
        }
    return live_drift(site, live, psks, keep)


def live_drift(
    site: SitePlan,
    live: WgInterface,
    psks: Mapping[str, bool | None] | None = None,
    keep: frozenset[str] = frozenset(),
) -> list[str]:
    """Peers the device runs other than planned (24.10's `reload` ignores peer sections);
    `psks` as for `peer_differs`, by peer name."""
    out = []
    for peer in site.peers:
        current = live.peer(peer.public_key or "")
        if current is None:
            out.append(f"{site.name}: {site.interface}: peer {peer.name}: not running; set live")
        elif peer_differs(peer, current, None if psks is None else psks.get(peer.name)):
            out.append(
                f"{site.name}: {site.interface}: peer {peer.name}: runs differently "
                "from the plan; set live"
            )
    keys = {p.public_key for p in site.peers}
    for extra in live.peers:
        if extra.public_key not in keys and extra.public_key not in keep:
            out.append(
                f"{site.name}: {site.interface}: peer {extra.public_key}: runs but is not "
                "planned; removed live"
            )
    return out


def common_steps(site: SitePlan, facts: DeviceFacts) -> list[Step]:
    if site.tailscale is None or not facts.tailscale.installed:
        return []
    if not tailscale_differs(site.tailscale, facts.tailscale.prefs):
        return []
    return [Step(shlex.join(site.tailscale.command()), "Tailscale prefs differ from the plan")]


def tailscale_revert(site: SitePlan, facts: DeviceFacts) -> list[str]:
    prefs = facts.tailscale.prefs
    if site.tailscale is None or prefs is None or not tailscale_differs(site.tailscale, prefs):
        return []
    return [tailscale_restore(prefs)]


# A peer's preshared key, given in [Interface] because wg-quick has no PresharedKeyFile.
_PSK_POST_UP = re.compile(r"PostUp\s*=\s*wg set %i peer \S+ preshared-key \S+")


def interface_part(conf: str) -> str:
    """What of a wg-quick file re-creates the device when it changes: the [Interface] section,
    without comments and without the peers' preshared-key PostUp lines (peer settings, which
    live_peer_script makes live: adding a site must not re-create a Linux hub's device)."""
    head = conf.split("[Peer]", 1)[0].splitlines()
    return "\n".join(
        line for line in head if not line.startswith("#") and not _PSK_POST_UP.fullmatch(line)
    )


def mask_secrets(text: str) -> str:
    """Key lines as the device shows them to sitewire (`(hidden)`), so files can be compared."""
    return "".join(
        f"{line.split('=', 1)[0].rstrip()} = (hidden)\n" if _SECRET_LINE.match(line) else line
        for line in text.splitlines(keepends=True)
    )


def file_diff(site: str, path: str, before: str | None, after: str) -> list[str]:
    """A file's changed lines for a person to read (`after` is masked first)."""
    after = mask_secrets(after)
    if before == after:
        return []
    if before is None:
        return [f"{site}: {path}: added ({len(after.splitlines())} lines)"]
    out = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
        if not line.startswith(("---", "+++", "@@")):
            out.append(f"{site}: {path}: {line[0]} {line[1:]}")
    return out
