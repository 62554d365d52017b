#!/bin/sh
# sitewire: office. Generated. Put the other files in place first.
set -e
sysctl -q -p /etc/sysctl.d/60-sitewire-wg0.conf
! command -v systemctl >/dev/null || systemctl enable -q wg-quick@wg0 && if [ -d /run/systemd/system ]; then systemctl restart wg-quick@wg0; else wg-quick down wg0 2>/dev/null || true; wg-quick up wg0; fi
tailscale set --accept-routes=true --advertise-routes= --advertise-exit-node=false
