"""Reading a site before any change: facts, live keys, hashes of preshared keys, refusals.

A Linux host's files come back with their keys hidden twice, by awk on the host before they are
sent and again here, on every line wg would read as a key (issue 9): wg drops every blank from a
line, cuts it at `#` and compares `PrivateKey=` and `PresharedKey=` without regard to case. The
comment is not cut here: a key commented out is still somebody's key.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from sitewire.deploy import safety
from sitewire.deploy.keys import psk_read_command
from sitewire.deploy.run import ApplyError, SiteRun
from sitewire.deploy.ssh import Credentials, connect
from sitewire.diagnose.collect import (
    FACT_SECTIONS,
    facts_from_sections,
    run_sections,
)
from sitewire.diagnose.parse import ScriptSection
from sitewire.plan import Plan
from sitewire.plan.model import WATCHDOG_CRON, SitePlan
from sitewire.render.linux import CONF_DIR
from sitewire.render.model import Rendered
from sitewire.spec.model import Platform


def _psk_section(site: SitePlan) -> tuple[str, str]:
    """`<peer> <sha256 of the preshared key held for it>` (or `-`), computed on the device."""
    lines = []
    for peer in site.peers:
        if peer.kind == "site" and peer.preshared:
            read = psk_read_command(site.platform, site.interface, peer.name)
            lines.append(
                f'_k=$({read}); if [ -n "$_k" ]; then echo "{peer.name} '
                '$(printf %s "$_k" | sha256sum | cut -d" " -f1)"; '
                f"else echo '{peer.name} -'; fi"
            )
    return ("sw_psk", "\n".join(lines) + "\nreturn 0")


def extra_sections(site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
    return [_psk_section(site), *_key_sections(site, paths)]


def _key_sections(site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
    iface = site.interface
    if site.platform is Platform.OPENWRT:
        option = shlex.quote(f"network.{iface}.private_key")
        pubkey = (
            "has wg || return 0\n"
            f"_k=$(uci -q get {option}) || return 0\n"
            '[ -n "$_k" ] && printf "%s\\n" "$_k" | wg pubkey'
        )
        line = shlex.quote(WATCHDOG_CRON)
        cron = (
            f"grep -qxF {line} /etc/crontabs/root 2>/dev/null && echo line\n"
            "/etc/init.d/cron enabled 2>/dev/null && echo enabled\nreturn 0"
        )
        return [("sw_pubkey", pubkey), ("sw_cron", cron)]
    key = shlex.quote(f"{CONF_DIR}/{iface}.key")
    out = [("sw_pubkey", f"has wg || return 0\n[ -s {key} ] || return 0\nwg pubkey < {key}")]
    for n, path in enumerate(paths):
        quoted = shlex.quote(path)
        out.append((f"sw_file{n}", f"[ -f {quoted} ] || return 3\n{_HIDE} {quoted}"))
    return out


# wg's blanks (wireguard-tools ctype.h char_is_space) spelled out, not [:space:], which older
# mawk lacks; a record never holds its \n. awk's tolower is ASCII, as is wg's strncasecmp.
# The line keeps what comes before its first `=`.
_HIDE = (
    r"""awk '{ k = $0; gsub(/[ \t\r\v\f]/, "", k) }"""
    r""" tolower(k) ~ /(privatekey|presharedkey)=/ { sub(/=.*/, "= (hidden)") } 1'"""
)
_BLANKS = re.compile(r"[ \t\n\v\f\r]")
_KEY_LINE = re.compile(r"(privatekey|presharedkey)=")


def hide_secrets(text: str) -> str:
    """What _HIDE does on the device, again on the controller: a key the device let through
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


def linux_paths(rendered: Rendered) -> list[str]:
    return [f.device_path for f in rendered.files if f.device_path is not None]


async def read_site(run: SiteRun, plan: Plan, creds: Credentials, paths: Sequence[str]) -> None:
    run.session = await connect(run.target, creds)
    site = plan.site(run.name)
    sections = await run_sections(run.session, (*FACT_SECTIONS, *extra_sections(site, paths)))
    run.facts = facts_from_sections(run.name, run.platform, sections)
    run.psk_hashes = dict(
        line.split() for line in sections["sw_psk"].stdout.splitlines() if len(line.split()) == 2
    )
    pubkey = sections["sw_pubkey"].stdout.strip()
    run.key_before = run.key = pubkey if re.fullmatch(r"[A-Za-z0-9+/]{43}=", pubkey) else None
    if run.platform is Platform.OPENWRT:
        cron = sections["sw_cron"].stdout.split()
        run.cron_missing = site.watchdog and not {"line", "enabled"} <= set(cron)
    files, leaked = read_files(sections, paths)
    run.files_before.update(files)
    run.problems += [
        f"warning: {path} came back with a key in clear; sitewire hid it" for path in leaked
    ]
    preflight(run, site)
    switch = await safety.status(run.session, device=run.device)
    if switch.pending is not None:
        left = switch.pending.seconds_left
        raise safety.CommitInProgress(
            f"another apply is in progress (commit {switch.pending.token}, "
            + (f"reverts in {left} s)" if left is not None else "being armed)"),
            where=run.name,
            fix="wait for it to finish, or end it with: sitewire confirm / sitewire rollback",
            token=switch.pending.token,
        )


def preflight(run: SiteRun, site: SitePlan) -> None:
    facts = run.must_facts()
    if facts.pending_changes:
        raise ApplyError(
            f"uci holds {len(facts.pending_changes)} uncommitted change(s)",
            where=run.name,
            fix="look at them with 'uci changes' on the router, then 'uci commit' or 'uci revert'",
        )
    if run.platform is Platform.OPENWRT:
        if facts.openwrt is None:
            raise ApplyError(
                "is not an OpenWrt router (no /etc/openwrt_release)",
                where=run.name,
                fix=f'set sites.{run.name}.platform = "linux" if it is a Linux host',
            )
        missing = tuple(p for p in site.packages() if p not in facts.packages)
        if missing and facts.package_manager is None:
            raise ApplyError(
                f"needs {', '.join(missing)} and has no package manager",
                where=run.name,
                fix="install WireGuard support on the router by hand (opkg or apk)",
            )
        run.missing_packages = missing
    elif not facts.wireguard_tools:
        if facts.package_manager is None:
            raise ApplyError(
                "has no 'wg' and no package manager sitewire knows",
                where=run.name,
                fix="install wireguard-tools on the host by hand",
            )
        run.missing_packages = ("wireguard-tools",)
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
                where=run.name,
                fix=f"set sites.{run.name}.tailscale.pin_priority to less than {rule52}",
            )
    if facts.rc_local.runs_tailscale_up:
        run.problems.append(
            "warning: /etc/rc.local runs `tailscale up` at every boot and may undo "
            "`tailscale set`; remove that line"
        )


def stale_psks(plan: Plan, runs: Mapping[str, SiteRun]) -> list[tuple[str, str]]:
    """Site pairs whose ends do not hold the same preshared key (or none at all)."""
    out = []
    for name in plan.site_names:
        for peer in plan.site(name).peers:
            if peer.kind != "site" or not peer.preshared or peer.name < name:
                continue
            mine = runs[name].psk_hashes.get(peer.name, "-")
            theirs = runs[peer.name].psk_hashes.get(name, "-")
            if mine == "-" or mine != theirs:
                out.append((name, peer.name))
    return out
