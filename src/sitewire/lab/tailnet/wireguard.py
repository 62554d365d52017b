"""tailscale0's data plane: one wireguard-go process per router, configured over its UAPI socket.

The socket is spoken directly (not through `wg`) because a factory OpenWrt lab router has no
`wg` until wireguard-tools is installed, and tailscaled does not need it either.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sitewire.lab.tailnet.base import INTERFACE, Paths, TailnetError
from sitewire.lab.tailnet.routing import BYPASS_MARK, KEEPALIVE, Peer

SOCKET = Path("/var/run/wireguard") / f"{INTERFACE}.sock"
START_TIMEOUT = 5.0
STOP_TIMEOUT = 3.0


@dataclass
class PeerState:
    endpoint: str = ""
    allowed_ips: set[str] = field(default_factory=set)
    keepalive: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    last_handshake: int = 0


@dataclass
class DeviceState:
    private_key: str = ""
    listen_port: int = 0
    fwmark: int = 0
    peers: dict[str, PeerState] = field(default_factory=dict)


def key_hex(key_b64: str) -> str:
    return base64.b64decode(key_b64, validate=True).hex()


def _uapi(request: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(STOP_TIMEOUT)
        try:
            sock.connect(str(SOCKET))
            sock.sendall(request.encode())
            reply = b""
            while not reply.endswith(b"\n\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except OSError as exc:
            raise TailnetError(f"{SOCKET}: {exc}", fix="is wireguard-go running?") from exc
    text = reply.decode()
    if "errno=0\n" not in text:
        raise TailnetError(f"{SOCKET}: wireguard-go refused the configuration ({text.strip()})")
    return text


def read_device() -> DeviceState:
    state = DeviceState()
    peer: PeerState | None = None
    for line in _uapi("get=1\n\n").splitlines():
        key, _, value = line.partition("=")
        if key == "public_key":
            peer = state.peers.setdefault(value, PeerState())
        elif peer is None:
            _device_field(state, key, value)
        else:
            _peer_field(peer, key, value)
    return state


def _device_field(state: DeviceState, key: str, value: str) -> None:
    if key == "private_key":
        state.private_key = value
    elif key == "listen_port":
        state.listen_port = int(value)
    elif key == "fwmark":
        state.fwmark = int(value)


def _peer_field(peer: PeerState, key: str, value: str) -> None:
    if key == "endpoint":
        peer.endpoint = value
    elif key == "allowed_ip":
        peer.allowed_ips.add(value)
    elif key == "persistent_keepalive_interval":
        peer.keepalive = int(value)
    elif key == "rx_bytes":
        peer.rx_bytes = int(value)
    elif key == "tx_bytes":
        peer.tx_bytes = int(value)
    elif key == "last_handshake_time_sec":
        peer.last_handshake = int(value)


def configure_device(private_key: str, listen_port: int, peers: tuple[Peer, ...]) -> None:
    """Send only what differs, so a lab-sync that changes nothing keeps every session."""
    current = read_device()
    lines = ["set=1"]
    if current.private_key != key_hex(private_key):
        lines.append(f"private_key={key_hex(private_key)}")
    if current.listen_port != listen_port:
        lines.append(f"listen_port={listen_port}")
    if current.fwmark != BYPASS_MARK:
        # tailscaled marks its own UDP sockets so rule 5210 sends them to main, not table 52.
        lines.append(f"fwmark={BYPASS_MARK}")
    wanted = {key_hex(p.public_key): p for p in peers}
    for gone in current.peers.keys() - wanted.keys():
        lines += [f"public_key={gone}", "remove=true"]
    for key, peer in wanted.items():
        lines += _peer_lines(key, peer, current.peers.get(key))
    if len(lines) > 1:
        _uapi("\n".join(lines) + "\n\n")


def _peer_lines(key: str, peer: Peer, current: PeerState | None) -> list[str]:
    now = current or PeerState()
    lines = [f"public_key={key}"]
    if now.endpoint != str(peer.endpoint):
        lines.append(f"endpoint={peer.endpoint}")
    if now.keepalive != KEEPALIVE:
        lines.append(f"persistent_keepalive_interval={KEEPALIVE}")
    if now.allowed_ips != {str(ip) for ip in peer.allowed_ips} or current is None:
        lines.append("replace_allowed_ips=true")
        lines += [f"allowed_ip={ip}" for ip in peer.allowed_ips]
    return lines if len(lines) > 1 or current is None else []


def recorded_pid(paths: Paths) -> int | None:
    try:
        pid = int(paths.wireguard_pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_ours(pid) else None


def _is_ours(pid: int) -> bool:
    """A live wireguard-go in this network namespace: the record may outlive a reused PID."""
    proc = Path(f"/proc/{pid}")
    try:
        alive = (proc / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
        same_net = os.readlink(proc / "ns/net") == os.readlink("/proc/self/ns/net")
        return alive and same_net and (proc / "comm").read_text().strip() == "wireguard-go"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _socket_answers() -> bool:
    try:
        read_device()
    except TailnetError:
        return False
    return True


def ensure_running(paths: Paths, link_exists: bool) -> tuple[int, bool]:
    """The PID of this router's wireguard-go, started if needed; and whether it is new."""
    pid = recorded_pid(paths)
    if pid is not None and _socket_answers():
        return pid, False
    if pid is not None:
        _terminate(pid)
    if link_exists:
        raise TailnetError(
            f"{INTERFACE} exists but no wireguard-go of ours serves it",
            fix=f"delete it: ip link del {INTERFACE}",
        )
    return _start(paths), True


def _wireguard_go() -> str:
    found = shutil.which("wireguard-go") or shutil.which("wireguard-go", path="/usr/bin:/usr/sbin")
    if found is None:
        raise TailnetError("wireguard-go not found", fix="apt-get install wireguard-go")
    return found


def _start(paths: Paths) -> int:
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.wireguard_log, "ab") as log:
        # Foreground + own session: we learn the PID, and an SSH hang-up cannot kill it.
        proc = subprocess.Popen(
            [_wireguard_go(), "-f", INTERFACE],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, "LOG_LEVEL": "error"},
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not _socket_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            tail = paths.wireguard_log.read_text(errors="replace")[-500:].strip()
            raise TailnetError(f"wireguard-go {INTERFACE} did not start: {tail or 'no output'}")
        time.sleep(0.02)
    paths.wireguard_pid.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(paths: Paths) -> None:
    pid = recorded_pid(paths)
    if pid is not None:
        _terminate(pid)
    paths.wireguard_pid.unlink(missing_ok=True)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _is_ours(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _is_ours(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
