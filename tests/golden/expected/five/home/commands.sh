#!/bin/sh
# Run on the router after the uci batch is committed.
set -e
tailscale set --accept-routes=false --advertise-routes=192.168.3.0/24 --advertise-exit-node
