"""doctor's checks 6–10 on SYNTHETIC facts: the seed network's two routers as the collector
would read them when healthy (UCI, `wg show all dump`, routes, links, probes), then one fault."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import replace

import pytest

from sitewire import strict
from sitewire.diagnose.doctor import Finding, Live, diagnose
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.lans import next_hop, relayed
from sitewire.diagnose.parse import HIDDEN, ScriptSection, parse_ip_rules
from sitewire.diagnose.probes import Probes, parse_probes, probe_sections
from sitewire.diagnose.script import build_script
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from sitewire.spec.model import Platform, Spec
from sitewire.strict import IPNetwork
from tests.conftest import spec_from
from tests.unit.test_diagnose_parse import openwrt_sections

KEYS = {name: public_key(generate_private_key()) for name in ("A", "B", "phone")}
OTHER = {"A": "B", "B": "A"}
LAN = {"A": "192.168.3", "B": "192.168.7"}
WAN = {"A": ("198.18.0.10", "fd53:5357:0:1::10"), "B": ("198.18.0.11", "fd53:5357:0:1::11")}
WRONG = public_key(generate_private_key())


@pytest.fixture
def plan(seed_spec: Spec) -> Plan:
    return plan_network(seed_spec, None, KEYS)


def _network(
    plan: Plan, site: str, peer_options: Mapping[str, Mapping[str, str]], iface: str = ""
) -> str:
    """`uci export network` of a router running the plan; peer_options override by peer,
    `iface` adds lines to the interface section."""
    me = plan.site(site)
    text = (
        "package network\n\n"
        f"config interface 'lan'\n\toption device 'br-lan'\n\toption proto 'static'\n"
        f"\toption ipaddr '{LAN[site]}.1'\n\toption netmask '255.255.255.0'\n\n"
        f"config interface 'wg0'\n\toption proto 'wireguard'\n\toption private_key '{HIDDEN}'\n"
        f"\toption listen_port '51820'\n\toption mtu '{me.mtu}'\n"
        f"\tlist addresses '{me.addresses[0]}'\n{iface}"
    )
    for peer in me.peers:
        options = {"public_key": peer.public_key or "", "route_allowed_ips": "1"}
        options.update(peer_options.get(peer.name, {}))
        text += f"\nconfig wireguard_wg0 'sw_peer_{peer.name}'\n"
        for option, value in options.items():
            if value != "" and option != "allowed_ips":
                text += f"\toption {option} '{value}'\n"
        for prefix in options.get("allowed_ips", ",".join(map(str, peer.allowed_ips))).split(","):
            text += f"\tlist allowed_ips '{prefix}'\n"
    return text


FIREWALL = """package firewall

config defaults
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'

config zone
\toption name 'lan'
\tlist network 'lan'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'

config zone
\toption name 'wan'
\tlist network 'wan'
\tlist network 'wan6'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'
\toption masq '1'

config forwarding
\toption src 'lan'
\toption dest 'wan'

config zone 'sw_zone'
\toption name 'sitewire'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'
{zone_network}
config forwarding 'sw_fwd_lan_sitewire'
\toption src 'lan'
\toption dest 'sitewire'

config forwarding 'sw_fwd_sitewire_lan'
\toption src 'sitewire'
\toption dest 'lan'

