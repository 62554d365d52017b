"""Where the lab's real OpenWrt userland is: what scripts/build-openwrt built for each release.

    <prefix>/openwrt-<series>/rootfs/usr   uci, ubus, ubusd, netifd, ucode, fw4 and their
                                           libraries, installed with prefix /usr; a lab router
                                           mounts it as the lowest layer of its /usr
    <prefix>/openwrt-<series>/etc          firewall4's stock /etc files (hotplug, nftables.d)
    <prefix>/openwrt-<series>/upstream     shell files of openwrt/openwrt (lab/upstream/openwrt)
    <prefix>/openwrt-<series>/BUILT        the pins and script the build came from

The prefix is /opt/sitewire-lab unless SITEWIRE_LAB_PREFIX says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

from sitewire.errors import SitewireError

PREFIX_ENV = "SITEWIRE_LAB_PREFIX"
DEFAULT_PREFIX = "/opt/sitewire-lab"


class UserlandMissing(SitewireError):
    """The OpenWrt userland of a release has not been built on this machine."""


def userland(series: str) -> Path:
    """The built tree of OpenWrt `series` (24.10, 25.12); refused when it is not built."""
    top = Path(os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX) / f"openwrt-{series}"
    if not (top / "BUILT").is_file():
        raise UserlandMissing(
            f"the OpenWrt {series} userland is not built (no {top / 'BUILT'})",
            where="sitewire lab",
            fix="run scripts/build-openwrt (scripts/bootstrap runs it)",
        )
    return top


def rootfs_usr(series: str) -> Path:
    return userland(series) / "rootfs" / "usr"


def stock_etc(series: str) -> Path:
    return userland(series) / "etc"


def upstream(series: str) -> Path:
    return userland(series) / "upstream"
