"""The on-device dead-man switch: back up, arm a detached revert timer, confirm or roll back.

NAPALM's commit-confirm vocabulary (`commit(revert_in)`, `confirm`, `rollback`,
`has_pending_commit`), carried out by the router itself, because the change being applied can
cut the SSH connection the controller would roll back over (DESIGN.md decision 5). rpcd's
rollback is not used: a reload of rpcd or a reboot forgets it (reference §3.1).

Everything a device runs is a `SafetyScript` value (POSIX sh for BusyBox ash and dash); the
async helpers at the bottom are the one edge that sends them over a `Session`.

On the device, for commit <token>:

    /tmp/sitewire/lock              symlink -> pending-<token>: one pending commit per device
    /tmp/sitewire/<token>/          manifest, files/<n>, sums, owner, deadline, revert.sh, log
                          decision  symlink -> confirm | revert: whoever makes it first wins
                          confirmed, reverted   what happened, for status and people
    /var/run/sitewire-revert.pid    the detached timer

A lock is held while the shell that took it or the timer of its commit runs (pid alive and
its command line names the token); otherwise it is stale and the next arm clears it.

OpenWrt detaches with BusyBox `start-stop-daemon -b` (no setsid, nohup or timeout there),
Linux with a `setsid` double fork. Hosts running systemd could use
`systemd-run --on-active=<s> /bin/sh .../revert.sh` instead; the double fork is used on every
Linux host so that the lab's (no systemd running) and real hosts run the same code.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sitewire import strict
from sitewire.deploy.ssh import RemoteResult, Target
from sitewire.errors import SitewireError
from sitewire.spec.model import Platform

BASE = "/tmp/sitewire"
PIDFILE = "/var/run/sitewire-revert.pid"
# A rollback waits this long for the revert (restore plus reloads) to finish on the device.
ROLLBACK_WAIT = 60

_TOKEN = re.compile(r"[0-9a-f]{8,64}")
_PATH = re.compile(r"/[A-Za-z0-9._+@-]+(?:/[A-Za-z0-9._+@-]+)*")
_EOF = "SITEWIRE_REVERT_EOF"


class Launcher(StrEnum):
    """How the timer is detached from the SSH session."""

    START_STOP_DAEMON = "start-stop-daemon"  # OpenWrt: BusyBox has no setsid or nohup
    SETSID = "setsid"  # Linux (util-linux); a double fork so init adopts it


@dataclass(frozen=True, slots=True)
class Device:
    """Where the switch lives: unit tests point `root` at a temp dir and `shell` at busybox."""

    launcher: Launcher = Launcher.START_STOP_DAEMON
    root: str = ""
    shell: str = "/bin/sh"


OPENWRT = Device()
LINUX = Device(Launcher.SETSID)


def device_for(platform: Platform) -> Device:
    return OPENWRT if platform is Platform.OPENWRT else LINUX


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
    UNKNOWN = "unknown"  # no such commit on the device (a reboot empties /tmp)


_OUTCOMES = frozenset(o.value for o in Outcome)


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


# --- the scripts -------------------------------------------------------------------------------

# now: centiseconds of uptime, so NTP setting a fresh router's clock cannot move a deadline.
_LIB = r"""
fail() { echo "fail $*"; exit 3; }
now() { tr -d . < /proc/uptime | cut -d' ' -f1; }
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') $T $*" >> "$D/log"; }
nap() { sleep 0.1 2>/dev/null || sleep 1; }
digest() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$1"; else md5sum < "$1"; fi |
		cut -d' ' -f1
}
alive() {
	[ -n "$1" ] && [ -n "$2" ] && kill -0 "$1" 2>/dev/null &&
		tr '\000' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -q -F -e "$2"
}
lock_token() { lk=$(readlink "$L" 2>/dev/null) && echo "${lk#pending-}"; }
decision() { readlink "$S/$1/decision" 2>/dev/null; }
running() {
	alive "$(cat "$S/$1/owner" 2>/dev/null)" "$1" || alive "$(cat "$P" 2>/dev/null)" "$1"
}
left() {
	dl=$(cat "$S/$1/deadline" 2>/dev/null) || { echo -; return; }
	sl=$(((dl - $(now)) / 100))
	[ "$sl" -gt 0 ] || sl=0
	echo "$sl"
}
release() { [ "$(lock_token)" = "$T" ] && rm -f "$L"; return 0; }
# A directory, not a symlink, owned by this user and writable by nobody else: what another
# local user made first could hold a revert.sh of theirs, or a .guard pointing at /etc/passwd.
# One of ours left 0755 (older sitewire, a hand-run commands.sh) is made 0700 again.
private_dir() {
	[ -d "$1" ] && [ ! -L "$1" ] || return 1
	set -- "$1" $(ls -ldn "$1" 2>/dev/null)
	[ "${4:-}" = "$(id -u 2>/dev/null || echo 0)" ] || return 1
	case ${2:-} in d????-??-? | d????-??-?.) ;; *) return 1 ;; esac
	chmod 700 "$1"
}
"""

_LAUNCH = {
    Launcher.START_STOP_DAEMON: r"""
