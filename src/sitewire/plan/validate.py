"""Refusals that need the whole spec: names, references, overlapping prefixes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sitewire.errors import PlanError
from sitewire.spec.model import Spec
from sitewire.strict import IPNetwork

T = TypeVar("T")


def find_overlap(
    items: Iterable[tuple[IPNetwork, T]],
) -> tuple[tuple[IPNetwork, T], tuple[IPNetwork, T]] | None:
    """Return two items whose prefixes overlap (earlier one first, in input order), or None.

    A sweep over prefixes sorted by first address, remembering the one reaching furthest:
    O(n log n), so checking a 1000-site mesh stays fast. When several pairs overlap, the pair
    whose later member comes first in the input is reported, so errors point at the first clash.
    """
    spans = sorted(
        (net.version, int(net.network_address), int(net.broadcast_address), order, net, label)
        for order, (net, label) in enumerate(items)
    )
    best: tuple[int, int] | None = None  # (order of later item, order of earlier item)
    widest = None
    for span in spans:
        version, first, last, order = span[:4]
        if widest is not None and widest[0] == version and first <= widest[2]:
            pair = (max(order, widest[3]), min(order, widest[3]))
            best = pair if best is None or pair < best else best
        if widest is None or widest[0] != version or last > widest[2]:
            widest = span
    if best is None:
        return None
    by_order = {span[3]: (span[4], span[5]) for span in spans}
    return by_order[best[1]], by_order[best[0]]


def check_spec(spec: Spec, source: str) -> None:
    _check_names(spec, source)
    _check_references(spec, source)
    _check_prefixes(spec, source)


# `clients` is render's folder for client configs; `inet` and `mgmt` name the lab's backbone.
RESERVED_SITE_NAMES = frozenset({"clients", "inet", "mgmt"})


def _check_names(spec: Spec, source: str) -> None:
    for name in spec.sites:
        if name.lower() in RESERVED_SITE_NAMES:
            raise PlanError(
                f"{name!r} is a reserved name",
                where=f"{source}: sites.{name}",
                fix=f"rename the site; {', '.join(sorted(RESERVED_SITE_NAMES))} are taken",
            )
    for name in spec.clients:
        if name in spec.sites:
            raise PlanError(
                f"name {name!r} is already used by sites.{name}",
                where=f"{source}: clients.{name}",
                fix="give every site and client its own name",
            )
    folded: dict[str, str] = {}
    for group, names in (("sites", spec.sites), ("clients", spec.clients)):
        for name in names:
            other = folded.setdefault(name.lower(), f"{group}.{name}")
            if other != f"{group}.{name}":
                raise PlanError(
                    f"{name!r} differs from {other} only in case, and both name files on disk",
                    where=f"{source}: {group}.{name}",
                    fix="rename one of them",
                )


def _check_references(spec: Spec, source: str) -> None:
    for name, site in spec.sites.items():
        if site.relay is None:
            continue
        where = f"{source}: sites.{name}.relay"
        relay = spec.sites.get(site.relay)
        if relay is None:
            raise PlanError(
                f"{site.relay!r} is not a site", where=where, fix=f"use one of {list(spec.sites)}"
            )
        if site.relay == name:
            raise PlanError(f"{name!r} cannot relay for itself", where=where)
        if relay.endpoint is None:
            raise PlanError(
                f"relay {site.relay!r} has no endpoint, so {name} cannot reach it",
                where=where,
                fix="choose a site with an endpoint, or give that site one",
            )
        if not relay.can_relay:
            raise PlanError(
                f"relay {site.relay!r} has can_relay = false",
                where=where,
                fix=f"choose another relay, or allow sites.{site.relay}.can_relay",
            )
    for name, client in spec.clients.items():
        where = f"{source}: clients.{name}.via"
        via = spec.sites.get(client.via)
        if via is None:
            raise PlanError(
                f"{client.via!r} is not a site", where=where, fix=f"use one of {list(spec.sites)}"
            )
        if via.endpoint is None:
            raise PlanError(
                f"site {client.via!r} has no endpoint, so {name} cannot dial it",
                where=where,
                fix="attach the client to a site with an endpoint",
            )


def _check_prefixes(spec: Spec, source: str) -> None:
    labelled: list[tuple[IPNetwork, str]] = []
    for key in ("overlay", "overlay6"):
        net = getattr(spec.network, key)
        if net is not None:
            labelled.append((net, f"network.{key}"))
    for name, site in spec.sites.items():
        labelled.extend((net, f"sites.{name}.lan[{i}]") for i, net in enumerate(site.lan))
    clash = find_overlap(labelled)
    if clash is None:
        _check_cover(labelled, source)
        return
    (net_a, label_a), (net_b, label_b) = clash
    if label_a.startswith("network."):
        raise PlanError(
            f"'{net_b}' overlaps {label_a} '{net_a}'",
            where=f"{source}: {label_b}",
            fix="pick an overlay subnet that no LAN uses",
        )
    same_site = label_a.split(".")[1] == label_b.split(".")[1]
    raise PlanError(
        f"'{net_b}' overlaps {label_a} '{net_a}'",
        where=f"{source}: {label_b}",
        fix="list each LAN subnet once" if same_site else "give each site its own LAN subnet",
    )


def _check_cover(labelled: list[tuple[IPNetwork, str]], source: str) -> None:
    """Refuse LANs that together hold every address of a family: each is routed into the tunnel
    on every peer, so even a split client would send all its traffic there. The prefixes are
    disjoint by now, so their sizes add up exactly."""
    for version, bits in ((4, 32), (6, 128)):
        lans = [(net, label) for net, label in labelled if net.version == version]
        if sum(net.num_addresses for net, _ in lans) < 2**bits:
            continue
        default = "0.0.0.0/0" if version == 4 else "::/0"
        named = ", ".join(f"{label} '{net}'" for net, label in lans if ".lan[" in label)
        raise PlanError(
            f"{named} cover every IPv{version} address ({default}): every peer would route all "
            "its traffic into the tunnel",
            where=f"{source}: {lans[-1][1]}",
            fix="list only the LAN subnets themselves; a full tunnel is a client's tunnel = 'full'",
        )
