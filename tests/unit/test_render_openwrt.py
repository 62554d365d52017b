"""The uci batch, run on stock OpenWrt configs, leaves exactly the planned state, idempotently."""

from __future__ import annotations

import pytest

from sitewire.errors import InputError
from sitewire.plan import Plan, plan_network
from sitewire.render import NoSecrets, render_site
from sitewire.render.openwrt import INTERFACE_OPTIONS, PEER_OPTIONS
from sitewire.spec.model import Spec
from sitewire.spec.secrets import LocalKeys
from sitewire.uci import Section, UciStore, parse_uci
from tests.conftest import FIXTURES, SEED, spec_from

SEED_TEXT = SEED.read_text()

STOCK_FIREWALLS = ["firewall.stock-23.05-24.10.uci", "firewall.stock-25.12.uci"]


def _stock(lan_ip: str, firewall: str) -> UciStore:
    network = (FIXTURES / "network.stock-lan-wan.uci").read_text().replace("192.168.3.1", lan_ip)
    return UciStore.from_texts({"network": network, "firewall": (FIXTURES / firewall).read_text()})


def _seed(seed_spec: Spec) -> tuple[Plan, LocalKeys]:
    keys = LocalKeys()
    keys.ensure(["A", "B", "phone"], [])
    plan = plan_network(seed_spec, None, keys.public_keys())
    keys.ensure([], [(link.a, link.b) for link in plan.links()])
    return plan, keys


def _options(section: Section | None) -> dict[str, str | tuple[str, ...]]:
    assert section is not None
    return dict(section.options)


def _run(store: UciStore, batch: str) -> None:
    result = store.batch(batch)
    # uci batch exits 0 even when a line fails (reference §1.6), so stderr is the real verdict.
    assert result.rc == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("firewall", STOCK_FIREWALLS)
def test_seed_batch_on_stock_router_a(seed_spec: Spec, firewall: str) -> None:
    plan, keys = _seed(seed_spec)
    store = _stock("192.168.3.1", firewall)
    _run(store, render_site(plan, "A", keys).text("uci-batch"))
    net, fw = store.committed("network"), store.committed("firewall")

    wg0 = _options(net.section("wg0"))
    assert wg0 == {
        "proto": "wireguard",
        "private_key": keys.private_keys["A"],
        "listen_port": "51820",
        "addresses": ("192.168.5.1/24",),
        "mtu": "1420",
    }
    section_b = net.section("sw_peer_B")
    assert section_b is not None and section_b.type == "wireguard_wg0"
    peer_b = _options(section_b)
    assert peer_b["public_key"] == keys.public_keys()["B"]
    assert peer_b["preshared_key"] == keys.preshared_key("A", "B")
    assert peer_b["allowed_ips"] == ("192.168.5.2/32", "192.168.7.0/24")
    assert peer_b["route_allowed_ips"] == "1"
    assert not {"endpoint_host", "endpoint_port", "persistent_keepalive"} & peer_b.keys()
    assert _options(net.section("sw_peer_phone"))["allowed_ips"] == ("192.168.5.3/32",)

    zone = _options(fw.section("sw_zone"))
    assert zone == {
        "name": "sitewire", "network": ("wg0",), "input": "ACCEPT", "output": "ACCEPT",
        "forward": "ACCEPT", "masq": "0", "mtu_fix": "1",
    }  # fmt: skip
    forwardings = {
        (s.options["src"], s.options["dest"]) for s in fw.sections if s.type == "forwarding"
    }
    assert forwardings == {
        ("lan", "wan"),
        ("lan", "sitewire"),
        ("sitewire", "lan"),
        ("sitewire", "wan"),
    }
    rule = _options(fw.section("sw_allow_wg0"))
    assert rule == {"name": "Allow-sitewire-wg0", "src": "wan", "proto": "udp",
                    "dest_port": "51820", "target": "ACCEPT"}  # fmt: skip
    # Nothing of the stock configuration was disturbed.
    stock = parse_uci((FIXTURES / firewall).read_text(), "firewall")
    assert fw.sections[: len(stock.sections)] == stock.sections
    assert _options(net.section("lan"))["ipaddr"] == "192.168.3.1"


