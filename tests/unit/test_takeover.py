"""Taking over a network made by hand in LuCI (issue 12): one section per planned thing."""

from __future__ import annotations

from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.parse import HIDDEN
from sitewire.driver import Held
from sitewire.driver.openwrt import DRIVER
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from sitewire.render import NoSecrets
from sitewire.render.openwrt import render_openwrt
from sitewire.render.takeover import plan_takeover, taken_over, zones_holding
from sitewire.spec.model import Platform
from sitewire.uci import Package, UciStore, export_uci, parse_uci
from tests.conftest import FIXTURES, SEED, spec_from
from tests.unit.test_diagnose_parse import openwrt_sections

KEYS = {n: public_key(generate_private_key()) for n in ("A", "B", "phone")}


def _plan() -> Plan:
    text = SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{KEYS["phone"]}"')
    return plan_network(spec_from(text), None, KEYS)


def _stock(file: str, package: str) -> str:
    text = (FIXTURES / file).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return f"package {package}\n\n{body.strip()}\n"


# What LuCI writes for A (the seed's listener), keys as the router shows them.
LUCI_NETWORK = f"""
config interface 'wg0'
\toption proto 'wireguard'
\toption private_key '{HIDDEN}'
\toption listen_port '51820'
\tlist addresses '192.168.5.1/24'

config wireguard_wg0
\toption description 'B'
\toption public_key '{KEYS["B"]}'
\toption preshared_key '{HIDDEN}'
\tlist allowed_ips '192.168.5.2/32'
\tlist allowed_ips '192.168.7.0/24'
\toption route_allowed_ips '1'

config wireguard_wg0
\toption description 'phone'
\toption public_key '{KEYS["phone"]}'
\tlist allowed_ips '192.168.5.3/32'
\toption route_allowed_ips '1'
"""

LUCI_FIREWALL = """
config zone
\toption name 'wireguard'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'
\tlist network 'wg0'

config forwarding
\toption src 'lan'
\toption dest 'wireguard'

config forwarding
\toption src 'wireguard'
\toption dest 'lan'

config forwarding
\toption src 'wireguard'
\toption dest 'wan'

config rule
\toption name 'Allow-WireGuard'
\toption src 'wan'
\toption dest_port '51820'
\toption proto 'udp'
\toption target 'ACCEPT'
"""


def _running() -> str:
    """wg0 as LuCI's configuration made it run (keys hidden as the router sends them)."""
    peer = "wg0\t{}\t{}\t(none)\t{}\t0\t0\t0\toff\n"
    return (
        f"wg0\t{HIDDEN}\t{KEYS['A']}\t51820\toff\n"
        + peer.format(KEYS["B"], HIDDEN, "192.168.5.2/32,192.168.7.0/24")
        + peer.format(KEYS["phone"], "(none)", "192.168.5.3/32")
    )


WG0_LINK = (
    "9: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN "
    "mode DEFAULT group default qlen 1000\\    link/none \n"
)


def _facts() -> DeviceFacts:
    network = _stock("network.stock-lan-wan.uci", "network") + LUCI_NETWORK
    firewall = _stock("firewall.stock-23.05-24.10.uci", "firewall") + LUCI_FIREWALL
    return facts_from_sections(
        "A",
        Platform.OPENWRT,
        openwrt_sections(
            uci_network=(network, 0),
            uci_firewall=(firewall, 0),
            uci_changes=("", 0),
            wg=(_running(), 0),
            links=(WG0_LINK, 0),
            rc_local=("", 0),
        ),
    )


def _packages(facts: DeviceFacts) -> dict[str, Package]:
    assert facts.network is not None and facts.firewall is not None
    return {"network": facts.network, "firewall": facts.firewall}


def test_hand_made_sections_are_renamed_to_sitewire_s() -> None:
    plan, facts = _plan(), _facts()
    takeovers = plan_takeover(plan.site("A"), _packages(facts))
    assert [t.line for t in takeovers] == [
        "rename network.@wireguard_wg0[0]=sw_peer_B",
        "rename network.@wireguard_wg0[1]=sw_peer_phone",
        "rename firewall.@zone[2]=sw_zone",
        "rename firewall.@forwarding[1]=sw_fwd_lan_sitewire",
        "rename firewall.@forwarding[2]=sw_fwd_sitewire_lan",
        "rename firewall.@forwarding[3]=sw_fwd_sitewire_wan",
        "rename firewall.@rule[9]=sw_allow_wg0",
    ]
    assert takeovers[0].shown("A") == "A: peer B: hand-made section @wireguard_wg0[0] taken over"


