#!/bin/sh
# sitewire: A. Generated. Put uci-batch at /tmp/sitewire/uci-batch first (first setup).
set -e
if command -v apk >/dev/null 2>&1; then apk update && apk add wireguard-tools luci-proto-wireguard; else opkg update && opkg install wireguard-tools luci-proto-wireguard; fi
uci batch < /tmp/sitewire/uci-batch 2> /tmp/sitewire/uci-batch.err; rm -f /tmp/sitewire/uci-batch; if [ -s /tmp/sitewire/uci-batch.err ]; then cat /tmp/sitewire/uci-batch.err >&2; exit 1; fi
/etc/init.d/network restart
/etc/init.d/firewall reload
tailscale set --accept-routes=false --advertise-routes=192.168.3.0/24 --advertise-exit-node