config rule 'sw_allow_wg0'
\toption name 'Allow-sitewire-wg0'
\toption src 'wan'
\toption proto 'udp'
\toption dest_port '51820'
\toption target 'ACCEPT'
"""


def _dump(plan: Plan, site: str, keys: Mapping[str, str], ips: Mapping[str, str], own: str) -> str:
    me = plan.site(site)
    lines = [f"wg0\t{HIDDEN}\t{own}\t51820\toff"]
    for peer in me.peers:
        key = keys.get(peer.name, peer.public_key)
        allowed = ips.get(peer.name, ",".join(str(p) for p in peer.allowed_ips))
        endpoint = "[fd53:5357:0:1::10]:51820" if peer.dial else "(none)"
        keep = str(peer.dial.keepalive) if peer.dial else "off"
        shake = "0" if key == WRONG else "1795570490"
        lines.append(f"wg0\t{key}\t{HIDDEN}\t{endpoint}\t{allowed}\t{shake}\t1\t2\t{keep}")
    return "\n".join(lines) + "\n"


def _routes(plan: Plan, site: str, unrouted: tuple[str, ...]) -> str:
    me = plan.site(site)
    lines = [
        "default via 198.18.0.1 dev wan proto static",
        f"{me.lan[0]} dev br-lan proto kernel scope link src {LAN[site]}.1",
        f"{me.addresses[0].network} dev wg0 proto kernel scope link src {me.addresses[0].ip}",
    ]
    for peer in me.peers:
        for prefix in peer.allowed_ips:
            if prefix.prefixlen < prefix.max_prefixlen and str(prefix) not in unrouted:
                lines.append(f"{prefix} dev wg0 proto static scope link")
    return "\n".join(lines) + "\n"


def _links(mtu: int) -> str:
    return (
        "2: wan@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    "
        "link/ether de:a0:c7:2b:c2:27 brd ff:ff:ff:ff:ff:ff\n"
        "3: br-lan: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    "
        "link/ether de:a0:c7:2b:c2:28 brd ff:ff:ff:ff:ff:ff\n"
        f"6: wg0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu {mtu} qdisc pfifo_fast state "
        "UNKNOWN\\    link/none \n"
    )


def facts(
    plan: Plan,
    site: str,
    *,
    peer_options: Mapping[str, Mapping[str, str]] | None = None,
    keys: Mapping[str, str] | None = None,
    ips: Mapping[str, str] | None = None,
    unrouted: tuple[str, ...] = (),
    zone_network: str = "\tlist network 'wg0'\n",
    iface: str = "",
    own_key: str | None = None,
    mtu: int = 1420,
) -> DeviceFacts:
    """SYNTHETIC: SITE's router running the plan, but for what the keywords change."""
    override = {
        "uci_network": (_network(plan, site, peer_options or {}, iface), 0),
        "uci_firewall": (FIREWALL.format(zone_network=zone_network), 0),
        "uci_changes": ("", 0),
        "wg": (_dump(plan, site, keys or {}, ips or {}, own_key or KEYS[site]), 0),
        "routes4": (_routes(plan, site, unrouted), 0),
        "links": (_links(mtu), 0),
        "rc_local": ("", 0),
    }
    return facts_from_sections(site, plan.site(site).platform, openwrt_sections(**override))


def lan_of(site: str) -> tuple[str, IPNetwork]:
    """The key of the probes' answers for SITE's LAN."""
    return site, strict.network(f"{LAN[site]}.0/24")


def probes(plan: Plan, site: str, **changes: object) -> Probes:
    """SYNTHETIC: what a healthy router's probes print, parsed; `changes` replace fields."""
    other = OTHER[site]
    dst = f"{LAN[other]}.1"
    via = f"{dst} dev wg0 src {LAN[site]}.1 uid 0"
    out = Probes(
        addresses=("127.0.0.1", *WAN[site], f"{LAN[site]}.1", str(plan.site(site).addresses[0].ip)),
        resolved={"a.example.net": WAN["A"]} if site == "B" else {},
        route_lan={lan_of(other): f"{dst} from {LAN[site]}.254 dev wg0 iif br-lan"},
        route_router={lan_of(other): via},
        ping_router={lan_of(other): True},
        small={other: True},
        large={other: True},
        lan={4: (f"{LAN[site]}.254", "br-lan")},
    )
    for name, value in changes.items():
        setattr(out, name, value)
    return out


def live(
    plan: Plan,
    a: DeviceFacts | None = None,
    b: DeviceFacts | None = None,
    pa: Probes | None = None,
    pb: Probes | None = None,
) -> Live:
    return Live(
        plan,
        {"A": a or facts(plan, "A"), "B": b or facts(plan, "B")},
        {"A": pa or probes(plan, "A"), "B": pb or probes(plan, "B")},
    )


def only(findings: list[Finding], check: str, site: str) -> Finding:
    assert [(f.check, f.site) for f in findings] == [(check, site)], "\n".join(
        f.text() for f in findings
    )
    return findings[0]


def test_the_healthy_seed_has_no_finding(plan: Plan) -> None:
    findings = diagnose(live(plan))
    assert findings == [], "\n".join(f.text() for f in findings)


# --- 6. route_allowed_ips off --------------------------------------------------------------


