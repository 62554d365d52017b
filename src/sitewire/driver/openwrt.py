"""OpenWrt: UCI holds the configuration, netifd and its wireguard handler make it live."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from sitewire.deploy import safety
from sitewire.deploy.diff import Change, describe, planned_changes
from sitewire.deploy.live import (
    PSK_PIPE,
    Step,
    common_steps,
    live_drift,
    live_peer_script,
    tailscale_revert,
)
from sitewire.deploy.problems import ApplyError
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import HIDDEN, Handler, ScriptSection
from sitewire.driver.base import Command, Diff, Held, Push, Revert
from sitewire.errors import SitewireError
from sitewire.plan import Plan
from sitewire.plan.model import WATCHDOG_CRON, SitePlan
from sitewire.render.model import Rendered, Secrets
from sitewire.render.openwrt import INTERFACE_OPTIONS, SECRET_OPTIONS, peer_section, render_openwrt
from sitewire.render.takeover import Takeover, batch_text, plan_takeover, taken_over
from sitewire.spec.model import Platform
from sitewire.uci import Package

# Every file a change may touch; the revert timer restores them byte for byte.
BACKUP = ("/etc/config/network", "/etc/config/firewall", "/etc/crontabs/root")

# uci batch reads stdin; a bad line shows only on its stderr, which fails the step.
UCI_BATCH = 'uci batch 2>&1 >/dev/null | (if read -r l; then { echo "$l"; cat; } >&2; exit 1; fi)'

_NEED_WG = "command -v wg >/dev/null 2>&1 || { echo 'wg: not installed' >&2; exit 3; }; "
_WATCHDOG_LINE = shlex.quote(WATCHDOG_CRON)


def _naming(change: Change, takeovers: Sequence[Takeover]) -> bool:
    """A change that only names a section just taken over sitewire's way (a peer's
    description, the zone's and the rule's name, a planned forwarding's zone that follows the
    zone's new name): part of its takeover line, not a line of its own."""
    if not any(t.package == change.package and t.renamed == change.section for t in takeovers):
        return False
    if change.package == "network":
        return change.option == "description"
    # A taken-over forwarding is a planned pair once the zone is renamed: only that differs.
    forwarding = change.label.startswith("forwarding ") and change.option in ("src", "dest")
    return change.option == "name" or forwarding


def _current(facts: DeviceFacts) -> dict[str, Package]:
    return {p.name: p for p in (facts.network, facts.firewall) if p is not None}


def _taken_over(
    site: SitePlan, facts: DeviceFacts, drop_foreign: bool = False
) -> tuple[dict[str, Package], list[Takeover]]:
    """What the device holds once its hand-made sections are taken over (issue 12)."""
    current = _current(facts)
    takeovers = plan_takeover(site, current, drop_foreign=drop_foreign)
    return taken_over(current, takeovers), takeovers


