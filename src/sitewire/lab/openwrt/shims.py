"""The lab layer's Python commands on a router: cron and the package manager stand-in.

The venv lives outside the router's overlaid directories, so a `#!<python>` script written into
the router runs the same sitewire the controller runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sitewire.fileio import write_atomic
from sitewire.lab.openwrt.env import lab_path, lab_setting

PACKAGE = "sitewire.lab.openwrt"

# path on the router -> (module, function): the lab layer's Python commands (uci, netifd, fw4
# and ubus are OpenWrt's own programs; see docs/lab.md).
BASE = {
    "/etc/init.d/cron": ("cron", "initd_main"),
    "/etc/init.d/sysctl": ("sysctl", "initd_main"),
    "/usr/bin/jsonfilter": ("jsonfilter", "main"),
}
OPKG = {"/bin/opkg": ("opkg", "opkg_main")}
APK = {"/usr/bin/apk": ("opkg", "apk_main")}


def shim_text(module: str, function: str, python: str | None = None) -> str:
    return (
        f"#!{python or sys.executable}\n"
        "# sitewire lab: a lab-layer command, in Python (docs/lab.md).\n"
        "import sys\n"
        f"from {PACKAGE}.{module} import {function}\n"
        f"sys.exit({function}())\n"
    )


def install_shims(shims: dict[str, tuple[str, str]], python: str | None = None) -> list[Path]:
    """Write the shims; `python` defaults to the one provisioning recorded, else this one."""
    python = python or lab_setting("python", sys.executable)
    written = []
    for path, (module, function) in shims.items():
        target = lab_path(path)
        text = shim_text(module, function, python)
        if not target.exists() or target.read_text(encoding="utf-8", errors="replace") != text:
            write_atomic(target, text, 0o755)
        written.append(target)
    return written
