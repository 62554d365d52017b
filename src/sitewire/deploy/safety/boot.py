"""The boot hook: a commit still pending when the device restarts is put back before its network.

The timer and the /tmp backup live in RAM, so a power cut (or a person power-cycling the router
that stopped answering) inside the revert window would boot the unconfirmed configuration with
nobody left to revert it. So the arm also keeps the backup on flash, in FLASH/<token>, and a
boot hook restores every backup it finds there before the network starts:

    /etc/sitewire/pending/<token>/  manifest, sums, files/<n>   (removed by confirm and revert)
    /etc/sitewire/reverted/<token>  empty: this commit was put back at boot (the last few kept)
    /etc/sitewire/boot-restore      the hook itself, POSIX sh

OpenWrt runs it from /etc/init.d/sitewire (START=15: after boot and sysctl, before firewall
at 19 and network at 20), enabled as /etc/rc.d/S15sitewire, as rc.common's `enable` does.
Only `boot` restores: a later `/etc/init.d/sitewire start` by hand does nothing, or it would
revert a commit in the middle of its apply. Linux hosts with systemd get a oneshot unit pulled
in by sysinit.target and ordered before network-pre.target (so before networking, nftables,
systemd-networkd and wg-quick@); hosts without systemd an /etc/init.d script linked into
/etc/rcS.d, which Debian's sysvinit runs before the networking of runlevel S.
"""

from __future__ import annotations

import shlex

from sitewire.deploy.safety.model import Boot, Device

FLASH = "/etc/sitewire/pending"
REVERTED = "/etc/sitewire/reverted"
HOOK = "/etc/sitewire/boot-restore"
_HOOK_EOF = "SITEWIRE_HOOK_EOF"
# How many reverted-at-boot markers a device keeps (each an empty file).
KEEP_MARKERS = 8

OPENWRT_INITD = "/etc/init.d/sitewire"
OPENWRT_START = 15
OPENWRT_LINK = f"/etc/rc.d/S{OPENWRT_START}sitewire"
SYSTEMD_UNIT = "/etc/systemd/system/sitewire-boot.service"
SYSTEMD_LINK = "/etc/systemd/system/sysinit.target.wants/sitewire-boot.service"
SYSV_INITD = "/etc/init.d/sitewire-boot"
SYSV_LINK = "/etc/rcS.d/S01sitewire-boot"

# Restores one backup directory $D to the root $R byte for byte; shared with the timer.
RESTORE = r"""
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
"""

_HOOK = r"""
F="$R"@FLASH@
K="$R"@REVERTED@
digest() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$1"; else md5sum < "$1"; fi |
		cut -d' ' -f1
}
log() {
	echo "$(date '+%Y-%m-%d %H:%M:%S') ${T:-boot} $*" >> "$R/tmp/sitewire-boot.log" 2>/dev/null
	logger -t sitewire "${T:-boot} $*" 2>/dev/null
	return 0
}
@RESTORE@
found=0
for D in "$F"/*; do
	[ -d "$D" ] || continue
	T=${D##*/}
	case $T in
	*.new)
		# the arm was cut off while writing it: the change had not begun
		rm -rf "$D"
		continue
		;;
	esac
	[ -f "$D/manifest" ] || { rm -rf "$D"; continue; }
	log "commit $T was not confirmed before the restart: putting back its backup"
	restore
	mkdir -p "$K" && : > "$K/$T"
	rm -rf "$D"
	found=$((found + 1))
done
T=
if [ "$found" -gt 0 ]; then
	# keep the newest markers only
	ls -t "$K" 2>/dev/null | sed "1,@KEEP@d" | while read -r old; do rm -f "$K/$old"; done
	sync
fi
exit 0
"""

_INITD = f"""#!/bin/sh /etc/rc.common
# sitewire: before the network starts, put back what an apply changed and did not confirm
# before the router restarted. Only at boot: by hand, start does nothing.
START={OPENWRT_START}

boot() {{
	/bin/sh {HOOK}
}}

start() {{
	:
}}
"""

_UNIT = f"""[Unit]
Description=sitewire: put back an unconfirmed configuration change before the network starts
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target systemd-sysctl.service nftables.service sysinit.target
Wants=network-pre.target
ConditionDirectoryNotEmpty={FLASH}

[Service]
Type=oneshot
ExecStart=/bin/sh {HOOK}

[Install]
WantedBy=sysinit.target
"""

