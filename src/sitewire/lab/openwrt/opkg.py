"""`opkg` (24.10) and `apk` (25.12) on a lab router: a tiny feed whose installs are recorded.

Installing `wireguard-tools` puts real files in place: the host's `wg` as /usr/bin/wg, and the
release's own /lib/netifd/proto/wireguard.sh and /usr/bin/wireguard_watchdog from openwrt/openwrt
(classic on 24.10, renew-capable on 25.12), which netifd picks up at its next start. opkg
knows nothing until `opkg update` has fetched the lists (they live in /var, so a reboot
forgets them); apk fetches its index by itself.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sitewire.fileio import write_atomic
from sitewire.lab.openwrt import userland
from sitewire.lab.openwrt.env import (
    Release,
    RouterError,
    ensure_router,
    guarded,
    lab_path,
    read_release,
)

OPKG_STATUS = "/usr/lib/opkg/status"
OPKG_LISTS = "/var/opkg-lists"  # what opkg says; kept where it really is on a router:
# /var is a link to /tmp there, and a lab router's /var is the machine's (only /var/run is its own)
OPKG_LISTS_STORED = "/tmp/opkg-lists"
APK_WORLD = "/etc/apk/world"
APK_INSTALLED = "/lib/apk/db/installed"
FEED_WG = "/usr/share/sitewire-lab/feed/wg"
HOST_WG = ("/proc/1/root/usr/bin/wg", "/usr/bin/wg")
HANDLER = "/lib/netifd/proto/wireguard.sh"
DOWNLOADS = "https://downloads.openwrt.org/releases"


@dataclass(frozen=True)
class FeedPackage:
    name: str
    versions: tuple[str, str]  # (opkg-era release, apk-era release)
    depends: tuple[str, ...] = ()
    files: Callable[[Release], None] | None = None

    def version(self, release: Release) -> str:
        return self.versions[1 if release.uses_apk else 0]


# What the wireguard-tools package puts on a router besides wg: OpenWrt's own files of the
# release (lab/upstream/openwrt/<release>, built into the userland tree), kept verbatim.
WIREGUARD_TOOLS = ("lib/netifd/proto/wireguard.sh", "usr/bin/wireguard_watchdog")


def _install_wireguard_tools(release: Release) -> None:
    write_atomic(lab_path("/usr/bin/wg"), host_wg(), 0o755)
    source = userland.upstream(release.series)
    for name in WIREGUARD_TOOLS:
        write_atomic(lab_path(f"/{name}"), (source / name).read_bytes(), 0o755)


def host_wg() -> bytes:
    """The host's wg, from wherever it can still be seen (see `_wg_sources`)."""
    for path in _wg_sources():
        try:
            return path.read_bytes()
        except OSError:
            continue
    raise RouterError(
        "cannot find the host's wg binary",
        where="wireguard-tools",
        fix="provision the router from the host, so it can keep a copy before wg is hidden",
    )


def _wg_sources() -> list[Path]:
    """pid 1's root (not readable on every machine), the copy provisioning kept, the root of an
    ancestor outside this mount namespace (the controller that started provisioning), and last
    /usr/bin/wg itself, which a factory router's overlay hides."""
    ancestors = [root / "usr/bin/wg" for root in _foreign_ancestor_roots()]
    return [Path(HOST_WG[0]), lab_path(FEED_WG), *ancestors, Path(HOST_WG[1])]


