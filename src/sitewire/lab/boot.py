"""A lab router's boot, run inside it once `lab reboot` has cut its power: what init does.

OpenWrt: procd's rcS runs every /etc/rc.d/S* with `boot`, one after another in name order
(S95done runs /etc/rc.local last); the router is up once netifd has brought its interfaces up.

Linux: systemd starts sysinit.target (sitewire's boot hook, then systemd-sysctl), then
multi-user.target. Of their wanted units a lab router starts the ones that belong to a router,
`BOOT_UNITS`, read from their own unit files: conditions, Environment, ExecStart with %i,
Type=oneshot waited for, the rest left running. The host's units (its sshd, its database) are
the host's: a lab router shares the host's /etc, so they are linked there too. The net.* keys of
/etc/sysctl.d and /etc/sysctl.conf are applied as systemd-sysctl would; kernel-wide keys belong
to the host. Without systemd, /etc/rcS.d then /etc/rc2.d S* scripts of `BOOT_UNITS` get `start`.

Run as `python -m sitewire.lab.boot openwrt|linux`; the log goes to /tmp/log/boot.log.
`python -m sitewire.lab.boot start SERVICE` starts one service the same way (`lab up` starts
a Linux router's cron daemon so).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sitewire.errors import SitewireError
from sitewire.lab.openwrt.provision import wait_until_up

LOG = Path("/tmp/log/boot.log")
STEP_TIMEOUT = 90.0
RC_D = Path("/etc/rc.d")
SYSTEMD = Path("/etc/systemd/system")
TARGETS = ("sysinit.target.wants", "multi-user.target.wants")
SYSV = (Path("/etc/rcS.d"), Path("/etc/rc2.d"))
BOOT_UNITS = re.compile(r"(sitewire-boot|wg-quick@[^/]+|tailscaled|cron)(\.service)?")
SYSCTL_FILES = ("/etc/sysctl.d", "/run/sysctl.d")
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def log(text: str) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a", encoding="utf-8") as out:
        out.write(f"{time.strftime('%H:%M:%S')} {text}\n")


def _run(argv: list[str], env: dict[str, str] | None = None) -> int:
    log(f"[#] {shlex.join(argv)}")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as out:
        try:
            return subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                timeout=STEP_TIMEOUT, check=False,
            ).returncode  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            log(f"{argv[0]}: {exc}")
            return 127


def _detach(argv: list[str], env: dict[str, str] | None = None) -> None:
    log(f"[#] {shlex.join(argv)} &")
    with LOG.open("ab") as out:
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
            start_new_session=True,
        )  # fmt: skip


def boot_openwrt() -> None:
    links = sorted(RC_D.glob("S*")) if RC_D.is_dir() else []
    for link in links:
        if os.access(link, os.X_OK):
            status = _run([str(link), "boot"])
            if status:
                log(f"{link.name} boot: exit {status}")
    if any(link.name[3:] == "network" for link in links):
        wait_until_up()


@dataclass
class Unit:
    """The parts of a systemd unit file a lab router's boot uses."""

    name: str
    conditions: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "simple"
    exec_start: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[str] = field(default_factory=list)


def parse_unit(name: str, text: str) -> Unit:
    unit = Unit(name)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        value = specifiers(value, name)
        if key.startswith("Condition"):
            unit.conditions.append((key, value))
        elif key == "Type":
            unit.kind = value
        elif key in ("ExecStartPre", "ExecStart", "ExecStartPost") and value:
            unit.exec_start.append(value)
        elif key == "Environment":
            unit.environment.update(_assignments(shlex.split(value)))
        elif key == "EnvironmentFile":
            unit.environment_files.append(value)
    return unit


def specifiers(value: str, name: str) -> str:
    """%i (the instance), %n (the unit's name) and %% of a unit file's line."""
    prefix = name.split("@", 1)[1].rsplit(".", 1)[0] if "@" in name else ""
    table = {"i": prefix, "I": prefix, "n": name, "%": "%"}
    return re.sub(r"%(.)", lambda m: table.get(m[1], m[0]), value)


def _assignments(words: list[str]) -> dict[str, str]:
    return dict(w.split("=", 1) for w in words if "=" in w)


def condition_holds(key: str, value: str) -> bool:
    negate = value.startswith("!")
    path = Path(value.lstrip("!"))
    if key == "ConditionPathExists":
        held = path.exists()
    elif key == "ConditionDirectoryNotEmpty":
        held = path.is_dir() and any(path.iterdir())
    else:
        return True  # a condition a lab router does not model does not stop the unit
    return held != negate


