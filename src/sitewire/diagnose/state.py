"""What doctor reads beside the probes, in a script of its own on the same connection (it runs
while the pings wait): the loaded nftables ruleset, and what runs at boot and from cron.
"""

from __future__ import annotations

# The files that run at boot or from cron, on OpenWrt and on Linux; sitewire's own are skipped.
_FILES = (
    "/etc/rc.local /etc/crontabs/root /etc/crontab /etc/cron.d/* "
    "/var/spool/cron/crontabs/root /etc/hotplug.d/iface/* /etc/network/if-up.d/*"
)
_WATCHED = (
    r"tailscale[ \t]+(up|set)|wg[ \t]+(set|setconf|syncconf|addconf)|wg-quick[ \t]+(up|down)"
    r"|(^|[;&|( \t])(ifup|ifdown)[ \t]"
)
_B64 = "[A-Za-z0-9+\\/]"
# The awk program that prints each watched line, with what could be a secret hidden on the
# router: the word after a key-like name (any case; `=`, space or tab), a Tailscale auth key,
# and anything written like a WireGuard key (43 base64 characters and `=`), wherever it is.
# (Written out, not as {42}: not every awk reads interval expressions.)
HIDE_AWK = (
    "/^[ \\t]*#/ { next } /" + _WATCHED + '/ { s = $0; l = ""\n'
    "while (match(tolower(s), /(auth-?key|key|secret|passw(or)?d|token)[= \\t]+[^ \\t]+/)) "
    '{ l = l substr(s, 1, RSTART - 1) "(hidden)"; s = substr(s, RSTART + RLENGTH) }\n'
    'l = l s; gsub(/tskey-[A-Za-z0-9_-]+/, "(hidden)", l)\n'
    f'gsub(/{_B64 * 43}=/, "(hidden)", l); print "line", f, NR, l }}'
)
BOOT = (
    "sw_boot",
    f'for _f in {_FILES}; do\n[ -f "$_f" ] || continue\n'
    "case $_f in */sitewire*) continue ;; esac\n"
    f'awk -v f="$_f" \'{HIDE_AWK}\' "$_f"\ndone\n'
    # OpenWrt's init scripts (a Linux /etc/init.d script has no `enabled`).
    "if [ -f /etc/openwrt_release ]; then for _s in network firewall; do\n"
    "[ -x /etc/init.d/$_s ] || continue\n"
    '/etc/init.d/$_s enabled && echo "service $_s on" || echo "service $_s off"; done; fi\n'
    "if command -v systemctl >/dev/null 2>&1; then for _u in /etc/wireguard/*.conf; do\n"
    '[ -f "$_u" ] || continue; _n=$(basename "$_u" .conf)\n'
    'echo "unit $_n $(systemctl is-enabled "wg-quick@$_n" 2>/dev/null || echo disabled)"\n'
    "done; fi\nreturn 0",
)


# The loaded ruleset twice (JSON to walk, text for each rule's line), and what runs at boot.
STATE_SECTIONS = (
    ("sw_nft_json", "has nft || return 127\nnft -j list ruleset"),
    ("sw_nft_text", "has nft || return 127\nnft -a list ruleset"),
    BOOT,
)
