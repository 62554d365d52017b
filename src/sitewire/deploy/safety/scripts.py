"""The switch's POSIX sh scripts (BusyBox ash and dash), as values; nothing is run here."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from sitewire.deploy.safety import boot
from sitewire.deploy.safety.live import RESTORE as LIVE_RESTORE
from sitewire.deploy.safety.live import snapshot_text
from sitewire.deploy.safety.model import (
    BASE,
    OPENWRT,
    PIDFILE,
    ROLLBACK_WAIT,
    Device,
    Launcher,
    SafetyScript,
)

_TOKEN = re.compile(r"[0-9a-f]{8,64}")
_PATH = re.compile(r"/[A-Za-z0-9._+@-]+(?:/[A-Za-z0-9._+@-]+)*")
_EOF = "SITEWIRE_REVERT_EOF"

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
	# under the lock, no other commit is pending: a flash backup left is one whose confirm
	# or revert was cut off before it could remove it
	for old in "$F"/*; do
		[ -e "$old" ] && [ "$old" != "$F/$T" ] && rm -rf "$old"
	done
	return 0
}
give_up() { rm -rf "$D" "$F/$T.new" "$F/$T"; release; fail "$@"; }
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
@SNAPSHOT@
echo "ok backup $T $n"
"""

_ARM = r"""
[ "$(lock_token)" = "$T" ] && [ -f "$D/manifest" ] || fail lost "$T"
persist || give_up flash "$F"
@HOOKS@
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
@RESTORE@
until [ -e "$D/now" ] || [ "$(now)" -ge "$(cat "$D/deadline" 2>/dev/null || echo 0)" ]; do
	sleep 1
done
if ! ln -s revert "$D/decision" 2>/dev/null && [ "$(decision "$T")" != revert ]; then
	log "timer ends: $(decision "$T")ed"
	exit 0
fi
[ -e "$D/now" ] && log "reverting: rollback requested" || log "reverting: not confirmed in time"
restore
rm -rf "$F/$T"
sync
umask 022
@RELOAD@
touch "$D/reverted"
log "reverted"
rm -rf "$D/files" "$D/live"
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
rm -rf "$D/files" "$D/live" "$D/revert.sh"
# durable before the answer: a restart from here on keeps the new configuration
rm -rf "$F/$T"
sync
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
for m in "$K"/*; do
	[ -f "$m" ] || continue
	t=${m##*/}
	[ -d "$S/$t" ] || echo "commit $t boot-reverted"
done
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
        f'F="$R"{boot.FLASH}',
        f'K="$R"{boot.REVERTED}',
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
        + boot.INSTALL_LIB
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
        + LIVE_RESTORE
        + _REVERT.replace("@RESTORE@", boot.RESTORE.strip("\n")).replace(
            "@RELOAD@", "\n".join(reload_lines) or ":"
        )
    )


def backup_script(
    token: str, paths: Sequence[str], device: Device = OPENWRT, live: str | None = None
) -> SafetyScript:
    """Take the device's lock and copy `paths` (noting the absent ones) to /tmp/sitewire/<token>;
    with `live`, that WireGuard interface's running peers and routes too (for live_restore)."""
    return _script("backup", _check_token(token), device, _backup_body(paths, live))


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
    live: str | None = None,
) -> SafetyScript:
    """Both in one shell, so the lock is never held without a live owner or timer."""
    token = _check_token(token)
    arm_body = _arm_body(token, seconds, reload_cmds, device)
    return _script("arm", token, device, _backup_body(paths, live), arm_body)


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


def _backup_body(paths: Sequence[str], iface: str | None = None) -> str:
    body = _BACKUP.replace("@PATHS@", " ".join(shlex.quote(p) for p in _check_paths(paths)))
    return body.replace("@SNAPSHOT@", "" if iface is None else snapshot_text(iface))


def _arm_body(token: str, seconds: int, reload_cmds: Sequence[str], device: Device) -> str:
    if seconds < 1:
        raise ValueError(f"revert timer of {seconds} s: must be at least 1 s")
    revert = revert_text(token, reload_cmds, device).rstrip("\n")
    return (
        _ARM.replace("@HOOKS@", boot.install_text(device))
        .replace("@REVERT@", revert)
        .replace("@EOF@", _EOF)
        .replace("@SECONDS@", str(seconds))
    )