def test_6_route_allowed_ips_off_leaks_to_the_wan(plan: Plan) -> None:
    b = facts(
        plan,
        "B",
        peer_options={"A": {"route_allowed_ips": "0"}},
        unrouted=("192.168.3.0/24",),
    )
    pb = probes(plan, "B", route_router={lan_of("A"): "192.168.3.1 via 198.18.0.1 dev wan src x"})
    finding = only(diagnose(live(plan, b=b, pb=pb)), "no-route", "B")
    assert "no route to 192.168.3.0/24 through wg0 (route_allowed_ips is off)" in finding.problem
    assert finding.evidence[1:] == (
        "$ ip route get 192.168.3.1",
        "192.168.3.1 via 198.18.0.1 dev wan src x",
        "$ uci get network.sw_peer_A.route_allowed_ips",
        "0",
    )
    assert finding.fix.startswith(
        "uci set network.sw_peer_A.route_allowed_ips='1' && uci commit network && ifup wg0"
    )


def test_6_a_route_deleted_by_hand_with_the_option_on(plan: Plan) -> None:
    b = facts(plan, "B", unrouted=("192.168.3.0/24",))
    finding = only(diagnose(live(plan, b=b)), "no-route", "B")
    assert "route_allowed_ips is off" not in finding.problem
    assert finding.evidence[-1] == "1"


# --- 7. a public key mismatch ---------------------------------------------------------------


def test_7_the_side_holding_the_wrong_key_is_named(plan: Plan) -> None:
    a = facts(plan, "A", keys={"B": WRONG}, peer_options={"B": {"public_key": WRONG}})
    pa = probes(plan, "A", small={"B": False}, large={"B": False}, ping_router={lan_of("B"): False})
    pb = probes(plan, "B", small={"A": False}, large={"A": False}, ping_router={lan_of("A"): False})
    finding = only(diagnose(live(plan, a=a, pa=pa, pb=pb)), "wrong-key", "A")
    assert "holds the wrong public key for B" in finding.problem
    dump = next(line for line in finding.evidence if line.startswith("wg0\t"))
    assert dump.split("\t")[1] == WRONG and dump.split("\t")[4] == "0"
    assert finding.evidence[-1] == KEYS["B"]
    assert f"public_key='{KEYS['B']}'" in finding.fix


def test_7_the_real_key_counts_not_the_lock(plan: Plan) -> None:
    """B's key changed on B (a reset router): A holds the key the lock has, not the one B
    has; A is told, with B's real key."""
    real_b = public_key(generate_private_key())
    finding = only(diagnose(live(plan, b=facts(plan, "B", own_key=real_b))), "wrong-key", "A")
    assert finding.evidence[-1] == real_b


def test_7_an_unreadable_peer_is_not_blamed(plan: Plan) -> None:
    """Without B's facts, A's key for B cannot be judged."""
    a = facts(plan, "A", keys={"B": WRONG}, peer_options={"B": {"public_key": WRONG}})
    state = Live(plan, {"A": a}, {"A": probes(plan, "A", small={"B": False})})
    assert [f.check for f in diagnose(state)] == []


# --- 8. saved but not live --------------------------------------------------------------------


def test_8_a_peer_change_saved_but_not_running(plan: Plan) -> None:
    saved = "192.168.5.1/32,192.168.3.0/24,192.168.5.3/32,10.77.0.0/24"
    b = facts(plan, "B", peer_options={"A": {"allowed_ips": saved}})
    finding = only(diagnose(live(plan, b=b)), "saved-not-live", "B")
    assert "peer A in /etc/config/network differs from what wg0 runs" in finding.problem
    assert finding.evidence[1].split() == sorted(saved.split(","))
    running = finding.evidence[3].split("\t")
    assert running[1] == KEYS["A"] and "10.77.0.0/24" not in running[3]
    assert finding.fix.startswith("ifup wg0   (24.10: a network reload ignores peer changes")


def test_8_a_peer_saved_but_not_running_at_all(plan: Plan) -> None:
    """The phone's peer was added in UCI, the device never got it."""
    drop = ",".join(str(p) for p in plan.site("A").peer("phone").allowed_ips)
    a = facts(plan, "A", keys={"phone": WRONG}, ips={"phone": drop})
    finding = only(diagnose(live(plan, a=a)), "saved-not-live", "A")
    assert "peer phone" in finding.problem and finding.evidence[-1] == "(not running)"