_SYSV = f"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          sitewire-boot
# Required-Start:    mountall
# Required-Stop:
# X-Start-Before:    networking procps
# Default-Start:     S
# Default-Stop:
# Short-Description: sitewire: put back an unconfirmed configuration change
### END INIT INFO
case "$1" in
start) /bin/sh {HOOK} ;;
esac
exit 0
"""


def hook_text(root: str = "") -> str:
    """/etc/sitewire/boot-restore; `root` is only for tests (a temp dir standing in for /)."""
    return (
        "#!/bin/sh\n# sitewire: put back every commit still pending at boot\n"
        + f"R={shlex.quote(root)}\n"
        + _HOOK.replace("@RESTORE@", RESTORE.strip("\n"))
        .replace("@FLASH@", FLASH)
        .replace("@REVERTED@", REVERTED)
        .replace("@KEEP@", str(KEEP_MARKERS))
        .lstrip("\n")
    )


def openwrt_initd_text() -> str:
    return _INITD


def systemd_unit_text() -> str:
    return _UNIT


def sysv_initd_text() -> str:
    return _SYSV


# The arm's helpers (it defines digest, private_dir, give_up before these).
INSTALL_LIB = r"""
# The backup again on flash, whole or not at all (written as <token>.new, then renamed), for
# the boot hook: a restart inside the window loses /tmp and the timer with it.
persist() {
	mkdir -p "$F" 2>/dev/null && private_dir "$F" || return 1
	rm -rf "$F/$T.new"
	mkdir "$F/$T.new" && cp -a "$D/files" "$D/manifest" "$F/$T.new/" || return 1
	if [ -f "$D/sums" ]; then
		cp "$D/sums" "$F/$T.new/" || return 1
		while read -r n h; do
			[ "$(digest "$F/$T.new/files/$n")" = "$h" ] || return 1
		done < "$D/sums"
	fi
	mv "$F/$T.new" "$F/$T" && sync
}
# put PATH MODE: the text on stdin becomes PATH, unless PATH already holds exactly that.
put() {
	cat > "$D/put" || return 1
	if [ -f "$R$1" ] && [ "$(digest "$D/put")" = "$(digest "$R$1")" ]; then
		rm -f "$D/put"
		return 0
	fi
	(umask 022 && mkdir -p "$R${1%/*}") && cp "$D/put" "$R$1.new" && chmod "$2" "$R$1.new" &&
		mv -f "$R$1.new" "$R$1" && rm -f "$D/put"
}
# link TARGET NAME, as `enable` makes it.
link() {
	[ "$(readlink "$R$2" 2>/dev/null)" = "$1" ] && return 0
	(umask 022 && mkdir -p "$R${2%/*}") && ln -sfn "$1" "$R$2"
}
"""


def _put(path: str, mode: str, text: str, indent: str = "") -> str:
    """put PATH MODE, its text in a here-document; a failure ends the arm (nothing changed)."""
    assert _HOOK_EOF not in text
    body = text.rstrip("\n")
    return f"{indent}put {path} {mode} <<'{_HOOK_EOF}' || give_up flash {path}\n{body}\n{_HOOK_EOF}"


def install_text(device: Device) -> str:
    """Install (only when missing or different) and enable the boot hook."""
    hook = _put(HOOK, "755", hook_text(device.root))
    if device.boot is Boot.RC_D:
        return "\n".join(
            [
                hook,
                _put(OPENWRT_INITD, "755", openwrt_initd_text()),
                f"link ../init.d/sitewire {OPENWRT_LINK} || give_up flash {OPENWRT_LINK}",
            ]
        )
    dirs = ("/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
    systemd = " || ".join(f'[ -d "$R{d}" ]' for d in dirs)
    return "\n".join(
        [
            hook,
            f"if {systemd}; then",
            _put(SYSTEMD_UNIT, "644", systemd_unit_text(), "\t"),
            f"\tlink {SYSTEMD_UNIT} {SYSTEMD_LINK} || give_up flash {SYSTEMD_LINK}",
            'elif [ -d "$R/etc/rcS.d" ]; then',
            _put(SYSV_INITD, "755", sysv_initd_text(), "\t"),
            f"\tlink ../init.d/sitewire-boot {SYSV_LINK} || give_up flash {SYSV_LINK}",
            "else",
            '\tlog "no systemd and no /etc/rcS.d: a restart inside the window keeps the change"',
            "fi",
        ]
    )
