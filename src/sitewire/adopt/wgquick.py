"""wg-quick files (Linux hosts, phones) as adopt reads them: the file's own words. Pure.

The private key in the file is read only to compute the public key; it goes nowhere else.
"""

from __future__ import annotations

from sitewire import strict
from sitewire.adopt.derive import AdoptError, Peer, Router, parsed, prefix
from sitewire.adopt.meshconf import REFUSED
from sitewire.diagnose.parse.base import UnexpectedOutput
from sitewire.diagnose.parse.wgquick import WgQuick, listed, parse_wg_quick
from sitewire.keys import public_key
from sitewire.spec.types import parse_wg_key


def parse(text: str, source: str) -> WgQuick:
    """The file's sections; a one-line refusal naming the line, or a file with no key."""
    try:
        conf = parse_wg_quick(text)
    except UnexpectedOutput as exc:
        raise AdoptError(
            exc.message, where=source, fix="give a wg-quick file ([Interface], [Peer])"
        ) from None
    if conf.first("privatekey") is None:
        raise AdoptError(
            "no [Interface] with a PrivateKey", where=source, fix="give the whole file"
        )
    return conf


def _key_of(conf: WgQuick, source: str) -> str:
    try:
        return public_key(parse_wg_key(conf.first("privatekey") or ""))
    except ValueError:
        raise AdoptError("its PrivateKey is not a WireGuard key", where=source) from None


def file_key(text: str, source: str) -> str:
    """The public key of the file's own private key."""
    return _key_of(parse(text, source), source)


def router_from_wg_quick(name: str, text: str, source: str, interface: str) -> Router:
    """A Linux host's file as a router; its LAN comes later, from what the others route to it."""
    conf = parse(text, source)
    v4 = [
        parsed(strict.interface, a, source, "Address")
        for a in listed(conf.interface.get("address"))
        if "." in a
    ]
    if not v4:
        raise AdoptError(
            "[Interface] has no IPv4 Address", where=source, fix="add its overlay address"
        )
    v6 = [a for a in listed(conf.interface.get("address")) if ":" in a]
    address6 = parsed(strict.interface, v6[0], source, "Address") if v6 else None
    for key, what in REFUSED.items():
        if conf.first(key.lower()) is not None:
            raise AdoptError(
                f"[Interface] sets {key} ({what}), which a sitewire site cannot express",
                where=source,
                fix=f"remove {key} if it is not needed, or leave {name} out of sitewire",
            )
    mtu_text = conf.first("mtu")
    mtu = strict.digits(mtu_text) if mtu_text is not None else None
    if mtu_text is not None and mtu is None:
        raise AdoptError(f"[Interface] MTU {mtu_text!r} is not a number", where=source)
    port = strict.digits(conf.first("listenport") or "51820") or 51820
    peers = []
    for n, peer in enumerate(conf.peers):
        endpoint = (peer.get("endpoint") or ("",))[0]
        host, _, port_text = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "")
        peers.append(
            Peer(
                f"[Peer] {n + 1}",
                (peer.get("publickey") or ("",))[0],
                tuple(
                    parsed(prefix, p, source, "AllowedIPs") for p in listed(peer.get("allowedips"))
                ),
                host.strip("[]") if host else None,
                strict.digits(port_text),
                strict.digits((peer.get("persistentkeepalive") or ("",))[0]) or None,
                "presharedkey" in peer,
                None,
            )
        )
    key = _key_of(conf, source)
    return Router(
        name, "", interface, key, port, v4[0], (), tuple(peers), None, "linux", address6, mtu
    )