def test_8_a_wrong_key_is_not_also_reported_as_unsaved(plan: Plan) -> None:
    """UCI and the device agree on a key B does not have: that is check 7's alone."""
    a = facts(plan, "A", keys={"B": WRONG}, peer_options={"B": {"public_key": WRONG}})
    assert [f.check for f in diagnose(live(plan, a=a))] == ["wrong-key"]


# --- 9. an MTU too large for the path -----------------------------------------------------


def test_9_one_finding_per_pair_with_the_size_that_crossed(plan: Plan) -> None:
    pa = probes(plan, "A", large={"B": False}, fits={"B": 1400})
    pb = probes(plan, "B", large={"A": False}, fits={"A": 1400})
    finding = only(diagnose(live(plan, pa=pa, pb=pb)), "mtu-too-large", "A")
    assert "packets of wg0's MTU (1420) do not cross to B; small ones do" in finding.problem
    assert finding.evidence == (
        "$ ping -c 2 192.168.5.2   → ok",
        "$ ping -c 2 -M do -s 1392 192.168.5.2   → no reply",
        "$ ping -c 1 -M do -s 1372 192.168.5.2   → ok  (the largest that crossed)",
        "(and the same from B to A)",
    )
    assert finding.fix == "set mtu = 1400 under sites.A and sites.B, then run sitewire apply"


def test_9_one_direction_is_reported_where_it_is_seen(plan: Plan) -> None:
    pb = probes(plan, "B", large={"A": False})
    finding = only(diagnose(live(plan, pb=pb)), "mtu-too-large", "B")
    assert "(and the same" not in " ".join(finding.evidence)
    assert "set wan_mtu" in finding.fix and "sites.B and sites.A" in finding.fix


def test_9_the_running_mtu_is_probed_not_the_plans(plan: Plan) -> None:
    a = facts(plan, "A", mtu=1400)
    pa = probes(plan, "A", large={"B": False})
    finding = only(diagnose(live(plan, a=a, pa=pa)), "mtu-too-large", "A")
    assert "MTU (1400)" in finding.problem and "-s 1372 " in finding.evidence[1]
    script = probe_sections(plan, "A", {"A": a, "B": facts(plan, "B")})[0][1]
    assert '-M do -s 1372 "$8"' in script
    assert "for s in 1352 1332 1312 1292 1272 1252; do" in script


@pytest.mark.parametrize(
    ("small", "large"),
    [(False, False), (True, None), (True, True)],
    ids=["tunnel-down", "busybox-ping-without-df", "healthy"],
)
def test_9_not_an_mtu_problem(plan: Plan, small: bool, large: bool | None) -> None:
    pa = probes(plan, "A", small={"B": small}, large={"B": large})
    assert [f for f in diagnose(live(plan, pa=pa)) if f.check == "mtu-too-large"] == []


def test_9_probe_output_parses() -> None:
    text = "small B ok\nlarge B fail\nfits B 1400\nfits C x\nlarge C unknown\n"
    parsed = parse_probes(ScriptSection("sw_probes", 0, text, ""))
    assert parsed.small == {"B": True}
    assert parsed.large == {"B": False, "C": None}
    assert parsed.fits == {"B": 1400}


def test_9_each_target_is_probed_in_parallel(plan: Plan) -> None:
    script = probe_sections(plan, "A", {"A": facts(plan, "A"), "B": facts(plan, "B")})[0][1]
    # B's LAN prefix, routed from a host in A's LAN arriving on br-lan; B's router LAN
    # address pinged from A's own; B's overlay address; no host known in B's LAN
    assert "\nwgdev=wg0\n" in script
    assert (
        "\nprobe B 192.168.7.0/24 192.168.3.254 br-lan 192.168.7.1 1 192.168.3.1 192.168.5.2 &\n"
    ) in script
    assert script.rstrip().endswith("wait\nreturn 0")
    assert 'pp -M do -s 1392 "$8"' in script


