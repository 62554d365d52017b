"""doctor traces every LAN prefix, IPv6 as well as IPv4, on SYNTHETIC facts: test_doctor2's
healthy seed routers with a second LAN prefix, fd00:3::/64 and fd00:7::/64, where each router
holds ::1 (as the lab gives them)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sitewire import strict
from sitewire.diagnose.doctor import Live, diagnose
from sitewire.diagnose.doctor.paths import paths
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.lans import lan_address
from sitewire.diagnose.parse import (
    HeldAddress,
    ScriptSection,
    parse_addresses,
    parse_ip_rules,
    parse_routes,
)
from sitewire.diagnose.parse.tailscale import TailscalePrefs, parse_tailscale_prefs
from sitewire.diagnose.probes import Probes, parse_probes, probe_sections
from sitewire.plan import Plan, plan_network
from tests.conftest import SEED, spec_from
from tests.unit.test_doctor2 import KEYS, facts, lan_of, only, probes
from tests.unit.test_doctor_paths import _fw4, _guard

V6 = {"A": "fd00:3::", "B": "fd00:7::"}
LAN6 = {site: strict.network(f"{prefix}/64") for site, prefix in V6.items()}
HOST6 = {site: f"{prefix}ffff:ffff:ffff:fffe" for site, prefix in V6.items()}  # lan_host's pick
OTHER = {"A": "B", "B": "A"}


@pytest.fixture
def dual() -> Plan:
    text = (
        SEED.read_text()
        .replace('lan = ["192.168.3.0/24"]', 'lan = ["192.168.3.0/24", "fd00:3::/64"]')
        .replace('lan = ["192.168.7.0/24"]', 'lan = ["192.168.7.0/24", "fd00:7::/64"]')
    )
    return plan_network(spec_from(text), None, KEYS)


def dual_facts(plan: Plan, site: str, *, v6: bool = True) -> DeviceFacts:
    held = (HeldAddress(strict.interface(f"{V6[site]}1/64"), "br-lan"),) if v6 else ()
    link_local = HeldAddress(strict.interface("fe80::1/64"), "br-lan")
    return replace(facts(plan, site), addresses=(link_local, *held))


def dual_probes(plan: Plan, site: str, **changes: object) -> Probes:
    """What a healthy dual-stack router's probes give: test_doctor2's, and the IPv6 prefix
    routed through wg0 and its LAN address answering."""
    other = OTHER[site]
    out = probes(plan, site, **changes)
    out.lan[6] = (HOST6[site], "br-lan")
    out.route_lan.setdefault(
        (other, LAN6[other]), f"{V6[other]}1 from {HOST6[site]} dev wg0 iif br-lan"
    )
    out.ping_lan.setdefault((other, LAN6[other]), True)
    return out


def dual_live(plan: Plan, **probes_of: Probes) -> Live:
    return Live(
        plan,
        {s: dual_facts(plan, s) for s in ("A", "B")},
        {s: probes_of.get(s) or dual_probes(plan, s) for s in ("A", "B")},
    )


# --- reading the router's addresses ------------------------------------------------------------


def test_addresses_from_ip_o_addr_show() -> None:
    text = (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        "3: br-lan    inet 192.168.3.1/24 brd 192.168.3.255 scope global br-lan\\       valid_lft "
        "forever preferred_lft forever\n"
        "3: br-lan    inet6 fd00:3::1/64 scope global \\       valid_lft forever preferred_lft "
        "forever\n"
        "5: wan@if6    inet6 fd53:5357:0:1::10/64 scope global \\       valid_lft forever\n"
        "7: wg0    inet 192.168.5.1 peer 192.168.5.2/32 scope global wg0\n"
        "8: bad;name    inet 10.0.0.1/24 scope global\n"
        "9: eth0    inet 10.0.0.1/24%x scope global\n"
        "9: eth0    link/ether 02:00:00:00:00:01\n"
    )
    held = [(str(a.interface), a.dev) for a in parse_addresses(text)]
    assert held == [
        ("127.0.0.1/8", "lo"),
        ("192.168.3.1/24", "br-lan"),
        ("fd00:3::1/64", "br-lan"),
        ("fd53:5357:0:1::10/64", "wan"),
        ("192.168.5.1/32", "wg0"),
    ]


def test_a_routers_ipv6_lan_address_comes_from_what_it_holds(dual: Plan) -> None:
    """An IPv6 connected route names no src; the IPv4 one still comes from the route."""
    a = dual_facts(dual, "A")
    assert lan_address(a, LAN6["A"]) == (strict.address("fd00:3::1"), "br-lan")
    assert lan_address(a, strict.network("192.168.3.0/24")) == (
        strict.address("192.168.3.1"),
        "br-lan",
    )
    # a link-local address is in no LAN prefix; and a router without one has none
    assert lan_address(dual_facts(dual, "A", v6=False), LAN6["A"]) is None


# --- the probes -------------------------------------------------------------------------------


def test_every_lan_prefix_is_probed_from_a_source_of_its_own_family(dual: Plan) -> None:
    every = {s: dual_facts(dual, s) for s in ("A", "B")}
    script = probe_sections(dual, "A", every)[0][1]
    assert script.startswith("echo lan 192.168.3.254 br-lan\n")  # addresses: with the facts
    assert f"\necho lan {HOST6['A']} br-lan\n" in script
    lead = "192.168.7.0/24 192.168.3.254 br-lan 192.168.7.1 1 192.168.3.1 192.168.5.2"
    assert f"\nprobe B {lead} &\n" in script
    assert f"\nmore B fd00:7::/64 {HOST6['A']} br-lan fd00:7::1 1 fd00:3::1 &\n" in script
    # a router with no IPv6 LAN address routes the prefix with no source, and pings nothing
    v4_only = {"A": dual_facts(dual, "A", v6=False), "B": every["B"]}
    assert "\nmore B fd00:7::/64 - - fd00:7::1 0 - &\n" in probe_sections(dual, "A", v4_only)[0][1]


def test_probe_answers_are_kept_by_site_and_prefix() -> None:
    text = (
        f"lan 192.168.3.254 br-lan\nlan {HOST6['A']} br-lan\nlan nonsense br-lan\n"
        "route_lan B 192.168.7.0/24 192.168.7.1 from 192.168.3.254 dev wg0\n"
        f"route_lan B fd00:7::/64 fd00:7::1 from {HOST6['A']} dev tailscale0 table 52\n"
        "route_lan B fd00:7::/64;x fd00:7::1 dev wg0\n"
        "route_router B fd00:7::/64 fd00:7::1 dev tailscale0 table 52\n"
        "ping_router B fd00:7::/64 ok\nping_lan B fd00:7::/64 fail\nping_lan B nope ok\n"
    )
    parsed = parse_probes(ScriptSection("sw_probes", 0, text, ""))
    assert parsed.lan == {4: ("192.168.3.254", "br-lan"), 6: (HOST6["A"], "br-lan")}
    assert set(parsed.route_lan) == {lan_of("B"), ("B", LAN6["B"])}
    assert "tailscale0" in parsed.route_lan["B", LAN6["B"]]
    assert parsed.route_router == {("B", LAN6["B"]): "fd00:7::1 dev tailscale0 table 52"}
    assert parsed.ping_router == {("B", LAN6["B"]): True}
    assert parsed.ping_lan == {("B", LAN6["B"]): False}


# --- the traced paths --------------------------------------------------------------------------


def test_a_healthy_dual_stack_network_traces_every_prefix_clean(dual: Plan) -> None:
    live = dual_live(dual)
    traced = sorted((p.source, p.dest, str(p.prefix), p.first_failure) for p in paths(live))
    assert traced == [
        ("A", "B", "192.168.7.0/24", None),
        ("A", "B", "fd00:7::/64", None),
        ("B", "A", "192.168.3.0/24", None),
        ("B", "A", "fd00:3::/64", None),
    ]
    assert diagnose(live) == []


def test_tailscale_capturing_only_the_ipv6_lan_is_named_with_the_ipv6_tables(dual: Plan) -> None:
    a = replace(
        dual_facts(dual, "A"),
        rules6=tuple(parse_ip_rules("0:\tfrom all lookup local\n5270:\tfrom all lookup 52\n")),
        table52=tuple(parse_routes("fd00:7::/64 dev tailscale0\n", 6)),
    )
    captured = f"fd00:7::1 from {HOST6['A']} dev tailscale0 table 52 iif br-lan"
    pa = dual_probes(dual, "A")
    pa.route_lan["B", LAN6["B"]] = captured
    pa.ping_lan["B", LAN6["B"]] = False
    live = Live(dual, {"A": a, "B": dual_facts(dual, "B")}, {"A": pa, "B": dual_probes(dual, "B")})
    finding = only(diagnose(live), "tailscale-captures-route", "A")
    assert finding.problem.startswith("Tailscale's accepted routes capture fd00:7::/64: ")
    assert finding.evidence[:4] == (
        "$ ip -6 rule show",
        "5270:\tfrom all lookup 52",
        "$ ip -6 route show table 52",
        "fd00:7::/64 dev tailscale0",
    )
    assert finding.evidence[4] == f"$ ip route get fd00:7::1 from {HOST6['A']} iif br-lan"


def test_an_ipv6_path_failing_alone_is_reported_once_naming_its_prefix(dual: Plan) -> None:
    pa = dual_probes(dual, "A", ping_lan={("B", LAN6["B"]): False})
    pb = dual_probes(dual, "B", ping_lan={("A", LAN6["A"]): False})
    finding = only(diagnose(dual_live(dual, A=pa, B=pb)), "path-unexplained", "A")
    assert finding.problem == (
        "LAN traffic from A to B (fd00:7::/64) fails (and back), and nothing doctor reads "
        "explains it"
    )
    assert "$ ping -I fd00:3::1 fd00:7::1   → no reply" in finding.evidence


def test_an_ipv6_route_elsewhere_names_the_ipv6_prefix(dual: Plan) -> None:
    pa = dual_probes(dual, "A")
    pa.route_lan["B", LAN6["B"]] = "unreachable fd00:7::1 from :: dev lo"
    finding = only(diagnose(dual_live(dual, A=pa)), "route-elsewhere", "A")
    assert "LAN traffic to B (fd00:7::/64) is not routed" in finding.problem, finding.problem


def _walked(plan: Plan, site: str, *expr: object) -> Probes:
    """`site`'s probes with the lab's fw4 ruleset and a guard table's forward rule of `expr`."""
    return dual_probes(plan, site, ruleset=_fw4(*_guard("forward", *expr)))


