"""Keys born on the devices: a private key never leaves its router; preshared keys cross only RAM.

A private key is generated on the device (`wg genkey` under umask 077) and stored where its
configuration reads it; only the public key comes back. A preshared key must reach both ends
of a pair, so it is made in the controller's memory and travels on SSH stdin (never in a command
line, which is logged), and is never written on the controller. Whether both ends already hold
the same one is decided by comparing hashes the devices computed when they were read; each
device then gets all of its new keys in one command.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sitewire.deploy.remote import RemoteError, Shell
from sitewire.driver import Driver
from sitewire.keys import generate_preshared_key
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


def psk_hash_command(driver: Driver, iface: str, peer: str) -> str:
    """Prints the sha256 of the PSK held for `peer`, computed on the device; fails if none."""
    read = driver.psk_read(iface, peer)
    return (
        f'sw_k=$({read} 2>/dev/null); [ -n "$sw_k" ] && '
        'printf %s "$sw_k" | sha256sum | cut -d" " -f1'
    )


def new_psks(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A new preshared key for each pair, made here in memory (as `wg genpsk` makes one: 32
    random bytes) and given to each end in its one write; it is never written here."""
    return {pair: generate_preshared_key() for pair in pairs}


def psks_by_site(keys: Mapping[tuple[str, str], str]) -> dict[str, list[tuple[str, str]]]:
    """(peer, key) for every pair each site is in, in peer order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for (a, b), key in keys.items():
        out.setdefault(a, []).append((b, key))
        out.setdefault(b, []).append((a, key))
    return {site: sorted(mine) for site, mine in out.items()}