launch() {
	command -v start-stop-daemon >/dev/null 2>&1 || fail launch start-stop-daemon not found
	mkdir -p "${P%/*}"
	rm -f "$P"
	start-stop-daemon -S -b -m -p "$P" -x "$SH" -- "$S/$1/revert.sh" ||
		fail launch start-stop-daemon failed
	await_timer "$1"
}
""",
    Launcher.SETSID: r"""
launch() {
	command -v setsid >/dev/null 2>&1 || fail launch setsid not found
	mkdir -p "${P%/*}"
	rm -f "$P"
	(setsid "$SH" "$S/$1/revert.sh" </dev/null >/dev/null 2>&1 &)
	await_timer "$1"
}
""",
}

# start-stop-daemon -b returns before its child has written the pidfile; the timer writes its
# own pid too, so both launchers end here. A timer told to revert at once may be done already.
_AWAIT = r"""
await_timer() {
	tries=0
	until alive "$(cat "$P" 2>/dev/null)" "$1" || [ -L "$S/$1/decision" ]; do
		tries=$((tries + 1))
		[ "$tries" -le 50 ] || fail launch the revert timer did not start
		nap
	done
}
"""

_TAKE_LOCK = r"""
clear_stale() {
	if [ "$(decision "$1")" = revert ] && [ ! -e "$S/$1/reverted" ]; then
		# its timer died half-way through a revert: finish that before anything else
		launch "$1"
		fail busy "$1" 0 revert
	fi
	cleared=${1:--}
	rm -f "$L"
}
take_lock() {
	if [ -L "$L" ]; then
		lt=$(lock_token)
		if [ -n "$lt" ] && running "$lt"; then
			fail busy "$lt" "$(left "$lt")" "$(decision "$lt")"
		fi
		clear_stale "$lt"
	fi
	mkdir "$D" 2>/dev/null || fail space cannot create "$D"
	echo $$ > "$D/owner" || { rm -rf "$D"; fail space cannot write "$D"; }
	ln -s "pending-$T" "$L" 2>/dev/null || { rm -rf "$D"; fail busy "$(lock_token)" - -; }
	[ -z "${cleared:-}" ] || log "took the stale lock of commit $cleared: nobody held it"
}
guarded() {
	if command -v flock >/dev/null 2>&1; then
		# best effort: the symlink lock is atomic without it, this only orders stale takeovers
		{ flock -x 9 2>/dev/null; "$@"; } 9>"$S/.guard"
	else
		"$@"
	fi
}
prune() {
	for old in "$S"/*; do
		[ -f "$old/manifest" ] && [ "$old" != "$D" ] && rm -rf "$old"
	done
	return 0
}
give_up() { rm -rf "$D"; release; fail "$@"; }
"""

_BACKUP = r"""
if command -v uci >/dev/null 2>&1; then
	changes=$(uci changes 2>&1) || fail uci "$changes"
	[ -z "$changes" ] || fail uci-changes $(echo "$changes" | sed 's/^-//; s/[.=].*//' | sort -u)
fi
mkdir -p "$S" 2>/dev/null || fail space cannot create "$S"
private_dir "$S" || fail unsafe "$S"
[ ! -e "$D" ] || fail exists "$T"
guarded take_lock
prune
mkdir "$D/files" || give_up space cannot create "$D/files"
n=0
for p in @PATHS@; do
	n=$((n + 1))
	if [ -d "$R$p" ]; then
		give_up notfile "$p"
	elif [ -e "$R$p" ] || [ -L "$R$p" ]; then
		cp -a "$R$p" "$D/files/$n" 2>/dev/null || give_up space "$p"
		h=$(digest "$D/files/$n")
		[ -n "$h" ] && [ "$h" = "$(digest "$R$p")" ] || give_up space "$p"
		echo "$n $h" >> "$D/sums" || give_up space "$p"
		echo "$n present $p" >> "$D/manifest" || give_up space "$p"
	else
		echo "$n absent $p" >> "$D/manifest" || give_up space "$p"
	fi
done
log "backed up $n files"
echo "ok backup $T $n"
"""

_ARM = r"""
[ "$(lock_token)" = "$T" ] && [ -f "$D/manifest" ] || fail lost "$T"
if ! cat > "$D/revert.sh.new" <<'@EOF@'
@REVERT@
@EOF@
then
	give_up space cannot write "$D/revert.sh"
fi
mv -f "$D/revert.sh.new" "$D/revert.sh" || give_up space cannot write "$D/revert.sh"
echo $(($(now) + @SECONDS@00)) > "$D/deadline" || give_up space cannot write "$D/deadline"
launch "$T"
log "armed: reverts in @SECONDS@ s unless confirmed"
echo "ok armed $T @SECONDS@"
"""

_REVERT = r"""
trap '' HUP INT PIPE
command exec </dev/null >>"$D/log" 2>&1 || exec </dev/null >/dev/null 2>&1
echo $$ > "$P.$$" && mv -f "$P.$$" "$P"
restore() {
	done_ok=0
	done_bad=0
	while read -r n what p; do
		case $what in
		present)
			mkdir -p "$(dirname "$R$p")"
			rm -f "$R$p.sitewire-revert"
			if cp -a "$D/files/$n" "$R$p.sitewire-revert" &&
				mv -f "$R$p.sitewire-revert" "$R$p" &&
				[ "$(digest "$R$p")" = "$(sed -n "s/^$n //p" "$D/sums")" ]; then
				done_ok=$((done_ok + 1))
			else
				log "cannot restore $p"
				done_bad=$((done_bad + 1))
			fi
			;;
		absent)
			if rm -f "$R$p"; then
				done_ok=$((done_ok + 1))
			else
				log "cannot remove $p"
				done_bad=$((done_bad + 1))
			fi
			;;
		esac
	done < "$D/manifest"
	log "restored $done_ok of $((done_ok + done_bad)) files byte for byte"
}
until [ -e "$D/now" ] || [ "$(now)" -ge "$(cat "$D/deadline" 2>/dev/null || echo 0)" ]; do
	sleep 1