def _foreign_ancestor_roots() -> list[Path]:
    own = _mount_ns(os.getpid())
    roots = []
    pid = os.getppid()
    while pid > 1:
        if _mount_ns(pid) not in (own, None):
            roots.append(Path(f"/proc/{pid}/root"))
        pid = _parent(pid)
    return roots


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _parent(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


FEED = {
    p.name: p
    for p in (
        FeedPackage("kmod-wireguard", ("6.6.73-r1", "6.12.57-r1")),
        FeedPackage(
            "wireguard-tools",
            ("1.0.20210914-r4", "1.0.20250521-r1"),
            ("kmod-wireguard",),
            _install_wireguard_tools,
        ),
        FeedPackage(
            "luci-proto-wireguard",
            ("25.019.51014~3b7c2b1", "26.040.64338~d2d4e7c"),
            ("wireguard-tools",),
        ),
        FeedPackage("qrencode", ("4.1.1-r1", "4.1.1-r2")),
    )
}
# What `list-installed` shows on a factory router besides what gets installed later.
BASE = ("base-files", "busybox", "dropbear", "firewall4", "netifd", "nftables-json", "uci")


def _resolve(names: list[str], installed: dict[str, str]) -> tuple[list[FeedPackage], list[str]]:
    """Packages to install, dependencies first, and the names the feed does not know."""
    order: list[FeedPackage] = []
    unknown = [n for n in names if n not in FEED]

    def visit(name: str) -> None:
        package = FEED[name]
        for dep in package.depends:
            visit(dep)
        if name not in installed and package not in order:
            order.append(package)

    for name in names:
        if name in FEED:
            visit(name)
    return order, unknown


def _opkg_installed() -> dict[str, str]:
    return _installed(OPKG_STATUS, ": ", "Package", "Version")


def _installed(db: str, sep: str, name_key: str, version_key: str) -> dict[str, str]:
    """name -> version from a package database of blank-line separated `key<sep>value` blocks."""
    try:
        text = lab_path(db).read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for block in text.split("\n\n"):
        fields = dict(line.split(sep, 1) for line in block.splitlines() if sep in line)
        if name_key in fields:
            out[fields[name_key]] = fields.get(version_key, "")
    return out


def _opkg_record(name: str, version: str, depends: tuple[str, ...], user: bool) -> None:
    path = lab_path(OPKG_STATUS)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"Package: {name}", f"Version: {version}"]
    if depends:
        lines.append("Depends: " + ", ".join(depends))
    lines += [
        f"Status: install {'user' if user else 'ok'} installed",
        "Architecture: x86_64",
        f"Installed-Time: {int(time.time())}",
    ]
    with path.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n\n")


def seed_base(release: Release) -> None:
    """A factory router's package database: the base system, nothing for WireGuard."""
    if release.uses_apk:
        if not lab_path(APK_WORLD).exists():
            for name in BASE:
                _apk_record(name, release.version)
        return
    if not lab_path(OPKG_STATUS).exists():
        for name in BASE:
            _opkg_record(name, release.version, (), user=False)


def _opkg_install(release: Release, names: list[str]) -> int:
    if not lab_path(OPKG_LISTS_STORED).is_dir():
        # Without lists opkg knows no package at all.
        return _opkg_unknown(names)
    installed = _opkg_installed()
    for name in names:
        if name in installed and name in FEED:
            print(f"Package {name} ({installed[name]}) installed in root is up to date.")
    order, unknown = _resolve(names, installed)
    base = f"{DOWNLOADS}/{release.version}/packages/x86_64"
    for package in order:
        version = package.version(release)
        print(f"Installing {package.name} ({version}) to root...")
        print(f"Downloading {base}/base/{package.name}_{version}_x86_64.ipk")
    for package in order:
        if package.files is not None:
            package.files(release)
        _opkg_record(package.name, package.version(release), package.depends, package.name in names)
        print(f"Configuring {package.name}.")
    return _opkg_unknown(unknown) if unknown else 0


def _opkg_unknown(names: list[str]) -> int:
    for name in names:
        print(f"Unknown package '{name}'.")
    print("Collected errors:", file=sys.stderr)
    for name in names:
        print(f" * opkg_install_cmd: Cannot install package {name}.", file=sys.stderr)
    return 255


def opkg_main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    return guarded("opkg", lambda: _opkg(args))


