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

Factory state: /etc/openwrt_release, /etc/config/{network,firewall,system} (firewall = the stock
file of the release, data/firewall.<series>, verbatim from openwrt/firewall4 @ 6443ec7 and
@ b6e5157, with extra LANs in the lan zone), empty /etc/crontabs, the OpenWrt commands as shims,
no wg or wg-quick, BusyBox as /bin/sh and root's shell. Then it boots: firewall, then network.
Config files already present are kept, so running it again changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sitewire.errors import SitewireError
from sitewire.fileio import write_atomic
from sitewire.lab.openwrt import fw4, initd, netifd_cli, opkg, shims
from sitewire.lab.openwrt.env import LAB_FILE, Release, ensure_router, lab_path
from sitewire.lab.openwrt.fw4_render import MGMT_DEVICE
from sitewire.render.uci import Package, Section, format_uci
from sitewire.render.uci_store import UciStore

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
RELEASES = {"24.10": "24.10.0", "25.12": "25.12.0"}
REVISION = "r0-sitewire-lab"
# As on OpenWrt, where /bin/sh -> busybox; busybox sits beside sh in /usr/bin here.
BUSYBOX = "busybox"
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv6/conf/all/forwarding": "1",
    "net/ipv6/conf/default/forwarding": "1",
}


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


def _static(name: str, device: str, addresses: tuple[IPInterface, ...]) -> Section:
    section = Section("interface", name, {"device": device, "proto": "static"})
    v4 = [a for a in addresses if a.version == 4]
    v6 = [a for a in addresses if a.version == 6]
    if len(v4) == 1:
        section.options["ipaddr"] = str(v4[0].ip)
        section.options["netmask"] = str(v4[0].netmask)
    elif v4:
        section.options["ipaddr"] = tuple(str(a) for a in v4)
    if v6:
        section.options["ip6addr"] = tuple(str(a) for a in v6) if len(v6) > 1 else str(v6[0])
    return section


def network_text(site: RouterSite) -> str:
    ula = hashlib.sha256(site.name.encode()).hexdigest()
    sections = [
        Section(
            "interface",
            "loopback",
            {"device": "lo", "proto": "static", "ipaddr": "127.0.0.1", "netmask": "255.0.0.0"},
        ),
        Section("globals", "globals", {"ula_prefix": f"fd{ula[:2]}:{ula[2:6]}:{ula[6:10]}::/48"}),
    ]
    for index, (device, addresses) in enumerate(site.lans):
        sections.append(_static("lan" if index == 0 else f"lan{index + 1}", device, addresses))
    if site.wan4 is not None:
        wan = _static("wan", site.wan_device, (site.wan4,))
        wan.options["gateway"] = site.gateway4
        sections.append(wan)
    if site.wan6 is not None:
        wan6 = _static("wan6", site.wan_device, (site.wan6,))
        wan6.options["ip6gw"] = site.gateway6
        sections.append(wan6)
    for index, target in enumerate(site.wan_routes):
        v6 = ipaddress.ip_network(target).version == 6
        options: dict[str, str | tuple[str, ...]] = {
            "interface": "wan6" if v6 else "wan",
            "target": target,
        }
        sections.append(Section("route6" if v6 else "route", f"lab_onlink{index}", options))
    return format_uci(Package("network", sections), header=False)


def firewall_text(site: RouterSite) -> str:
    stock = resources.files("sitewire.lab.openwrt").joinpath(
        "data", f"firewall.{site.release.series}"
    )
    text = stock.read_text(encoding="utf-8")
    extra = [f"lan{i + 1}" for i in range(1, len(site.lans))]
    if not extra:
        return text
    store = UciStore.from_texts({"firewall": text})
    for name in extra:
        store.run(["add_list", f"firewall.@zone[0].network={name}"])
    store.run(["commit", "firewall"])
    return store.committed_text("firewall")


def system_text(site: RouterSite) -> str:
    system = Section(
        "system",
        None,
        {"hostname": site.name, "timezone": "UTC", "ttylogin": "0", "log_size": "128"},
    )
    ntp = Section("timeserver", "ntp", {"enabled": "0", "enable_server": "0"})
    return format_uci(Package("system", [system, ntp]), header=False)


def _write_missing(path: str, text: str, mode: int = 0o644) -> None:
    target = lab_path(path)
    if not target.exists():
        write_atomic(target, text, mode)


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
    _write_missing("/etc/config/network", network_text(site))
    _write_missing("/etc/config/firewall", firewall_text(site))
    _write_missing("/etc/config/system", system_text(site))
    lab_path("/etc/crontabs").mkdir(parents=True, exist_ok=True)
    opkg.seed_base(site.release)
    lab = {"mgmt_device": site.mgmt_device, "python": site.python}
    _write_changed(LAB_FILE, json.dumps(lab, indent=1, sort_keys=True) + "\n")


def _tools(site: RouterSite) -> None:
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
    for name, value in SYSCTLS.items():
        Path("/proc/sys", name).write_text(value)
    for service in ("firewall", "network", "cron"):
        initd.enable(service)
    fw4.run_fw4(["-q", "start"])
    netifd_cli.network_initd_main(["boot"])


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