done
if ! ln -s revert "$D/decision" 2>/dev/null && [ "$(decision "$T")" != revert ]; then
	log "timer ends: $(decision "$T")ed"
	exit 0
fi
[ -e "$D/now" ] && log "reverting: rollback requested" || log "reverting: not confirmed in time"
restore
umask 022
@RELOAD@
touch "$D/reverted"
log "reverted"
rm -rf "$D/files"
release
[ "$(cat "$P" 2>/dev/null)" = $$ ] && rm -f "$P"
exit 0
"""

_CONFIRM = r"""
[ -f "$D/manifest" ] || fail unknown "$T"
if ! ln -s confirm "$D/decision" 2>/dev/null && [ "$(decision "$T")" != confirm ]; then
	if [ -e "$D/reverted" ]; then fail reverted "$T"; else fail reverting "$T"; fi
fi
touch "$D/confirmed"
timer=$(cat "$P" 2>/dev/null)
if alive "$timer" "$T"; then
	kill "$timer" 2>/dev/null
	rm -f "$P"
fi
rm -rf "$D/files" "$D/revert.sh"
release
log "confirmed"
echo "ok confirmed $T"
"""

_ROLLBACK = r"""
[ -f "$D/manifest" ] || fail unknown "$T"
[ "$(decision "$T")" = confirm ] && fail confirmed "$T"
if [ ! -e "$D/reverted" ]; then
	[ -f "$D/revert.sh" ] || fail unarmed "$T"
	touch "$D/now"
	alive "$(cat "$P" 2>/dev/null)" "$T" || guarded launch "$T"
	waited=0
	until [ -e "$D/reverted" ]; do
		waited=$((waited + 1))
		[ "$waited" -le @WAIT@ ] || { echo "ok reverting $T"; exit 0; }
		sleep 1
	done
