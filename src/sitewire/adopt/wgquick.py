"""wg-quick files (Linux hosts, phones) as adopt reads them: the file's own words. Pure.

The private key in the file is read only to compute the public key; it goes nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sitewire import strict
from sitewire.adopt.derive import AdoptError, Peer, Router, parsed, prefix
from sitewire.keys import public_key
from sitewire.spec.types import parse_wg_key


@dataclass(frozen=True, slots=True)
class WgQuick:
    interface: dict[str, list[str]]
    peers: tuple[dict[str, list[str]], ...]


def parse_wg_quick(text: str, source: str) -> WgQuick:
    """`[Interface]` and `[Peer]` sections of `Key = value` lines (a key may repeat)."""
    interface: dict[str, list[str]] = {}
    peers: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower() == "[interface]":
            current = interface
        elif line.lower() == "[peer]":
            current = {}
            peers.append(current)
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current.setdefault(key.strip().lower(), []).append(value.strip())
        else:
            raise AdoptError(
                f"line {n} is neither a section nor Key = value",
                where=source,
                fix="give a wg-quick file ([Interface], [Peer])",
            )
    if "privatekey" not in interface:
        raise AdoptError(
            "no [Interface] with a PrivateKey", where=source, fix="give the whole file"
        )
    return WgQuick(interface, tuple(peers))


def _csv(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _key_of(conf: WgQuick, source: str) -> str:
    try:
        return public_key(parse_wg_key(conf.interface["privatekey"][0]))
    except ValueError:
        raise AdoptError("its PrivateKey is not a WireGuard key", where=source) from None


def file_key(text: str, source: str) -> str:
    """The public key of the file's own private key."""
    return _key_of(parse_wg_quick(text, source), source)


def router_from_wg_quick(name: str, text: str, source: str, interface: str) -> Router:
    """A Linux host's file as a router; its LAN comes later, from what the others route to it."""
    conf = parse_wg_quick(text, source)
    v4 = [
        parsed(strict.interface, a, source, "Address")
        for a in _csv(conf.interface.get("address", []))
        if "." in a
    ]
    if not v4:
        raise AdoptError(
            "[Interface] has no IPv4 Address", where=source, fix="add its overlay address"
        )
    port = strict.digits((conf.interface.get("listenport") or ["51820"])[0]) or 51820
    peers = []
    for n, peer in enumerate(conf.peers):
        endpoint = (peer.get("endpoint") or [""])[0]
        host, _, port_text = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "")
        peers.append(
            Peer(
                f"[Peer] {n + 1}",
                (peer.get("publickey") or [""])[0],
                tuple(
                    parsed(prefix, p, source, "AllowedIPs")
                    for p in _csv(peer.get("allowedips", []))
                ),
                host.strip("[]") if host else None,
                strict.digits(port_text),
                strict.digits((peer.get("persistentkeepalive") or [""])[0]) or None,
                "presharedkey" in peer,
                None,
            )
        )
    return Router(
        name, "", interface, _key_of(conf, source), port, v4[0], (), tuple(peers), None, "linux"
    )