def _opkg(args: list[str]) -> int:
    release = read_release()
    command, names = (args[0], args[1:]) if args else ("", [])
    if command == "update":
        folder = lab_path(OPKG_LISTS_STORED)
        folder.mkdir(parents=True, exist_ok=True)
        for feed in ("core", "base", "luci", "packages", "routing", "telephony"):
            print(f"Downloading {DOWNLOADS}/{release.version}/packages/x86_64/{feed}/Packages.gz")
            (folder / f"openwrt_{feed}").write_text("", encoding="utf-8")
            print(f"Updated list of available packages in {OPKG_LISTS}/openwrt_{feed}")
        return 0
    if command == "install" and names:
        ensure_router()
        return _opkg_install(release, names)
    if command == "list-installed":
        installed = _opkg_installed()
        for name in sorted(installed):
            if not names or fnmatch.fnmatch(name, names[0]):
                print(f"{name} - {installed[name]}")
        return 0
    print("usage: opkg [options...] sub-command [arguments...]", file=sys.stderr)
    return 1


def _apk_installed() -> dict[str, str]:
    return _installed(APK_INSTALLED, ":", "P", "V")


def _apk_record(name: str, version: str, world: bool = True) -> None:
    db = lab_path(APK_INSTALLED)
    db.parent.mkdir(parents=True, exist_ok=True)
    with db.open("a", encoding="utf-8") as out:
        out.write(f"P:{name}\nV:{version}\nA:x86_64\n\n")
    if world:
        path = lab_path(APK_WORLD)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = set(path.read_text(encoding="utf-8").split()) if path.exists() else set()
        path.write_text("".join(f"{n}\n" for n in sorted(names | {name})), encoding="utf-8")


def _apk_add(release: Release, names: list[str]) -> int:
    installed = _apk_installed()
    order, unknown = _resolve(names, installed)
    if unknown:
        print("ERROR: unable to select packages:", file=sys.stderr)
        for name in unknown:
            print(f"  {name} (no such package):", file=sys.stderr)
            print(f"    required by: world[{name}]", file=sys.stderr)
        return 1
    for index, package in enumerate(order, 1):
        print(f"({index}/{len(order)}) Installing {package.name} ({package.version(release)})")
        if package.files is not None:
            package.files(release)
        _apk_record(package.name, package.version(release), world=package.name in names)
    print(f"OK: {len(installed) + len(order)} packages installed")
    return 0


def apk_main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return guarded("apk", lambda: _apk(args))


def _apk(args: list[str]) -> int:
    release = read_release()
    flags = {a for a in args if a.startswith("-")}
    words = [a for a in args if not a.startswith("-")]
    command, names = (words[0], words[1:]) if words else ("", [])
    if command == "update":
        print(f" [{DOWNLOADS}/{release.version}/packages/x86_64/base/packages.adb]")
        print(f"OK: {len(FEED) + len(BASE)} distinct packages available")
        return 0
    if command == "add" and names:
        ensure_router()
        return _apk_add(release, names)
    if command == "list" and flags & {"--installed", "-I"}:
        installed = _apk_installed()
        for name in sorted(installed):
            if not names or fnmatch.fnmatch(name, names[0]):
                print(f"{name}-{installed[name]} x86_64 {{{name}}} (GPL-2.0-only) [installed]")
        return 0
    if command == "info" and "-e" in flags:
        found = [n for n in names if n in _apk_installed()]
        for name in found:
            print(name)
        return 0 if found and len(found) == len(names) else 1
    print("usage: apk [<OPTIONS>...] COMMAND [<ARGUMENTS>...]", file=sys.stderr)
    return 1


def stash_host_wg() -> None:
    """Keep the host's wg inside the router (the feed's payload) for a later install."""
    target = lab_path(FEED_WG)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    for path in _wg_sources():
        try:
            shutil.copyfile(path, target)
        except OSError:
            continue
        return
