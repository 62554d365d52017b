"""Turn a fresh lab router into a factory-state OpenWrt router of a given release, then boot it.

Run inside the router (its mount and network namespaces) as `provision_command(site)` returns.
The site is JSON, in either of two shapes (the lab layout's router record, or sitewire.lab's):

    {"site": "A", "release": "24.10",
     "wan": {"device": "wan", "ipaddr": "198.18.0.10/24", "ip6addr": "fd53:5357:0:1::10/64",
             "gateway": "198.18.0.1", "gateway6": "fd53:5357:0:1::1"},
     "lans": [{"device": "br-lan", "ipaddr": ["192.168.3.1/24"], "ip6addr": []}],
     "mgmt_device": "mgmt", "python": "/path/to/venv/bin/python"}

    {"site": "A", "release": "24.10", "wan4": "198.18.0.10/24", "wan6": "fd53:5357:0:1::10/64",
     "lans": [{"device": "br-lan", "router": ["192.168.3.1/24"]}]}   # gateways: .1 / ::1

Factory state: /etc/openwrt_release, /etc/config/{network,firewall,system} made by the router's
own uci (firewall = the stock file of the release, data/firewall.<series>, verbatim from
openwrt/firewall4 @ 6443ec7 and @ b6e5157, with extra LANs in the lan zone), empty
/etc/crontabs, OpenWrt's shell files and the lab layer (docs/lab.md), no wg or wg-quick,
BusyBox as /bin/sh and root's shell. Then it boots: firewall, then network, until every
interface is up and fw4 has loaded their devices. Config files already present are kept, so
running it again changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sitewire.errors import SitewireError
from sitewire.fileio import write_atomic
from sitewire.lab.openwrt import initd, opkg, shims, userland
from sitewire.lab.openwrt.env import LAB_FILE, Release, RouterError, ensure_router, lab_path, run

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
RELEASES = {"24.10": "24.10.0", "25.12": "25.12.0"}
MGMT_DEVICE = "mgmt"
REVISION = "r0-sitewire-lab"
# As on OpenWrt, where /bin/sh -> busybox; busybox sits beside sh in /usr/bin here.
BUSYBOX = "busybox"
# OpenWrt turns forwarding on at boot from base-files' /etc/sysctl.d/10-default.conf (its
# /etc/init.d/sysctl, S11); these are the lines of it a lab router needs.
SYSCTL_DEFAULTS = (
    "/etc/sysctl.d/10-default.conf",
    "net.ipv4.ip_forward=1\nnet.ipv6.conf.default.forwarding=1\nnet.ipv6.conf.all.forwarding=1\n",
)
# base-files' /etc/rc.local, which S95done runs last at boot.
RC_LOCAL = (
    "# Put your custom commands here that should be executed once\n"
    "# the system init finished. By default this file does nothing.\n\nexit 0\n"
)


@dataclass(frozen=True)
class RouterSite:
    name: str
    release: Release
    wan_device: str
    wan4: ipaddress.IPv4Interface | None
    gateway4: str
    wan6: ipaddress.IPv6Interface | None
    gateway6: str
    lans: tuple[tuple[str, tuple[IPInterface, ...]], ...]
    wan_routes: tuple[str, ...] = ()  # on-link prefixes beyond the WAN subnet
    mgmt_device: str = MGMT_DEVICE
    python: str = sys.executable


def parse_site(data: dict[str, Any]) -> RouterSite:
    release = str(data.get("release") or data.get("openwrt_release") or "24.10")
    wan: dict[str, Any] = data.get("wan") or {}
    text4 = wan.get("ipaddr") or data.get("wan4")
    text6 = wan.get("ip6addr") or data.get("wan6")
    wan4 = ipaddress.IPv4Interface(text4) if text4 else None
    wan6 = ipaddress.IPv6Interface(text6) if text6 else None
    lans = tuple(
        (str(lan["device"]), tuple(ipaddress.ip_interface(a) for a in _lan_addresses(lan)))
        for lan in data.get("lans", [])
    )
    return RouterSite(
        name=str(data.get("site") or data.get("name") or "OpenWrt"),
        release=Release(RELEASES.get(release, release)),
        wan_device=str(wan.get("device") or "wan"),
        wan4=wan4,
        gateway4=str(wan.get("gateway") or (wan4.network[1] if wan4 else "")),
        wan6=wan6,
        gateway6=str(wan.get("gateway6") or (wan6.network[1] if wan6 else "")),
        lans=lans,
        wan_routes=tuple(str(ipaddress.ip_network(r)) for r in wan.get("routes", [])),
        mgmt_device=str(data.get("mgmt_device") or MGMT_DEVICE),
        python=str(data.get("python") or sys.executable),
    )


def _lan_addresses(lan: dict[str, Any]) -> list[str]:
    if "router" in lan:
        return list(lan["router"])
    return [*lan.get("ipaddr", []), *lan.get("ip6addr", [])]


def provision_command(site_json: dict[str, Any]) -> list[str]:
    """The argv to run inside the router."""
    return [sys.executable, "-m", "sitewire.lab.openwrt.provision", json.dumps(site_json)]


def release_text(release: Release) -> str:
    version = release.version
    return (
        "DISTRIB_ID='OpenWrt'\n"
        f"DISTRIB_RELEASE='{version}'\n"
        f"DISTRIB_REVISION='{REVISION}'\n"
        "DISTRIB_TARGET='x86/64'\n"
        "DISTRIB_ARCH='x86_64'\n"
        f"DISTRIB_DESCRIPTION='OpenWrt {version} {REVISION}'\n"
        "DISTRIB_TAINTS=''\n"
    )


def os_release_text(release: Release) -> str:
    version = release.version
    return (
        'NAME="OpenWrt"\n'
        f'VERSION="{version}"\n'
        'ID="openwrt"\n'
        'ID_LIKE="lede openwrt"\n'
        f'PRETTY_NAME="OpenWrt {version}"\n'
        f'VERSION_ID="{version}"\n'
        f'BUILD_ID="{REVISION}"\n'
        'OPENWRT_BOARD="x86/64"\n'
        'OPENWRT_ARCH="x86_64"\n'
    )


def _uci_value(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _static(name: str, device: str, addresses: tuple[IPInterface, ...]) -> list[str]:
    lines = [
        f"set network.{name}=interface",
        f"set network.{name}.device={_uci_value(device)}",
        f"set network.{name}.proto='static'",
    ]
    v4 = [a for a in addresses if a.version == 4]
    v6 = [a for a in addresses if a.version == 6]
    if len(v4) == 1:
        lines.append(f"set network.{name}.ipaddr={_uci_value(str(v4[0].ip))}")
        lines.append(f"set network.{name}.netmask={_uci_value(str(v4[0].netmask))}")
    else:
        lines += [f"add_list network.{name}.ipaddr={_uci_value(str(a))}" for a in v4]
    if len(v6) == 1:
        lines.append(f"set network.{name}.ip6addr={_uci_value(str(v6[0]))}")
    else:
        lines += [f"add_list network.{name}.ip6addr={_uci_value(str(a))}" for a in v6]
    return lines


def network_batch(site: RouterSite) -> str:
    """The factory /etc/config/network as `uci batch` input, for the router's own uci."""
    ula = hashlib.sha256(site.name.encode()).hexdigest()
    lines = [
        "set network.loopback=interface",
        "set network.loopback.device='lo'",
        "set network.loopback.proto='static'",
        "set network.loopback.ipaddr='127.0.0.1'",
        "set network.loopback.netmask='255.0.0.0'",
        "set network.globals=globals",
        f"set network.globals.ula_prefix='fd{ula[:2]}:{ula[2:6]}:{ula[6:10]}::/48'",
    ]
    for index, (device, addresses) in enumerate(site.lans):
        lines += _static("lan" if index == 0 else f"lan{index + 1}", device, addresses)
    if site.wan4 is not None:
        lines += _static("wan", site.wan_device, (site.wan4,))
        lines.append(f"set network.wan.gateway={_uci_value(site.gateway4)}")
    if site.wan6 is not None:
        lines += _static("wan6", site.wan_device, (site.wan6,))
        lines.append(f"set network.wan6.ip6gw={_uci_value(site.gateway6)}")
    for index, target in enumerate(site.wan_routes):
        v6 = ipaddress.ip_network(target).version == 6
        name = f"lab_onlink{index}"
        lines.append(f"set network.{name}={'route6' if v6 else 'route'}")
        lines.append(f"set network.{name}.interface='{'wan6' if v6 else 'wan'}'")
        lines.append(f"set network.{name}.target={_uci_value(target)}")
    return "\n".join([*lines, "commit network", ""])