fi
echo "ok reverted $T"
"""

_STATUS = r"""
if [ -L "$L" ]; then
	lt=$(lock_token)
	if [ -n "$lt" ] && running "$lt"; then
		echo "lock pending $lt $(left "$lt")"
	else
		echo "lock stale ${lt:--}"
	fi
else
	echo "lock none"
fi
for d in "$S"/*; do
	[ -f "$d/manifest" ] || continue
	t=${d##*/}
	case $(decision "$t") in
	confirm) echo "commit $t confirmed" ;;
	revert) [ -e "$d/reverted" ] && echo "commit $t reverted" || echo "commit $t reverting" ;;
	*) running "$t" && echo "commit $t pending" || echo "commit $t abandoned" ;;
	esac
done
echo "ok status"
"""


def _check_token(token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"revert token {token!r} is not 8-64 lowercase hex digits")
    return token


def _check_paths(paths: Sequence[str]) -> list[str]:
    if not paths:
        raise ValueError("nothing to back up")
    for path in paths:
        if not _PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
            raise ValueError(f"{path!r} is not a plain absolute path")
    if len(set(paths)) != len(paths):
        raise ValueError(f"duplicate paths in {list(paths)}")
    return list(paths)


def _check_reload(commands: Sequence[str]) -> list[str]:
    for command in commands:
        if not command.strip() or "\n" in command or _EOF in command:
            raise ValueError(f"reload command {command!r} must be one non-empty line")
    return list(commands)


def _prelude(device: Device, token: str | None) -> str:
    root = shlex.quote(device.root)
    lines = [
        "umask 077",
        f"R={root}",
        f'S="$R"{BASE}',
        'L="$S/lock"',
        f'P="$R"{PIDFILE}',
        f"SH={shlex.quote(device.shell)}",
    ]
    if token is not None:
        lines += [f"T={token}", 'D="$S/$T"']
    return "\n".join(lines) + "\n"


def _script(verb: str, token: str | None, device: Device, *parts: str) -> SafetyScript:
    # One compound command, parsed whole before any of it runs: a script cut short by a dropped
    # connection runs nothing. Its stdin closed: the script itself arrives on stdin (`sh -s`).
    body = "".join(parts).strip("\n")
    text = (
        f"# sitewire {verb}{f' {token}' if token else ''}\n{{\n"
        + _prelude(device, token)
        + _LIB
        + _AWAIT
        + _LAUNCH[device.launcher]
        + _TAKE_LOCK
        + f'main() {{\n{body}\n}}\nmain "$@" </dev/null\n}}\n'
    )
    return SafetyScript(verb, token, text)


def revert_text(token: str, reload_cmds: Sequence[str], device: Device = OPENWRT) -> str:
    """The detached timer, /tmp/sitewire/<token>/revert.sh: wait, then revert unless confirmed."""
    token = _check_token(token)
    reload_lines = []
    for command in _check_reload(reload_cmds):
        reload_lines.append(f"log {shlex.quote(f'[#] {command}')}")
        reload_lines.append(f'({command}) || log "exit $?"')
    return (
        f"#!/bin/sh\n# sitewire: revert commit {token} unless it is confirmed in time\n"
        + _prelude(device, token)
        + _LIB
        + _REVERT.replace("@RELOAD@", "\n".join(reload_lines) or ":")
    )


def backup_script(token: str, paths: Sequence[str], device: Device = OPENWRT) -> SafetyScript:
    """Take the device's lock and copy `paths` (noting the absent ones) to /tmp/sitewire/<token>."""
    return _script("backup", _check_token(token), device, _backup_body(paths))


