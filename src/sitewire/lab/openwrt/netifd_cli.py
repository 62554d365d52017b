"""The commands that drive netifd: /sbin/ifup, /sbin/ifdown, /etc/init.d/network, reload_config.

Each takes netifd's lock, acts, saves the state, then runs the hotplug firewall reload for every
interface that came up (as /etc/hotplug.d/iface/20-firewall does, after netifd's event).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import TypeVar

from sitewire.lab.openwrt import fw4, initd
from sitewire.lab.openwrt.env import ensure_router, guarded, lab_path, locked
from sitewire.lab.openwrt.netifd import Netifd
from sitewire.lab.openwrt.uci_cli import CONFDIR, run_uci

LOCK = "lab-netifd"
MD5_FILE = "/var/run/config.md5"
_T = TypeVar("_T")


def with_netifd(action: Callable[[Netifd], _T]) -> _T:
    ensure_router()
    with locked(LOCK):
        netifd = Netifd()
        result = action(netifd)
        netifd.save()
    for name in netifd.came_up:
        fw4.hotplug(name)
    return result


def not_found() -> int:
    print("Command failed: Not found", file=sys.stderr)
    return 4


def _ifup(netifd: Netifd, names: list[str]) -> int:
    """/sbin/ifup: `ubus call network reload` first, then down and up (reference §1.5)."""
    netifd.reload()
    rc = 0
    for name in names:
        if not (netifd.down(name) and netifd.up(name)):
            rc = not_found()
    return rc


def ifup_main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "-w"]
    return guarded("ifup", lambda: _ifup_command(args))


def _ifup_command(args: list[str]) -> int:
    if "-a" in args:
        return with_netifd(lambda n: _ifup(n, list(n.configured)))
    if len(args) != 1:
        print("Usage: ifup [-a] [-w] [interface]", file=sys.stderr)
        return 1
    return with_netifd(lambda n: _ifup(n, args))


def ifdown_main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "-w"]
    return guarded("ifdown", lambda: _ifdown_command(args))


def _ifdown_command(args: list[str]) -> int:
    if "-a" in args:
        return with_netifd(lambda n: 0 if all(n.down(x) for x in list(n.configured)) else 1)
    if len(args) != 1:
        print("Usage: ifdown [-a] [-w] [interface]", file=sys.stderr)
        return 1
    return with_netifd(lambda n: 0 if n.down(args[0]) else not_found())


def network_initd_main(argv: list[str] | None = None) -> int:
    """/etc/init.d/network (START=20): procd starts netifd; restart re-scans proto handlers."""
    actions: dict[str, Callable[[], int]] = {
        "start": lambda: with_netifd(lambda n: _done(n.start)),
        "boot": lambda: with_netifd(lambda n: _done(n.start)),
        "stop": lambda: with_netifd(lambda n: _done(n.stop)),
        "restart": lambda: with_netifd(lambda n: _done(n.restart)),
        "reload": lambda: with_netifd(lambda n: _done(n.reload)),
    }
    args = sys.argv[1:] if argv is None else argv
    return guarded("network", lambda: initd.dispatch("network", args, actions))


def _done(action: Callable[[], None]) -> int:
    action()
    return 0


def reload_config_main(argv: list[str] | None = None) -> int:
    """/sbin/reload_config: a config.change event for each package whose `uci show` changed
    since the last run. The first run only records: nothing changed "since" then."""
    return guarded("reload_config", _reload_config)


def _reload_config() -> int:
    digests = _digests()
    path = lab_path(MD5_FILE)
    changed: list[str] = []
    if path.exists():
        previous = dict(_parse_md5(path.read_text(encoding="utf-8")))
        changed = [p for p, digest in previous.items() if digests.get(p) != digest]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{d}  /var/run/config.check/{p}\n" for p, d in sorted(digests.items())]
    path.write_text("".join(lines), encoding="utf-8")
    rc = 0
    if "network" in changed:
        rc |= with_netifd(lambda n: _done(n.reload))
    if "firewall" in changed:
        rc |= fw4.run_fw4(["reload"])
    return rc


def _digests() -> dict[str, str]:
    folder = lab_path(CONFDIR)
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return {
        name: hashlib.md5(run_uci(["show", name]).stdout.encode()).hexdigest() for name in names
    }


def _parse_md5(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        digest, _, path = line.partition("  ")
        if path:
            out.append((path.rsplit("/", 1)[-1], digest))
    return out
