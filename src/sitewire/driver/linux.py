"""Linux hosts: wg-quick files under /etc/wireguard, an nftables table, sysctl for forwarding."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from sitewire.deploy import safety
from sitewire.deploy.diff import Change
from sitewire.deploy.live import (
    Step,
    common_steps,
    file_diff,
    interface_part,
    live_peer_script,
    mask_secrets,
    tailscale_revert,
)
from sitewire.deploy.problems import ApplyError
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import ScriptSection
from sitewire.driver import handmade
from sitewire.driver.base import Command, Diff, Held, Push, PutFile, Revert
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.render.linux import (
    CONF_DIR,
    NFT_DIR,
    key_path,
    nft_table,
    psk_path,
    render_linux,
    start_command,
)
from sitewire.render.model import Rendered, Secrets
from sitewire.spec.model import Platform
from sitewire.uci import Package

_NEED_WG = "command -v wg >/dev/null 2>&1 || { echo 'wg: not installed' >&2; exit 3; }; "

# wg's blanks (wireguard-tools ctype.h char_is_space) spelled out, not [:space:], which older
# mawk lacks; a record never holds its \n. awk's tolower is ASCII, as is wg's strncasecmp.
# The line keeps what comes before its first `=`. (deploy.read hides them again, issue 9.)
HIDE_KEYS = (
    r"""awk '{ k = $0; gsub(/[ \t\r\v\f]/, "", k) }"""
    r""" tolower(k) ~ /(privatekey|presharedkey)=/ { sub(/=.*/, "= (hidden)") } 1'"""
)


def _device_paths(rendered: Rendered) -> list[str]:
    return [f.device_path for f in rendered.files if f.device_path is not None]


def _pushed(rendered: Rendered) -> dict[str, str]:
    """Each device file as sitewire reads it back (keys hidden), to tell what changes."""
    return {
        f.device_path: mask_secrets(rendered.text(f.path))
        for f in rendered.files
        if f.device_path is not None
    }


