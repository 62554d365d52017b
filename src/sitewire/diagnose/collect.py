"""Facts about one live router in one SSH round trip: what apply, status and doctor start from.

One POSIX sh script (BusyBox ash, dash) runs every probe and frames each one's output with
section markers. Keys are hidden on the router before anything is sent: the awk filter blanks
the key fields of `wg show all dump`, and sed blanks private_key/preshared_key in uci output.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sitewire.deploy.remote import Shell
from sitewire.diagnose.parse import (
    HIDDEN,
    Handler,
    InstalledPackages,
    IpRule,
    Link,
    NetifdInterface,
    OpenWrtRelease,
    OsRelease,
    RcLocal,
    Route,
    ScriptSection,
    TailscalePrefs,
    UnexpectedOutput,
    WgDump,
    WgInterface,
    default_route,
    lookup52_priority,
    parse_apk_installed,
    parse_handler,
    parse_ip_links,
    parse_ip_rules,
    parse_netifd_dump,
    parse_number,
    parse_openwrt_release,
    parse_opkg_installed,
    parse_os_release,
    parse_rc_local_probe,
    parse_routes,
    parse_sections,
    parse_tailscale_prefs,
    parse_wg_dump,
)
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


# --- the script ------------------------------------------------------------------------------

PRELUDE = r"""exec </dev/null
umask 077
PATH="$PATH:/usr/sbin:/usr/bin:/sbin:/bin"
_err=$(mktemp 2>/dev/null) || _err=/tmp/sitewire-facts.$$
trap 'rm -f "$_err"' EXIT
has() { command -v "$1" >/dev/null 2>&1; }
through() {
	{ _st=$( { { "$1"; echo $? >&3; } | "$2" >&4; } 3>&1 ); } 4>&1
	return "${_st:-1}"
}
hide_keys() {
	sed -e "s/\(private_key[^']*'\)[^']\{1,\}'/\1(hidden)'/" \
		-e "s/\(preshared_key[^']*'\)[^']\{1,\}'/\1(hidden)'/"
}
hide_dump() {
	awk -F '\t' 'BEGIN { OFS = "\t" }
		NF == 5 { if ($2 != "(none)") $2 = "(hidden)"; print; next }
		NF == 9 { if ($3 != "(none)") $3 = "(hidden)"; print; next }
		NF > 0 { print "(unexpected line with " NF " fields)" }'
}
section() {
	printf '@@sitewire begin %s\n' "$1"
	"s_$1" 2>"$_err"
	_rc=$?
	printf '\n@@sitewire stderr %s\n' "$1"
	head -n 5 "$_err"
	printf '\n@@sitewire end %s %d\n' "$1" "$_rc"
}
uci_export_network() { uci export network; }
uci_export_firewall() { uci export firewall; }
uci_pending() { uci changes; }
wg_dump() { wg show all dump; }
"""

# (section, body of its shell function). 127 means "not here" (the command is missing).
FACT_SECTIONS: tuple[tuple[str, str], ...] = (
    ("clock", "date +%s"),
    ("openwrt_release", "cat /etc/openwrt_release"),
    ("os_release", "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release"),
    (
        "commands",
        "for _c in apk opkg apt-get dnf yum pacman zypper uci wg wg-quick tailscale awk sed ip\n"
        "do\n"
        '\t_p=$(command -v "$_c") && echo "$_c $_p"\ndone\nreturn 0',
    ),
    (
        "packages",
        "if has apk; then apk list --installed\nelif has opkg; then opkg list-installed\n"
        "else return 127; fi",
    ),
    (
        "handler",
        'for _f in /lib/netifd/proto/wireguard.*; do [ -e "$_f" ] && echo "file $_f"; done\n'
        "_h=/lib/netifd/proto/wireguard.sh\n"
        'if [ -f "$_h" ]; then\n'
        '\tgrep -q syncconf "$_h" && echo syncconf\n'
        "\tgrep -q 'renew_handler=1' \"$_h\" && echo renew\n"
        "fi\nreturn 0",
    ),
    ("netifd", "has ubus || return 127\nubus call network.interface dump"),
    ("uci_network", "has uci || return 127\nthrough uci_export_network hide_keys"),
    ("uci_firewall", "has uci || return 127\nthrough uci_export_firewall hide_keys"),
    ("uci_changes", "has uci || return 127\nthrough uci_pending hide_keys"),
    (
        "wg",
        "has wg || return 127\n"
        'has awk || { echo "awk: not found" >&2; return 127; }\n'
        "through wg_dump hide_dump",
    ),
    ("rules4", "ip -4 rule show"),
    ("rules6", "ip -6 rule show"),
    ("routes4", "ip -4 route show"),
    ("routes6", "ip -6 route show"),
    ("table52_4", "ip -4 route show table 52"),
    ("table52_6", "ip -6 route show table 52"),
    ("links", "ip -o link show"),
    (
        "tailscale",
        "has tailscale || return 127\n"
        "if has timeout; then timeout 5 tailscale debug prefs; else tailscale debug prefs; fi",
    ),
    (
        "rc_local",
        "[ -f /etc/rc.local ] || return 0\n"
        "awk '/^[ \\t]*#/ { next } /tailscale[ \\t]+up/ "
        '{ print NR, (/accept-routes/ ? "accept-routes" : "-") }\' /etc/rc.local',
    ),
    (
        "wg_quick",
        "[ -d /etc/wireguard ] || return 0\n"
        'for _f in /etc/wireguard/*.conf; do [ -e "$_f" ] && basename "$_f" .conf; done\n'
        "return 0",
    ),
)

# What a person would type to see a section's output, for messages.
COMMANDS = {
    "openwrt_release": "cat /etc/openwrt_release",
    "packages": "opkg list-installed / apk list --installed",
    "netifd": "ubus call network.interface dump",
    "uci_network": "uci export network",
    "uci_firewall": "uci export firewall",
    "uci_changes": "uci changes",
    "wg": "wg show all dump",
    "rules4": "ip -4 rule show",
    "rules6": "ip -6 rule show",
    "routes4": "ip -4 route show",
    "routes6": "ip -6 route show",
    "table52_4": "ip -4 route show table 52",
    "table52_6": "ip -6 route show table 52",
    "links": "ip -o link show",
    "tailscale": "tailscale debug prefs",
}


def build_script(sections: Sequence[tuple[str, str]]) -> str:
    functions = "".join(f"s_{name}() {{\n{body}\n}}\n" for name, body in sections)
    calls = "".join(f"section {name}\n" for name, _ in sections)
    return PRELUDE + functions + calls


async def run_sections(
    session: Shell, sections: Sequence[tuple[str, str]]
) -> dict[str, ScriptSection]:
    """Run probes in one `sh -c` over the session; each section's output, stderr and status."""
    site = session.target.name
    result = await session.run(f"sh -c {shlex.quote(build_script(sections))}")
    try:
        found = parse_sections(result.stdout)
    except UnexpectedOutput as exc:
        raise FactsError(
            f"fact-gathering output is garbled: {exc.message}",
            where=site,
            fix="run it again; if this persists, report it to sitewire with the router's release",
        ) from None
    missing = [name for name, _ in sections if name not in found]
    if missing:
        reason = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
        raise FactsError(
            f"the fact-gathering script stopped before {missing[0]!r}: {reason[0]}",
            where=site,
            fix="check that `sh -c` works for the SSH user (a POSIX shell such as BusyBox ash)",
        )
    return found


