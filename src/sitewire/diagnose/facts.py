"""What one live router is and runs, as DeviceFacts read from the collector's sections.

Pure: the sections come from diagnose.collect (one SSH round trip); nothing here reaches a
device, and nothing here keeps a private or preshared key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from sitewire.diagnose.parse import (
    HIDDEN,
    Handler,
    HeldAddress,
    InstalledPackages,
    IpRule,
    Link,
    Neighbour,
    NetifdInterface,
    OpenWrtRelease,
    OsRelease,
    RcLocal,
    Route,
    ScriptSection,
    TailscalePrefs,
    UnexpectedOutput,
    Watchdog,
    WgDump,
    default_route,
    lookup52_priority,
    parse_addresses,
    parse_apk_installed,
    parse_handler,
    parse_ip_links,
    parse_ip_rules,
    parse_neighbours,
    parse_netifd_dump,
    parse_number,
    parse_openwrt_release,
    parse_opkg_installed,
    parse_os_release,
    parse_rc_local_probe,
    parse_routes,
    parse_tailscale_prefs,
    parse_watchdog_probe,
    parse_wg_dump,
)
from sitewire.diagnose.script import COMMANDS
from sitewire.diagnose.summary import format_facts
from sitewire.driver import driver_for
from sitewire.errors import SitewireError, UciError
from sitewire.spec.model import Platform
from sitewire.uci import Package, parse_uci

T = TypeVar("T")

SECRET_OPTIONS = ("private_key", "preshared_key")


class FactsError(SitewireError):
    """A router answered in a way sitewire cannot work with (missing command, odd output)."""


class PackageManager(StrEnum):
    APK = "apk"
    OPKG = "opkg"
    APT = "apt-get"
    DNF = "dnf"
    YUM = "yum"
    PACMAN = "pacman"
    ZYPPER = "zypper"


@dataclass(frozen=True, slots=True)
class TailscaleFacts:
    installed: bool
    prefs: TailscalePrefs | None = None
    error: str | None = None  # why prefs are missing although tailscale is installed


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What one router is and runs. Holds no private or preshared key, and no raw output."""

    site: str
    platform: Platform
    clock: int | None  # the router's UNIX time, for handshake ages
    openwrt: OpenWrtRelease | None
    os_release: OsRelease | None
    package_manager: PackageManager | None
    packages: InstalledPackages  # OpenWrt only; empty on Linux
    commands: frozenset[str]
    handler: Handler | None  # None off OpenWrt
    network: Package | None  # `uci export network`, keys replaced by HIDDEN
    firewall: Package | None
    pending_changes: tuple[str, ...]  # `uci changes`, keys replaced by HIDDEN
    wg: WgDump
    rules4: tuple[IpRule, ...]
    rules6: tuple[IpRule, ...]
    routes: tuple[Route, ...]  # main table, both families
    table52: tuple[Route, ...]
    links: tuple[Link, ...]
    tailscale: TailscaleFacts
    rc_local: RcLocal
    wg_quick_configs: tuple[str, ...]  # /etc/wireguard/<name>.conf on Linux
    # OpenWrt: cron and wireguard_watchdog (None off OpenWrt, or collected by an older sitewire)
    watchdog: Watchdog | None = None
    # KiB available by directory (/etc, /tmp); empty where df did not answer
    free_kib: Mapping[str, int] = field(default_factory=dict)
    # Linux: the cron daemons running (empty: none; None: not asked, or an older sitewire)
    cron: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    # OpenWrt: what netifd runs, by interface (None off OpenWrt, or where ubus did not answer)
    netifd: Mapping[str, NetifdInterface] | None = None
    # `ip neigh`: hosts lately heard from (doctor pings one in a LAN across the tunnel)
    neighbours: tuple[Neighbour, ...] = ()
    # `ip -o addr show`: every address held, by device (empty where an older sitewire read it)
    addresses: tuple[HeldAddress, ...] = ()

    @property
    def wireguard_tools(self) -> bool:
        return driver_for(self.platform).wireguard_tools(self)

    @property
    def lookup52(self) -> int | None:
        return lookup52_priority(self.rules4)

    @property
    def lookup52_v6(self) -> int | None:
        return lookup52_priority(self.rules6)

    @property
    def wan_device(self) -> str | None:
        for version in (4, 6):
            route = default_route([r for r in self.routes if r.dest.version == version])
            if route is not None:
                return route.dev
        return None

    @property
    def wan_mtu(self) -> int | None:
        link = next((x for x in self.links if x.name == self.wan_device), None)
        return link.mtu if link is not None else None

    @property
    def uci_wireguard_interfaces(self) -> tuple[str, ...]:
        if self.network is None:
            return ()
        return tuple(
            s.name
            for s in self.network.sections_of_type("interface")
            if s.name is not None and s.options.get("proto") == "wireguard"
        )

    @property
    def wireguard_interfaces(self) -> tuple[str, ...]:
        """Live (wg dump), configured in UCI, or as wg-quick configs: every name in use."""
        names = (*self.wg.names, *self.uci_wireguard_interfaces, *self.wg_quick_configs)
        return tuple(sorted(set(names)))

    @property
    def warnings(self) -> tuple[str, ...]:
        out = list(self.notes)
        if self.pending_changes:
            out.append(
                f"uci holds {len(self.pending_changes)} uncommitted change(s) (see `uci changes`): "
                "commit or revert them before apply"
            )
        if self.rc_local.runs_tailscale_up:
            lines = ", ".join(str(n) for n in self.rc_local.tailscale_up_lines)
            flag = " --accept-routes" if self.rc_local.accept_routes_lines else ""
            out.append(
                f"/etc/rc.local runs `tailscale up{flag}` (line {lines}): it re-applies its "
                "flags at every boot; use `tailscale set` once instead"
            )
        prefs = self.tailscale.prefs
        if prefs is not None and prefs.route_all:
            where = f" (lookup 52 at {self.lookup52})" if self.lookup52 is not None else ""
            out.append(
                f"Tailscale accepts subnet routes{where}: they win over WireGuard routes "
                "in the main table"
            )
        if self.tailscale.installed and prefs is None:
            out.append(
                f"tailscale is installed but its prefs are unreadable: {self.tailscale.error}"
            )
        return tuple(out)

    def summary(self) -> str:
        return format_facts(self)


