"""1. read: each site before any change: facts, live keys, hashes of preshared keys, refusals.

A Linux host's files come back with their keys hidden twice, by awk on the host before they are
sent (the driver's HIDE_KEYS) and again here, on every line wg would read as a key (issue 9): wg
drops every blank from a line, cuts it at `#` and compares `PrivateKey=` and `PresharedKey=`
without regard to case. The comment is not cut here: a key commented out is still somebody's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sitewire.deploy import safety
from sitewire.deploy.keys import psk_hash_command
from sitewire.deploy.problems import ApplyError, Problem, warning
from sitewire.deploy.remote import Shell
from sitewire.deploy.run import Before, Site
from sitewire.diagnose.collect import run_sections
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.parse import ScriptSection
from sitewire.diagnose.script import FACT_SECTIONS
from sitewire.driver import Driver
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.uci import export_uci


def _psk_section(driver: Driver, site: SitePlan) -> tuple[str, str]:
    """`<peer> <sha256 of the preshared key held for it>` (or `-`), computed on the device."""
    lines = []
    for peer in site.peers:
        if peer.kind == "site" and peer.preshared:
            command = psk_hash_command(driver, site.interface, peer.name)
            lines.append(
                f'if sw_h=$({command}); then echo "{peer.name} $sw_h"; '
                f"else echo '{peer.name} -'; fi"
            )
    return ("sw_psk", "\n".join(lines) + "\nreturn 0")


def extra_sections(driver: Driver, site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
    return [_psk_section(driver, site), *driver.read_sections(site, paths)]


_BLANKS = re.compile(r"[ \t\n\v\f\r]")
_KEY_LINE = re.compile(r"(privatekey|presharedkey)=")


def hide_secrets(text: str) -> str:
    """What the device's HIDE_KEYS does, again on the controller: a key the device let through
    is never shown. Lines are split at `\n` only, as awk splits them."""
    return "\n".join(_hide_line(line) for line in text.split("\n"))


def _hide_line(line: str) -> str:
    if not _KEY_LINE.search(_BLANKS.sub("", line).lower()):
        return line
    return f"{line.partition('=')[0]}= (hidden)"


def read_files(
    sections: Mapping[str, ScriptSection], paths: Sequence[str]
) -> tuple[dict[str, str | None], list[str]]:
    """Each path's text as the device holds it (keys hidden; None: no such file), and the
    paths whose keys the device failed to hide."""
    files: dict[str, str | None] = {}
    leaked = []
    for n, path in enumerate(paths):
        found = sections[f"sw_file{n}"]
        if found.rc != 0:
            files[path] = None
            continue
        files[path] = hide_secrets(found.stdout)
        if files[path] != found.stdout:
            leaked.append(path)
    return files, leaked


_PUBLIC_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")


async def read_site(session: Shell, site: Site, plan: Plan, paths: Sequence[str]) -> Before:
    """Facts and what apply needs beside them, or a refusal (ApplyError, CommitInProgress)."""
    planned = plan.site(site.name)
    sections = await run_sections(
        session, (*FACT_SECTIONS, *extra_sections(site.driver, planned, paths))
    )
    facts = facts_from_sections(site.name, site.platform, sections)
    pubkey = sections["sw_pubkey"].stdout.strip()
    by_key = sections.get("sw_psk_keys")
    files, leaked = read_files(sections, paths)
    missing, warnings = preflight(site.driver, planned, facts)
    switch = await safety.status(session, device=site.device)
    if switch.pending is not None:
        left = switch.pending.seconds_left
        raise safety.CommitInProgress(
            f"another apply is in progress (commit {switch.pending.token}, "
            + (f"reverts in {left} s)" if left is not None else "being armed)"),
            where=site.name,
            fix="wait for it to finish, or end it with: sitewire confirm / sitewire rollback",
            token=switch.pending.token,
        )
    return Before(
        facts=facts,
        key=pubkey if _PUBLIC_KEY.fullmatch(pubkey) else None,
        files=files,
        psk_hashes=_pairs(sections["sw_psk"].stdout),
        psk_by_key=_pairs(by_key.stdout) if by_key is not None else {},
        watchdog_missing=site.driver.watchdog_missing(planned, sections),
        missing_packages=missing,
        warnings=(
            *(warning(f"{path} came back with a key in clear; sitewire hid it") for path in leaked),
            *warnings,
        ),
    )


def _pairs(text: str) -> dict[str, str]:
    """`<name> <value>` lines; any other line is ignored."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2:
            out[words[0]] = words[1]
    return out


