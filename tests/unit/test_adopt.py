"""adopt.derive: a spec and lock from routers configured by hand; what cannot be said, refused."""

from __future__ import annotations

import pytest

from sitewire.adopt.derive import AdoptError, derive, read_router
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.parse import HIDDEN
from sitewire.errors import SpecError
from sitewire.plan import plan_network
from sitewire.spec.load import parse_model
from sitewire.spec.model import Platform, Spec
from tests.unit.test_diagnose_parse import openwrt_sections
from tests.unit.test_takeover import KEYS, LUCI_FIREWALL, LUCI_NETWORK, _running, _stock

B_NETWORK = f"""
config interface 'wg0'
\toption proto 'wireguard'
\toption private_key '{HIDDEN}'
\toption listen_port '51820'
\tlist addresses '192.168.5.2/24'

config wireguard_wg0
\toption description 'A'
\toption public_key '{KEYS["A"]}'
\tlist allowed_ips '192.168.5.0/24'
\tlist allowed_ips '192.168.3.0/24'
\toption route_allowed_ips '1'
\toption endpoint_host 'a.example.net'
\toption endpoint_port '51820'
\toption persistent_keepalive '25'
"""


def _facts(site: str, network_text: str, dump: str) -> DeviceFacts:
    lan = "192.168.3.1" if site == "A" else "192.168.7.1"
    stock = _stock("network.stock-lan-wan.uci", "network").replace("192.168.3.1", lan)
    return facts_from_sections(
        site,
        Platform.OPENWRT,
        openwrt_sections(
            uci_network=(stock + network_text, 0),
            uci_firewall=(_stock("firewall.stock-23.05-24.10.uci", "firewall") + LUCI_FIREWALL, 0),
            uci_changes=("", 0),
            wg=(dump, 0),
            rc_local=("", 0),
        ),
    )


def _b_running() -> str:
    return (
        f"wg0\t{HIDDEN}\t{KEYS['B']}\t51820\toff\n"
        f"wg0\t{KEYS['A']}\t(none)\t198.18.0.10:51820\t192.168.5.0/24,192.168.3.0/24\t0\t0\t0\t25\n"
    )


def test_a_luci_made_pair_becomes_the_seed_spec() -> None:
    a = read_router("A", "root@192.168.3.1", _facts("A", LUCI_NETWORK, _running()))
    b = read_router("B", "root@192.168.7.1", _facts("B", B_NETWORK, _b_running()))
    data, lock = derive("home", [a, b])
    assert data["network"] == {
        "name": "home",
        "overlay": "192.168.5.0/24",
        "port": 51820,
        "keepalive": 25,
    }  # A's section for B holds a preshared key: PSKs stay on
    assert data["sites"]["A"]["endpoint"] == "a.example.net"
    assert data["sites"]["B"] == {
        "platform": "openwrt",
        "lan": ["192.168.7.0/24"],
        "ssh": "root@192.168.7.1",
    }
    assert data["clients"] == {"phone": {"via": "A", "public_key": KEYS["phone"]}}
    assert {n: e.public_key for n, e in lock.sites.items()} == {"A": KEYS["A"], "B": KEYS["B"]}
    spec = parse_model(Spec, data, "network.toml", SpecError)
    plan = plan_network(spec, lock)
    assert str(plan.site("B").addresses[0].ip) == "192.168.5.2"  # nothing renumbered


def test_one_side_of_a_pair_missing_is_refused() -> None:
    a = read_router("A", "root@a", _facts("A", LUCI_NETWORK, _running()))
    lonely = B_NETWORK.split("config wireguard_wg0")[0]
    b = read_router("B", "root@b", _facts("B", lonely, _b_running().splitlines()[0] + "\n"))
    with pytest.raises(AdoptError, match=r"holds B.s key .*but B has no peer for A") as caught:
        derive("home", [a, b])
    assert caught.value.where == "A"


def test_a_key_held_for_another_router_s_address_that_is_not_its_key_is_refused() -> None:
    wrong = LUCI_NETWORK.replace(KEYS["B"], KEYS["phone"][:-2] + "A=")
    a = read_router("A", "root@a", _facts("A", wrong, _running()))
    b = read_router("B", "root@b", _facts("B", B_NETWORK, _b_running()))
    with pytest.raises(
        AdoptError, match=r"@wireguard_wg0\[0\] holds .* for B's address 192.168.5.2"
    ):
        derive("home", [a, b])


def test_two_wireguard_interfaces_are_refused() -> None:
    second = "\nconfig interface 'wg1'\n\toption proto 'wireguard'\n\toption listen_port '51821'\n"
    with pytest.raises(AdoptError, match=r"has 2 WireGuard interfaces \(wg0, wg1\)"):
        read_router("A", "root@a", _facts("A", LUCI_NETWORK + second, _running()))


