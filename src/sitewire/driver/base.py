"""What sitewire needs to know of a platform, as one interface: NAPALM's driver idea.

Render, deploy and diagnose ask a `Driver` for every platform string (where keys live, which
files a change touches, the commands that make it live, what the revert timer runs); each
platform is one module of mostly data beside this one. Pure: nothing here reaches a device.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sitewire.spec.model import Platform

if TYPE_CHECKING:
    from sitewire.deploy.diff import Change
    from sitewire.deploy.live import Step
    from sitewire.deploy.safety import Device
    from sitewire.diagnose.facts import DeviceFacts
    from sitewire.diagnose.parse import ScriptSection
    from sitewire.plan import Plan
    from sitewire.plan.model import SitePlan
    from sitewire.render.model import Rendered, Secrets
    from sitewire.uci import Package


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a push. `stdin` may hold secrets: it is never logged."""

    command: str
    what: str
    stdin: str | None = None


@dataclass(frozen=True, slots=True)
class PutFile:
    path: str
    text: str
    mode: int


Push = Command | PutFile


@dataclass(frozen=True, slots=True)
class Diff:
    """What a site's files would change: lines for a person, and the uci changes (OpenWrt)."""

    lines: tuple[str, ...]
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class Held:
    """What the device holds before a change, as the driver needs it."""

    facts: DeviceFacts
    files: Mapping[str, str | None]  # device path -> text with keys hidden; None: absent
    watchdog_missing: bool
    # Public keys of running peers the plan does not know and sitewire leaves alone (issue 12):
    # a peer someone added for themselves. A wrong key or a retired node is not among them.
    keep_peers: frozenset[str] = frozenset()
    drop_foreign: bool = False  # --remove-foreign: and their configuration goes too


@dataclass(frozen=True, slots=True)
class Revert:
    """What the revert timer runs after restoring the files, and the interface whose running
    peers and routes the backup saves for `live_restore` in those commands (None: not needed:
    the commands re-create the interface, or the platform's handler puts its peers back)."""

    commands: tuple[str, ...]
    live: str | None = None


_INSTALL = {
    "opkg": "opkg update && opkg install {}",
    "apk": "apk update && apk add {}",
    "apt-get": "DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
    "dnf": "dnf install -y {}",
    "yum": "yum install -y {}",
    "pacman": "pacman -S --noconfirm {}",
    "zypper": "zypper --non-interactive install {}",
}


def install_command(manager: str, packages: Sequence[str]) -> str:
    """The package manager's install of `packages`, its index refreshed first where it has one."""
    return _INSTALL[manager].format(" ".join(shlex.quote(p) for p in packages))