def firewall_batch(site: RouterSite) -> str:
    """Extra LANs join the stock lan zone, as a person would add them."""
    extra = [f"lan{i + 1}" for i in range(1, len(site.lans))]
    lines = [f"add_list firewall.@zone[0].network='{name}'" for name in extra]
    return "\n".join([*lines, "commit firewall", ""]) if lines else ""


def system_batch(site: RouterSite) -> str:
    return "\n".join(
        [
            "add system system",
            f"set system.@system[-1].hostname={_uci_value(site.name)}",
            "set system.@system[-1].timezone='UTC'",
            "set system.@system[-1].ttylogin='0'",
            "set system.@system[-1].log_size='128'",
            "set system.ntp=timeserver",
            "set system.ntp.enabled='0'",
            "set system.ntp.enable_server='0'",
            "commit system",
            "",
        ]
    )


def stock_firewall(release: Release) -> str:
    stock = resources.files("sitewire.lab.openwrt").joinpath("data", f"firewall.{release.series}")
    return stock.read_text(encoding="utf-8")


def _made_by_uci(name: str, start: str, batch: str) -> str:
    """/etc/config/NAME as the router's own uci leaves it after BATCH, made in a directory of
    its own first: `uci batch` commits the lines that worked even when one fails, and a file
    left half-made would be kept by the next run."""
    with tempfile.TemporaryDirectory(prefix="lab-factory.") as folder:
        config = Path(folder) / name
        config.write_text(start, encoding="utf-8")
        if batch:
            argv = ["uci", "-c", folder, "-t", str(Path(folder) / ".save"), "batch"]
            proc = run(argv, stdin=batch)
            if proc.stderr.strip():
                raise RouterError(f"uci batch ({name}): {proc.stderr.strip()}", where="provision")
        return config.read_text(encoding="utf-8")