def test_wg_quick_files_name_a_linux_host_and_a_phone() -> None:
    from sitewire.adopt.wgquick import file_key, router_from_wg_quick
    from sitewire.keys import generate_private_key, public_key

    b_private, phone_private = generate_private_key(), generate_private_key()
    keys = {**KEYS, "B": public_key(b_private), "phone": public_key(phone_private)}
    network = LUCI_NETWORK.replace(KEYS["B"], keys["B"]).replace(KEYS["phone"], keys["phone"])
    running = _running().replace(KEYS["B"], keys["B"]).replace(KEYS["phone"], keys["phone"])
    a = read_router("A", "root@a", _facts("A", network, running))
    b_conf = (
        f"[Interface]\nPrivateKey = {b_private}\nAddress = 192.168.5.2/24\nListenPort = 51820\n\n"
        f"[Peer]\nPublicKey = {KEYS['A']}\nAllowedIPs = 192.168.5.0/24, 192.168.3.0/24\n"
        "Endpoint = a.example.net:51820\nPersistentKeepalive = 25\n"
    )
    b = router_from_wg_quick("B", b_conf, "wg0.conf", "wg0")
    phone_conf = f"[Interface]\nPrivateKey = {phone_private}\nAddress = 192.168.5.3/32\n"
    data, lock = derive("home", [a, b], {file_key(phone_conf, "phone.conf"): "myphone"})
    assert data["sites"]["B"] == {"platform": "linux", "lan": ["192.168.7.0/24"]}
    assert data["sites"]["A"]["endpoint"] == "a.example.net"
    assert data["clients"] == {"myphone": {"via": "A", "public_key": keys["phone"]}}
    assert lock.sites["B"].public_key == keys["B"]
    assert b_private not in repr(data) + lock.model_dump_json()  # the private key goes nowhere
    plan_network(parse_model(Spec, data, "network.toml", SpecError), lock)


def test_a_client_without_its_own_overlay_address_is_refused() -> None:
    wide = LUCI_NETWORK.replace(
        "\tlist allowed_ips '192.168.5.3/32'", "\tlist allowed_ips '192.168.5.0/24'"
    )
    a = read_router("A", "root@a", _facts("A", wide, _running()))
    b = read_router("B", "root@b", _facts("B", B_NETWORK, _b_running()))
    with pytest.raises(AdoptError, match=r"a client, .* holds no single overlay address"):
        derive("home", [a, b])


def test_what_a_router_or_a_file_holds_that_is_no_address_is_a_one_line_refusal() -> None:
    from sitewire.adopt.wgquick import router_from_wg_quick

    bad = LUCI_NETWORK.replace("list addresses '192.168.5.1/24'", "list addresses 'fe80::1%eth0'")
    with pytest.raises(AdoptError, match=r"network\.wg0\.addresses: 'fe80::1%eth0'") as caught:
        read_router("A", "root@a", _facts("A", bad, _running()))
    assert caught.value.where == "A" and caught.value.fix
    peer = LUCI_NETWORK.replace(
        "list allowed_ips '192.168.7.0/24'", "list allowed_ips '192.168.7.0/99'"
    )
    with pytest.raises(AdoptError, match=r"allowed_ips: '192.168.7.0/99'"):
        read_router("A", "root@a", _facts("A", peer, _running()))
    conf = "[Interface]\nPrivateKey = " + KEYS["A"] + "\nAddress = 10.0.0.300/24\nListenPort = 1\n"
    with pytest.raises(AdoptError, match=r"Address: .10.0.0.300/24.") as file_error:
        router_from_wg_quick("C", conf, "c.conf", "wg0")
    assert file_error.value.where == "c.conf"


def test_a_hub_relaying_between_two_dialers_keeps_each_lan_its_own() -> None:
    """B and C dial A; each one's peer for A carries the other's LAN too (A relays it)."""
    import ipaddress

    from sitewire.adopt.derive import Peer, Router

    keys = {s: f"{s * 43}=" for s in "ABC"}
    lans = {"A": "192.168.3.0/24", "B": "192.168.7.0/24", "C": "192.168.9.0/24"}

    def peer(name: str, *ips: str, endpoint: str | None = None) -> Peer:
        nets = tuple(ipaddress.ip_network(ip) for ip in ips)
        return Peer(f"@wireguard_wg0[{name}]", keys[name], nets, endpoint, None, 25, False, None)

    def router(name: str, n: int, *peers: Peer) -> Router:
        address = ipaddress.ip_interface(f"192.168.5.{n}/24")
        lan = (ipaddress.ip_network(lans[name]),)
        return Router(name, "", "wg0", keys[name], 51820, address, lan, peers)

    a = router(
        "A", 1, peer("B", "192.168.5.2/32", lans["B"]), peer("C", "192.168.5.3/32", lans["C"])
    )
    b = router("B", 2, peer("A", "192.168.5.0/24", lans["A"], lans["C"], endpoint="a.example.net"))
    c = router("C", 3, peer("A", "192.168.5.0/24", lans["A"], lans["B"], endpoint="a.example.net"))
    data, lock = derive("home", [a, b, c])
    assert {n: s["lan"] for n, s in data["sites"].items()} == {n: [lan] for n, lan in lans.items()}
    plan = plan_network(parse_model(Spec, data, "network.toml", SpecError), lock)
    relayed = plan.site("B").peer("A").allowed_ips  # B reaches C's LAN through A, as it did
    assert ipaddress.ip_network(lans["C"]) in relayed