def preflight(
    driver: Driver, site: SitePlan, facts: DeviceFacts
) -> tuple[tuple[str, ...], list[Problem]]:
    """What must be installed first, and warnings; ApplyError for what cannot go ahead."""
    if facts.pending_changes:
        raise ApplyError(
            f"uci holds {len(facts.pending_changes)} uncommitted change(s)",
            where=site.name,
            fix="look at them with 'uci changes' on the router, then 'uci commit' or 'uci revert'",
        )
    missing = driver.missing_packages(site, facts)
    refuse_foreign(site, facts)
    refuse_full(site, facts)
    refuse_no_cron(site, facts)
    pins = site.tailscale.pins if site.tailscale is not None else ()
    for version, rule52 in ((4, facts.lookup52), (6, facts.lookup52_v6)):
        if not any(p.version == version for p in pins) or rule52 is None:
            continue
        assert site.tailscale is not None
        if site.tailscale.pin_priority >= rule52:
            # mwan3 moves tailscaled's rule to 13xx (reference §6.1): a pin behind it does nothing.
            raise ApplyError(
                f"pin_priority {site.tailscale.pin_priority} is not below Tailscale's "
                f"'lookup 52' rule, which runs at priority {rule52} here (IPv{version})",
                where=site.name,
                fix=f"set sites.{site.name}.tailscale.pin_priority to less than {rule52}",
            )
    warnings = []
    if facts.rc_local.runs_tailscale_up:
        warnings.append(
            warning(
                "/etc/rc.local runs `tailscale up` at every boot and may undo "
                "`tailscale set`; remove that line"
            )
        )
    return missing, warnings


# KiB a change needs beyond twice the configuration it rewrites (uci writes a package anew,
# then renames it over the old one; the backup and the timer's script are staged in /tmp).
SPACE_MARGIN_KIB = {"/etc": 64, "/tmp": 256}


def refuse_full(site: SitePlan, facts: DeviceFacts) -> None:
    """Refused before anything is armed: too little room to back up, stage and commit. A full
    flash overlay makes `uci commit` keep the old files while saying nothing."""
    held = sum(len(export_uci(p)) for p in (facts.network, facts.firewall) if p is not None)
    for path, margin in SPACE_MARGIN_KIB.items():
        free = facts.free_kib.get(path)
        need = 2 * held // 1024 + margin
        if free is not None and free < need:
            flash = " (the flash overlay)" if path == "/etc" and facts.openwrt else ""
            raise ApplyError(
                f"only {free} KiB free in {path}{flash}; a change needs {need} KiB",
                where=site.name,
                fix=f"free space on the router (df -h {path}; on OpenWrt remove packages not "
                "needed, or old files under /overlay/upper), then apply again",
            )


def refuse_no_cron(site: SitePlan, facts: DeviceFacts) -> None:
    """Linux: the job re-resolving a dialled name (/etc/cron.d) needs a cron daemon running;
    without one the tunnel would outlive the address it found once, unnoticed."""
    if site.watchdog and facts.cron == ():
        names = ", ".join(p.name for p in site.peers if p.dial and p.dial.endpoint.kind == "name")
        raise ApplyError(
            f"no cron daemon that reads /etc/cron.d runs here, and the job that re-resolves "
            f"{names}'s DNS endpoint when handshakes stop is one "
            f"(/etc/cron.d/sitewire-{site.interface})",
            where=site.name,
            fix="install and start one (Debian: apt-get install cron; systemctl enable --now "
            "cron), then apply again",
        )


def refuse_foreign(site: SitePlan, facts: DeviceFacts) -> None:
    """What sitewire would break by taking the planned name or port: refused, nothing changed."""
    iface, port = site.interface, site.listen_port
    fix_port = f"give sites.{site.name} another port (port = ...), or remove that interface"
    for live in facts.wg.interfaces:
        if live.name != iface and live.listen_port == port:
            raise ApplyError(
                f"{live.name} (not {iface}, which sitewire manages) already listens on udp/{port}",
                where=site.name,
                fix=fix_port,
            )
    network = facts.network
    if network is not None:
        for section in network.sections_of_type("interface"):
            if section.name in (None, iface) or section.options.get("proto") != "wireguard":
                continue
            if section.options.get("listen_port") == str(port):
                raise ApplyError(
                    f"the WireGuard interface {section.name!r} is set to listen on udp/{port}, "
                    f"the port planned for {iface}",
                    where=site.name,
                    fix=fix_port,
                )
        held = network.section(iface)
        proto = held.options.get("proto") if held is not None else "wireguard"
        if held is not None and held.type == "interface" and proto != "wireguard":
            raise ApplyError(
                f"network.{iface} is a {proto!r} interface, not WireGuard"
                if proto is not None
                else f"network.{iface} is an interface without a proto, not WireGuard",
                where=site.name,
                fix=f"name sitewire's interface otherwise (sites.{site.name}.interface), "
                f"or rename that one",
            )
    # On OpenWrt UCI said above (netifd may be re-creating the device just now).
    linked = any(link.name == iface for link in facts.links)
    if network is None and linked and facts.wg.interface(iface) is None:
        raise ApplyError(
            f"{iface} exists and is not a WireGuard interface",
            where=site.name,
            fix=f"name sitewire's interface otherwise (sites.{site.name}.interface), "
            f"or remove that link",
        )


def stale_psks(plan: Plan, before: Mapping[str, Before]) -> list[tuple[str, str]]:
    """Site pairs whose ends do not hold the same preshared key (or none at all); a hand-made
    peer section counts, found by the other end's public key."""
    out = []
    for name in plan.site_names:
        for peer in plan.site(name).peers:
            if peer.kind != "site" or not peer.preshared or peer.name < name:
                continue
            mine = before[name].psk_hash(peer.name, peer.public_key)
            theirs = before[peer.name].psk_hash(name, plan.site(peer.name).peer(name).public_key)
            if mine == "-" or mine != theirs:
                out.append((name, peer.name))
    return out