def test_a_drop_of_both_families_is_one_finding_for_the_whole_lan(dual: Plan) -> None:
    pb = _walked(dual, "B", {"drop": None})
    pa = dual_probes(dual, "A", ruleset=_fw4())
    finding = only(diagnose(dual_live(dual, A=pa, B=pb)), "firewall-drops", "B")
    assert finding.problem.startswith(
        "the loaded nftables ruleset drops LAN traffic between A and B, both ways: "
    ), finding.problem


def test_a_drop_of_ipv6_only_is_one_finding_naming_the_ipv6_prefix(dual: Plan) -> None:
    ipv6 = {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}}
    pb = _walked(dual, "B", ipv6, {"drop": None})
    pa = dual_probes(dual, "A", ruleset=_fw4())
    finding = only(diagnose(dual_live(dual, A=pa, B=pb)), "firewall-drops", "B")
    assert finding.problem.startswith(
        "the loaded nftables ruleset drops LAN traffic between A and B, both ways "
        "(fd00:7::/64, fd00:3::/64): "
    ), finding.problem


# --- one cause, one finding; two causes, two ---------------------------------------------------


def _rules(a: DeviceFacts, four: str = "", six: str = "") -> DeviceFacts:
    return replace(
        a,
        rules4=(*a.rules4, *parse_ip_rules(four)),
        rules6=(*a.rules6, *parse_ip_rules(six)),
    )