def test_after_the_takeover_and_the_batch_one_section_describes_each_planned_thing() -> None:
    plan, facts = _plan(), _facts()
    site = plan.site("A")
    rendered = DRIVER.render(plan, site, NoSecrets(), facts)
    after = taken_over(_packages(facts), plan_takeover(site, _packages(facts)))
    store = UciStore(after)
    assert store.batch(rendered.text("uci-batch")).stderr == ""
    network, firewall = store.committed("network"), store.committed("firewall")
    peers = network.sections_of_type("wireguard_wg0")
    assert sorted(str(p.options["public_key"]) for p in peers) == sorted([KEYS["B"], KEYS["phone"]])
    zones = [z for z in firewall.sections_of_type("zone") if "wg0" in z.options.get("network", ())]
    assert [z.name for z in zones] == ["sw_zone"]
    rules = [r for r in firewall.sections_of_type("rule") if r.options.get("dest_port") == "51820"]
    assert [r.name for r in rules] == ["sw_allow_wg0"]
    # The key the router made, and the preshared key, are left as they are.
    wg0 = network.section("wg0")
    assert wg0 is not None and wg0.options["private_key"] == HIDDEN
    peer_b = network.section("sw_peer_B")
    assert peer_b is not None and peer_b.options.get("preshared_key") == HIDDEN
    # No forwarding points at the old zone name any more.
    assert not [
        f for f in firewall.sections_of_type("forwarding") if "wireguard" in f.options.values()
    ]


def test_the_diff_names_each_takeover_and_changes_nothing_that_recreates_wg0() -> None:
    plan, facts = _plan(), _facts()
    site = plan.site("A")
    rendered = DRIVER.render(plan, site, NoSecrets(), facts)
    diff = DRIVER.diff(site, Held(facts, {}, False), rendered)
    # One line per takeover; the renaming that comes with it (descriptions, the zone's and the
    # rule's names, forwardings following the zone) is in that line; masq unset stays unset.
    assert diff.lines == (
        "A: peer B: hand-made section @wireguard_wg0[0] taken over",
        "A: peer phone: hand-made section @wireguard_wg0[1] taken over",
        "A: zone wireguard: hand-made section @zone[2] taken over, now named sitewire",
        "A: forwarding lan→wireguard: hand-made section @forwarding[1] taken over",
        "A: forwarding wireguard→lan: hand-made section @forwarding[2] taken over",
        "A: forwarding wireguard→wan: hand-made section @forwarding[3] taken over",
        "A: rule Allow-WireGuard: hand-made section @rule[9] taken over, now named "
        "Allow-sitewire-wg0",
        "A: zone sitewire: mtu_fix: [none] => 1",
    )
    # The renaming is still a change apply makes.
    assert [c.after for c in diff.changes if c.option == "name"] == [
        "sitewire",
        "Allow-sitewire-wg0",
    ]
    # MTU unset with the device at 1420, as planned: no change, so no ifup.
    assert not [c for c in diff.changes if c.section == "wg0"], diff.changes
    assert not [line for line in diff.lines if line.startswith("A: interface wg0")]
    steps = DRIVER.live_steps(
        site, Held(facts, {}, False), rendered, diff.changes, handler_fresh=False, env=""
    )
    assert not any(s.command.startswith("ifup") for s in steps), steps


def test_a_second_hand_made_section_for_a_planned_key_is_deleted() -> None:
    plan, facts = _plan(), _facts()
    packages = _packages(facts)
    once = taken_over(packages, plan_takeover(plan.site("A"), packages))
    again = f"\nconfig wireguard_wg0\n\toption public_key '{KEYS['B']}'\n"

    network = parse_uci(export_uci(once["network"]) + again, "network")
    takeovers = plan_takeover(plan.site("A"), {"network": network, "firewall": once["firewall"]})
    assert [t.line for t in takeovers] == ["delete network.@wireguard_wg0[2]"]


def test_remove_foreign_deletes_a_hand_made_peer_the_plan_does_not_know() -> None:
    plan, facts = _plan(), _facts()
    packages = _packages(facts)
    stranger = public_key(generate_private_key())
    extra = f"\nconfig wireguard_wg0\n\toption public_key '{stranger}'\n"
    network = parse_uci(export_uci(packages["network"]) + extra, "network")
    packages = {**packages, "network": network}
    kept = plan_takeover(plan.site("A"), packages)
    assert not [t for t in kept if t.line.startswith("delete network")]
    dropped = plan_takeover(plan.site("A"), packages, drop_foreign=True)
    [gone] = [t for t in dropped if t.line.startswith("delete network")]
    assert gone.line == "delete network.@wireguard_wg0[2]"
    assert gone.label == f"peer {stranger[:8]}…"


