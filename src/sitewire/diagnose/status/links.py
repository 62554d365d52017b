"""Each site pair's health from what its two sites saw, and the whole status built from it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from sitewire.diagnose.parse import WgPeer
from sitewire.diagnose.status.model import (
    RECENT,
    Health,
    LinkStatus,
    NetworkStatus,
    Over,
    SiteStatus,
)
from sitewire.diagnose.status.pings import pairs, prober
from sitewire.diagnose.status.seen import Seen
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan


@dataclass(frozen=True, slots=True)
class _Side:
    """One site's view of its direct peer."""

    peer: WgPeer | None
    age: int | None


def _side(sites: Mapping[str, SitePlan], seen: Mapping[str, Seen], me: str, other: str) -> _Side:
    mine = seen[me]
    iface = mine.wg.interface(sites[me].interface)
    theirs = seen.get(other)
    live = theirs.wg.interface(sites[other].interface) if theirs is not None else None
    # The key the other site really has: a wrong key on this side shows as no handshake.
    key = (live.public_key if live is not None else None) or sites[me].peer(other).public_key
    peer = iface.peer(key) if iface is not None and key else None
    if peer is None or peer.latest_handshake is None:
        return _Side(peer, None)
    clock = mine.clock if mine.clock is not None else int(time.time())
    return _Side(peer, max(0, clock - peer.latest_handshake))


def _health(age: int | None) -> Health:
    if age is None:
        return Health.DOWN
    return Health.UP if age <= RECENT else Health.STALE


def _direct(
    sites: Mapping[str, SitePlan],
    seen: Mapping[str, Seen],
    dialers: Sequence[str],
    a: str,
    b: str,
) -> LinkStatus:
    sides = {s: _side(sites, seen, s, o) for s, o in ((a, b), (b, a)) if s in seen}
    if not sides:
        return LinkStatus(a, b, None, Health.UNKNOWN)
    ages = [s.age for s in sides.values() if s.age is not None]
    age = min(ages) if ages else None
    # The endpoint a dialer sends to; else where the other side was last heard from.
    endpoint = next(
        (
            str(side.peer.endpoint)
            for name in (*dialers, a, b)
            if (side := sides.get(name)) and side.peer and side.peer.endpoint
        ),
        None,
    )
    pa = sides[a].peer if a in sides else None
    pb = sides[b].peer if b in sides else None
    return LinkStatus(
        a,
        b,
        None,
        _health(age),
        handshake_age=age,
        endpoint=endpoint,
        bytes_ab=pa.tx_bytes if pa else (pb.rx_bytes if pb else None),
        bytes_ba=pa.rx_bytes if pa else (pb.tx_bytes if pb else None),
    )


_WORST = (Health.UNKNOWN, Health.DOWN, Health.STALE, Health.UP)


def _relayed(a: str, b: str, relay: str, hops: Sequence[LinkStatus]) -> LinkStatus:
    health = min((h.health for h in hops), key=_WORST.index)
    ages = [h.handshake_age for h in hops]
    age = None if any(x is None for x in ages) else max(x for x in ages if x is not None)
    return LinkStatus(a, b, relay, health, handshake_age=age)


def build_status(
    plan: Plan,
    seen: Mapping[str, Seen],
    pings: Mapping[str, Mapping[tuple[str, str], float | None]],
    errors: Mapping[str, str],
    taken_at: float,
    seconds: float,
) -> NetworkStatus:
    """Pure: the status table's values from what each site answered."""
    plans = {site.name: site for site in plan.sites()}
    dialers = {frozenset((x.a, x.b)): x.dialers for x in plan.links()}
    sites = []
    for site in plans.values():
        got = seen.get(site.name)
        link = next((x for x in got.links if x.name == site.interface), None) if got else None
        sites.append(
            SiteStatus(
                site.name,
                tuple(str(p) for p in site.lan),
                str(site.addresses[0].ip),
                site.interface,
                reachable=got is not None,
                interface_up=(link is not None and link.up) if got else None,
                tailnet=got.tailnet if got else None,
                error=errors.get(site.name),
            )
        )
    direct: dict[tuple[str, str], LinkStatus] = {}
    links = []
    for a, b, relay in pairs(plan):
        if relay is None:
            status = direct[(a, b)] = _direct(plans, seen, dialers[frozenset((a, b))], a, b)
        else:
            status = _relayed(a, b, relay, [direct[hop] for hop in _hops(plan, a, b)])
        by = prober(plan, a, b, seen)
        if by is not None:
            other = b if by == a else a
            measured = pings.get(by, {})
            rtt = {str(p): measured[(other, p)] for p in Over if (other, p) in measured}
            status = replace(status, rtt_ms=rtt, measured_from=by)
        links.append(status)
    return NetworkStatus(plan.name, taken_at, seconds, tuple(sites), tuple(links))


def _hops(plan: Plan, a: str, b: str) -> list[tuple[str, str]]:
    """The direct pairs a relayed pair rides on, each in file order."""
    order = plan.site_names.index
    path = plan.path(a, b)
    return [(x, y) if order(x) < order(y) else (y, x) for x, y in pairwise(path)]