def test_seed_batch_on_stock_router_b(seed_spec: Spec) -> None:
    plan, keys = _seed(seed_spec)
    store = _stock("192.168.7.1", STOCK_FIREWALLS[0])
    _run(store, render_site(plan, "B", keys).text("uci-batch"))
    net, fw = store.committed("network"), store.committed("firewall")
    peer_a = _options(net.section("sw_peer_A"))
    assert peer_a["allowed_ips"] == ("192.168.5.1/32", "192.168.3.0/24", "192.168.5.3/32")
    assert (peer_a["endpoint_host"], peer_a["endpoint_port"], peer_a["persistent_keepalive"]) == (
        "a.example.net", "51820", "25",
    )  # fmt: skip
    assert _options(net.section("wg0"))["addresses"] == ("192.168.5.2/24",)
    assert fw.section("sw_allow_wg0") is None  # B is dialled by nobody: no WAN rule
    assert fw.section("sw_zone") is not None


@pytest.mark.parametrize("site", ["A", "B"])
def test_batch_is_idempotent(seed_spec: Spec, site: str) -> None:
    plan, keys = _seed(seed_spec)
    store = _stock("192.168.3.1", STOCK_FIREWALLS[1])
    batch = render_site(plan, site, keys).text("uci-batch")
    _run(store, batch)
    first = {p: store.committed_text(p) for p in ("network", "firewall")}
    _run(store, batch)
    assert {p: store.committed_text(p) for p in ("network", "firewall")} == first
    assert store.run(["changes"]).stdout == ""


def test_batch_converges_from_a_stale_or_hand_edited_state(seed_spec: Spec) -> None:
    """Options a person or an older render left behind are cleared; device-born keys are kept."""
    plan, _ = _seed(seed_spec)
    store = _stock("192.168.7.1", STOCK_FIREWALLS[0])
    _run(store, "\n".join([
        "set network.wg0=interface", "set network.wg0.proto=wireguard",
        "set network.wg0.private_key=" + "K" * 43 + "=", "set network.wg0.fwmark=0x10",
        "add_list network.wg0.addresses=10.0.0.9/24",
        "set network.sw_peer_A=wireguard_wg0", "set network.sw_peer_A.disabled=1",
        "add_list network.sw_peer_A.allowed_ips=0.0.0.0/0",
        "set network.sw_peer_old=wireguard_wg0", "set firewall.sw_allow_wg0=rule",
        "set firewall.sw_zone=zone", "set firewall.sw_zone.masq=1",
        "commit",
    ]))  # fmt: skip
    current = {p: store.committed(p) for p in ("network", "firewall")}
    # Without local keys the router keeps the key it was born with.
    nokeys = plan_network(seed_spec, plan.lock)
    _run(store, render_site(nokeys, "B", NoSecrets(), current).text("uci-batch"))
    net, fw = store.committed("network"), store.committed("firewall")
    wg0 = _options(net.section("wg0"))
    assert wg0["private_key"] == "K" * 43 + "="
    assert "fwmark" not in wg0 and wg0["addresses"] == ("192.168.5.2/24",)
    peer_a = _options(net.section("sw_peer_A"))
    assert "disabled" not in peer_a and "0.0.0.0/0" not in peer_a["allowed_ips"]
    assert net.section("sw_peer_old") is None  # stale: removed because the device state was known
    assert fw.section("sw_allow_wg0") is None
    assert _options(fw.section("sw_zone"))["masq"] == "0"


