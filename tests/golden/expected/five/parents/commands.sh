#!/bin/sh
# Run on the router after the uci batch is committed.
set -e
grep -qxF '* * * * * /usr/bin/wireguard_watchdog' /etc/crontabs/root 2>/dev/null || echo '* * * * * /usr/bin/wireguard_watchdog' >> /etc/crontabs/root
/etc/init.d/cron enable
/etc/init.d/cron restart
