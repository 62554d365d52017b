"""`tailscale status` (ipnstate.Status JSON and the plain table) for the lab tailnet."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sitewire.lab.tailnet.base import CGNAT
from sitewire.lab.tailnet.control import Node, Tailnet
from sitewire.lab.tailnet.prefs import Prefs
from sitewire.lab.tailnet.wireguard import PeerState, key_hex

VERSION = "1.80.3-sitewire-lab"
SUFFIX = "sitewire-lab.ts.net"
USER_ID = 1
ZERO_TIME = "0001-01-01T00:00:00Z"
ACTIVE_SECONDS = 180


@dataclass(frozen=True)
class View:
    """What status reads: this node's prefs and name, the netmap, and live WireGuard counters."""

    prefs: Prefs
    name: str | None
    tailnet: Tailnet
    device: dict[str, PeerState]

    @property
    def me(self) -> Node | None:
        return self.tailnet.get(self.name) if self.name else None

    @property
    def backend_state(self) -> str:
        if self.me is None:
            return "NeedsLogin"
        return "Running" if self.prefs.want_running else "Stopped"


def _node_id(node: Node) -> str:
    return f"nLAB{int(node.ipv4) - int(CGNAT.network_address):07d}CNTRL"


def _time(seconds: int) -> str:
    if seconds <= 0:
        return ZERO_TIME
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_status(node: Node, hostname: str, primary: tuple[str, ...]) -> dict[str, object]:
    ips = [str(node.ipv4), str(node.ipv6)]
    allowed = [str(a) for a in node.addresses] + list(primary)
    if node.exit_node_option:
        allowed += ["0.0.0.0/0", "::/0"]
    status: dict[str, object] = {
        "ID": _node_id(node),
        "PublicKey": f"nodekey:{key_hex(node.public_key)}",
        "HostName": hostname,
        "DNSName": f"{hostname}.{SUFFIX}.",
        "OS": "linux",
        "UserID": USER_ID,
        "TailscaleIPs": ips,
        "AllowedIPs": allowed,
    }
    if primary:
        status["PrimaryRoutes"] = list(primary)
    return status


def _peer_status(node: Node, primary: tuple[str, ...], live: PeerState | None) -> dict[str, object]:
    live = live or PeerState()
    active = live.last_handshake > 0 and time.time() - live.last_handshake < ACTIVE_SECONDS
    return {
        **_node_status(node, node.name, primary),
        "Addrs": [str(node.endpoint)],
        "CurAddr": live.endpoint if active else "",
        "Relay": "",
        "RxBytes": live.rx_bytes,
        "TxBytes": live.tx_bytes,
        "Created": ZERO_TIME,
        "LastWrite": ZERO_TIME,
        "LastSeen": ZERO_TIME,
        "LastHandshake": _time(live.last_handshake),
        "Online": node.online,
        "ExitNode": False,
        "ExitNodeOption": node.exit_node_option,
        "Active": active,
        "PeerAPIURL": [],
        "InNetworkMap": True,
        "InMagicSock": True,
        "InEngine": live.last_handshake > 0,
    }


def status_json(view: View) -> dict[str, object]:
    me = view.me
    primary = {k: tuple(str(r) for r in v) for k, v in view.tailnet.primary_routes().items()}
    self_status: dict[str, object] = {
        "ID": "",
        "PublicKey": "nodekey:",
        "HostName": "",
        "OS": "linux",
    }
    peers: dict[str, object] | None = None
    if me is not None:
        self_status = {
            **_node_status(me, view.prefs.hostname or me.name, primary[me.name]),
            "Addrs": [str(me.endpoint)],
            "Online": view.prefs.want_running,
            "ExitNodeOption": me.exit_node_option,
        }
        peers = {
            f"nodekey:{key_hex(p.public_key)}": _peer_status(
                p, primary[p.name], view.device.get(key_hex(p.public_key))
            )
            for p in view.tailnet.peers_of(me.name)
        } or None
    return {
        "Version": VERSION,
        "TUN": True,
        "BackendState": view.backend_state,
        "HaveNodeKey": me is not None,
        "AuthURL": "",
        "TailscaleIPs": [str(me.ipv4), str(me.ipv6)] if me else None,
        "Self": self_status,
        "Health": [],
        "MagicDNSSuffix": SUFFIX,
        "CurrentTailnet": {
            "Name": "sitewire-lab",
            "MagicDNSSuffix": SUFFIX,
            "MagicDNSEnabled": True,
        },
        "CertDomains": None,
        "Peer": peers,
        "User": {str(USER_ID): _user()},
        "ClientVersion": None,
    }


def _user() -> dict[str, object]:
    return {
        "ID": USER_ID,
        "LoginName": "lab@sitewire",
        "DisplayName": "sitewire lab",
        "ProfilePicURL": "",
        "Roles": [],
    }


def status_lines(view: View) -> list[str]:
    """The plain table: address, name, owner, OS, and a short state per node."""
    me = view.me
    if me is None:
        return ["Logged out."]
    if not view.prefs.want_running:
        return ["Tailscale is stopped."]
    rows = [(str(me.ipv4), view.prefs.hostname or me.name, "-")]
    for peer in view.tailnet.peers_of(me.name):
        live = view.device.get(key_hex(peer.public_key))
        rows.append((str(peer.ipv4), peer.name, _peer_state(peer, live)))
    width = max(len(name) for _, name, _ in rows)
    return [f"{ip:<15} {name:<{width}} lab@         linux   {state}" for ip, name, state in rows]


def _peer_state(peer: Node, live: PeerState | None) -> str:
    if not peer.online:
        return "offline"
    if live is None or live.last_handshake == 0:
        return "-"
    return f"active; direct {live.endpoint}, tx {live.tx_bytes} rx {live.rx_bytes}"