def test_two_policy_rules_are_two_findings_each_with_its_own_delete(dual: Plan) -> None:
    a = _rules(
        dual_facts(dual, "A"),
        "100:\tfrom all to 192.168.7.0/24 lookup 100\n",
        "200:\tfrom all to fd00:7::/64 lookup 100\n",
    )
    pa = dual_probes(dual, "A")
    pa.route_lan[lan_of("B")] = "192.168.7.1 from 192.168.3.254 dev eth1 table 100"
    pa.route_lan["B", LAN6["B"]] = f"fd00:7::1 from {HOST6['A']} dev eth1 table 100"
    live = Live(dual, {"A": a, "B": dual_facts(dual, "B")}, {"A": pa, "B": dual_probes(dual, "B")})
    fixes = sorted(f.fix.split("   (")[0] for f in diagnose(live) if f.check == "route-elsewhere")
    assert fixes == ["ip -6 rule del pref 200", "ip rule del pref 100"]


def test_a_route_main_picked_is_named_not_a_refusing_rule_past_it(dual: Plan) -> None:
    """A kill-switch rule past main (40000 unreachable) is not what sent the packet to eth1."""
    a = _rules(dual_facts(dual, "A"), "40000:\tfrom all to 192.168.7.0/24 unreachable\n")
    bad = parse_routes("192.168.7.0/25 dev eth1 scope link\n", 4)
    a = replace(a, routes=(*a.routes, *bad))
    pa = dual_probes(dual, "A")
    pa.route_lan[lan_of("B")] = "192.168.7.1 from 192.168.3.254 dev eth1"
    live = Live(dual, {"A": a, "B": dual_facts(dual, "B")}, {"A": pa, "B": dual_probes(dual, "B")})
    finding = only(diagnose(live), "route-elsewhere", "A")
    assert finding.fix.startswith("ip route del unicast 192.168.7.0/25"), finding.fix


