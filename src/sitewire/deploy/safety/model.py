"""The revert switch's vocabulary: devices, scripts, commit states and its errors. Pure."""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sitewire.deploy.remote import RemoteResult, Target
from sitewire.errors import SitewireError

BASE = "/tmp/sitewire"
PIDFILE = "/var/run/sitewire-revert.pid"
# A rollback waits this long for the revert (restore plus reloads) to finish on the device.
ROLLBACK_WAIT = 60


class Launcher(StrEnum):
    """How the timer is detached from the SSH session."""

    START_STOP_DAEMON = "start-stop-daemon"  # OpenWrt: BusyBox has no setsid or nohup
    SETSID = "setsid"  # Linux (util-linux); a double fork so init adopts it


class Boot(StrEnum):
    """How the boot hook is started (deploy/safety/boot.py)."""

    RC_D = "rc.d"  # OpenWrt: /etc/init.d/sitewire, linked into /etc/rc.d
    SYSTEMD = "systemd"  # Linux: a systemd unit, or an /etc/rcS.d script without systemd


@dataclass(frozen=True, slots=True)
class Device:
    """Where the switch lives: unit tests point `root` at a temp dir and `shell` at busybox."""

    launcher: Launcher = Launcher.START_STOP_DAEMON
    root: str = ""
    shell: str = "/bin/sh"
    boot: Boot = Boot.RC_D


OPENWRT = Device()
LINUX = Device(Launcher.SETSID, boot=Boot.SYSTEMD)


@dataclass(frozen=True, slots=True)
class SafetyScript:
    """A script for the device's `sh -s`; the token on the command line marks its process."""

    verb: str
    token: str | None
    text: str

    @property
    def argv(self) -> tuple[str, ...]:
        return ("-s", "--", f"sitewire-{self.verb}", *([self.token] if self.token else []))

    @property
    def command(self) -> str:
        return shlex.join(("sh", *self.argv))


class Outcome(StrEnum):
    PENDING = "pending"  # armed (or being armed), timer running
    CONFIRMED = "confirmed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    ABANDONED = "abandoned"  # never armed, or its timer died before deciding
    BOOT_REVERTED = "boot-reverted"  # the device restarted inside the window; its boot put it back
    UNKNOWN = "unknown"  # no such commit on the device (a reboot empties /tmp)


@dataclass(frozen=True, slots=True)
class PendingCommit:
    token: str
    seconds_left: int | None  # None while the commit is still being armed


@dataclass(frozen=True, slots=True)
class SwitchStatus:
    pending: PendingCommit | None
    stale_lock: str | None  # token of a lock nobody holds; the next arm clears it
    commits: dict[str, Outcome]


class SafetyError(SitewireError):
    """The router's revert switch refused or failed."""


class CommitInProgress(SafetyError):
    """Another commit holds the device's lock."""

    def __init__(self, message: str, *, where: str, fix: str, token: str) -> None:
        super().__init__(message, where=where, fix=fix)
        self.token = token


class Remote(Protocol):
    """What the helpers need of a connection: `sitewire.deploy.ssh.Session`, or a local shell."""

    target: Target

    async def run(self, command: str, stdin: str | None = None) -> RemoteResult: ...


def new_token() -> str:
    return secrets.token_hex(8)