def _write_changed(path: str, text: str) -> None:
    target = lab_path(path)
    if target.is_symlink() or not target.exists() or target.read_text(encoding="utf-8") != text:
        if target.is_symlink():
            target.unlink()
        write_atomic(target, text, 0o644)


def _symlink(path: str, target: str) -> None:
    link = lab_path(path)
    if link.is_symlink() and os.readlink(link) == target:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.lab-tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _root_shell() -> None:
    source = lab_path("/etc/passwd")
    text = (source if source.exists() else Path("/etc/passwd")).read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == "root" and len(fields) == 7:
            fields[6] = "/bin/sh"
        lines.append(":".join(fields))
    _write_changed("/etc/passwd", "\n".join(lines) + "\n")


def _factory_files(site: RouterSite) -> None:
    _write_changed("/etc/openwrt_release", release_text(site.release))
    _write_changed("/etc/os-release", os_release_text(site.release))
    configs = (
        ("network", "", network_batch(site)),
        ("system", "", system_batch(site)),
        ("firewall", stock_firewall(site.release), firewall_batch(site)),
    )
    for name, start, batch in configs:
        if not lab_path(f"/etc/config/{name}").exists():
            write_atomic(lab_path(f"/etc/config/{name}"), _made_by_uci(name, start, batch), 0o644)
    lab_path("/etc/crontabs").mkdir(parents=True, exist_ok=True)
    for path, text in (SYSCTL_DEFAULTS, ("/etc/rc.local", RC_LOCAL)):
        if not lab_path(path).exists():
            lab_path(path).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(lab_path(path), text, 0o644)
    opkg.seed_base(site.release)
    lab = {"mgmt_device": site.mgmt_device, "python": site.python}
    _write_changed(LAB_FILE, json.dumps(lab, indent=1, sort_keys=True) + "\n")


# The lab layer's own files (sitewire.lab.openwrt/layer) and where a router has them.
LAYER = {
    "rc.common": "/etc/rc.common",
    "init.d/network": "/etc/init.d/network",
    "init.d/firewall": "/etc/init.d/firewall",
    "init.d/done": "/etc/init.d/done",
    "sbin/hotplug-call": "/sbin/hotplug-call",
    "sbin/ip": "/usr/sbin/ip",
    "logger": "/usr/bin/logger",
}
# fw4's automatic includes: the management link is accepted first in input and output.
MGMT_INCLUDES = (
    "/usr/share/nftables.d/chain-pre/input/10-sitewire-lab.nft",
    "/usr/share/nftables.d/chain-pre/output/10-sitewire-lab.nft",
)
# firewall4's own /etc files, as its package installs them.
FIREWALL4_ETC = ("hotplug.d/iface/20-firewall", "nftables.d/10-custom-filter-chains.nft")
# Shell files of OpenWrt's base system (openwrt/openwrt, see lab/upstream/openwrt/PROVENANCE.md).
BASE_FILES = ("lib/functions.sh", "lib/config/uci.sh", "sbin/ifup")