def facts_from_sections(
    site: str, platform: Platform, sections: Mapping[str, ScriptSection]
) -> DeviceFacts:
    """Pure: the collector's section outputs as DeviceFacts, or a FactsError naming the fix."""
    reader = _Reader(site, sections)
    openwrt = _read_openwrt(reader, platform)
    os_release = reader.optional("os_release", parse_os_release)
    listed = reader.text("commands").split("\n")
    commands = frozenset(line.split()[0] for line in listed if line.strip())
    manager = next((m for m in PackageManager if m.value in commands), None)
    reads = driver_for(platform).reads_facts
    wg = reader.parse("wg", parse_wg_dump) if "wg" in commands else WgDump(())
    if wg.secrets_sent:
        reader.notes.append("the router sent a WireGuard key in clear; sitewire dropped it")
    return DeviceFacts(
        site=site,
        platform=platform,
        clock=reader.optional("clock", _clock),
        openwrt=openwrt,
        os_release=os_release,
        package_manager=manager,
        packages=(
            _read_packages(reader, manager)
            if "packages" in reads and "packages" in reader.sections
            else InstalledPackages()
        ),
        commands=commands,
        handler=parse_handler(reader.text("handler")) if "handler" in reads else None,
        network=_read_uci(reader, "network") if "uci_network" in reads else None,
        firewall=_read_uci(reader, "firewall") if "uci_firewall" in reads else None,
        pending_changes=_read_changes(reader) if "uci_changes" in reads else (),
        wg=wg,
        rules4=tuple(reader.parse("rules4", parse_ip_rules)),
        rules6=tuple(reader.optional("rules6", parse_ip_rules) or ()),
        routes=(
            *reader.parse("routes4", lambda t: parse_routes(t, 4)),
            *(reader.optional("routes6", lambda t: parse_routes(t, 6)) or ()),
        ),
        table52=(
            *(reader.optional("table52_4", lambda t: parse_routes(t, 4)) or ()),
            *(reader.optional("table52_6", lambda t: parse_routes(t, 6)) or ()),
        ),
        links=tuple(reader.parse("links", parse_ip_links)),
        tailscale=_read_tailscale(reader, "tailscale" in commands),
        rc_local=reader.parse("rc_local", parse_rc_local_probe),
        wg_quick_configs=tuple(reader.text("wg_quick").split()),
        notes=tuple(reader.notes),
        netifd=_read_netifd(reader) if "netifd" in reads else None,
        neighbours=_if_read(reader, "neigh", parse_neighbours),
        addresses=_if_read(reader, "addrs", parse_addresses),
        free_kib=_free_kib(reader.sections.get("space")),
        cron=_cron(reader.sections.get("cron")) if "cron" in reads else None,
        watchdog=(
            reader.optional("watchdog", parse_watchdog_probe)
            if "watchdog" in reads and "watchdog" in reader.sections
            else None
        ),
    )


def _if_read(reader: _Reader, name: str, parse: Callable[[str], list[T]]) -> tuple[T, ...]:
    """A section an older sitewire did not read: empty where it is not there."""
    return tuple((reader.optional(name, parse) or ()) if name in reader.sections else ())


def _cron(section: ScriptSection | None) -> tuple[str, ...] | None:
    if section is None or not section.ok:
        return None
    return tuple(sorted(set(section.stdout.split())))


