"""The fact-gathering script: one POSIX sh program whose sections frame each probe's output.

It runs on BusyBox ash and dash alike. Keys are hidden on the router before anything is sent:
the awk filter blanks the key fields of `wg show all dump`, and sed blanks
private_key/preshared_key in uci output.
"""

from __future__ import annotations

from collections.abc import Sequence

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
	[ -s "$_err" ] && head -n 5 "$_err"
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
    ("neigh", "ip neigh show"),
    ("addrs", "ip -o addr show"),
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
        "space",
        # KiB available where a change is written (/etc, measured at /etc/config where uci
        # commits: the flash overlay on OpenWrt) and staged (/tmp); `df -P` keeps each answer
        # on one line.
        "_e=/etc; [ -d /etc/config ] && _e=/etc/config\n"
        'for _d in "$_e" /tmp; do df -Pk "$_d" 2>/dev/null | '
        "awk -v d=\"${_d%/config}\" 'NR > 1 { print d, $4 }'; done\nreturn 0",
    ),
    (
        "watchdog",
        # OpenWrt: root's crontab lines (not comments) running wireguard_watchdog, and whether
        # cron starts at boot.
        "[ -f /etc/crontabs/root ] && awk '/^[ \\t]*#/ { next } /wireguard_watchdog/ "
        '{ print "line", NR }\' /etc/crontabs/root\n'
        # `/etc/init.d/cron enabled` is this test (rc.common: a start link in /etc/rc.d),
        # without sourcing rc.common, the costliest step of the whole script.
        '[ -x /etc/init.d/cron ] && for _l in /etc/rc.d/S??cron; do [ -e "$_l" ] && '
        "echo enabled; done\nreturn 0",
    ),
    (
        "cron",
        # The cron daemons running that read /etc/cron.d (Debian's cron, cronie's crond; not
        # BusyBox's crond, nor fcron, which read only their own tables), not a zombie, seeing
        # this /etc (the same mount namespace, where that can be read), from /proc.
        # (OpenWrt reads `watchdog` instead: no scan of every process there.)
        "[ -f /etc/openwrt_release ] && return 0\n"
        "_m=$(readlink /proc/self/ns/mnt 2>/dev/null)\n"
        "for _p in /proc/[0-9]*; do\n"
        '\tread -r _c < "$_p/comm" 2>/dev/null || continue\n'
        "\tcase $_c in cron | crond) ;; *) continue ;; esac\n"
        '\tcase $(readlink "$_p/exe" 2>/dev/null) in *busybox*) continue ;; esac\n'
        "\tgrep -q '^State:[[:space:]]*Z' \"$_p/status\" 2>/dev/null && continue\n"
        '\t_o=$(readlink "$_p/ns/mnt" 2>/dev/null)\n'
        '\t[ -z "$_m" ] || [ -z "$_o" ] || [ "$_o" = "$_m" ] && echo "$_c"\n'
        "done\nreturn 0",
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
    "neigh": "ip neigh show",
    "addrs": "ip -o addr show",
    "tailscale": "tailscale debug prefs",
    "space": "df -Pk /etc /tmp",
    "watchdog": "grep wireguard_watchdog /etc/crontabs/root; /etc/init.d/cron enabled",
    "cron": "ps -e -o comm | grep -x -e cron -e crond",
}


def build_script(sections: Sequence[tuple[str, str]]) -> str:
    functions = "".join(f"s_{name}() {{\n{body}\n}}\n" for name, body in sections)
    calls = "".join(f"section {name}\n" for name, _ in sections)
    return PRELUDE + functions + calls
