"""A wg-meshconf database (its CSV) as the routers it describes. Pure.

wg-meshconf (2.x) keeps one row per peer: `Name`, `Address` (comma-separated), `Endpoint` (a
host; others dial it on the row's `ListenPort`), `AllowedIPs` (what the peer routes beyond its
addresses: its LAN), `ListenPort`, `PersistentKeepalive` (what the others keep alive towards
it), `PrivateKey`, and wg-quick's other [Interface] keys. `genconfig` writes every row a
[Peer] for every other row: a full mesh, so each row is a Linux site peering with all others.
The private keys are read only to know the public keys; they go nowhere else.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from collections.abc import Mapping

from sitewire import strict
from sitewire.adopt.derive import AdoptError, Peer, Router, parsed, prefix
from sitewire.keys import public_key
from sitewire.spec.types import parse_wg_key

REQUIRED = ("Name", "Address", "PrivateKey")
# Columns wg-quick acts on that a sitewire site has no word for: what they do would be lost.
REFUSED = {"Table": "routing into another table", "FwMark": "a firewall mark on its packets"}
# Columns sitewire does itself, or a router does not need: dropped, and said so.
DROPPED = ("DNS", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig")
_SITE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


def read_meshconf(text: str, source: str, interface: str = "wg0") -> tuple[list[Router], list[str]]:
    """The routers of the database, and a note for each value that is not carried over."""
    rows = _rows(text, source)
    notes: list[str] = []
    found = [_row(row, n, source, notes) for n, row in enumerate(rows, 2)]
    overlay = _overlay([f[1] for f in found], source)
    routers = []
    for name, address, row, key in found:
        peers = tuple(
            _peer_for(o_row, o_key) for o_name, _, o_row, o_key in found if o_name != name
        )
        mtu = _number(row, "MTU", source, name)
        routers.append(
            Router(
                name,
                "",
                interface,
                key,
                _number(row, "ListenPort", source, name) or 51820,
                strict.interface(f"{address.ip}/{overlay.prefixlen}"),
                _lan(row, source, name, overlay),
                peers,
                None,
                "linux",
                address6=_address6(row, source, name),
                mtu=mtu,
            )
        )
    return routers, notes


def _rows(text: str, source: str) -> list[Mapping[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise AdoptError(
            f"not a wg-meshconf database: no {', '.join(missing)} column",
            where=source,
            fix="give the database.csv wg-meshconf keeps (wg-meshconf -d FILE)",
        )
    rows: list[Mapping[str, str]] = [
        {k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader
    ]
    if len(rows) < 2:
        raise AdoptError(
            f"{len(rows)} peer(s): a network needs two", where=source, fix="give the whole database"
        )
    return rows


def _row(
    row: Mapping[str, str], line: int, source: str, notes: list[str]
) -> tuple[str, strict.IPInterface, Mapping[str, str], str]:
    name = row["Name"]
    where = f"{source}:{line}"
    if not _SITE_NAME.fullmatch(name):
        raise AdoptError(
            f"peer name {name!r} cannot be a site name (a letter, then letters, digits, _)",
            where=where,
            fix="rename the peer in the CSV, and adopt again",
        )
    for column, what in REFUSED.items():
        if row.get(column):
            raise AdoptError(
                f"{name} sets {column} ({what}), which a sitewire site cannot express",
                where=where,
                fix=f"clear {column} for {name} if it is not needed, or leave it out of sitewire",
            )
    for column in DROPPED:
        if row.get(column):
            notes.append(
                f"{where}: {name}: {column} is not carried over (sitewire sets up "
                "routing, forwarding and its firewall itself)"
            )
    v4 = [
        parsed(strict.interface, a.strip(), where, "Address")
        for a in row["Address"].split(",")
        if "." in a
    ]
    if not v4:
        raise AdoptError(f"{name} has no IPv4 Address", where=where, fix="give it one in the CSV")
    try:
        key = public_key(parse_wg_key(row["PrivateKey"]))
    except ValueError:
        raise AdoptError(f"{name}'s PrivateKey is not a WireGuard key", where=where) from None
    return name, v4[0], row, key


def _overlay(addresses: list[strict.IPInterface], source: str) -> strict.IPNetwork:
    """The addresses' own prefix when they share one; for /32s, the longest prefix (at most a
    /24) that holds them all."""
    networks = {a.network for a in addresses}
    if len(networks) == 1 and next(iter(networks)).prefixlen < 32:
        return next(iter(networks))
    if all(a.network.prefixlen == 32 for a in addresses):
        for bits in range(24, 7, -1):
            nets = {ipaddress.ip_network(f"{a.ip}/{bits}", strict=False) for a in addresses}
            if len(nets) == 1:
                return nets.pop()
    raise AdoptError(
        "the peers' addresses are not in one overlay prefix "
        f"({', '.join(sorted(str(a) for a in addresses))})",
        where=source,
        fix="give every peer an Address in one prefix, e.g. 10.0.0.N/24",
    )


def _lan(
    row: Mapping[str, str], source: str, name: str, overlay: strict.IPNetwork
) -> tuple[strict.IPNetwork, ...]:
    where = f"{source}: {name}: AllowedIPs"
    found = [parsed(prefix, p.strip(), where, "AllowedIPs") for p in _words(row.get("AllowedIPs"))]
    return tuple(p for p in found if not _inside(p, overlay))


def _inside(p: strict.IPNetwork, overlay: strict.IPNetwork) -> bool:
    return (
        isinstance(p, ipaddress.IPv4Network)
        and isinstance(overlay, ipaddress.IPv4Network)
        and p.subnet_of(overlay)
    )


def _peer_for(row: Mapping[str, str], key: str) -> Peer:
    """The [Peer] genconfig writes for `row` in every other row's file: AllowedIPs are its
    addresses as written (a /24 stays a /24) and its AllowedIPs column."""
    allowed = _words(row["Address"]) + _words(row.get("AllowedIPs"))
    endpoint = row.get("Endpoint") or None
    where = f"row {row['Name']}"
    return Peer(
        where,
        key,
        tuple(parsed(prefix, p, where, "Address/AllowedIPs") for p in allowed),
        endpoint,
        strict.digits(row.get("ListenPort") or "") if endpoint else None,
        strict.digits(row.get("PersistentKeepalive") or "") or None,
        False,  # wg-meshconf has no preshared keys
        None,
    )


def _address6(row: Mapping[str, str], source: str, name: str) -> strict.IPInterface | None:
    v6 = [a.strip() for a in row["Address"].split(",") if ":" in a]
    return parsed(strict.interface, v6[0], f"{source}: {name}", "Address") if v6 else None


def _words(text: str | None) -> list[str]:
    return [w.strip() for w in (text or "").split(",") if w.strip()]


def _number(row: Mapping[str, str], column: str, source: str, name: str) -> int | None:
    text = row.get(column) or ""
    if not text:
        return None
    value = strict.digits(text)
    if value is None:
        raise AdoptError(f"{name}'s {column} {text!r} is not a number", where=source)
    return value
