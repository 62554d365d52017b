"""The per-site diff: what the batch will change, readable, secrets hidden, nothing on a rerun."""

from __future__ import annotations

import ipaddress

import pytest

from sitewire.deploy.diff import describe, planned_changes
from sitewire.errors import SitewireError
from sitewire.plan import plan_network
from sitewire.render import render_site
from sitewire.spec.model import Spec
from sitewire.spec.secrets import LocalKeys
from sitewire.uci import Package, UciStore, parse_uci
from tests.conftest import FIXTURES


def _stock(lan_ip: str) -> dict[str, Package]:
    network = (FIXTURES / "network.stock-lan-wan.uci").read_text().replace("192.168.3.1", lan_ip)
    firewall = (FIXTURES / "firewall.stock-23.05-24.10.uci").read_text()
    return {"network": parse_uci(network, "network"), "firewall": parse_uci(firewall, "firewall")}


def test_first_apply_lists_every_planned_section(seed_spec: Spec) -> None:
    keys = LocalKeys()
    keys.ensure(["A", "B", "phone"], [])
    plan = plan_network(seed_spec, None, keys.public_keys())
    keys.ensure([], [(link.a, link.b) for link in plan.links()])
    batch = render_site(plan, "B", keys).text("uci-batch")
    lines = describe("B", planned_changes(_stock("192.168.7.1"), batch))
    assert "B: peer A: added" in lines
    assert (
        "B: peer A: allowed_ips: [none] => [192.168.5.1/32, 192.168.3.0/24, 192.168.5.3/32]"
        in lines
    )
    assert "B: peer A: endpoint_host: [none] => a.example.net" in lines
    assert "B: interface wg0: private_key: [none] => (secret)" in lines
    assert "B: forwarding sitewire→lan: added" in lines
    text = "\n".join(lines)
    for secret in [*keys.private_keys.values(), *keys.preshared_keys.values()]:
        assert secret not in text


def test_a_second_apply_changes_nothing_and_a_peer_change_is_one_line(seed_spec: Spec) -> None:
    keys = LocalKeys()
    keys.ensure(["A", "B", "phone"], [])
    plan = plan_network(seed_spec, None, keys.public_keys())
    keys.ensure([], [(link.a, link.b) for link in plan.links()])
    batch = render_site(plan, "A", keys).text("uci-batch")
    store = UciStore(_stock("192.168.3.1"))
    store.batch(batch)
    applied = {name: store.committed(name) for name in ("network", "firewall")}
    assert describe("A", planned_changes(applied, batch)) == ["A: no changes"]
    site_b = seed_spec.sites["B"]
    wider = site_b.model_copy(update={"lan": (*site_b.lan, ipaddress.ip_network("10.7.0.0/24"))})
    moved = seed_spec.model_copy(update={"sites": {**seed_spec.sites, "B": wider}})
    again = plan_network(moved, plan.lock, keys.public_keys())
    batch2 = render_site(again, "A", keys).text("uci-batch")
    assert describe("A", planned_changes(applied, batch2)) == [
        "A: peer B: allowed_ips: [192.168.5.2/32, 192.168.7.0/24] => "
        "[192.168.5.2/32, 192.168.7.0/24, 10.7.0.0/24]"
    ]


def test_a_batch_the_device_would_reject_is_refused_before_touching_it() -> None:
    with pytest.raises(SitewireError, match="the uci batch would fail"):
        planned_changes(_stock("192.168.3.1"), "set network.bad-name=interface\n")