def _with_firewall(extra: str) -> dict[str, Package]:
    facts = _facts()
    firewall = parse_uci(export_uci(_packages(facts)["firewall"]) + extra, "firewall")
    return {**_packages(facts), "firewall": firewall}


def test_rules_naming_the_taken_over_zone_follow_its_new_name() -> None:
    extra = (
        "\nconfig rule\n\toption name 'no-ssh'\n\toption src 'wireguard'\n"
        "\toption dest_port '22'\n\toption target 'REJECT'\n"
    )
    lines = [t.line for t in plan_takeover(_plan().site("A"), _with_firewall(extra))]
    assert "set firewall.@rule[10].src='sitewire'" in lines


def test_a_zone_shared_as_an_option_string_loses_only_the_interface() -> None:
    text = LUCI_FIREWALL.replace("\tlist network 'wg0'", "\toption network 'lan2 wg0'")
    facts = _facts()
    firewall = parse_uci(_stock("firewall.stock-23.05-24.10.uci", "firewall") + text, "firewall")
    packages = {**_packages(facts), "firewall": firewall}
    lines = [t.line for t in plan_takeover(_plan().site("A"), packages)]
    assert "set firewall.@zone[2].network='lan2'" in lines
    assert not [line for line in lines if line.startswith("rename firewall.@zone")]


def test_a_rule_from_any_zone_or_without_proto_opens_the_port_too() -> None:
    for rule in ("\toption src '*'\n\toption proto 'udp'\n", "\toption src 'wan'\n"):
        text = LUCI_FIREWALL.split("config rule")[0] + (
            f"config rule\n\toption name 'Allow-WireGuard'\n{rule}"
            "\toption dest_port '51820'\n\toption target 'ACCEPT'\n"
        )
        firewall = parse_uci(
            _stock("firewall.stock-23.05-24.10.uci", "firewall") + text, "firewall"
        )
        packages = {**_packages(_facts()), "firewall": firewall}
        lines = [t.line for t in plan_takeover(_plan().site("A"), packages)]
        assert any(line.endswith("=sw_allow_wg0") for line in lines), (rule, lines)


def test_a_retired_node_keeps_its_public_key_in_the_lock() -> None:
    plan = _plan()
    without_phone = spec_from(SEED.read_text().replace('[clients.phone]\nvia = "A"\n', ""))
    again = plan_network(without_phone, plan.lock)
    assert again.lock.retired["phone"].public_key == KEYS["phone"]


def test_a_zone_holding_the_interface_by_device_is_taken_over_or_left() -> None:
    alone = LUCI_FIREWALL.replace("\tlist network 'wg0'", "\tlist device 'wg0'")
    shared = LUCI_FIREWALL.replace(
        "\tlist network 'wg0'", "\tlist device 'wg0'\n\tlist device 'tun1'"
    )
    for text, expected in ((alone, "rename firewall.@zone[2]=sw_zone"),
                           (shared, "del_list firewall.@zone[2].device='wg0'")):  # fmt: skip
        firewall = parse_uci(
            _stock("firewall.stock-23.05-24.10.uci", "firewall") + text, "firewall"
        )
        packages = {**_packages(_facts()), "firewall": firewall}
        lines = [t.line for t in plan_takeover(_plan().site("A"), packages)]
        assert expected in lines, lines


def test_a_zone_named_by_the_interface_s_zone_option_is_taken_over_and_the_option_cleared() -> None:
    """netifd restarts the interface when its zone changes: apply says so and runs ifup."""
    plan, facts = _plan(), _facts()
    site = plan.site("A")
    text = LUCI_FIREWALL.replace("\tlist network 'wg0'\n", "")
    firewall = parse_uci(_stock("firewall.stock-23.05-24.10.uci", "firewall") + text, "firewall")
    network_text = export_uci(_packages(facts)["network"]).replace(
        "config interface 'wg0'\n", "config interface 'wg0'\n\toption zone 'wireguard'\n"
    )
    network = parse_uci(network_text, "network")
    packages = {"network": network, "firewall": firewall}
    assert "rename firewall.@zone[2]=sw_zone" in [t.line for t in plan_takeover(site, packages)]
    after = taken_over(packages, plan_takeover(site, packages))
    store = UciStore(after)
    rendered = render_openwrt(plan, site, NoSecrets(), after, device_mtu=1420)
    assert store.batch(rendered.text("uci-batch")).stderr == ""
    wg0 = store.committed("network").section("wg0")
    assert wg0 is not None and "zone" not in wg0.options
    zones = zones_holding(store.committed("network"), store.committed("firewall"), "wg0")
    assert [z.name for z, _ in zones] == ["sw_zone"]
