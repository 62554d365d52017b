"""The commented network.toml that `sitewire init` writes."""

STARTER_SPEC = """\
# sitewire network file. Every key is listed by `sitewire schema`.
# Run `sitewire plan network.toml` to see what each site will get.

[network]
name = "home"                 # letters, digits, _
overlay = "192.168.5.0/24"    # tunnel addresses; must not overlap any LAN or 100.64.0.0/10
# overlay6 = "fd42:5:5::/64"  # optional IPv6 (ULA) overlay beside the IPv4 one
port = 51820                  # default WireGuard listen port (never 41641: Tailscale's)
# keepalive = 25              # seconds, on the side that dials
# preshared_keys = true       # a preshared key per peer pair

# A site others can dial: it has a public address or a DDNS name and an open port.
[sites.A]
platform = "openwrt"          # or "linux"
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"    # name or address; ":port" if it differs from the listen port
ssh = "root@192.168.3.1"
# pppoe = true                # WAN is PPPoE: the tunnel MTU drops to 1412
# tailscale = { advertise_routes = ["192.168.3.0/24"], exit_node = true }

# A site behind a firewall that admits nothing: no endpoint, so it dials the others.
[sites.B]
platform = "openwrt"
lan = ["192.168.7.0/24"]
ssh = "root@192.168.7.1"
# relay = "A"                 # which site carries its traffic to other sites without endpoints

# A phone or laptop dials one site.
[clients.phone]
via = "A"
tunnel = "split"              # "full" sends all its traffic through A
"""