class OpenWrt:
    platform = Platform.OPENWRT
    device = safety.OPENWRT

    def render(
        self,
        plan: Plan,
        site: SitePlan,
        secrets: Secrets,
        facts: DeviceFacts | None,
        *,
        drop_foreign: bool = False,
    ) -> Rendered:
        if facts is None:
            return render_openwrt(plan, site, secrets, None)
        current, _ = _taken_over(site, facts, drop_foreign)
        link = next((x for x in facts.links if x.name == site.interface), None)
        mtu = link.mtu if link is not None else None
        return render_openwrt(plan, site, secrets, current, device_mtu=mtu)

    def takeover(self, site: SitePlan, held: Held) -> Command | None:
        """The uci batch that renames or removes hand-made sections meaning planned ones."""
        takeovers = plan_takeover(site, _current(held.facts), drop_foreign=held.drop_foreign)
        if not takeovers:
            return None
        return Command(UCI_BATCH, "hand-made sections were taken over", batch_text(takeovers))

    # --- read

    def read_paths(self, plan: Plan, site: SitePlan, secrets: Secrets) -> list[str]:
        return []  # UCI itself is read, in the facts

    def read_sections(self, site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
        option = shlex.quote(f"network.{site.interface}.private_key")
        pubkey = (
            "has wg || return 0\n"
            f"_k=$(uci -q get {option}) || return 0\n"
            '[ -n "$_k" ] && printf "%s\\n" "$_k" | wg pubkey'
        )
        cron = (
            f"grep -qxF {_WATCHDOG_LINE} /etc/crontabs/root 2>/dev/null && echo line\n"
            "/etc/init.d/cron enabled 2>/dev/null && echo enabled\nreturn 0"
        )
        # Every peer section of the interface, named or not (a hand-made one to take over):
        # `<public key> <sha256 of its preshared key, or ->`, hashed on the router.
        by_key = (
            "for _s in $(uci -q show network | "
            f"sed -n 's/^network\\.\\([^=]*\\)=wireguard_{site.interface}$/\\1/p'); do\n"
            '\t_k=$(uci -q get "network.$_s.public_key") || continue\n'
            '\t_p=$(uci -q get "network.$_s.preshared_key")\n'
            '\tif [ -n "$_p" ]; then echo "$_k $(printf %s "$_p" | sha256sum | cut -d" " -f1)"; '
            'else echo "$_k -"; fi\n'
            "done\n_p=\nreturn 0"
        )
        return [("sw_pubkey", pubkey), ("sw_cron", cron), ("sw_psk_keys", by_key)]

    def watchdog_missing(self, site: SitePlan, sections: Mapping[str, ScriptSection]) -> bool:
        found = sections["sw_cron"].stdout.split()
        return site.watchdog and not {"line", "enabled"} <= set(found)

    def missing_packages(self, site: SitePlan, facts: DeviceFacts) -> tuple[str, ...]:
        if facts.openwrt is None:
            raise ApplyError(
                "is not an OpenWrt router (no /etc/openwrt_release)",
                where=site.name,
                fix=f'set sites.{site.name}.platform = "linux" if it is a Linux host',
            )
        missing = tuple(p for p in site.packages() if p not in facts.packages)
        if missing and facts.package_manager is None:
            raise ApplyError(
                f"needs {', '.join(missing)} and has no package manager",
                where=site.name,
                fix="install WireGuard support on the router by hand (opkg or apk)",
            )
        return missing

    # --- keys

    def private_key_script(self, iface: str, *, replace: bool = False) -> str:
        option = shlex.quote(f"network.{iface}.private_key")
        section = shlex.quote(f"network.{iface}")
        # Only this option is committed: nothing else may be pending when the key is made.
        # The key through `printf` (the shell's own) into `uci batch`: on no command line.
        make = (
            f"uci -q get {section} >/dev/null || uci set {section}=interface; "
            f'key=$(wg genkey); printf "set %s=\'%s\'\\n" {option} "$key" | uci batch; '
            "key=; uci commit network"
        )
        if not replace:
            make = f'if [ -z "$(uci -q get {option})" ]; then {make}; fi'
        return f"set -e; umask 077; {_NEED_WG}{make}; uci get {option} | wg pubkey"

    def key_live(self, iface: str) -> str:
        q = shlex.quote
        option = q(f"network.{iface}.private_key")
        return f"uci get {option} | wg set {q(iface)} private-key {PSK_PIPE}"

    def psk_read(self, iface: str, peer: str) -> str:
        return f"uci -q get {shlex.quote(f'network.{peer_section(peer)}.preshared_key')}"

    def psk_write(self, iface: str, peers: Sequence[str]) -> str:
        # Every key read first (a short stdin writes none), then one uci batch for all: a
        # section made where there is none, then its key.
        reads = [f"read -r psk{n}" for n in range(len(peers))]
        lines = []
        for n, peer in enumerate(peers):
            section = f"network.{peer_section(peer)}"
            made = shlex.quote(f"set {section}=wireguard_{iface}")
            lines += [
                f"{{ uci -q get {shlex.quote(section)} >/dev/null || echo {made}; }}",
                f'printf "set %s=\'%s\'\\n" {shlex.quote(section + ".preshared_key")} "$psk{n}"',
            ]
        batch = "{ " + "; ".join(lines) + "; } | uci batch && uci commit network"
        return " && ".join([*reads, batch])

    # --- change

    def diff(self, site: SitePlan, held: Held, rendered: Rendered) -> Diff:
        current, takeovers = _taken_over(site, held.facts, held.drop_foreign)
        try:
            changes = planned_changes(current, rendered.text("uci-batch"))
        except SitewireError as exc:
            raise ApplyError(
                exc.message, where=site.name, fix="report this with 'uci export network'"
            ) from None
        # A secret can't be compared (the device hides it): unchanged unless the section is new.
        kept = tuple(c for c in changes if not (c.option in SECRET_OPTIONS and c.before == HIDDEN))
        lines = [t.shown(site.name) for t in takeovers]
        shown = [c for c in kept if not _naming(c, takeovers)]
        lines += describe(site.name, shown) if shown else []
        if held.watchdog_missing:
            lines.append(f"{site.name}: cron: wireguard_watchdog every minute")
        return Diff(tuple(lines), kept)

    def backup_paths(self, plan: Plan, site: SitePlan, secrets: Secrets) -> list[str]:
        return list(BACKUP)

    def recreates(
        self, site: SitePlan, held: Held, rendered: Rendered, changes: Sequence[Change]
    ) -> bool:
        iface = site.interface
        return held.facts.wg.interface(iface) is None or any(
            c.package == "network"
            and c.section == iface
            and (c.option is None or c.option in INTERFACE_OPTIONS)
            for c in changes
        )

    def revert(self, site: SitePlan, facts: DeviceFacts, env: str, *, hitless: bool) -> Revert:
        # `network reload` ignores peer sections (ref §1.5): it puts back policy rules only.
        iface = shlex.quote(site.interface)
        live, saved = f"ifup {iface}", None
        if hitless and facts.handler is Handler.SYNCCONF:
            live = f"ubus call network.interface.{iface} renew || ifup {iface}"
        elif hitless:
            live, saved = f"live_restore {iface} || ifup {iface}", site.interface
        out = ["/etc/init.d/network reload", live]
        out += ["/etc/init.d/firewall reload", "/etc/init.d/cron restart"]
        return Revert((*out, *tailscale_revert(site, facts)), saved)

    def fresh_handler(self, installed: Sequence[str]) -> bool:
        return "wireguard-tools" in installed

    def handler_probe(self, site: SitePlan, facts: DeviceFacts) -> str | None:
        if facts.wg.interface(site.interface) is not None:
            return None
        # Installed earlier without a network restart since (by hand, or by an apply that was
        # then killed or reverted): netifd scans proto handlers only at its start (ref §1.5).
        return "ubus call network get_proto_handlers"

    def handler_absent(self, output: str) -> bool:
        # Without the ubus method (older netifd) restart to be sure.
        return '"wireguard"' not in output

    def push(self, rendered: Rendered, held: Held) -> list[Push]:
        # On stdin, never in a file: no other local user can read or swap it (issue 9), and a
        # dropped session leaves no key behind in /tmp.
        return [Command(UCI_BATCH, "uci batch ran", rendered.text("uci-batch"))]

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
        facts = held.facts
        if handler_fresh:
            steps = [
                Step(
                    "/etc/init.d/network restart",
                    "WireGuard support was just installed; netifd loads handlers only at start",
                )
            ]
        else:
            steps = self._network_steps(site, held, rendered, changes)
        if any(c.package == "firewall" for c in changes):
            steps.append(Step("/etc/init.d/firewall reload", "firewall sections changed"))
        steps += common_steps(site, facts)
        if held.watchdog_missing:
            steps.append(
                Step(
                    f"grep -qxF {_WATCHDOG_LINE} /etc/crontabs/root 2>/dev/null || "
                    f"echo {_WATCHDOG_LINE} >> /etc/crontabs/root; "
                    "/etc/init.d/cron enable; /etc/init.d/cron restart",
                    "a DNS endpoint is dialled: wireguard_watchdog re-resolves it (cron)",
                )
            )
        return steps

    def _network_steps(
        self, site: SitePlan, held: Held, rendered: Rendered, changes: Sequence[Change]
    ) -> list[Step]:
        facts = held.facts
        iface = site.interface
        live = facts.wg.interface(iface)
        network = [c for c in changes if c.package == "network"]
        owned = peer_section("")
        if live is None or self.recreates(site, held, rendered, changes):
            why = "the interface is new" if live is None else "an interface-level option changed"
            return [Step(f"ifup {shlex.quote(iface)}", f"{why}: {iface} is (re-)created")]
        steps = []
        psks = self.held_psks(site, facts, changes)
        drift = live_drift(site, live, psks, held.keep_peers)
        if any(c.section.startswith(owned) for c in network) or drift:
            if facts.handler is Handler.SYNCCONF:
                steps.append(
                    Step(
                        f"ubus call network.interface.{iface} renew",
                        "peer changes, applied by the handler's renew (wg syncconf, no teardown)",
                    )
                )
            else:
                script = live_peer_script(
                    site, live, self.psk_read, psks, routes=True, keep=held.keep_peers
                )
                if script is not None:
                    steps.append(Step(script, "peer changes, applied live with wg set"))
        if any(c.section != iface and not c.section.startswith(owned) for c in network):
            steps.append(Step("/etc/init.d/network reload", "policy rules changed"))
        return steps

    def held_psks(
        self, site: SitePlan, facts: DeviceFacts, changes: Sequence[Change] = ()
    ) -> dict[str, bool | None] | None:
        """UCI says, once `changes` are committed: its secrets show as hidden, not absent."""
        if facts.network is None:
            return None
        out: dict[str, bool | None] = {}
        for peer in site.peers:
            name = peer_section(peer.name)
            section = facts.network.section(name)
            held = None if section is None else bool(section.options.get("preshared_key"))
            for c in changes:
                if (c.package, c.section, c.option) == ("network", name, "preshared_key"):
                    held = c.after is not None
            out[peer.name] = held
        return out

    # --- diagnose

    uses_uci = True
    uses_fw4 = True
    runs_netifd = True
    expects_openwrt_release = True
    reads_facts: frozenset[str] = frozenset(
        {"packages", "handler", "netifd", "uci_network", "uci_firewall", "uci_changes", "watchdog"}
    )
    start_interface: tuple[str, ...] = ("ifup {iface}",)
    reresolve = "or: ifup {iface}; the wireguard_watchdog cron job"
    fix_keepalive = (
        "uci set network.sw_peer_{peer}.persistent_keepalive='25' && uci commit network && "
        "wg set {iface} peer {key} persistent-keepalive 25"
    )
    fix_peer_key = (
        "uci set network.sw_peer_{peer}.public_key='{key}' && uci commit network && ifup {iface}"
    )
    fix_route = (
        "uci set network.sw_peer_{peer}.route_allowed_ips='1' && uci commit network && ifup {iface}"
    )
    restart_network: str | None = "/etc/init.d/network restart"
    peer_store = "/etc/config/network (its wireguard_{iface} section)"

    def wireguard_tools(self, facts: DeviceFacts) -> bool:
        return "wireguard-tools" in facts.packages

    def render_onto(
        self, plan: Plan, site: SitePlan, secrets: Secrets, current: Mapping[str, Package] | None
    ) -> Rendered:
        return render_openwrt(plan, site, secrets, current)


DRIVER = OpenWrt()