def arm_script(
    token: str, seconds: int, reload_cmds: Sequence[str], device: Device = OPENWRT
) -> SafetyScript:
    """Write revert.sh and start it detached; the lock must be held by `token` (backup first)."""
    token = _check_token(token)
    return _script("arm", token, device, _arm_body(token, seconds, reload_cmds, device))


def backup_and_arm_script(
    token: str,
    paths: Sequence[str],
    seconds: int,
    reload_cmds: Sequence[str],
    device: Device = OPENWRT,
) -> SafetyScript:
    """Both in one shell, so the lock is never held without a live owner or timer."""
    token = _check_token(token)
    arm_body = _arm_body(token, seconds, reload_cmds, device)
    return _script("arm", token, device, _backup_body(paths), arm_body)


def confirm_script(token: str, device: Device = OPENWRT) -> SafetyScript:
    """Decide for the new state: the timer is stopped, the backup removed, the lock released."""
    return _script("confirm", _check_token(token), device, _CONFIRM)


def rollback_script(
    token: str, device: Device = OPENWRT, wait: int = ROLLBACK_WAIT
) -> SafetyScript:
    """Revert now, through the detached timer (so a reload that cuts SSH cannot stop it)."""
    body = _ROLLBACK.replace("@WAIT@", str(wait))
    return _script("rollback", _check_token(token), device, body)


def status_script(device: Device = OPENWRT) -> SafetyScript:
    return _script("status", None, device, _STATUS)


def _backup_body(paths: Sequence[str]) -> str:
    return _BACKUP.replace("@PATHS@", " ".join(shlex.quote(p) for p in _check_paths(paths)))


def _arm_body(token: str, seconds: int, reload_cmds: Sequence[str], device: Device) -> str:
    if seconds < 1:
        raise ValueError(f"revert timer of {seconds} s: must be at least 1 s")
    revert = revert_text(token, reload_cmds, device).rstrip("\n")
    return (
        _ARM.replace("@REVERT@", revert).replace("@EOF@", _EOF).replace("@SECONDS@", str(seconds))
    )


# --- the answers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """The last `ok ...` or `fail <code> ...` line of a script's output, split in words."""

    ok: bool
    words: tuple[str, ...]


def parse_answer(stdout: str) -> Answer | None:
    for line in reversed(stdout.splitlines()):
        words = tuple(line.split())
        if words and words[0] in ("ok", "fail"):
            return Answer(words[0] == "ok", words[1:])
    return None


def parse_status(stdout: str) -> SwitchStatus:
    pending: PendingCommit | None = None
    stale: str | None = None
    commits: dict[str, Outcome] = {}
    for line in stdout.splitlines():
        words = line.split()
        match words:
            case ["lock", "pending", token, left]:
                pending = PendingCommit(token, strict.digits(left))
            case ["lock", "stale", token]:
                stale = None if token == "-" else token
            case ["commit", token, state] if state in _OUTCOMES:
                commits[token] = Outcome(state)
    return SwitchStatus(pending, stale, commits)


