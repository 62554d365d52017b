"""Keys born on the devices: a private key never leaves its router; preshared keys cross only RAM.

A private key is generated on the device (`wg genkey` under umask 077) and stored where its
configuration reads it; only the public key comes back. A preshared key must reach both ends
of a pair, so it travels once through the controller's memory, on SSH stdin (never in a command
line, which is logged), and is never written on the controller. Whether both ends already hold
the same one is decided by comparing hashes on the devices.
"""

from __future__ import annotations

import shlex

from sitewire.deploy.ssh import RemoteError, Session
from sitewire.spec.model import Platform
from sitewire.spec.types import parse_wg_key

# Where each platform keeps what its configuration reads (render/openwrt.py, render/linux.py).
_OPENWRT_KEY = "network.{iface}.private_key"
_LINUX_KEY = "/etc/wireguard/{iface}.key"
_OPENWRT_PSK = "network.sw_peer_{peer}.preshared_key"
_LINUX_PSK = "/etc/wireguard/{iface}-{peer}.psk"


_NEED_WG = "command -v wg >/dev/null 2>&1 || { echo 'wg: not installed' >&2; exit 3; }; "


def _private_script(platform: Platform, iface: str) -> str:
    if platform is Platform.OPENWRT:
        option = shlex.quote(_OPENWRT_KEY.format(iface=iface))
        section = shlex.quote(f"network.{iface}")
        # Only this option is committed: nothing else may be pending when the key is made.
        return (
            f"set -e; umask 077; {_NEED_WG}"
            f'if [ -z "$(uci -q get {option})" ]; then '
            f"uci -q get {section} >/dev/null || uci set {section}=interface; "
            f'key=$(wg genkey); uci set {option}="$key"; uci commit network; fi; '
            f"uci get {option} | wg pubkey"
        )
    path = shlex.quote(_LINUX_KEY.format(iface=iface))
    return (
        f"set -e; umask 077; {_NEED_WG}mkdir -p /etc/wireguard; "
        f"[ -s {path} ] || wg genkey > {path}; wg pubkey < {path}"
    )


async def ensure_private_key(session: Session, platform: Platform, iface: str) -> str:
    """Make the device's key if it has none; return its public key (the private one stays)."""
    result = await session.run(_private_script(platform, iface))
    if result.rc != 0:
        last = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
        raise RemoteError(
            f"could not create a WireGuard key: {last[0]}",
            where=session.target.name,
            fix="install wireguard-tools first",
        )
    try:
        return parse_wg_key(result.stdout.strip())
    except ValueError:
        raise RemoteError(
            "'wg pubkey' printed something that is not a key", where=session.target.name
        ) from None


def _psk_location(platform: Platform, iface: str, peer: str) -> tuple[str, str]:
    """(read command, write command taking the key on stdin) for the PSK shared with `peer`."""
    if platform is Platform.OPENWRT:
        option = shlex.quote(_OPENWRT_PSK.format(peer=peer))
        section = shlex.quote(f"network.sw_peer_{peer}")
        read = f"uci -q get {option}"
        write = (
            f"read -r psk; uci -q get {section} >/dev/null || uci set {section}=wireguard_{iface}; "
            f'uci set {option}="$psk"; uci commit network'
        )
    else:
        path = shlex.quote(_LINUX_PSK.format(iface=iface, peer=peer))
        read = f"cat {path} 2>/dev/null"
        write = f"umask 077; mkdir -p /etc/wireguard; read -r psk; printf '%s\\n' \"$psk\" > {path}"
    return read, write


def psk_read_command(platform: Platform, iface: str, peer: str) -> str:
    """The device command printing the preshared key held for `peer` (nothing if none)."""
    return _psk_location(platform, iface, peer)[0]


async def _hash(session: Session, platform: Platform, iface: str, peer: str) -> str:
    """sha256 of the PSK held for `peer`, computed on the device; "" when there is none."""
    read, _ = _psk_location(platform, iface, peer)
    script = f'k=$({read}); [ -n "$k" ] && printf %s "$k" | sha256sum | cut -d" " -f1'
    result = await session.run(script)
    return result.stdout.strip() if result.rc == 0 else ""


async def ensure_preshared_key(
    a: tuple[Session, Platform, str, str], b: tuple[Session, Platform, str, str]
) -> bool:
    """Give both ends of a pair the same preshared key; return whether a new one was made.

    Each side is (session, platform, its interface, the OTHER end's name).
    """
    hashes = [await _hash(*side) for side in (a, b)]
    if hashes[0] and hashes[0] == hashes[1]:
        return False
    made = await a[0].run("umask 077; wg genpsk")
    psk = made.stdout.strip()
    try:
        parse_wg_key(psk)
    except ValueError:
        raise RemoteError("'wg genpsk' failed", where=a[0].target.name) from None
    for session, platform, iface, peer in (a, b):
        _, write = _psk_location(platform, iface, peer)
        await session.check(write, stdin=psk + "\n")
    return True