class Driver(Protocol):
    platform: Platform
    device: Device  # how the revert timer is detached

    # --- render
    def render(
        self,
        plan: Plan,
        site: SitePlan,
        secrets: Secrets,
        facts: DeviceFacts | None,
        *,
        drop_foreign: bool = False,
    ) -> Rendered: ...

    # --- read: what the device holds
    def read_paths(self, plan: Plan, site: SitePlan, secrets: Secrets) -> list[str]:
        """Files read back before a change, to compare with what will be pushed."""
        ...

    def read_sections(self, site: SitePlan, paths: Sequence[str]) -> list[tuple[str, str]]:
        """Fact sections of this platform: `sw_pubkey` (the live public key) and the rest."""
        ...

    def watchdog_missing(self, site: SitePlan, sections: Mapping[str, ScriptSection]) -> bool: ...

    def missing_packages(self, site: SitePlan, facts: DeviceFacts) -> tuple[str, ...]:
        """What must be installed first; ApplyError when it cannot be."""
        ...

    # --- keys
    def private_key_script(self, iface: str, *, replace: bool = False) -> str:
        """Make the device's key unless it has one (`replace`: make a new one whatever it has);
        print its public key."""
        ...

    def key_live(self, iface: str) -> str:
        """The command giving the running interface the private key its files now hold, on
        a pipe (never a command line): every peer handshakes anew, no tunnel is re-created."""
        ...

    def psk_read(self, iface: str, peer: str) -> str:
        """The command printing the preshared key held for `peer` (nothing, or a failure and
        a message on stderr, if none)."""
        ...

    def psk_write(self, iface: str, peers: Sequence[str]) -> str:
        """The command storing a preshared key for each of `peers`, read from its stdin, one
        line each in the same order; it fails if any is not stored."""
        ...

    # --- change
    def diff(self, site: SitePlan, held: Held, rendered: Rendered) -> Diff: ...

    def backup_paths(self, plan: Plan, site: SitePlan, secrets: Secrets) -> list[str]: ...

    def recreates(
        self, site: SitePlan, held: Held, rendered: Rendered, changes: Sequence[Change]
    ) -> bool:
        """Whether making the change live re-creates the interface (it does not run, or an
        interface-level setting changes): every tunnel through it re-handshakes. False: a
        peers-only change, made and reverted live."""
        ...

    def revert(self, site: SitePlan, facts: DeviceFacts, env: str, *, hitless: bool) -> Revert:
        """What the revert timer runs after restoring the files. `hitless`: the change was
        peers-only (see `recreates`), so the old peers go back live, not by re-creating."""
        ...

    def takeover(self, site: SitePlan, held: Held) -> Command | None:
        """What makes the device's hand-made configuration sitewire's (UCI sections renamed,
        a wg-quick file's inline keys moved where sitewire keeps them), run under the revert
        timer before the keys are shared; None when there is nothing to take over (issue 12).
        `site` carries the keys the devices really hold."""
        ...

    def fresh_handler(self, installed: Sequence[str]) -> bool:
        """Whether installing `installed` needs the network restarted to load a handler."""
        ...

    def handler_probe(self, site: SitePlan, facts: DeviceFacts) -> str | None:
        """A command whose output says whether the running network stack lacks the handler
        (installed by hand since it started); None when there is nothing to ask."""
        ...

    def handler_absent(self, output: str) -> bool:
        """From the probe's output: the handler is not loaded."""
        ...

    def push(self, rendered: Rendered, held: Held) -> list[Push]:
        """The rendered configuration onto the device; the first item is guarded."""
        ...

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
        """After the push: only what makes the change live (DESIGN.md decision 6)."""
        ...

    def held_psks(
        self, site: SitePlan, facts: DeviceFacts, changes: Sequence[Change] = ()
    ) -> dict[str, bool | None] | None:
        """Which peers the device holds a preshared key for (None: it cannot be told)."""
        ...

    # --- diagnose
    uses_uci: bool  # the configuration is UCI's: doctor reads it, quotes it, counts pending changes
    uses_fw4: bool  # firewall4 zones, forwardings and rules: doctor's firewall checks apply
    runs_netifd: bool  # netifd runs the interface and says why it is down
    expects_openwrt_release: bool  # /etc/openwrt_release must be there (else: must not)
    reads_facts: frozenset[str]  # sections of FACT_SECTIONS read only on this platform
    start_interface: tuple[str, ...]  # what brings `{iface}` up, the first preferred
    reresolve: str  # doctor's words for what re-resolves the names `{iface}` dials
    # The fixes doctor quotes, by hand; `{iface}`, `{peer}` (a site's name), `{key}` filled in.
    fix_keepalive: str  # the peer `{key}` of `{iface}` gets persistent keepalive 25
    fix_peer_key: str  # `{peer}`'s public key on `{iface}` becomes `{key}`
    fix_route: str  # `{iface}` routes every prefix of `{peer}`'s AllowedIPs
    restart_network: str | None  # what reloads the proto handlers (None: no such thing)
    peer_store: str  # where `{iface}`'s peers are kept, for a person to edit

    def wireguard_tools(self, facts: DeviceFacts) -> bool:
        """Whether the device has WireGuard's tools (`wg`)."""
        ...

    def render_onto(
        self, plan: Plan, site: SitePlan, secrets: Secrets, current: Mapping[str, Package] | None
    ) -> Rendered:
        """`render`, given the UCI packages the device holds by name (None: not read)."""
        ...