def error_for(answer: Answer | None, result: RemoteResult, site: str, step: str) -> SafetyError:
    """The one-line error for a refused or failed step; `answer` None means nonsense came back."""
    if answer is None:
        detail = result.stderr.strip() or result.stdout.strip() or f"exit {result.rc}"
        return SafetyError(
            f"unexpected answer to {step}: {detail.splitlines()[-1]!r}",
            where=site,
            fix=f"check that the router has a POSIX sh with cp, mkdir, readlink; see {BASE}/*/log",
        )
    code, rest = (answer.words[0], answer.words[1:]) if answer.words else ("", ())
    if code == "busy":
        token = rest[0] if rest else "?"
        left = rest[1] if len(rest) > 1 else "-"
        what = rest[2] if len(rest) > 2 else ""
        if what == "revert":
            state = "being reverted"
        elif strict.digits(left) is not None:
            state = f"reverts in {left} s"
        else:
            state = "being armed"
        return CommitInProgress(
            f"another apply is in progress (commit {token}, {state})",
            where=site,
            fix="wait for it to finish, or end it with: sitewire confirm / sitewire rollback",
            token=token,
        )
    text = " ".join(rest)
    messages = {
        "uci-changes": (
            f"uncommitted uci changes in {', '.join(repr(p) for p in rest)}",
            "look at them with 'uci changes' on the router, then 'uci commit' or 'uci revert'",
        ),
        "uci": (f"'uci changes' failed: {text}", "check the router's uci and /etc/config"),
        "space": (
            f"cannot back up {text}: no space or no write access in {BASE}",
            "free space in the router's /tmp; check with: df -h /tmp",
        ),
        "unsafe": (
            f"{text} is not a directory only this user can write (a symlink, another owner, or"
            " writable by others), so nothing was changed",
            f"look with 'ls -ld {text}' on the router; if nothing of yours is in it, remove it"
            " and run apply again",
        ),
        "notfile": (f"{text!r} is a directory, not a file", "report this as a sitewire bug"),
        "exists": (f"commit {text} already exists", "run again (a new token is drawn)"),
        "launch": (
            f"the revert timer did not start ({text})",
            "the router needs start-stop-daemon (BusyBox) or setsid (util-linux)",
        ),
        "lost": (
            f"commit {text} does not hold the lock (backup first, or a stale lock was taken)",
            "run apply again",
        ),
        "unknown": (
            f"no commit {text} on the router",
            "run 'sitewire status'; a reboot empties /tmp, so the router keeps what it has",
        ),
        "reverted": (
            f"commit {text} was already reverted by the router's timer",
            "the router is back in its old state; run apply again",
        ),
        "reverting": (
            f"commit {text} is being reverted by the router's timer",
            "wait for the revert to finish, then run apply again",
        ),
        "confirmed": (
            f"commit {text} is already confirmed",
            "apply the previous spec to undo it",
        ),
        "unarmed": (
            f"commit {text} was never armed, so nothing was changed",
            "run apply again; it clears the stale lock",
        ),
    }
    message, fix = messages.get(code, (f"{step} failed: {code} {text}".strip(), "see the log"))
    return SafetyError(message, where=site, fix=fix)


async def _run(session: Remote, script: SafetyScript, *ok: str) -> Answer:
    result = await session.run(script.command, script.text)
    answer = parse_answer(result.stdout)
    if answer is None or not answer.ok or answer.words[0] not in ok:
        raise error_for(answer, result, session.target.name, script.verb)
    return answer


async def arm(
    session: Remote,
    token: str,
    paths: Sequence[str],
    seconds: int,
    reload_cmds: Sequence[str],
    *,
    device: Device = OPENWRT,
) -> None:
    """commit(revert_in=seconds): back up `paths` and start the timer that restores them."""
    await _run(session, backup_and_arm_script(token, paths, seconds, reload_cmds, device), "armed")


async def confirm(session: Remote, token: str, *, device: Device = OPENWRT) -> None:
    await _run(session, confirm_script(token, device), "confirmed")


async def rollback(session: Remote, token: str, *, device: Device = OPENWRT) -> Outcome:
    """REVERTED, or REVERTING when the reloads outlast the wait (the timer finishes alone).

    A reload that cuts this connection raises RemoteError; the revert goes on regardless.
    """
    answer = await _run(session, rollback_script(token, device), "reverted", "reverting")
    return Outcome.REVERTED if answer.words[:1] == ("reverted",) else Outcome.REVERTING


async def status(session: Remote, *, device: Device = OPENWRT) -> SwitchStatus:
    script = status_script(device)
    result = await session.run(script.command, script.text)
    answer = parse_answer(result.stdout)
    if answer is None or not answer.ok:
        raise error_for(answer, result, session.target.name, "status")
    return parse_status(result.stdout)


async def pending(session: Remote, *, device: Device = OPENWRT) -> PendingCommit | None:
    """has_pending_commit: the commit holding the device's lock, if its owner or timer runs."""
    return (await status(session, device=device)).pending


async def outcome(session: Remote, token: str, *, device: Device = OPENWRT) -> Outcome:
    return (await status(session, device=device)).commits.get(token, Outcome.UNKNOWN)
