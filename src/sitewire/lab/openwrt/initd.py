"""`/etc/init.d/<service>` as rc.common presents it: enable/disable through /etc/rc.d links."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from sitewire.lab.openwrt.env import lab_path

RC_D = "/etc/rc.d"
# START priorities of the services of the lab layer (their init scripts' START=).
START = {"sysctl": 11, "firewall": 19, "network": 20, "dropbear": 19, "cron": 50, "done": 95}
_HELP = {
    "start": "Start the service",
    "stop": "Stop the service",
    "restart": "Restart the service",
    "reload": "Reload configuration files (or restart if service does not implement reload)",
    "enable": "Enable service autostart",
    "disable": "Disable service autostart",
    "enabled": "Check if service is started on boot",
}


def _links(name: str) -> list[str]:
    folder = lab_path(RC_D)
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if p.name[:1] in "SK" and p.name[3:] == name]


def enabled(name: str) -> bool:
    return any(link.startswith("S") for link in _links(name))


def enable(name: str) -> None:
    folder = lab_path(RC_D)
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"S{START.get(name, 50):02d}{name}"
    if not link.is_symlink():
        link.symlink_to(f"../init.d/{name}")


def disable(name: str) -> None:
    for link in _links(name):
        (lab_path(RC_D) / link).unlink()


def dispatch(name: str, argv: list[str], actions: Mapping[str, Callable[[], int]]) -> int:
    command = argv[0] if argv else ""
    if command in actions:
        return actions[command]()
    if command == "enable":
        enable(name)
        return 0
    if command == "disable":
        disable(name)
        return 0
    if command == "enabled":
        return 0 if enabled(name) else 1
    lines = [f"Syntax: /etc/init.d/{name} [command]", "", "Available commands:"]
    lines += [f"\t{c}\t{text}" for c, text in _HELP.items()]
    print("\n".join(lines), file=sys.stderr)
    return 1