class Linux:
    platform = Platform.LINUX
    device = safety.LINUX

    def render(
        self,
        plan: Plan,
        site: SitePlan,
        secrets: Secrets,
        facts: DeviceFacts | None,
        *,
        drop_foreign: bool = False,
    ) -> Rendered:
        return render_linux(plan, site, secrets)  # its files are sitewire's whole

    # --- read

    def read_paths(self, plan: Plan, site: SitePlan, secrets: Secrets) -> list[str]:
        return _device_paths(render_linux(plan, site, secrets))

    def read_sections(self, site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
        out = [
            ("sw_pubkey", handmade.pubkey_section(site.interface)),
            ("sw_psk_keys", handmade.psk_keys_section(site.interface)),
        ]
        for n, path in enumerate(paths):
            quoted = shlex.quote(path)
            out.append((f"sw_file{n}", f"[ -f {quoted} ] || return 3\n{HIDE_KEYS} {quoted}"))
        return out

    def watchdog_missing(self, site: SitePlan, sections: Mapping[str, ScriptSection]) -> bool:
        return False  # wg-quick has no watchdog; a DNS endpoint is resolved at `up`

    def missing_packages(self, site: SitePlan, facts: DeviceFacts) -> tuple[str, ...]:
        if facts.wireguard_tools:
            return ()
        if facts.package_manager is None:
            raise ApplyError(
                "has no 'wg' and no package manager sitewire knows",
                where=site.name,
                fix="install wireguard-tools on the host by hand",
            )
        return ("wireguard-tools",)

    # --- keys

    def private_key_script(self, iface: str, *, replace: bool = False) -> str:
        path = shlex.quote(key_path(iface))
        new = shlex.quote(f"{key_path(iface)}.new")
        make = f"wg genkey > {new}; mv -f {new} {path}"
        if not replace:
            make = f"[ -s {path} ] || {{ {make}; }}"
        return f"set -e; umask 077; {_NEED_WG}mkdir -p {CONF_DIR}; {make}; wg pubkey < {path}"

    def key_live(self, iface: str) -> str:
        q = shlex.quote
        return f"wg set {q(iface)} private-key {q(key_path(iface))}"

    def psk_read(self, iface: str, peer: str) -> str:
        return f"cat {shlex.quote(psk_path(iface, peer))}"

    def psk_write(self, iface: str, peers: Sequence[str]) -> str:
        # Every key read first: a short stdin writes none.
        reads = [f"read -r psk{n}" for n in range(len(peers))]
        writes = [
            f"printf '%s\\n' \"$psk{n}\" > {shlex.quote(psk_path(iface, peer))}"
            for n, peer in enumerate(peers)
        ]
        return " && ".join([*reads, f"umask 077 && mkdir -p {CONF_DIR}", *writes])

    # --- change

    def diff(self, site: SitePlan, held: Held, rendered: Rendered) -> Diff:
        lines: list[str] = []
        if self.takeover(site, held) is not None:
            lines.append(handmade.takeover_line(site))
        for f in rendered.files:
            if f.device_path is not None:
                before = held.files.get(f.device_path)
                lines += file_diff(site.name, f.device_path, before, rendered.text(f.path))
        return Diff(tuple(lines))

    def backup_paths(self, plan: Plan, site: SitePlan, secrets: Secrets) -> list[str]:
        paths = self.read_paths(plan, site, secrets)
        paths.append(key_path(site.interface))
        paths += [psk_path(site.interface, p.name) for p in site.peers if p.preshared]
        return paths

    def recreates(
        self, site: SitePlan, held: Held, rendered: Rendered, changes: Sequence[Change]
    ) -> bool:
        if held.facts.wg.interface(site.interface) is None:
            return True
        conf = f"{CONF_DIR}/{site.interface}.conf"
        after = _pushed(rendered)[conf]
        return held.files.get(conf) != after and self._recreates(site, held, after)

    def revert(self, site: SitePlan, facts: DeviceFacts, env: str, *, hitless: bool) -> Revert:
        q = shlex.quote
        iface, conf = q(site.interface), q(f"{CONF_DIR}/{site.interface}.conf")
        recreate = f"{env}wg-quick down {iface} 2>/dev/null; [ ! -f {conf} ] || wg-quick up {iface}"
        tail = ("sysctl -q --system", *tailscale_revert(site, facts))
        if not hitless:
            return Revert((recreate, *tail))
        # The table as the restored file has it, in one transaction (the file deletes and
        # re-creates it); no file: sitewire had none here before.
        nft = q(f"{NFT_DIR}/{site.interface}.nft")
        table = f"nft delete table inet {q(nft_table(site))} 2>/dev/null || true"
        return Revert(
            (
                f"live_restore {iface} || {{ {recreate}; }}",
                f"if [ -f {nft} ]; then nft -f {nft}; else {table}; fi",
                *tail,
            ),
            site.interface,
        )

    def takeover(self, site: SitePlan, held: Held) -> Command | None:
        """A hand-made wg-quick file (or an interface running without one): the keys it runs
        copied, on the host, to where sitewire's file reads them."""
        conf = held.files.get(handmade.conf_path(site.interface))
        running = held.facts.wg.interface(site.interface) is not None
        if not handmade.is_hand_made(conf) and not (conf is None and running):
            return None
        return Command(handmade.takeover_script(site), "the hand-made keys were kept")

    def fresh_handler(self, installed: Sequence[str]) -> bool:
        return False

    def handler_probe(self, site: SitePlan, facts: DeviceFacts) -> str | None:
        return None

    def handler_absent(self, output: str) -> bool:
        return False

    def push(self, rendered: Rendered, held: Held) -> list[Push]:
        # The guarded no-op first: no file is written once the revert timer has (nearly) run out.
        out: list[Push] = [Command("true", "its files were written")]
        after = _pushed(rendered)
        for f in rendered.files:
            if f.device_path is None or held.files.get(f.device_path) == after[f.device_path]:
                continue
            private = f.device_path.startswith(f"{CONF_DIR}/")
            out.append(PutFile(f.device_path, rendered.text(f.path), 0o600 if private else f.mode))
        return out

    def live_steps(
        self,
        site: SitePlan,
        held: Held,
        rendered: Rendered,
        changes: Sequence[Change],
        *,
        handler_fresh: bool,
        env: str,
    ) -> list[Step]:
        before, after = held.files, _pushed(rendered)
        iface = shlex.quote(site.interface)
        conf = f"{CONF_DIR}/{site.interface}.conf"
        live = held.facts.wg.interface(site.interface)
        changed = {path for path, text in after.items() if before.get(path) != text}
        restart = f"{env}{start_command(iface)}"
        steps: list[Step] = []
        sysctl = next((p for p in after if p.startswith("/etc/sysctl.d/")), None)
        if sysctl is not None and (sysctl in changed or live is None):
            steps.append(Step(f"sysctl -q -p {shlex.quote(sysctl)}", "forwarding settings"))
        if live is None:
            steps.append(Step(restart, "the interface is new"))
        elif self.recreates(site, held, rendered, changes):
            steps.append(
                Step(restart, "an interface-level setting changed: the device is re-created")
            )
        else:
            keep = held.keep_peers
            if live_peer_script(site, live, self.psk_read, keep=keep) is not None:
                script = live_peer_script(site, live, self.psk_read, routes=True, keep=keep)
                assert script is not None
                steps.append(Step(script, "peer changes, applied live with wg set"))
            nft = next((p for p in after if p.endswith(".nft")), None)
            if nft is not None and nft in changed:
                steps.append(
                    Step(
                        f"nft delete table inet {nft_table(site)} 2>/dev/null; "
                        f"nft -f {shlex.quote(nft)}",
                        "firewall table changed",
                    )
                )
            if handmade.is_hand_made(before.get(conf)):
                for command in handmade.settle_commands(site):
                    steps.append(Step(command, "the hand-made file's device kept, as it runs"))
        return steps + common_steps(site, held.facts)

    def _recreates(self, site: SitePlan, held: Held, after: str) -> bool:
        before = held.files.get(handmade.conf_path(site.interface)) or ""
        if handmade.is_hand_made(before):
            return not handmade.same_device(before, after, held.facts, site.interface)
        return interface_part(before) != interface_part(after)

    def held_psks(
        self, site: SitePlan, facts: DeviceFacts, changes: Sequence[Change] = ()
    ) -> dict[str, bool | None] | None:
        return None  # the files' keys are hidden; the running peers say what is held

    # --- diagnose

    uses_uci = False
    uses_fw4 = False
    runs_netifd = False
    expects_openwrt_release = False
    reads_facts: frozenset[str] = frozenset({"cron"})
    start_interface: tuple[str, ...] = ("wg-quick up {iface}", "systemctl start wg-quick@{iface}")
    reresolve = "the sitewire-reresolve-{iface} cron job"
    fix_keepalive = (
        "wg set {iface} peer {key} persistent-keepalive 25, and PersistentKeepalive = 25 in "
        "{peer}'s [Peer] of /etc/wireguard/{iface}.conf"
    )
    fix_peer_key = (
        "PublicKey = {key} in {peer}'s [Peer] of /etc/wireguard/{iface}.conf, then: "
        "wg-quick down {iface}; wg-quick up {iface}"
    )
    fix_route = "wg-quick down {iface}; wg-quick up {iface}  (it routes every AllowedIPs prefix)"
    restart_network: str | None = None
    peer_store = "/etc/wireguard/{iface}.conf (its [Peer])"

    def wireguard_tools(self, facts: DeviceFacts) -> bool:
        return "wg" in facts.commands

    def render_onto(
        self, plan: Plan, site: SitePlan, secrets: Secrets, current: Mapping[str, Package] | None
    ) -> Rendered:
        return render_linux(plan, site, secrets)  # no UCI here: `current` says nothing


DRIVER = Linux()
