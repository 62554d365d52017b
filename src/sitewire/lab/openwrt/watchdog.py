"""`wireguard_watchdog` (reference §4): re-resolve the endpoint names of peers gone quiet.

For every up wireguard interface in netifd's dump, each enabled peer with an `endpoint_host`
that is a name (not an address) and a live persistent keepalive gets
`wg set <if> peer <key> endpoint <host>:<port>` once its latest handshake is 150 s old or more
(never, 0, counts as old). Meant to run from cron every minute.
"""

from __future__ import annotations

import re
import sys
import time

from sitewire.lab.openwrt.env import guarded, log
from sitewire.lab.openwrt.netconf import DEFAULT_ENDPOINT_PORT, flag, option
from sitewire.lab.openwrt.netifd import Netifd
from sitewire.lab.openwrt.uci_cli import load_config
from sitewire.lab.openwrt.wgproto import wg
from sitewire.render.uci import Section

IDLE_SECONDS = 150
# The script's own checks, from ddns-scripts: an IPv4 address at the end, an IPv6 one anywhere.
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")
_IPV6 = re.compile(r"(([0-9A-Fa-f]{1,4}:)+)([0-9A-Fa-f]{1,4})?((:[0-9A-Fa-f]{1,4})+)")


def is_address(host: str) -> bool:
    return bool(_IPV4.search(host) or _IPV6.search(host))


def _column(interface: str, what: str) -> dict[str, str]:
    lines = wg("show", interface, what, check=False).stdout.splitlines()
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def check_peer(interface: str, section: Section, now: float) -> str | None:
    """The endpoint to re-set for this peer, or None when it is left alone."""
    key = option(section, "public_key")
    host = option(section, "endpoint_host")
    port = option(section, "endpoint_port") or DEFAULT_ENDPOINT_PORT
    if flag(section, "disabled") or not host or not key:
        return None
    keepalive = _column(interface, "persistent-keepalive").get(key, "")
    if keepalive in ("", "off") or is_address(host):
        return None
    handshake = _column(interface, "latest-handshakes").get(key, "")
    if not handshake:
        return None
    idle = int(now) - int(handshake)
    if idle < IDLE_SECONDS:
        return None
    message = (
        f"{interface} endpoint {host}:{port} is not responding for {idle} seconds, "
        "trying to re-resolve hostname"
    )
    print(f"wireguard_monitor: {message}", file=sys.stderr)
    log(f"wireguard_monitor: {message}")
    return f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    return guarded("wireguard_watchdog", _watch)


def _watch() -> int:
    package = load_config("network")
    if package is None:
        return 0
    dump = Netifd().dump()["interface"]
    interfaces = [i["interface"] for i in dump if i.get("up") and i.get("proto") == "wireguard"]
    now = time.time()
    for interface in interfaces:
        for section in package.sections_of_type(f"wireguard_{interface}"):
            endpoint = check_peer(interface, section, now)
            if endpoint is not None:
                key = option(section, "public_key")
                wg("set", interface, "peer", key, "endpoint", endpoint, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
