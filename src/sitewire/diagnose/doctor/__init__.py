"""`sitewire doctor`: the live network compared with the plan, each fault named with its evidence.

Pure: the checks read DeviceFacts (one round trip per site, diagnose.facts) and Probes (a
second round trip: the route a LAN host's packet takes, pings across the tunnel with and without
fragmentation allowed, names resolved, addresses held), never a device. Each check looks at one
cause and stays quiet about symptoms another check owns, so a broken network gets one finding
per cause (the lab tests break a healthy network one way at a time and expect exactly one).
"""

from __future__ import annotations

from collections.abc import Sequence

from sitewire.diagnose.doctor.boot import check_boot
from sitewire.diagnose.doctor.ddns import check_ddns
from sitewire.diagnose.doctor.firewall import (
    check_disabled_zone,
    check_forwardings,
    check_no_zone,
    check_port_open,
)
from sitewire.diagnose.doctor.interface import check_interface_running
from sitewire.diagnose.doctor.model import APPLY, Finding, Live
from sitewire.diagnose.doctor.mtu import check_mtu
from sitewire.diagnose.doctor.ownership import (
    check_duplicate_peers,
    check_foreign_peers,
    check_zones,
)
from sitewire.diagnose.doctor.paths import check_paths
from sitewire.diagnose.doctor.peers import (
    check_keepalive,
    check_keys,
    check_saved_not_live,
    check_watchdog,
)
from sitewire.diagnose.doctor.routes import check_routes, check_tailscale

__all__ = [
    "APPLY",
    "CHECKS",
    "Finding",
    "Live",
    "check_boot",
    "check_ddns",
    "check_disabled_zone",
    "check_duplicate_peers",
    "check_foreign_peers",
    "check_forwardings",
    "check_interface_running",
    "check_keepalive",
    "check_keys",
    "check_mtu",
    "check_no_zone",
    "check_paths",
    "check_port_open",
    "check_routes",
    "check_saved_not_live",
    "check_tailscale",
    "check_watchdog",
    "check_zones",
    "diagnose",
]


CHECKS = (
    check_interface_running,
    check_tailscale,
    check_forwardings,
    check_port_open,
    check_keepalive,
    check_watchdog,
    check_ddns,
    check_routes,
    check_keys,
    check_saved_not_live,
    check_mtu,
    check_no_zone,
    check_disabled_zone,
    check_duplicate_peers,
    check_zones,
    check_foreign_peers,
    check_boot,
)


def diagnose(live: Live, sites: Sequence[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    for name in sites or live.plan.site_names:
        if name not in live.facts:
            continue
        site = live.plan.site(name)
        for check in CHECKS:
            out += check(live, site)
    # The traced paths come last: a hop another check already names adds nothing.
    traced = check_paths(live, out)
    return out + [f for f in traced if sites is None or f.site in sites]
