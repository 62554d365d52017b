"""`fw4` and `/etc/init.d/firewall` of a lab router: firewall4's commands over the real nft.

The ruleset is rendered from /etc/config/firewall (interfaces resolved to devices through
/etc/config/network) and loaded as one `nft -f -` transaction. As in firewall4, the zones of the
last loaded ruleset are kept in /var/run/fw4.state: `fw4 network|device|zone` and the hotplug
reload after an interface comes up read them, not the configuration.

Lab deviations: the input and output chains accept the `mgmt` device first (see fw4_render),
`flush` leaves the lab's own `lab_*` tables alone, and interfaces are resolved to devices from
the configuration rather than from netifd over ubus.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from typing import Any

from sitewire.lab.openwrt import initd
from sitewire.lab.openwrt.env import (
    ensure_router,
    guarded,
    lab_path,
    lab_setting,
    locked,
    log,
)
from sitewire.lab.openwrt.fw4_model import Firewall
from sitewire.lab.openwrt.fw4_render import MGMT_DEVICE, render_ruleset
from sitewire.lab.openwrt.fw4_rules import parse_firewall
from sitewire.lab.openwrt.uci_cli import load_config
from sitewire.render.uci import Package

STATE_FILE = "/var/run/fw4.state"
LAB_TABLES = "lab_"
USAGE = """Usage:

  fw4 [-v] [-q] start|stop|flush|restart|reload

    Start, stop, flush, restart or reload the firewall respectively.


  fw4 [-q] print

    Print the rendered ruleset.


  fw4 [-q] check

    Test the rendered ruleset using nftables' check mode without
    applying it to the running system.


  fw4 [-q] network {net}
  fw4 [-q] device {dev}
  fw4 [-q] zone {zone} [dev]

    Look up zones in the state of the last loaded ruleset.
