"""Every refusal: a one-line error naming the place, the offending value and the fix."""

from __future__ import annotations

import pytest

from sitewire.errors import ExitCode, InputError
from sitewire.plan import plan_network
from tests.conftest import spec_from

BASE = """
[network]
name = "home"
overlay = "192.168.5.0/24"
{network_extra}

[sites.A]
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"
{a_extra}

[sites.B]
lan = ["192.168.7.0/24"]
{b_extra}
"""


def _plan(network_extra: str = "", a_extra: str = "", b_extra: str = "", tail: str = "") -> None:
    text = BASE.format(network_extra=network_extra, a_extra=a_extra, b_extra=b_extra) + tail
    plan_network(spec_from(text))


CASES = [
    (
        {"tail": '[sites.C]\nlan = ["192.168.3.128/25"]\nendpoint = "c.example.net"\n'},
        "sites.C.lan[0]: '192.168.3.128/25' overlaps sites.A.lan[0] '192.168.3.0/24'",
        "give each site its own LAN subnet",
    ),
    (
        {"tail": '[sites.C]\nlan = ["192.168.5.0/25"]\nendpoint = "c.example.net"\n'},
        "sites.C.lan[0]: '192.168.5.0/25' overlaps network.overlay '192.168.5.0/24'",
        "pick an overlay subnet that no LAN uses",
    ),
    (
        {"network_extra": "port = 41641"},
        "network.port: 41641 is Tailscale's port",
        "pick another WireGuard port",
    ),
    (
        {"a_extra": "port = 41641"},
        "sites.A.port: 41641 is Tailscale's port",
        None,
    ),
    (
        {"a_extra": 'interface = "wireguard-to-b-long"'},
        "sites.A.interface: 'wireguard-to-b-long' is not a valid interface name",
        "at most 15 characters",
    ),
    (
        {"tail": '[clients.A]\nvia = "A"\n'},
        "clients.A: name 'A' is already used by sites.A",
        "give every site and client its own name",
    ),
    (
        {"tail": '[sites.a]\nlan = ["10.9.0.0/24"]\n'},
        "sites.a: 'a' differs from sites.A only in case",
        "rename one of them",
    ),
    (
        {"a_extra": 'address = "192.168.5.9"', "b_extra": 'address = "192.168.5.9"'},
        "sites.B.address: '192.168.5.9' is already A's address",
        "give every site and client its own overlay address",
    ),
    (
        {"a_extra": 'address = "192.168.9.1"'},
        "sites.A.address: '192.168.9.1' is outside network.overlay '192.168.5.0/24'",
        None,
    ),
    (
        {"a_extra": 'address = "192.168.5.255"'},
        "sites.A.address: '192.168.5.255' is the network or broadcast address",
        "pick a host address",
    ),
    (
        {"tail": '[sites.C]\nendpoint = "bad_host!"\n'},
        "sites.C.endpoint: 'bad_host!' is not a DNS name or IP address",
        None,
    ),
    (
        {"a_extra": 'public_key = "x"'},
        "sites.A: unknown key 'public_key'",
        "check the spelling",
    ),
    (
        {"tail": '[clients.phone]\nvia = "A"\npublic_key = "not-a-key"\n'},
        "clients.phone.public_key: the value is not a WireGuard key",
        None,
    ),
    (
        {"tail": '[sites.C]\nlan = ["10.3.0.0/24"]\n'},
        None,
        None,
    ),
    (
        {"b_extra": 'relay = "C"', "tail": '[sites.C]\nlan = ["10.3.0.0/24"]\n'},
        "sites.B.relay: relay 'C' has no endpoint, so B cannot reach it",
        "choose a site with an endpoint",
    ),
    (
        {"b_extra": 'relay = "Z"'},
        "sites.B.relay: 'Z' is not a site",
        None,
    ),
    (
        {"a_extra": "can_relay = false", "tail": '[sites.C]\nlan = ["10.3.0.0/24"]\n'},
        "sites.C: no path to sites.B: neither has an endpoint and no site may relay",
        "give one of them an endpoint",
    ),
    (
        {"tail": '[clients.phone]\nvia = "B"\n'},
        "clients.phone.via: site 'B' has no endpoint, so phone cannot dial it",
        "attach the client to a site with an endpoint",
    ),
    (
        {"a_extra": "lan_ = []"},
        "sites.A: unknown key 'lan_'",
        None,
    ),
    (
        {"b_extra": "wan_mtu = 100"},
        "sites.B.wan_mtu:",
        None,
    ),
]


@pytest.mark.parametrize(("parts", "expected", "fix"), CASES)
def test_refusal_names_place_value_and_fix(
    parts: dict[str, str], expected: str | None, fix: str | None
) -> None:
    if expected is None:
        _plan(**parts)  # the control cases: the same shape, valid
        return
    with pytest.raises(InputError) as err:
        _plan(**parts)
    text = str(err.value)
    assert "\n" not in text
    assert expected in text
    if fix:
        assert fix in text
    assert err.value.exit_code == ExitCode.BAD_INPUT


def test_lan_with_host_bits_suggests_the_network() -> None:
    with pytest.raises(
        InputError,
        match=r"'192\.168\.3\.1/24' has host bits set \(did you mean '192\.168\.3\.0/24'\?\)",
    ):
        spec_from(
            BASE.format(network_extra="", a_extra="", b_extra="").replace(
                '"192.168.3.0/24"', '"192.168.3.1/24"'
            )
        )


def test_lan_overlapping_within_one_site() -> None:
    text = BASE.format(network_extra="", a_extra="", b_extra="").replace(
        'lan = ["192.168.3.0/24"]', 'lan = ["192.168.3.0/24", "192.168.3.64/26"]'
    )
    with pytest.raises(
        InputError,
        match=r"sites\.A\.lan\[1\].*overlaps sites\.A\.lan\[0\].*list each LAN subnet once",
    ):
        plan_network(spec_from(text))


@pytest.mark.parametrize(
    ("overlay", "key"),
    [
        ("100.64.5.0/24", "overlay"),
        ("100.0.0.0/8", "overlay"),
        ("fd7a:115c:a1e0:ab::/64", "overlay6"),
    ],
)
def test_overlay_inside_tailscale_ranges(overlay: str, key: str) -> None:
    text = f'[network]\nname = "n"\n{key} = "{overlay}"\n[sites.A]\nendpoint = "a.example.net"\n'
    with pytest.raises(InputError, match=rf"network\.{key}: '{overlay}' overlaps Tailscale's"):
        spec_from(text)


def test_overlay_too_small() -> None:
    text = (
        BASE.format(network_extra="", a_extra="", b_extra="").replace(
            "192.168.5.0/24", "192.168.5.0/31"
        )
        + '[clients.phone]\nvia = "A"\n'
    )
    with pytest.raises(
        InputError,
        match=r"network\.overlay: '192\.168\.5\.0/31' has no free address left for phone",
    ):
        plan_network(spec_from(text))


def test_no_overlay_at_all() -> None:
    with pytest.raises(InputError, match=r"network: no overlay"):
        spec_from('[network]\nname = "n"\n[sites.A]\n')


def test_no_sites() -> None:
    with pytest.raises(InputError, match=r"sites"):
        spec_from('[network]\nname = "n"\noverlay = "10.5.0.0/24"\n[sites]\n')


def test_two_sites_without_any_endpoint() -> None:
    text = '[network]\nname = "n"\noverlay = "10.5.0.0/24"\n[sites.A]\n[sites.B]\n'
    with pytest.raises(
        InputError, match=r"sites\.B: no path to sites\.A: .*no site has an endpoint"
    ):
        plan_network(spec_from(text))
