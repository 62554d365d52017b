"""Overlay addresses: explicit ones first, then what the lock remembers, then the lowest free."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from sitewire.errors import PlanError
from sitewire.strict import IPAddress, IPNetwork


@dataclass(frozen=True, slots=True)
class Wish:
    """One node's claim on an overlay address."""

    name: str
    where: str  # key path of the explicit address, for errors
    explicit: IPAddress | None
    locked: IPAddress | None


def allocate(
    overlay: IPNetwork,
    wishes: Sequence[Wish],
    source: str,
    key: str,
    retired: Mapping[IPAddress, str] | None = None,
) -> tuple[dict[str, IPAddress], list[str]]:
    """Give every node an address in `overlay`; never move one the lock or the spec pins.

    Addresses of `retired` nodes stay reserved unless the spec claims one explicitly. Returns
    the allocation and notes about addresses that had to move (the overlay changed).
    """
    taken: dict[IPAddress, str] = {}
    result: dict[str, IPAddress] = {}
    locked = {w.locked: w.name for w in wishes if w.locked is not None and w.explicit is None}
    for wish in wishes:
        if wish.explicit is not None:
            _check_usable(overlay, wish.explicit, f"{source}: {wish.where}", key)
            other = taken.get(wish.explicit) or locked.get(wish.explicit)
            if other is not None and other != wish.name:
                # Taking a locked address would silently renumber a router somewhere else.
                raise PlanError(
                    f"'{wish.explicit}' is already {other}'s address",
                    where=f"{source}: {wish.where}",
                    fix="give every site and client its own overlay address",
                )
            taken[wish.explicit] = wish.name
            result[wish.name] = wish.explicit
    for address, name in (retired or {}).items():
        taken.setdefault(address, name)
    notes: list[str] = []
    for wish in wishes:
        if wish.explicit is None and wish.locked is not None:
            if _usable(overlay, wish.locked) and wish.locked not in taken:
                taken[wish.locked] = wish.name
                result[wish.name] = wish.locked
            else:
                notes.append(f"{wish.name}: overlay address {wish.locked} no longer fits; moved")
    free = _hosts(overlay)
    for wish in wishes:
        if wish.name in result:
            continue
        for candidate in free:
            if candidate not in taken:
                taken[candidate] = wish.name
                result[wish.name] = candidate
                break
        else:
            raise PlanError(
                f"'{overlay}' has no free address left for {wish.name} "
                f"({len(wishes)} sites and clients need one each)",
                where=f"{source}: network.{key}",
                fix="use a larger overlay prefix",
            )
    return result, notes


def _usable(overlay: IPNetwork, address: IPAddress) -> bool:
    if address.version != overlay.version or address not in overlay:
        return False
    return address not in _reserved(overlay)


def _reserved(overlay: IPNetwork) -> tuple[IPAddress, ...]:
    # The all-zeros address is the network (IPv4) or the subnet-router anycast (IPv6);
    # the IPv4 broadcast address is unusable too, except on /31 and /32.
    if overlay.version == 4 and overlay.prefixlen <= 30:
        return (overlay.network_address, overlay.broadcast_address)
    if overlay.version == 6 and overlay.prefixlen <= 126:
        return (overlay.network_address,)
    return ()


def _check_usable(overlay: IPNetwork, address: IPAddress, where: str, key: str) -> None:
    if address.version != overlay.version or address not in overlay:
        raise PlanError(
            f"'{address}' is outside network.{key} '{overlay}'",
            where=where,
            fix=f"pick an address inside {overlay}, or leave it out to have one allocated",
        )
    if address in _reserved(overlay):
        raise PlanError(
            f"'{address}' is the network or broadcast address of '{overlay}'",
            where=where,
            fix="pick a host address",
        )


def _hosts(overlay: IPNetwork) -> Iterator[IPAddress]:
    reserved = _reserved(overlay)
    first = int(overlay.network_address)
    factory = ipaddress.IPv4Address if overlay.version == 4 else ipaddress.IPv6Address
    for offset in range(overlay.num_addresses):
        address = factory(first + offset)
        if address not in reserved:
            yield address