def _copy(source: Path, path: str, mode: int) -> None:
    target = lab_path(path)
    data = source.read_bytes()
    if target.is_symlink():
        target.unlink()
    if not target.exists() or target.read_bytes() != data:
        write_atomic(target, data, mode)
    target.chmod(mode)


def _layer_file(name: str) -> Path:
    return Path(str(resources.files("sitewire.lab.openwrt").joinpath("layer", name)))


def _tools(site: RouterSite) -> None:
    series = site.release.series
    for name, path in LAYER.items():
        _copy(_layer_file(name), path, 0o755)
    lab_nft = _layer_file("lab.nft").read_text(encoding="utf-8")
    for index, path in enumerate(MGMT_INCLUDES):
        text = lab_nft if index == 0 else lab_nft.replace('iifname "mgmt"', 'oifname "mgmt"')
        _write_changed(path, text.replace('"mgmt"', f'"{site.mgmt_device}"'))
    for name in FIREWALL4_ETC:
        _copy(userland.stock_etc(series) / name, f"/etc/{name}", 0o755)
    for name in BASE_FILES:
        _copy(userland.upstream(series) / name, f"/{name}", 0o755)
    _symlink("/sbin/ifdown", "ifup")
    _symlink("/sbin/logread", "/usr/bin/logger")
    manager, other = (shims.APK, shims.OPKG) if site.release.uses_apk else (shims.OPKG, shims.APK)
    shims.install_shims({**shims.BASE, **manager}, site.python)
    for path in other:
        lab_path(path).unlink(missing_ok=True)
    opkg.stash_host_wg()
    for path in ("/usr/bin/wg", "/usr/bin/wg-quick"):
        if not _installed_by_package(path):
            lab_path(path).unlink(missing_ok=True)
    for path in ("/usr/bin/sh", "/bin/sh"):
        _symlink(path, BUSYBOX)
    _root_shell()


def _installed_by_package(path: str) -> bool:
    """A re-run must not undo `opkg install wireguard-tools`."""
    return path == "/usr/bin/wg" and lab_path(opkg.HANDLER).exists()


def _boot() -> None:
    """What a router's first boot does for these services: S11sysctl, S19firewall, S20network
    (`lab reboot` runs every S* link, as procd's rcS does)."""
    for service in ("firewall", "network", "done"):
        run([f"/etc/init.d/{service}", "enable"])
    for service in ("sysctl", "cron"):
        initd.enable(service)
    run(["/etc/init.d/sysctl", "boot"])
    if not lab_path("/var/run/fw4.state").exists():  # provisioning again: fw4 is loaded
        run(["/etc/init.d/firewall", "boot"])
    run(["/etc/init.d/network", "boot"])
    wait_until_up()


def wait_until_up(timeout: float = 20.0) -> None:
    """netifd brings the interfaces up after it started, and each ifup's hotplug reloads fw4;
    the router is ready once every interface is up and each of those hotplugs has run."""
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        dump = run(["ubus", "call", "network.interface", "dump"], check=False).stdout
        try:
            interfaces = json.loads(dump).get("interface", [])
        except ValueError:
            interfaces = []
        handled = set(_read(lab_path("/tmp/log/hotplug.log")).splitlines())
        pending = [
            str(i.get("interface", "?"))
            for i in interfaces
            if not i.get("up") or f"iface ifup {i.get('interface')}" not in handled
        ]
        if interfaces and not pending:
            return
        time.sleep(0.1)
    raise RouterError(
        f"interfaces not up {timeout:g}s after netifd started: {', '.join(pending) or 'none'}",
        where="provision",
        fix="look at /tmp/log/netifd.log in the router",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def provision(site: RouterSite) -> None:
    ensure_router()
    _factory_files(site)
    _tools(site)
    _boot()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sitewire.lab.openwrt.provision SITE_JSON|-", file=sys.stderr)
        return 2
    try:
        data = json.loads(sys.stdin.read() if args[0] == "-" else args[0])
        provision(parse_site(data))
    except SitewireError as err:
        print(f"sitewire: {err}", file=sys.stderr)
        return 1
    except (ValueError, KeyError) as err:
        print(f"sitewire: provision: invalid site JSON: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
