"""Linux routers: a wg-quick config, an nftables table of sitewire's own, and a sysctl drop-in.

wg-quick rather than systemd-networkd: it runs on any distribution that ships wireguard-tools
(Debian, Alpine, Arch, with or without systemd), `wg syncconf <(wg-quick strip)` applies peer
changes without dropping sessions, Table=auto gives exactly OpenWrt's route_allowed_ips, and
WG_QUICK_USERSPACE_IMPLEMENTATION lets the same file run on wireguard-go where there is no
kernel module.
"""

from __future__ import annotations

import shlex

from sitewire.plan import Plan
from sitewire.plan.model import PeerPlan, SitePlan
from sitewire.render import quote
from sitewire.render.model import (
    SECRET_SLOT,
    PeerTexts,
    Rendered,
    RenderedFile,
    Secrets,
    commands_script,
    peer_public_key,
)
from sitewire.render.quote import nft_word, wg_quick, wg_quick_comment

CONF_DIR = "/etc/wireguard"
NFT_DIR = "/etc/sitewire"


def key_path(iface: str) -> str:
    """Where the host keeps the interface's private key (wg-quick's PostUp reads it)."""
    return f"{CONF_DIR}/{iface}.key"


def psk_path(iface: str, peer: str) -> str:
    """Where the host keeps the preshared key it shares with `peer`."""
    return f"{CONF_DIR}/{iface}-{peer}.psk"


def nft_table(site: SitePlan) -> str:
    return f"sitewire_{site.interface}"


def render_linux(plan: Plan, site: SitePlan, secrets: Secrets) -> Rendered:
    conf, has_secret = _wg_quick(plan, site, secrets)
    iface = site.interface
    sysctl = f"60-sitewire-{iface}.conf"
    files: tuple[RenderedFile, ...] = (
        RenderedFile(
            f"{iface}.conf", conf, secret=has_secret, device_path=f"{CONF_DIR}/{iface}.conf"
        ),
        RenderedFile(f"{iface}.nft", _nftables(plan, site), device_path=f"{NFT_DIR}/{iface}.nft"),
        RenderedFile(sysctl, _sysctl(plan, site), device_path=f"/etc/sysctl.d/{sysctl}"),
        RenderedFile("packages", "".join(f"{p}\n" for p in site.packages())),
    )
    commands = [
        f"sysctl -q -p /etc/sysctl.d/{sysctl}",
        start_command(iface),
    ]
    if site.tailscale is not None:
        commands.append(shlex.join(site.tailscale.command()))
    if site.watchdog:
        files = (*files, *_watchdog(site))
    script = commands_script(site.name, tuple(commands), "Put the other files in place first.")
    return Rendered(site.name, (*files, script), tuple(commands))


RERESOLVE_AFTER = 150  # seconds without a handshake, as OpenWrt's wireguard_watchdog


def _watchdog(site: SitePlan) -> tuple[RenderedFile, RenderedFile, RenderedFile]:
    """`wg` resolves a name once; re-resolve a dialled DNS endpoint when handshakes stop."""
    iface = site.interface
    peers = [
        f"{p.public_key} {p.dial.endpoint.host} {p.dial.endpoint.port}"
        for p in site.peers
        if p.dial is not None and p.dial.endpoint.kind == "name" and p.public_key
    ]
    script = "\n".join(
        [
            "#!/bin/sh",
            f"# sitewire: {site.name}. Re-resolve dialled names on {iface} after "
            f"{RERESOLVE_AFTER} s without a handshake",
            "# (what OpenWrt's wireguard_watchdog does). Run every minute by cron.",
            f"after=${{SITEWIRE_RERESOLVE_AFTER:-{RERESOLVE_AFTER}}}",
            "now=$(date +%s)",
            f"wg show {iface} latest-handshakes | while read -r key last; do",
            '    [ $((now - last)) -ge "$after" ] || continue',
            "    while read -r peer host port; do",
            f'        [ "$peer" = "$key" ] && wg set {iface} peer "$peer" endpoint "$host:$port"',
            f"    done < /etc/sitewire/{iface}.endpoints",
            "done",
            "",
        ]
    )
    return (
        RenderedFile(
            f"{iface}.endpoints",
            "".join(f"{line}\n" for line in peers),
            device_path=f"{NFT_DIR}/{iface}.endpoints",
        ),
        RenderedFile(
            f"sitewire-reresolve-{iface}",
            script,
            device_path=f"/usr/local/sbin/sitewire-reresolve-{iface}",
            executable=True,
        ),
        RenderedFile(
            f"cron.d-sitewire-{iface}",
            f"* * * * * root /usr/local/sbin/sitewire-reresolve-{iface}\n",
            device_path=f"/etc/cron.d/sitewire-{iface}",
        ),
    )