def test_batch_manages_every_option_wireguard_sh_reads(seed_spec: Spec) -> None:
    plan, keys = _seed(seed_spec)
    batch = render_site(plan, "B", keys).text("uci-batch")
    for option in INTERFACE_OPTIONS:
        assert f"network.wg0.{option}=" in batch
    for option in PEER_OPTIONS:
        assert f"network.sw_peer_A.{option}=" in batch
    # Named sections only: no positional @type[n] addressing (reference §1.6).
    assert "@" not in batch


def test_accepted_routes_are_pinned_with_netifd_rules(seed_spec: Spec) -> None:
    text = (
        '[network]\nname = "n"\noverlay = "10.5.0.0/24"\n'
        '[sites.A]\nlan = ["10.1.0.0/24"]\nendpoint = "a.example.net"\n'
        "tailscale = { accept_routes = true }\n"
        '[sites.B]\nlan = ["10.2.0.0/24", "fd00:2::/64"]\n'
    )
    spec = spec_from(text)
    keys = LocalKeys()
    keys.ensure(["A", "B"], [])
    plan = plan_network(spec, None, keys.public_keys())
    store = _stock("10.1.0.1", STOCK_FIREWALLS[0])
    _run(store, render_site(plan, "A", keys).text("uci-batch"))
    rules = sorted(
        (s.type, s.options["dest"], s.options["lookup"], s.options["priority"])
        for s in store.committed("network").sections
        if s.type in ("rule", "rule6")
    )
    assert rules == [
        ("rule", "10.2.0.0/24", "main", "5100"),
        ("rule", "10.5.0.2/32", "main", "5100"),
        ("rule6", "fd00:2::/64", "main", "5100"),
    ]
    # A second apply, rendered against what the router now holds, leaves the pins as they were.
    first = store.committed_text("network")
    current = {p: store.committed(p) for p in ("network", "firewall")}
    _run(store, render_site(plan, "A", keys, current).text("uci-batch"))
    assert store.committed_text("network") == first


def test_a_removed_client_is_revoked_and_its_address_not_reused(seed_spec: Spec) -> None:
    keys = LocalKeys()
    keys.ensure(["A", "B", "phone", "tablet"], [])
    plan = plan_network(seed_spec, None, keys.public_keys())
    store = _stock("192.168.3.1", STOCK_FIREWALLS[0])
    _run(store, render_site(plan, "A", keys).text("uci-batch"))
    assert store.committed("network").section("sw_peer_phone") is not None
    # The phone is lost: it leaves the spec, a tablet arrives.
    without = spec_from(
        SEED_TEXT.replace('[clients.phone]\nvia = "A"', '[clients.tablet]\nvia = "A"')
    )
    again = plan_network(without, plan.lock, keys.public_keys())
    assert "phone" in again.lock.retired
    assert str(again.lock.entry("tablet").address) == "192.168.5.4"  # .3 stays the phone's
    _run(store, render_site(again, "A", keys).text("uci-batch"))
    net = store.committed("network")
    assert net.section("sw_peer_phone") is None
    assert _options(net.section("sw_peer_tablet"))["allowed_ips"] == ("192.168.5.4/32",)


def test_an_explicit_address_may_not_take_a_locked_one(seed_spec: Spec) -> None:
    plan = plan_network(seed_spec)
    grown = spec_from(SEED_TEXT + '\n[sites.C]\nlan = ["10.9.0.0/24"]\naddress = "192.168.5.2"\n')
    with pytest.raises(
        InputError, match=r"sites\.C\.address: '192\.168\.5\.2' is already B's address"
    ):
        plan_network(grown, plan.lock)


def test_rendering_leaves_the_plan_as_it_was_and_its_memo_goes_with_it(seed_spec: Spec) -> None:
    import gc

    from sitewire.render import model

    plan, keys = _seed(seed_spec)
    before = repr(plan)
    first = render_site(plan, "A", keys)
    assert repr(plan) == before
    assert render_site(plan, "A", keys) == first
    assert id(plan) in model._MEMOS  # peer texts are kept beside the plan, not in it
    key = id(plan)
    del plan
    gc.collect()
    assert key not in model._MEMOS
