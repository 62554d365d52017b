"""Check 9: an MTU too large for the path between two sites."""

from __future__ import annotations

from sitewire.diagnose.doctor.model import APPLY, Finding, Live
from sitewire.diagnose.probes import running_mtu
from sitewire.plan.model import SitePlan


def _mtu_fails(live: Live, site: str, other: str) -> bool:
    probes = live.probes.get(site)
    return (
        probes is not None and probes.small.get(other) is True and probes.large.get(other) is False
    )


def check_mtu(live: Live, site: SitePlan) -> list[Finding]:
    """9. An MTU too large for the path: small pings pass, full-size ones with DF do not.

    One cause, one finding: a path that drops large packets fails both ends' probes (a ping's
    reply is as large as its request), so where both ends see it the site first in the plan
    reports it for the pair.
    """
    probes = live.probes[site.name]
    order = list(live.plan.site_names)
    out = []
    for other in probes.small:
        if not _mtu_fails(live, site.name, other):
            continue
        both = _mtu_fails(live, other, site.name)
        if both and other in order and order.index(other) < order.index(site.name):
            continue  # `other` reports this pair
        mtu = running_mtu(live.facts[site.name], site)
        size = mtu - 28
        overlay = live.plan.site(other).addresses[0].ip
        evidence = [
            f"$ ping -c 2 {overlay}   → ok",
            f"$ ping -c 2 -M do -s {size} {overlay}   → no reply",
        ]
        fits = probes.fits.get(other)
        if fits is not None:
            evidence.append(
                f"$ ping -c 1 -M do -s {fits - 28} {overlay}   → ok  (the largest that crossed)"
            )
        if both:
            evidence.append(f"(and the same from {other} to {site.name})")
        fix = (
            f"set mtu = {fits} under sites.{site.name} and sites.{other}, then run {APPLY}"
            if fits is not None
            else f"lower the MTU on both ends: set wan_mtu (the WAN's real MTU; pppoe = true "
            f"for 1492) or mtu under sites.{site.name} and sites.{other}, then run {APPLY}"
        )
        out.append(
            Finding(
                "mtu-too-large",
                site.name,
                f"packets of {site.interface}'s MTU ({mtu}) do not cross to {other}; "
                "small ones do: the path carries less (and says nothing)",
                tuple(evidence),
                fix,
            )
        )
    return out
