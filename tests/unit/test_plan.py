"""The planner: roles, AllowedIPs, endpoints, relays, MTU, allocation, Tailscale intents."""

from __future__ import annotations

import ipaddress

import pytest

from sitewire.errors import LockError
from sitewire.plan import plan_network
from sitewire.spec.lock import Lock, LockEntry
from sitewire.spec.model import Spec
from tests.conftest import spec_from


def nets(*texts: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


def test_seed_matches_the_hand_made_setup(seed_spec: Spec) -> None:
    plan = plan_network(seed_spec)
    a, b = plan.site("A"), plan.site("B")

    assert [str(x) for x in a.addresses] == ["192.168.5.1/24"]
    assert [str(x) for x in b.addresses] == ["192.168.5.2/24"]
    assert a.listen_port == b.listen_port == 51820

    a_to_b = a.peer("B")
    assert a_to_b.allowed_ips == nets("192.168.5.2/32", "192.168.7.0/24")
    assert a_to_b.dial is None  # the listener neither dials nor keeps alive

    b_to_a = b.peer("A")
    assert b_to_a.allowed_ips == nets("192.168.5.1/32", "192.168.3.0/24", "192.168.5.3/32")
    assert b_to_a.dial is not None
    assert str(b_to_a.dial.endpoint) == "a.example.net:51820"
    assert b_to_a.dial.keepalive == 25
    assert b_to_a.reached_through == ("phone",)

    assert a.firewall.open_port == 51820 and b.firewall.open_port is None
    assert a.firewall.forwardings == (("lan", "sitewire"), ("sitewire", "lan"), ("sitewire", "wan"))
    assert a.tailscale is not None and b.tailscale is not None
    assert a.tailscale.command() == [
        "tailscale", "set", "--accept-routes=false",
        "--advertise-routes=192.168.3.0/24", "--advertise-exit-node",
    ]  # fmt: skip
    assert "--accept-routes=false" in b.tailscale.command()
    assert "--advertise-exit-node=false" in b.tailscale.command()
    assert (a.mtu, b.mtu) == (1420, 1420)
    assert (a.watchdog, b.watchdog) == (False, True)  # only B dials, and by name

    phone = plan.client("phone")
    assert phone.allowed_ips == nets("192.168.5.0/24", "192.168.3.0/24", "192.168.7.0/24")
    assert [str(x) for x in phone.addresses] == ["192.168.5.3/32"]
    assert a.peer("phone").allowed_ips == nets("192.168.5.3/32")


def test_adding_a_site_never_renumbers_another(seed_spec: Spec) -> None:
    first = plan_network(seed_spec)
    grown = spec_from(
        """
        [network]
        name = "home"
        overlay = "192.168.5.0/24"
        [sites.C]
        lan = ["10.30.0.0/24"]
        endpoint = "c.example.net"
        [sites.A]
        lan = ["192.168.3.0/24"]
        endpoint = "a.example.net"
        [sites.B]
        lan = ["192.168.7.0/24"]
        [clients.phone]
        via = "A"
        """
    )
    second = plan_network(grown, first.lock)
    for name in ("A", "B", "phone"):
        assert second.lock.entry(name).address == first.lock.entry(name).address
    assert str(second.lock.entry("C").address) == "192.168.5.4"
    # Without the lock, file order decides and C would have taken .1:
    assert str(plan_network(grown).lock.entry("C").address) == "192.168.5.1"


def test_removed_site_frees_its_lock_entry(seed_spec: Spec) -> None:
    lock = plan_network(seed_spec).lock
    smaller = spec_from(
        """
        [network]
        name = "home"
        overlay = "192.168.5.0/24"
        [sites.A]
        lan = ["192.168.3.0/24"]
        endpoint = "a.example.net"
        """
    )
    plan = plan_network(smaller, lock)
    assert set(plan.lock.sites) == {"A"} and not plan.lock.clients
    assert any("B: no longer in the spec" in n for n in plan.notes)


def test_explicit_address_wins_and_ipv6_overlay_allocates() -> None:
    plan = plan_network(
        spec_from(
            """
            [network]
            name = "n"
            overlay = "10.5.0.0/24"
            overlay6 = "fd42:5::/64"
            [sites.A]
            endpoint = "2001:db8::1"
            address = "10.5.0.10"
            [sites.B]
            lan = ["10.7.0.0/24", "fd42:7::/64"]
            """
        )
    )
    a, b = plan.site("A"), plan.site("B")
    assert [str(x) for x in a.addresses] == ["10.5.0.10/24", "fd42:5::1/64"]
    assert [str(x) for x in b.addresses] == ["10.5.0.1/24", "fd42:5::2/64"]
    assert a.peer("B").allowed_ips == nets(
        "10.5.0.1/32", "fd42:5::2/128", "10.7.0.0/24", "fd42:7::/64"
    )
    dial = b.peer("A").dial
    assert dial is not None
    assert str(dial.endpoint) == "[2001:db8::1]:51820"


FIVE = """
[network]
name = "five"
overlay = "10.99.0.0/24"
[sites.hub]
lan = ["10.1.0.0/24"]
endpoint = "hub.example.net"
[sites.office]
lan = ["10.2.0.0/24"]
endpoint = "198.51.100.7:51999"
port = 51999
[sites.flat]
lan = ["10.3.0.0/24"]
[sites.cabin]
lan = ["10.4.0.0/24"]
relay = "office"
[sites.boat]
lan = ["10.5.0.0/24"]
"""


def test_dialers_reach_each_other_through_one_relay() -> None:
    plan = plan_network(spec_from(FIVE))
    # No preference among flat/boat: the first site in the file that can relay.
    assert plan.path("flat", "boat") == ("flat", "hub", "boat")
    assert plan.path("boat", "flat") == ("boat", "hub", "flat")
    # cabin prefers office; flat appears earlier but names no relay, so cabin's wish decides.
    assert plan.path("flat", "cabin") == ("flat", "office", "cabin")
    assert plan.path("cabin", "flat") == ("cabin", "office", "flat")
    assert plan.path("hub", "flat") == ("hub", "flat")
    flat = plan.site("flat")
    assert {p.name for p in flat.peers} == {"hub", "office"}  # dialers don't peer with each other
    assert flat.peer("hub").reached_through == ("boat",)
    assert nets("10.5.0.0/24")[0] in flat.peer("hub").allowed_ips
    assert nets("10.4.0.0/24")[0] in flat.peer("office").allowed_ips
    # Two listeners both dial each other (either can restart first) and keep the path alive.
    hub, office = plan.site("hub"), plan.site("office")
    to_office = hub.peer("office").dial
    assert to_office is not None and office.peer("hub").dial is not None
    assert str(to_office.endpoint) == "198.51.100.7:51999"
    assert hub.peer("flat").dial is None


@pytest.mark.parametrize(
    ("site_extra", "endpoint", "mtu"),
    [
        ("", "a.example.net", 1420),
        ("pppoe = true", "a.example.net", 1412),
        ("", "198.51.100.1", 1440),  # IPv4 literal: 60 bytes of overhead, not 80
        ("wan_mtu = 1460", "a.example.net", 1380),  # DS-Lite
        ("mtu = 1300", "a.example.net", 1300),
    ],
)
def test_mtu_from_wan_and_outer_family(site_extra: str, endpoint: str, mtu: int) -> None:
    plan = plan_network(
        spec_from(
            f"""
            [network]
            name = "n"
            overlay = "10.5.0.0/24"
            [sites.A]
            endpoint = "{endpoint}"
            [sites.B]
            {site_extra}
            """
        )
    )
    # Both ends of a link agree, whichever side has the small WAN.
    assert plan.site("A").mtu == plan.site("B").mtu == mtu


def test_full_tunnel_client_and_accepted_routes_pins() -> None:
    plan = plan_network(
        spec_from(
            """
            [network]
            name = "n"
            overlay = "10.5.0.0/24"
            [sites.A]
            lan = ["10.1.0.0/24"]
            endpoint = "a.example.net"
            tailscale = { accept_routes = true, pin_priority = 1200 }
            [sites.B]
            lan = ["10.2.0.0/24"]
            [clients.laptop]
            via = "A"
            tunnel = "full"
            """
        )
    )
    laptop = plan.client("laptop")
    assert laptop.allowed_ips == nets("0.0.0.0/0", "::/0")
    a = plan.site("A")
    assert a.firewall.masquerade_clients == nets("10.5.0.3/32")
    assert a.tailscale is not None
    assert a.tailscale.accept_routes and a.tailscale.pin_priority == 1200
    assert a.tailscale.pins == nets("10.5.0.2/32", "10.2.0.0/24", "10.5.0.3/32")


def test_lock_key_contradicting_local_key_is_refused(seed_spec: Spec) -> None:
    lock = Lock(network="home", sites={"A": LockEntry(public_key="A" * 43 + "=")})
    with pytest.raises(LockError, match=r"network\.lock: sites\.A\.public_key: public key differs"):
        plan_network(seed_spec, lock, {"A": "B" * 43 + "="})
    # Agreeing keys, or a key only in the lock, are fine and kept.
    assert plan_network(seed_spec, lock).site("A").public_key == "A" * 43 + "="


def test_openwrt_full_tunnel_with_ipv6_overlay_is_flagged() -> None:
    text = (
        '[network]\nname = "n"\noverlay = "10.5.0.0/24"\noverlay6 = "fd42:5::/64"\n'
        '[sites.A]\nendpoint = "a.example.net"\n'
        '[clients.laptop]\nvia = "A"\ntunnel = "full"\n'
    )
    notes = plan_network(spec_from(text)).notes
    assert any(
        "laptop: full tunnel via A: its IPv6 traffic leaves the WAN un-NATed" in n for n in notes
    )
    split = plan_network(spec_from(text.replace('tunnel = "full"', 'tunnel = "split"'))).notes
    assert not any("un-NATed" in n for n in split)
