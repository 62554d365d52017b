"""`sitewire status`: every site pair's path, handshake, endpoint, bytes and round-trip times.

Two round trips per site, all sites at once: a few of the collector's sections (the clock, the
WireGuard dump with keys hidden, links, routes, Tailscale prefs) plus `tailscale status --json`,
then pings across the tunnel, LAN to LAN and over the tailnet. Not the whole of
diagnose.script: status has no use for uci or packages, and on a busy router they are the slow
part. Each pair is measured from one of its two sites (alternating, so no router pings everyone),
and every ping of one router runs at the same time. Pure: `diagnose.gather.gather_status` makes
the round trips. What one router said reaches another router's ping script only as a
shell-quoted argument.
"""

from sitewire.diagnose.status.links import build_status
from sitewire.diagnose.status.model import (
    RECENT,
    Health,
    LinkStatus,
    NetworkStatus,
    Over,
    SiteStatus,
    TailnetState,
    format_age,
)
from sitewire.diagnose.status.pings import pairs, parse_pings, ping_sections, prober
from sitewire.diagnose.status.saved import VERSION, status_from_json, status_json, status_path
from sitewire.diagnose.status.seen import READ_SECTIONS, Seen, parse_tailnet, read_sections

__all__ = [
    "READ_SECTIONS",
    "RECENT",
    "VERSION",
    "Health",
    "LinkStatus",
    "NetworkStatus",
    "Over",
    "Seen",
    "SiteStatus",
    "TailnetState",
    "build_status",
    "format_age",
    "pairs",
    "parse_pings",
    "parse_tailnet",
    "ping_sections",
    "prober",
    "read_sections",
    "status_from_json",
    "status_json",
    "status_path",
]
