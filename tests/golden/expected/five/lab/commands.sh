#!/bin/sh
# sitewire: lab. Generated. Put the other files in place first.
set -e
sysctl -q -p /etc/sysctl.d/60-sitewire-wg0.conf
if [ -d /run/systemd/system ]; then systemctl enable wg-quick@wg0 && systemctl restart wg-quick@wg0; else wg-quick down wg0 2>/dev/null || true; wg-quick up wg0; fi
