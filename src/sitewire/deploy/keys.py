"""Keys born on the devices: a private key never leaves its router; preshared keys cross only RAM.

A private key is generated on the device (`wg genkey` under umask 077) and stored where its
configuration reads it; only the public key comes back. A preshared key must reach both ends
of a pair, so it travels once through the controller's memory, on SSH stdin (never in a command
line, which is logged), and is never written on the controller. Whether both ends already hold
the same one is decided by comparing hashes on the devices.
"""

from __future__ import annotations

from sitewire.deploy.remote import RemoteError, Shell
from sitewire.driver import Driver
from sitewire.spec.types import parse_wg_key


async def ensure_private_key(
    session: Shell, driver: Driver, iface: str, *, replace: bool = False
) -> str:
    """Make the device's key if it has none (`replace`: a new one, whatever it has); return its
    public key (the private one stays)."""
    result = await session.run(driver.private_key_script(iface, replace=replace))
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


# One end of a pair: (session, its driver, its interface, the OTHER end's name).
End = tuple[Shell, Driver, str, str]


def psk_hash_command(driver: Driver, iface: str, peer: str) -> str:
    """Prints the sha256 of the PSK held for `peer`, computed on the device; fails if none."""
    read = driver.psk_read(iface, peer)
    return (
        f'sw_k=$({read} 2>/dev/null); [ -n "$sw_k" ] && '
        'printf %s "$sw_k" | sha256sum | cut -d" " -f1'
    )


async def _hash(session: Shell, driver: Driver, iface: str, peer: str) -> str:
    result = await session.run(psk_hash_command(driver, iface, peer))
    return result.stdout.strip() if result.rc == 0 else ""


async def ensure_preshared_key(a: End, b: End, *, replace: bool = False) -> bool:
    """Give both ends of a pair the same preshared key (`replace`: a new one, whatever they
    hold); return whether a new one was made."""
    if not replace:
        hashes = [await _hash(*side) for side in (a, b)]
        if hashes[0] and hashes[0] == hashes[1]:
            return False
    made = await a[0].run("umask 077; wg genpsk")
    psk = made.stdout.strip()
    try:
        parse_wg_key(psk)
    except ValueError:
        raise RemoteError("'wg genpsk' failed", where=a[0].target.name) from None
    for session, driver, iface, peer in (a, b):
        await session.check(driver.psk_write(iface, peer), stdin=psk + "\n")
    return True
