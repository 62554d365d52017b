"""`/etc/init.d/sysctl` of a lab router: OpenWrt's S11sysctl, /etc/sysctl.d/*.conf then
/etc/sysctl.conf, but only their net.* keys: a lab router's kernel-wide keys are the host's."""

from __future__ import annotations

import sys

from sitewire.lab.boot import apply_sysctls
from sitewire.lab.openwrt import initd
from sitewire.lab.openwrt.env import guarded


def start() -> int:
    apply_sysctls()
    return 0


def initd_main(argv: list[str] | None = None) -> int:
    actions = {"start": start, "boot": start, "restart": start, "reload": start}
    args = sys.argv[1:] if argv is None else argv
    return guarded("sysctl", lambda: initd.dispatch("sysctl", args, actions))