def _wg_quick(plan: Plan, site: SitePlan, secrets: Secrets) -> tuple[str, bool]:
    private = secrets.private_key(site.name)
    iface = site.interface
    head = [
        wg_quick_comment(f"sitewire: network '{plan.name}', site {site.name} (linux). Generated."),
        wg_quick_comment(f"Start: wg-quick up {iface}. Peer changes without dropping sessions:"),
        wg_quick_comment(f"  wg syncconf {iface} <(wg-quick strip {iface})"),
        wg_quick_comment(f"MTU {site.mtu}: {site.mtu_reason}"),
        "[Interface]",
        _line("Address", ", ".join(str(a) for a in site.addresses)),
        _line("ListenPort", site.listen_port),
        _line("MTU", site.mtu),
    ]
    post_up: list[list[str]] = []
    if private is None:
        # Born on the host at apply time; it never leaves it.
        post_up.append(["wg", "set", "%i", "private-key", key_path(iface)])
    else:
        head.append(_line("PrivateKey", private))
    post_up.append(["nft", "-f", f"{NFT_DIR}/{iface}.nft"])
    post_down = [["nft", "delete", "table", "inet", nft_table(site)]]
    if site.tailscale is not None:
        priority = str(site.tailscale.pin_priority)
        for prefix in site.tailscale.pins:
            for verb, commands in (("add", post_up), ("del", post_down)):
                to = ["to", str(prefix), "lookup", "main", "priority", priority]
                commands.append(["ip", f"-{prefix.version}", "rule", verb, *to])
    blocks: list[str] = []
    has_secret = private is not None
    plain = PeerTexts(plan, ("linux", "False"))
    keyed = PeerTexts(plan, ("linux", "True"))
    peers = site.peers
    keys = any(p.preshared for p in peers)
    psks = secrets.preshared_keys_with(site.name, [p.name for p in peers]) if keys else []
    psks += [None] * (len(peers) - len(psks))
    for peer, psk in zip(peers, psks, strict=True):
        if not peer.preshared:
            blocks.append(plain.get(peer, _plain_block))
        elif psk is None:
            # Born on the host at apply time: wg-quick's PostUp reads it from its file.
            blocks.append(plain.get(peer, _plain_block))
            where = psk_path(site.interface, peer.name)
            post_up.append(
                ["wg", "set", "%i", "peer", str(peer.public_key), "preshared-key", where]
            )
        else:
            before, after = keyed.around_secret(peer, _keyed_block)
            blocks += (before, psk, after)
            has_secret = True
    head += [_line("PostUp", _command(c)) for c in post_up]
    head += [_line("PostDown", _command(c)) for c in post_down]
    return "\n".join(head) + "\n" + "".join(blocks), has_secret


def _line(key: str, value: object) -> str:
    return f"{key} = {wg_quick(value)}"


def _command(words: list[str]) -> str:
    """A PostUp/PostDown command: wg-quick hands the line to bash after replacing %i, so every
    word is quoted but %i, which stands for the interface name wg-quick was given."""
    return " ".join(w if w == "%i" else quote.sh(w) for w in words)


def _plain_block(peer: PeerPlan) -> str:
    return _peer_block(peer, False)


def _keyed_block(peer: PeerPlan) -> str:
    return _peer_block(peer, True)


def _peer_block(peer: PeerPlan, psk: bool) -> str:
    key = peer_public_key(peer)
    via = f"; also carries {', '.join(peer.reached_through)}" if peer.reached_through else ""
    lines = [
        "",
        wg_quick_comment(f"{peer.name} ({peer.kind}{'; we dial it' if peer.dial else ''}{via})"),
        "[Peer]",
        _line("PublicKey", key),
    ]
    if psk:
        lines.append(f"PresharedKey = {SECRET_SLOT}")  # the slot holds NULs; a key goes in
    lines.append(_line("AllowedIPs", ", ".join(str(p) for p in peer.allowed_ips)))
    if peer.dial:
        lines.append(_line("Endpoint", peer.dial.endpoint))
        lines.append(_line("PersistentKeepalive", peer.dial.keepalive))
    return "\n".join(lines) + "\n"


def _nftables(plan: Plan, site: SitePlan) -> str:
    iface = nft_word(site.interface)
    table = nft_word(nft_table(site))
    # A table of its own, replaced whole on every load. Its accepts cannot override a drop in
    # another table (every table sees every packet); a host firewall with drop policies must
    # admit the listen port and wg traffic itself — `sitewire doctor` checks for that.
    out = [
        f"# sitewire: network '{plan.name}', site {site.name}. Loaded by wg-quick PostUp.",
        f"table inet {table}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "\tchain input {",
        "\t\ttype filter hook input priority filter - 5; policy accept;",
    ]
    if site.firewall.open_port is not None:
        port = nft_word(site.firewall.open_port)
        out.append(f'\t\tudp dport {port} counter accept comment "WireGuard"')
    out += [
        f'\t\tiifname "{iface}" counter accept',
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter - 5; policy accept;",
        f'\t\tiifname "{iface}" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu',
        f'\t\toifname "{iface}" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu',
        f'\t\tiifname "{iface}" counter accept',
        f'\t\toifname "{iface}" counter accept',
        "\t}",
    ]
    masq = site.firewall.masquerade_clients
    if masq:
        out += [
            "\tchain postrouting {",
            "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        ]
        for prefix in masq:
            family = "ip" if prefix.version == 4 else "ip6"
            out.append(f'\t\toifname != "{iface}" {family} saddr {nft_word(prefix)} masquerade')
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def _sysctl(plan: Plan, site: SitePlan) -> str:
    lines = [
        f"# sitewire: {site.name} forwards between its LAN and {site.interface}",
        "net.ipv4.ip_forward = 1",
    ]
    if plan.topology.ipv6:
        lines.append("net.ipv6.conf.all.forwarding = 1")
    return "\n".join(lines) + "\n"


def enable_command(iface: str) -> str:
    """wg-quick@ enabled, so the interface comes back at boot: with systemd running, or
    offline where systemctl is installed but systemd is not (yet) the init."""
    return f"! command -v systemctl >/dev/null || systemctl enable -q wg-quick@{iface}"


def start_command(iface: str) -> str:
    """(Re)start the interface: through its unit where systemd runs, else wg-quick itself."""
    return (
        f"{enable_command(iface)} && if [ -d /run/systemd/system ]; then "
        f"systemctl restart wg-quick@{iface}; else wg-quick down {iface} 2>/dev/null || true; "
        f"wg-quick up {iface}; fi"
    )
