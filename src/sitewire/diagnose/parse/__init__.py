"""Device output as typed values: one module per command whose output is read.

Pure: text in, frozen values out. Nothing here keeps a private or preshared key; a dump line
that carries one is read for everything else and the key is dropped on the spot. Router output
is hostile until read (issue 9): addresses go through sitewire.strict (no zone IDs, only the
characters an address is written with), numbers are ASCII digits, JSON is depth-bounded, and
anything else raises UnexpectedOutput, never another exception.
"""

from sitewire.diagnose.parse.base import HIDDEN, NONE, UnexpectedOutput, parse_number
from sitewire.diagnose.parse.ip import (
    HeldAddress,
    IpRule,
    Link,
    Neighbour,
    Route,
    default_route,
    lookup52_priority,
    parse_addresses,
    parse_ip_links,
    parse_ip_links_json,
    parse_ip_rules,
    parse_neighbours,
    parse_routes,
)
from sitewire.diagnose.parse.netifd import (
    Handler,
    NetifdInterface,
    parse_handler,
    parse_netifd_dump,
)
from sitewire.diagnose.parse.packages import (
    InstalledPackage,
    InstalledPackages,
    parse_apk_installed,
    parse_opkg_installed,
)
from sitewire.diagnose.parse.rc_local import RcLocal, parse_rc_local_probe
from sitewire.diagnose.parse.release import (
    OpenWrtRelease,
    OsRelease,
    parse_openwrt_release,
    parse_os_release,
)
from sitewire.diagnose.parse.sections import MARK, ScriptSection, parse_sections
from sitewire.diagnose.parse.tailscale import NetfilterMode, TailscalePrefs, parse_tailscale_prefs
from sitewire.diagnose.parse.watchdog import Watchdog, parse_watchdog_probe
from sitewire.diagnose.parse.wg import (
    SecretState,
    SocketAddress,
    WgDump,
    WgInterface,
    WgPeer,
    parse_wg_dump,
)

__all__ = [
    "HIDDEN",
    "MARK",
    "NONE",
    "Handler",
    "HeldAddress",
    "InstalledPackage",
    "InstalledPackages",
    "IpRule",
    "Link",
    "Neighbour",
    "NetfilterMode",
    "NetifdInterface",
    "OpenWrtRelease",
    "OsRelease",
    "RcLocal",
    "Route",
    "ScriptSection",
    "SecretState",
    "SocketAddress",
    "TailscalePrefs",
    "UnexpectedOutput",
    "Watchdog",
    "WgDump",
    "WgInterface",
    "WgPeer",
    "default_route",
    "lookup52_priority",
    "parse_addresses",
    "parse_apk_installed",
    "parse_handler",
    "parse_ip_links",
    "parse_ip_links_json",
    "parse_ip_rules",
    "parse_neighbours",
    "parse_netifd_dump",
    "parse_number",
    "parse_openwrt_release",
    "parse_opkg_installed",
    "parse_os_release",
    "parse_rc_local_probe",
    "parse_routes",
    "parse_sections",
    "parse_tailscale_prefs",
    "parse_watchdog_probe",
    "parse_wg_dump",
]