"""


class _Fw4:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def die(self, message: str) -> int:
        if not self.quiet:
            print(message, file=sys.stderr)
        return 1

    def render(self, quiet: bool = False) -> tuple[str, Firewall]:
        firewall = parse_firewall(
            load_config("firewall") or Package("firewall"), load_config("network")
        )
        if not (self.quiet or quiet):
            for warning in firewall.warnings:
                print(f"[!] {warning}", file=sys.stderr)
        return render_ruleset(firewall, lab_setting("mgmt_device", MGMT_DEVICE)), firewall

    def load(self) -> int:
        ruleset, firewall = self.render()
        proc = nft(["-f", "-"], ruleset)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return 1
        _write_state(firewall)
        return 0

    def start(self) -> int:
        if lab_path(STATE_FILE).exists():
            return self.die("The fw4 firewall appears to be already loaded.")
        return self.load()

    def reload(self) -> int:
        if not lab_path(STATE_FILE).exists():
            return self.die("The fw4 firewall does not appear to be loaded.")
        lab_path(STATE_FILE).unlink()
        return self.load()

    def stop(self) -> int:
        rc = nft(["delete", "table", "inet", "fw4"]).returncode
        lab_path(STATE_FILE).unlink(missing_ok=True)
        if rc != 0:
            return self.die(
                "The fw4 firewall does not appear to be loaded, try fw4 flush to delete all rules."
            )
        return 0

    def flush(self) -> int:
        for line in nft(["list", "tables"]).stdout.splitlines():
            words = line.split()
            # Lab deviation: lab_* tables stand for the world outside the router (an ISP's
            # stateful firewall), which no command on the router could remove.
            if len(words) == 3 and words[0] == "table" and not words[2].startswith(LAB_TABLES):
                nft(["delete", "table", words[1], words[2]])
        lab_path(STATE_FILE).unlink(missing_ok=True)
        return 0

    def restart(self) -> int:
        ruleset, _ = self.render(quiet=True)
        if nft(["-c", "-f", "-"], ruleset).returncode != 0:
            return self.die("The rendered ruleset contains errors, not doing firewall restart.")
        self.stop_quietly()
        return self.load()

    def stop_quietly(self) -> None:
        nft(["delete", "table", "inet", "fw4"])
        lab_path(STATE_FILE).unlink(missing_ok=True)

    def check(self) -> int:
        ruleset, _ = self.render()
        proc = nft(["-c", "-f", "-"], ruleset)
        if proc.returncode != 0:
            if not self.quiet:
                sys.stderr.write(proc.stderr)
            return 1
        if not self.quiet:
            print("Ruleset passes nftables check.")
        return 0

    def show(self) -> int:
        sys.stdout.write(self.render()[0])
        return 0


def nft(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("nft") or "/usr/sbin/nft"
    log("[#] nft " + " ".join(argv))
    return subprocess.run([binary, *argv], input=stdin, capture_output=True, text=True, check=False)


def _write_state(firewall: Firewall) -> None:
    zones = [{"name": z.name, "network": z.networks, "devices": z.devices} for z in firewall.zones]
    path = lab_path(STATE_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"zones": zones}) + "\n", encoding="utf-8")


def read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(lab_path(STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def zone_of_network(network: str) -> str | None:
    for zone in (read_state() or {}).get("zones", []):
        if network in zone.get("network", []):
            return str(zone["name"])
    return None


def _lookup(command: str, args: list[str], quiet: bool) -> int:
    state = read_state()
    if state is None:
        if not quiet:
            print(
                "Unable to read firewall state - do you need to start the firewall?",
                file=sys.stderr,
            )
        return 1
    zones: list[dict[str, Any]] = state.get("zones", [])
    wanted = args[0] if args else ""
    if command == "network":
        found = zone_of_network(wanted)
        return _answer([found] if found else [])
    if command == "device":
        return _answer([z["name"] for z in zones if wanted in z.get("devices", [])][:1])
    for zone in zones:
        if zone["name"] == wanted:
            devices: list[str] = zone.get("devices", [])
            if len(args) > 1:
                return _answer([args[1]] if args[1] in devices else [])
            for device in devices:
                print(device)
            return 0
    return 1


def _answer(lines: list[str]) -> int:
    for line in lines:
        print(line)
    return 0 if lines else 1


def run_fw4(argv: list[str]) -> int:
    args = list(argv)
    quiet = False
    while args and args[0] in ("-q", "-v"):
        quiet |= args.pop(0) == "-q"
    command = args[0] if args else ""
    fw4 = _Fw4(quiet)
    if command in ("network", "device", "zone"):
        return _lookup(command, args[1:], quiet)
    if command == "print":
        return fw4.show()
    if command == "check":
        return fw4.check()
    actions = {
        "start": fw4.start,
        "reload": fw4.reload,
        "stop": fw4.stop,
        "flush": fw4.flush,
        "restart": fw4.restart,
    }
    if command not in actions:
        print(USAGE)
        return 0
    ensure_router()
    with locked("fw4"):
        return actions[command]()


def hotplug(interface: str) -> None:
    """/etc/hotplug.d/iface/20-firewall: reload if enabled and the last ruleset zones it."""
    if not initd.enabled("firewall") or zone_of_network(interface) is None:
        return
    log(f"firewall: Reloading firewall due to ifup of {interface}")
    # hotplug runs in the background on a router: its output goes to the log, not to ifup's.
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(out):
        run_fw4(["-q", "reload"])
    if out.getvalue():
        log(out.getvalue().rstrip())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return guarded("fw4", lambda: run_fw4(args))


def initd_main(argv: list[str] | None = None) -> int:
    """/etc/init.d/firewall (START=19): procd's start/stop/reload map onto fw4."""
    actions = {
        "start": lambda: run_fw4(["start"]),
        "boot": lambda: run_fw4(["-q", "start"]),
        "stop": lambda: run_fw4(["flush"]),
        "restart": lambda: run_fw4(["restart"]),
        "reload": lambda: run_fw4(["reload"]),
    }
    args = sys.argv[1:] if argv is None else argv
    return guarded("firewall", lambda: initd.dispatch("firewall", args, actions))


if __name__ == "__main__":
    sys.exit(main())