def _many(n: int) -> str:
    lines = ["[network]", 'name = "many"', 'overlay = "10.99.0.0/24"']
    for i in range(n):
        lines += [f"[sites.s{i:02d}]", f'lan = ["10.{i + 1}.0.0/24"]']
        if i % 4 == 0:
            lines.append(f'endpoint = "s{i:02d}.example.net"')
    return "\n".join(lines) + "\n"


def test_a_relay_is_asked_its_route_only_where_its_rules_could_divert_it() -> None:
    """lans.relayed: each planned path through a relay (the dialers reach each other through
    a listener), for the relays whose policy rules could take the packet from main."""
    spec = spec_from(_many(8))
    big = plan_network(
        spec, None, {name: public_key(generate_private_key()) for name in spec.sites}
    )
    routes = "default via 198.18.0.1 dev wan\n" + "".join(
        f"10.{i + 1}.0.0/24 dev br-lan proto kernel scope link src 10.{i + 1}.0.1\n"
        for i in range(8)
    )
    plain = {
        n: facts_from_sections(n, Platform.OPENWRT, openwrt_sections(routes4=(routes, 0)))
        for n in big.site_names
    }
    assert relayed(big, plain) == {}  # rules 0, 5270 (table 52 empty), 32766, 32767 only
    ruled = dict(plain)
    extra = parse_ip_rules("1000:\tfrom all iif wg0 lookup 100\n")
    ruled["s00"] = replace(plain["s00"], rules4=(*plain["s00"].rules4, *extra))
    found = relayed(big, ruled)
    assert set(found) == {"s00"}
    for source, prefix, host, target in found["s00"]:
        assert source not in ("s00",) and strict.address(target) in prefix
        assert next_hop(big, source, strict.address(target)) == "s00"
        assert host == f"{big.site(source).lan[0].network_address + 254}"
    assert len(found["s00"]) > 0


def test_the_probe_script_grows_by_a_line_per_site() -> None:
    """The script goes on stdin (dropbear drops a command over 9000 bytes), and still grows
    by one short line per site, not a block. And it is valid sh."""
    spec = spec_from(_many(60))
    keys = {name: public_key(generate_private_key()) for name in spec.sites}
    big = plan_network(spec, None, keys)
    lines = "default via 198.18.0.1 dev wan\n" + "".join(
        f"10.{i + 1}.0.0/24 dev br-lan proto kernel scope link src 10.{i + 1}.0.1\n"
        for i in range(60)
    )
    every = {
        name: facts_from_sections(
            name, Platform.OPENWRT, openwrt_sections(routes4=(lines, 0), links=(_links(1420), 0))
        )
        for name in big.site_names
    }
    for site in ("s00", "s01"):
        script = build_script(probe_sections(big, site, every))
        calls = [line for line in script.splitlines() if line.startswith("probe ")]
        assert len(calls) == 59 and max(map(len, calls)) < 120, calls
        checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


# --- 10. the interface in no zone -------------------------------------------------------


def test_10_the_interface_in_no_zone(plan: Plan) -> None:
    b = facts(plan, "B", zone_network="")
    finding = only(diagnose(live(plan, b=b)), "interface-without-zone", "B")
    assert finding.problem.startswith("wg0 is in no firewall zone")
    zone = next(line for line in finding.evidence if "name=sitewire" in line)
    assert zone.startswith("firewall.sw_zone=zone") and "network=" not in zone
    assert finding.fix.startswith("uci add_list firewall.sw_zone.network='wg0'")


@pytest.mark.parametrize(
    "membership",
    ["\toption network 'wg0 lan6'\n", "\tlist device 'wg0'\n"],
    ids=["network-as-option", "device"],
)
def test_10_other_ways_of_listing_it_count(plan: Plan, membership: str) -> None:
    b = facts(plan, "B", zone_network=membership)
    assert diagnose(live(plan, b=b)) == []


def test_10_a_zone_named_by_the_interface_itself_counts(plan: Plan) -> None:
    """netifd's `option zone` on the interface puts it in that zone (fw4 reads it too)."""
    b = facts(plan, "B", zone_network="", iface="\toption zone 'sitewire'\n")
    assert diagnose(live(plan, b=b)) == []
    b = facts(plan, "B", zone_network="", iface="\toption zone 'nosuchzone'\n")
    only(diagnose(live(plan, b=b)), "interface-without-zone", "B")