# --- the facts -------------------------------------------------------------------------------


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
    notes: tuple[str, ...] = ()
    # OpenWrt: what netifd runs, by interface (None off OpenWrt, or where ubus did not answer)
    netifd: Mapping[str, NetifdInterface] | None = None

    @property
    def wireguard_tools(self) -> bool:
        if self.platform is Platform.OPENWRT:
            return "wireguard-tools" in self.packages
        return "wg" in self.commands

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
    on_openwrt = platform is Platform.OPENWRT
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
        packages=_read_packages(reader, manager) if on_openwrt else InstalledPackages(),
        commands=commands,
        handler=parse_handler(reader.text("handler")) if on_openwrt else None,
        network=_read_uci(reader, "network") if on_openwrt else None,
        firewall=_read_uci(reader, "firewall") if on_openwrt else None,
        pending_changes=_read_changes(reader) if on_openwrt else (),
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
        netifd=_read_netifd(reader) if on_openwrt else None,
    )


def _read_netifd(reader: _Reader) -> Mapping[str, NetifdInterface] | None:
    """Optional: facts collected by an older sitewire have no such section."""
    section = reader.sections.get("netifd")
    if section is None or not section.ok:
        return None
    return reader.optional("netifd", parse_netifd_dump)


async def gather_facts(session: Shell, platform: Platform) -> DeviceFacts:
    """Everything apply needs to know about one router, in one round trip."""
    sections = await run_sections(session, FACT_SECTIONS)
    return facts_from_sections(session.target.name, platform, sections)


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
    if platform is Platform.OPENWRT and openwrt is None:
        raise FactsError(
            "no /etc/openwrt_release: this is not an OpenWrt router",
            where=reader.site,
            fix=f'set platform = "linux" for sites.{reader.site} in the spec, or check the address',
        )
    if platform is Platform.LINUX and openwrt is not None:
        raise FactsError(
            f"runs OpenWrt {openwrt.release} but the spec says platform = 'linux'",
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


# --- one screen for a person -----------------------------------------------------------------


def format_facts(facts: DeviceFacts, now: float | None = None) -> str:
    """A one-screen summary; handshake ages use the router's clock when it was read."""
    clock = facts.clock if facts.clock is not None else (now or time.time())
    lines = [f"{facts.site}: {_system(facts)}"]
    lines.append(f"  wireguard   {_wireguard(facts)}")
    mtu = f", MTU {facts.wan_mtu}" if facts.wan_mtu is not None else ""
    lines.append(f"  wan         {facts.wan_device or '[none]'}{mtu}")
    for iface in facts.wg.interfaces:
        lines.append(f"  {iface.name:<11} {_interface(iface)}")
        lines.extend(f"    {_peer_line(facts, iface, i, clock)}" for i in range(len(iface.peers)))
    configured = [n for n in facts.uci_wireguard_interfaces if n not in facts.wg.names]
    if configured:
        lines.append(f"  uci only    {', '.join(configured)} (configured, not live)")
    lines.append(f"  tailscale   {_tailscale(facts)}")
    if facts.platform is Platform.OPENWRT:
        pending = len(facts.pending_changes)
        lines.append(f"  uci         {pending or 'no'} pending change{'s' if pending != 1 else ''}")
    lines.extend(f"  ! {w}" for w in facts.warnings)
    return "\n".join(lines)


def _system(facts: DeviceFacts) -> str:
    if facts.openwrt is not None:
        o = facts.openwrt
        text = f"OpenWrt {o.release} {o.revision} {o.target}".rstrip()
    elif facts.os_release is not None:
        text = facts.os_release.pretty_name
    else:
        text = "Linux"
    return f"{text}, {facts.package_manager or 'no package manager'}"


def _wireguard(facts: DeviceFacts) -> str:
    if not facts.wireguard_tools:
        return "wireguard-tools not installed"
    version = facts.packages.version("wireguard-tools")
    text = f"wireguard-tools {version}" if version else "wg present"
    if facts.handler is not None:
        renew = {
            Handler.CLASSIC: "peer changes re-create the interface",
            Handler.SYNCCONF: "renew applies peer changes",
            Handler.UCODE: "peer changes reload the interface",
            Handler.ABSENT: "netifd cannot bring up proto wireguard",
        }[facts.handler]
        text += f", handler {facts.handler} ({renew})"
    if "wg-quick" in facts.commands:
        text += ", wg-quick"
    return text


def _interface(iface: WgInterface) -> str:
    key = "" if iface.private_key_set else ", no private key"
    fwmark = f", fwmark {iface.fwmark:#x}" if iface.fwmark is not None else ""
    return f"port {iface.listen_port}{fwmark}{key}, {len(iface.peers)} peer(s)"


def _peer_line(facts: DeviceFacts, iface: WgInterface, index: int, clock: float) -> str:
    peer = iface.peers[index]
    name = _uci_peer_name(facts, iface.name, peer.public_key) or f"{peer.public_key[:8]}…"
    allowed = ", ".join(str(p) for p in peer.allowed_ips) or "[none]"
    endpoint = str(peer.endpoint) if peer.endpoint else "[none]"
    if peer.latest_handshake is None:
        seen = "never"
    else:
        seen = f"{max(0, int(clock - peer.latest_handshake))} s ago"
    return f"{name}: {allowed} via {endpoint}, handshake {seen}"


def _uci_peer_name(facts: DeviceFacts, interface: str, public_key: str) -> str | None:
    if facts.network is None:
        return None
    for section in facts.network.sections_of_type(f"wireguard_{interface}"):
        if section.options.get("public_key") == public_key:
            return section.name
    return None


def _tailscale(facts: DeviceFacts) -> str:
    ts = facts.tailscale
    if not ts.installed:
        return "not installed"
    if ts.prefs is None:
        return f"installed, prefs unreadable ({ts.error})"
    p = ts.prefs
    parts = [f"accept-routes {'on' if p.route_all else 'off'}"]
    advertised = [str(n) for n in p.advertised_subnets]
    if p.advertises_exit_node:
        advertised.append("exit node")
    parts.append(f"advertises {', '.join(advertised) if advertised else '[none]'}")
    if p.uses_exit_node:
        parts.append(f"uses exit node {p.exit_node_ip or p.exit_node_id}")
    parts.append(f"netfilter {p.netfilter_mode.name.lower()}")
    v4, v6 = facts.lookup52, facts.lookup52_v6
    if v4 is not None or v6 is not None:
        parts.append(
            f"lookup 52 at {v4 if v4 is not None else '-'}/{v6 if v6 is not None else '-'}"
        )
    return ", ".join(parts)