def test_an_exit_node_taking_both_families_is_one_finding(dual: Plan) -> None:
    a = dual_facts(dual, "A")
    a = replace(
        a,
        table52=(
            *parse_routes("default dev tailscale0\n", 4),
            *parse_routes("default dev tailscale0\n", 6),
        ),
        tailscale=replace(a.tailscale, prefs=_exit_prefs()),
    )
    pa = dual_probes(dual, "A")
    pa.route_lan[lan_of("B")] = "192.168.7.1 from 192.168.3.254 dev tailscale0 table 52"
    pa.route_lan["B", LAN6["B"]] = f"fd00:7::1 from {HOST6['A']} dev tailscale0 table 52"
    live = Live(dual, {"A": a, "B": dual_facts(dual, "B")}, {"A": pa, "B": dual_probes(dual, "B")})
    finding = only(diagnose(live), "tailscale-captures-route", "A")
    assert finding.problem.startswith(
        "Tailscale's exit node (a default route in table 52) takes 192.168.7.0/24 and "
        "fd00:7::/64: LAN traffic to B goes into tailscale0"
    ), finding.problem
    assert finding.fix.startswith("tailscale set --exit-node=")


def _exit_prefs() -> TailscalePrefs:
    return parse_tailscale_prefs('{"ExitNodeIP": "100.64.0.2", "RouteAll": false}')


def test_every_prefix_of_a_lan_failing_is_said_as_the_lan(dual: Plan) -> None:
    """Both of B's prefixes fail from A (the overlay answers): no prefix is singled out."""
    both = {lan_of("B"): False, ("B", LAN6["B"]): False}
    back = {lan_of("A"): False, ("A", LAN6["A"]): False}
    pa = dual_probes(dual, "A", ping_lan=both)
    pb = dual_probes(dual, "B", ping_lan=back)
    finding = only(diagnose(dual_live(dual, A=pa, B=pb)), "path-unexplained", "A")
    assert finding.problem.startswith("LAN traffic from A to B fails (and back)"), finding.problem


# --- addresses ---------------------------------------------------------------------------------


def test_addresses_not_usable_as_a_source_are_skipped_and_a_wider_subnet_counts(dual: Plan) -> None:
    text = (
        "3: br-lan    inet6 fd00:3::9/64 scope global tentative \\       valid_lft forever\n"
        "3: br-lan    inet6 fd00:3::8/64 scope global dadfailed tentative \\       valid_lft\n"
        "3: br-lan    inet6 fd00:3::1/60 scope global \\       valid_lft forever\n"
    )
    held = parse_addresses(text)
    assert [str(a.interface) for a in held] == ["fd00:3::1/60"]
    a = replace(dual_facts(dual, "A", v6=False), addresses=tuple(held))
    assert lan_address(a, LAN6["A"]) == (strict.address("fd00:3::1"), "br-lan")
