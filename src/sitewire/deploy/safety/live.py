"""A WireGuard device's running peers, saved at arm and put back by a revert (issue 13).

For a peers-only change the revert need not re-create the interface (which drops every
tunnel through it until the peers handshake again): the peers saved before the change go back
with `wg set` for exactly the peers that differ, and so do the routes through it.
"""

from __future__ import annotations

import re
import shlex

_IFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")

# The running WireGuard device, for a revert that puts its peers back without re-creating it
# (a peers-only change): its peers as `wg show dump` lists them (public key, preshared key,
# endpoint, allowed IPs, keepalive; not the first line, the interface's own private key) and
# the routes through it, beside the files in RAM. A device not running: no snapshot, and the
# revert re-creates it from the files.
_SNAPSHOT = r"""
if live=$(wg show @IFACE@ dump 2>/dev/null); then
	mkdir "$D/live" || give_up space cannot create "$D/live"
	printf '%s\n' "$live" | tail -n +2 > "$D/live/peers" || give_up space cannot save @IFACE@
	live=
	ip -4 route show dev @IFACE@ > "$D/live/route4" || give_up space cannot save @IFACE@
	ip -6 route show dev @IFACE@ > "$D/live/route6" 2>/dev/null || : > "$D/live/route6"
	log "saved the running peers and routes of @IFACE@"
fi
"""

# In revert.sh: the peers added since removed, each saved peer that differs now set back with
# `wg set` (its preshared key on a pipe), the others left alone: their sessions go on. Not
# `wg syncconf`, which sets the interface's key and port too (wireguard-go re-binds its socket
# for an unchanged port). Then the routes: the ones added since removed, the saved ones
# replaced in place (never a moment without one). Fails, for the caller's fallback, when
# there is no snapshot or wg refuses a peer.
RESTORE = r"""
live_peers() {
	tab=$(printf '\t')
	umask 077
	# not the first line, the interface's private key (a failed `wg show`: every saved peer
	# is set again, and the first `wg set` that fails hands over to the caller's fallback)
	wg show "$1" dump | tail -n +2 > "$D/live/now" || return 1
	while IFS=$tab read -r pk rest; do
		grep -q -F -e "$pk$tab" "$D/live/peers" ||
			wg set "$1" peer "$pk" remove || log "cannot remove peer $pk"
	done < "$D/live/now"
	while IFS=$tab read -r pk psk ep ips hs rx tx ka; do
		now=$(grep -F -e "$pk$tab" "$D/live/now" | cut -f 1-4,8)
		[ "$now" != "$pk$tab$psk$tab$ep$tab$ips$tab$ka" ] || continue
		# No endpoint before, one now: `wg set` cannot unset it; the peer is made anew.
		lr_ep=$(echo "$now" | cut -f 3)
		if [ "$ep" = "(none)" ] && [ -n "$now" ] && [ "$lr_ep" != "(none)" ]; then
			wg set "$1" peer "$pk" remove || log "cannot remove peer $pk"
		fi
		[ "$ips" != "(none)" ] || ips=
		set_peer "$1" "$pk" "$psk" "$ep" "$ips" "$ka" ||
			{ log "cannot restore peer $pk"; rm -f "$D/live/now"; return 1; }
	done < "$D/live/peers"
	psk=
	rm -f "$D/live/now"
}
set_peer() {
	sp_psk=$3
	sp_ep=$4
	set -- "$1" peer "$2" allowed-ips "$5" persistent-keepalive "$6"
	[ "$sp_ep" = "(none)" ] || set -- "$@" endpoint "$sp_ep"
	if [ "$sp_psk" = "(none)" ]; then
		wg set "$@" preshared-key /dev/null
	else
		printf '%s\n' "$sp_psk" | wg set "$@" preshared-key /proc/self/fd/0
	fi
}
live_restore() {
	[ -f "$D/live/peers" ] || return 1
	live_peers "$1" || return 1
	for v in 4 6; do
		ip -$v route show dev "$1" 2>/dev/null | while read -r dst rest; do
			case " $rest " in *" proto kernel "*) continue ;; esac
			cut -d' ' -f1 "$D/live/route$v" | grep -qxF -e "$dst" ||
				ip -$v route del "$dst" dev "$1" || log "cannot remove the route $dst"
		done
		set -f # the saved route's words, split, never globbed
		grep -v ' proto kernel' "$D/live/route$v" | while read -r r; do
			ip -$v route replace $r dev "$1" || log "cannot restore the route $r"
		done
		set +f
	done
	log "restored the running peers and routes of $1"
}
"""


def snapshot_text(iface: str) -> str:
    """The backup's lines saving `iface`'s running peers and routes in "$D/live"."""
    if not _IFACE.fullmatch(iface):
        raise ValueError(f"{iface!r} is not an interface name")
    return _SNAPSHOT.strip("\n").replace("@IFACE@", shlex.quote(iface))