def _free_kib(section: ScriptSection | None) -> dict[str, int]:
    """`<dir> <KiB available>` lines; a line df could not give is left out (nothing known)."""
    out: dict[str, int] = {}
    for line in section.stdout.splitlines() if section is not None else ():
        words = line.split()
        if len(words) == 2 and words[1].isdigit():
            out[words[0]] = int(words[1])
    return out


def _read_netifd(reader: _Reader) -> Mapping[str, NetifdInterface] | None:
    """Optional: facts collected by an older sitewire have no such section."""
    section = reader.sections.get("netifd")
    if section is None or not section.ok:
        return None
    return reader.optional("netifd", parse_netifd_dump)


class _Reader:
    def __init__(self, site: str, sections: Mapping[str, ScriptSection]) -> None:
        self.site = site
        self.sections = sections
        self.notes: list[str] = []

    def get(self, name: str) -> ScriptSection:
        section = self.sections.get(name)
        if section is None:
            raise FactsError(f"no {name!r} section in the collected facts", where=self.site)
        return section

    def text(self, name: str) -> str:
        return self.get(name).stdout

    def parse(self, name: str, parser: Callable[[str], T]) -> T:
        """A section that must work: failures name the command and the fix."""
        section = self.get(name)
        command = COMMANDS.get(name, name)
        if section.rc == 127:
            raise FactsError(
                f"`{command}` cannot run: {section.error}",
                where=self.site,
                fix="install the missing command on the router",
            )
        if not section.ok:
            raise FactsError(
                f"`{command}` failed: {section.error}",
                where=self.site,
                fix=f"run `{command}` on the router to see why",
            )
        return self._parse(name, section.stdout, parser)

    def optional(self, name: str, parser: Callable[[str], T]) -> T | None:
        section = self.get(name)
        return self._parse(name, section.stdout, parser) if section.ok else None

    def _parse(self, name: str, text: str, parser: Callable[[str], T]) -> T:
        command = COMMANDS.get(name, name)
        try:
            return parser(text)
        except (UnexpectedOutput, UciError) as exc:
            raise FactsError(
                f"`{command}` printed something sitewire does not understand: {exc}",
                where=self.site,
                fix=f"run `{command}` on the router; if it looks normal, report it to sitewire",
            ) from None


def _clock(text: str) -> int | None:
    """`date +%s`; anything else is no clock, and ages are then counted on the controller's."""
    return parse_number(text.strip())


def _read_openwrt(reader: _Reader, platform: Platform) -> OpenWrtRelease | None:
    openwrt = reader.optional("openwrt_release", parse_openwrt_release)
    expected = driver_for(platform).expects_openwrt_release
    if expected and openwrt is None:
        raise FactsError(
            "no /etc/openwrt_release: this is not an OpenWrt router",
            where=reader.site,
            fix=f'set platform = "linux" for sites.{reader.site} in the spec, or check the address',
        )
    if not expected and openwrt is not None:
        raise FactsError(
            f"runs OpenWrt {openwrt.release} but the spec says platform = '{platform}'",
            where=reader.site,
            fix=f'set platform = "openwrt" for sites.{reader.site} in the spec',
        )
    return openwrt


def _read_packages(reader: _Reader, manager: PackageManager | None) -> InstalledPackages:
    if manager is PackageManager.APK:
        return reader.parse("packages", parse_apk_installed)
    if manager is PackageManager.OPKG:
        return reader.parse("packages", parse_opkg_installed)
    reader.notes.append("neither apk nor opkg found: packages cannot be installed")
    return InstalledPackages()


def _read_uci(reader: _Reader, name: str) -> Package:
    package = reader.parse(f"uci_{name}", lambda text: parse_uci(text, name))
    if not package.sections and not reader.text(f"uci_{name}").startswith("package "):
        raise FactsError(
            f"`uci export {name}` printed nothing: {reader.get(f'uci_{name}').error}",
            where=reader.site,
            fix=f"check /etc/config/{name} on the router",
        )
    for section in package.sections:
        for option in SECRET_OPTIONS:
            value = section.options.get(option)
            if isinstance(value, str) and value not in ("", HIDDEN):
                section.options[option] = HIDDEN
                reader.notes.append(
                    f"uci sent {name}.{section.name}.{option} in clear; sitewire dropped it"
                )
    return package


_CHANGED_SECRET = re.compile(r"((?:private_key|preshared_key)[-+]?=).*")


def _read_changes(reader: _Reader) -> tuple[str, ...]:
    text = reader.parse("uci_changes", lambda t: t)
    return tuple(
        _CHANGED_SECRET.sub(rf"\1'{HIDDEN}'", line) for line in text.splitlines() if line.strip()
    )


def _read_tailscale(reader: _Reader, installed: bool) -> TailscaleFacts:
    if not installed:
        return TailscaleFacts(installed=False)
    section = reader.get("tailscale")
    if not section.ok:
        return TailscaleFacts(installed=True, error=section.error)
    return TailscaleFacts(installed=True, prefs=reader.parse("tailscale", parse_tailscale_prefs))