def command_words(line: str, env: dict[str, str]) -> tuple[list[str], bool]:
    """An Exec line as argv with $VAR and ${VAR} expanded, and whether its failure is ignored."""
    ignore = False
    while line[:1] in ("-", "@", ":", "+", "!"):
        ignore |= line[0] == "-"
        line = line[1:]
    words: list[str] = []
    for word in shlex.split(line):
        whole = re.fullmatch(r"\$(\w+)", word)
        if whole:
            words += env.get(whole[1], "").split()
        else:
            words.append(_VAR.sub(lambda m: env.get(m[1] or m[2], ""), word))
    return words, ignore


def _unit_env(unit: Unit) -> dict[str, str]:
    env = dict(os.environ)
    for spec in unit.environment_files:
        path = Path(spec.lstrip("-"))
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        env.update(_assignments([ln.strip() for ln in lines if not ln.lstrip().startswith("#")]))
    env.update(unit.environment)
    return env


def start_unit(unit: Unit) -> None:
    failed = [c for c in unit.conditions if not condition_holds(*c)]
    if failed:
        log(f"{unit.name}: skipped, {failed[0][0]}={failed[0][1]} does not hold")
        return
    env = _unit_env(unit)
    lines = unit.exec_start
    for number, line in enumerate(lines):
        argv, ignore = command_words(line, env)
        if not argv:
            continue
        daemon = unit.kind not in ("oneshot", "forking") and number == len(lines) - 1
        if daemon:
            _detach(argv, env)
            return
        status = _run(argv, env)
        if status and not ignore:
            log(f"{unit.name}: failed (exit {status})")
            return
    log(f"{unit.name}: started")


def wanted(target: str) -> list[Path]:
    folder = SYSTEMD / target
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if BOOT_UNITS.fullmatch(p.name))


def apply_sysctls() -> None:
    """systemd-sysctl's files in its order (by file name, /etc first), net.* keys only."""
    files: dict[str, Path] = {}
    for folder in reversed(SYSCTL_FILES):
        if Path(folder).is_dir():
            files.update({p.name: p for p in Path(folder).glob("*.conf")})
    ordered = [files[name] for name in sorted(files)]
    if Path("/etc/sysctl.conf").is_file():
        ordered.append(Path("/etc/sysctl.conf"))
    for path in ordered:
        for key, value in sysctl_lines(path.read_text(encoding="utf-8", errors="replace")):
            target = Path("/proc/sys", key.replace(".", "/"))
            try:
                target.write_text(value + "\n")
                log(f"sysctl {key}={value} ({path})")
            except OSError as exc:
                log(f"sysctl {key}: {exc.strerror} ({path})")


def sysctl_lines(text: str) -> list[tuple[str, str]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        key = key.lstrip("-")
        if key.startswith("net.") and "*" not in key:
            out.append((key, value))
    return out


def boot_linux() -> None:
    if not SYSTEMD.is_dir():
        for folder in SYSV:
            links = sorted(folder.glob("S*")) if folder.is_dir() else []
            for link in links:
                if BOOT_UNITS.fullmatch(link.name[3:]):
                    _run([str(link), "start"])
        return
    for index, target in enumerate(TARGETS):
        for link in wanted(target):
            try:
                start_unit(parse_unit(link.name, link.read_text(encoding="utf-8")))
            except OSError as exc:
                log(f"{link.name}: cannot read its unit file: {exc.strerror}")
        if index == 0:
            apply_sysctls()


UNIT_DIRS = (SYSTEMD, Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))


def start_service(name: str) -> bool:
    """`systemctl start NAME` (its unit file read as at boot), or where there is no unit file,
    `/etc/init.d/NAME start`; False when the machine has neither."""
    unit = next(
        (d / f"{name}.service" for d in UNIT_DIRS if (d / f"{name}.service").is_file()), None
    )
    if unit is not None:
        start_unit(parse_unit(unit.name, unit.read_text(encoding="utf-8")))
        return True
    script = Path("/etc/init.d", name)
    if os.access(script, os.X_OK):
        return _run([str(script), "start"]) == 0
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "start":
        return 0 if start_service(args[1]) else 1
    if args not in (["openwrt"], ["linux"]):
        print("usage: python -m sitewire.lab.boot openwrt|linux|start SERVICE", file=sys.stderr)
        return 2
    log(f"boot ({args[0]})")
    try:
        boot_openwrt() if args[0] == "openwrt" else boot_linux()
    except SitewireError as err:
        print(f"sitewire: {err}", file=sys.stderr)
        return 1
    log("boot done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
