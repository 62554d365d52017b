"""How netifd reads /etc/config/network: wg configuration, what reload compares, routes."""

from __future__ import annotations

import pytest

from sitewire.lab.openwrt.netconf import (
    interfaces,
    peer_routes,
    peers,
    policy_rules,
    static_addresses,
    wg_config,
)
from sitewire.lab.openwrt.watchdog import is_address
from sitewire.render.uci import parse_uci

NETWORK = """
config interface 'wg0'
	option proto 'wireguard'
	option private_key 'PRIVATE'
	option listen_port '51820'
	list addresses '10.9.0.1/24'
	list addresses 'fd00:9::1'

config wireguard_wg0 'sw_peer_b'
	option public_key 'KEY_B'
	option preshared_key 'PSK'
	list allowed_ips '10.9.0.2'
	list allowed_ips '192.168.7.0/24'
	option route_allowed_ips '1'
	option endpoint_host 'fd53::11'
	option persistent_keepalive '25'

config wireguard_wg0
	option public_key 'KEY_C'
	option endpoint_host 'c.example.net'
	option endpoint_port '4500'
	list allowed_ips '10.9.0.3/32'

config wireguard_wg0 'off'
	option public_key 'KEY_D'
	option disabled '1'

config wireguard_wg0 'nokey'
	list allowed_ips '10.9.0.5/32'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.168.3.1'
	option netmask '255.255.255.0'
	option ip6addr 'fd00:3::1/64'

config rule
	option dest '192.168.7.0/24'
	option lookup 'main'
	option priority '5100'

config rule6
	option in 'lan'
	option src 'fd00:3::/64'
	option lookup '52'
"""


def test_classic_config_lists_each_allowed_ip_and_brackets_ipv6_endpoints() -> None:
    package = parse_uci(NETWORK, "network")
    wg0 = interfaces(package)["wg0"]
    text = wg_config(wg0.section, peers(package, "wg0"), "classic")
    assert text == (
        "[Interface]\nPrivateKey=PRIVATE\nListenPort=51820\n\n"
        "[Peer]\nPublicKey=KEY_B\nPresharedKey=PSK\nAllowedIPs=10.9.0.2\n"
        "AllowedIPs=192.168.7.0/24\nEndpoint=[fd53::11]:51820\nPersistentKeepalive=25\n\n"
        "[Peer]\nPublicKey=KEY_C\nAllowedIPs=10.9.0.3/32\nEndpoint=c.example.net:4500\n"
    )


def test_syncconf_config_joins_allowed_ips() -> None:
    package = parse_uci(NETWORK, "network")
    text = wg_config(interfaces(package)["wg0"].section, peers(package, "wg0"), "syncconf")
    assert "AllowedIPs=10.9.0.2, 192.168.7.0/24\n" in text


def test_only_enabled_peers_with_keys_count_and_only_routed_ones_get_routes() -> None:
    package = parse_uci(NETWORK, "network")
    assert [p.public_key for p in peers(package, "wg0")] == ["KEY_B", "KEY_C"]
    assert peer_routes(peers(package, "wg0")) == ["10.9.0.2/32", "192.168.7.0/24"]


@pytest.mark.parametrize(
    ("flavour", "option", "noticed"),
    [
        ("classic", "listen_port", True),
        ("classic", "addresses", False),
        ("syncconf", "addresses", True),
        ("syncconf", "nohostroute", False),
    ],
)
def test_reload_compares_only_what_the_handler_declares(
    flavour: str, option: str, noticed: bool
) -> None:
    package = parse_uci(NETWORK, "network")
    wg0 = interfaces(package)["wg0"]
    before = wg0.fingerprint(flavour)
    wg0.section.options[option] = "4242"
    assert (wg0.fingerprint(flavour) != before) is noticed


def test_peer_edits_are_not_part_of_the_interface() -> None:
    package = parse_uci(NETWORK, "network")
    before = interfaces(package)["wg0"].fingerprint("syncconf")
    section = package.section("sw_peer_b")
    assert section is not None
    section.options["allowed_ips"] = ("10.9.0.2",)
    assert interfaces(package)["wg0"].fingerprint("syncconf") == before


def test_static_addresses_and_policy_rules() -> None:
    package = parse_uci(NETWORK, "network")
    lan = interfaces(package)["lan"]
    assert static_addresses(lan.section) == ["192.168.3.1/24", "fd00:3::1/64"]
    assert interfaces(package)["wg0"].device == "wg0"
    assert lan.device == "br-lan"
    assert policy_rules(package, {"lan": "br-lan"}) == [
        ["-4", "rule", "add", "priority", "5100", "to", "192.168.7.0/24", "lookup", "main"],
        ["-6", "rule", "add", "from", "fd00:3::/64", "iif", "br-lan", "lookup", "52"],
    ]


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("a.example.net", False),
        ("198.18.0.10", True),
        ("0.0.0.0.example.com", False),
        ("fd53:5357:0:1::10", True),
        ("wan-1.dyndns.org", False),
    ],
)
def test_watchdog_leaves_address_literals_alone(host: str, address: bool) -> None:
    assert is_address(host) is address
