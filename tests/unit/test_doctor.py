"""doctor's checks for faults 1–5 on synthetic facts: the seed network, healthy, then broken.

SYNTHETIC: every router output below is shaped like what the collector reads from a configured
lab router (24.10, the seed applied; tests/lab/test_doctor_faults.py breaks the same network
for real). `seed_live()` is the healthy network; each test changes one thing and expects
exactly one finding over the whole network, or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from sitewire import strict
from sitewire.diagnose.doctor import Finding, Live, diagnose
from sitewire.diagnose.facts import DeviceFacts, TailscaleFacts, facts_from_sections
from sitewire.diagnose.parse import HIDDEN, Route
from sitewire.diagnose.parse.tailscale import NetfilterMode, TailscalePrefs
from sitewire.diagnose.probes import Probes
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from sitewire.spec.model import Platform
from tests.conftest import SEED, spec_from
from tests.unit.test_diagnose_parse import openwrt_sections

KEYS = {name: public_key(generate_private_key()) for name in ("A", "B", "phone")}
WAN4 = {"A": "198.18.0.10", "B": "198.18.0.11"}
WAN6 = {"A": "fd53:5357:0:1::10", "B": "fd53:5357:0:1::11"}
LAN_ROUTER = {"A": "192.168.3.1", "B": "192.168.7.1"}
LAN_HOST = {"A": "192.168.3.254", "B": "192.168.7.254"}  # what doctor's route probe uses
LAN_PREFIX = {"A": strict.network("192.168.3.0/24"), "B": strict.network("192.168.7.0/24")}
NAME = "a.example.net"

KEEP_ROUTES = (
    SEED.read_text()
    .replace("exit_node = true }", "exit_node = true, accept_routes = true }")
    .replace('["192.168.7.0/24"] }', '["192.168.7.0/24"], accept_routes = true }')
)


def seed_plan(text: str | None = None) -> Plan:
    return plan_network(spec_from(text or SEED.read_text()), None, KEYS)


# --- the routers' outputs -------------------------------------------------------------------


def network_uci(plan: Plan, site: str, *, keepalive: bool = True) -> str:
    me = plan.site(site)
    lan = me.lan[0]
    text = (
        "package network\n\n"
        "config interface 'lan'\n\toption device 'br-lan'\n\toption proto 'static'\n"
        f"\toption ipaddr '{LAN_ROUTER[site]}'\n\toption netmask '{lan.netmask}'\n\n"
        "config interface 'wan'\n\toption device 'wan'\n\toption proto 'dhcp'\n\n"
        f"config interface 'wg0'\n\toption proto 'wireguard'\n\toption private_key '{HIDDEN}'\n"
        f"\toption listen_port '{me.listen_port}'\n\tlist addresses '{me.addresses[0]}'\n"
    )
    for peer in me.peers:
        text += (
            f"\nconfig wireguard_wg0 'sw_peer_{peer.name}'\n"
            f"\toption public_key '{peer.public_key}'\n\toption preshared_key '{HIDDEN}'\n"
            "\toption route_allowed_ips '1'\n"
        )
        if peer.dial is not None:
            text += (
                f"\toption endpoint_host '{peer.dial.endpoint.host}'\n"
                f"\toption endpoint_port '{peer.dial.endpoint.port}'\n"
            )
            if keepalive:
                text += f"\toption persistent_keepalive '{peer.dial.keepalive}'\n"
        text += "".join(f"\tlist allowed_ips '{p}'\n" for p in peer.allowed_ips)
    return text


STOCK_FIREWALL = """package firewall

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
\toption mtu_fix '1'

config forwarding
\toption src 'lan'
\toption dest 'wan'

config rule
\toption name 'Allow-DHCP-Renew'
\toption src 'wan'
\toption proto 'udp'
\toption dest_port '68'
\toption target 'ACCEPT'
\toption family 'ipv4'

config rule
\toption name 'Allow-Ping'
\toption src 'wan'
\toption proto 'icmp'
\toption icmp_type 'echo-request'
\toption family 'ipv4'
\toption target 'ACCEPT'

config rule
\toption name 'Allow-ISAKMP'
\toption src 'wan'
\toption dest 'lan'
\toption dest_port '500'
\toption proto 'udp'
\toption target 'ACCEPT'
"""

ALLOW_WG0 = """
config rule 'sw_allow_wg0'
\toption name 'Allow-sitewire-wg0'
\toption src 'wan'
\toption proto 'udp'
\toption dest_port '51820'
\toption target 'ACCEPT'
"""


def firewall_uci(
    plan: Plan, site: str, *, drop: tuple[str, ...] = (), allow: str | None = ALLOW_WG0
) -> str:
    """The stock file plus what apply adds; sections named in `drop` left out."""
    fw = plan.site(site).firewall
    text = STOCK_FIREWALL + (
        "\nconfig zone 'sw_zone'\n\toption name 'sitewire'\n\toption input 'ACCEPT'\n"
        "\toption output 'ACCEPT'\n\toption forward 'ACCEPT'\n\toption masq '0'\n"
        "\toption mtu_fix '1'\n\tlist network 'wg0'\n"
    )
    for src, dest in fw.forwardings:
        if f"sw_fwd_{src}_{dest}" not in drop:
            text += (
                f"\nconfig forwarding 'sw_fwd_{src}_{dest}'\n"
                f"\toption src '{src}'\n\toption dest '{dest}'\n"
            )
    if fw.open_port is not None and allow is not None:
        text += allow
    return text


def wg_dump(
    plan: Plan,
    site: str,
    *,
    keepalive: bool = True,
    endpoint: Mapping[str, str] | None = None,
) -> str:
    """`wg show all dump` as the collector reads it: keys hidden, the peers' real keys."""
    me = plan.site(site)
    lines = [f"wg0\t{HIDDEN}\t{KEYS[site]}\t{me.listen_port}\toff"]
    for peer in me.peers:
        ips = ",".join(str(p) for p in peer.allowed_ips)
        keep = str(peer.dial.keepalive) if peer.dial and keepalive else "off"
        where = (endpoint or {}).get(peer.name)
        if where is None:
            where = f"{WAN4[peer.name]}:51820" if peer.name in WAN4 else "(none)"
        seen = "1795570490" if peer.kind == "site" else "0"
        lines.append(f"wg0\t{peer.public_key}\t{HIDDEN}\t{where}\t{ips}\t{seen}\t1\t2\t{keep}")
    return "\n".join(lines) + "\n"


def routes4(plan: Plan, site: str) -> str:
    me = plan.site(site)
    lines = [
        "default via 198.18.0.1 dev wan proto static",
        f"{me.lan[0]} dev br-lan proto kernel scope link src {LAN_ROUTER[site]}",
        f"{me.addresses[0].network} dev wg0 proto kernel scope link src {me.addresses[0].ip}",
        f"198.18.0.0/24 dev wan proto kernel scope link src {WAN4[site]}",
    ]
    lines += [f"{p} dev wg0 proto static scope link" for p in me.routes]
    return "\n".join(lines) + "\n"


TAILSCALE_RULES = (
    "0:\tfrom all lookup local\n"
    "5210:\tfrom all fwmark 0x80000/0xff0000 lookup main\n"
    "5230:\tfrom all fwmark 0x80000/0xff0000 lookup default\n"
    "5250:\tfrom all fwmark 0x80000/0xff0000 unreachable\n"
    "5270:\tfrom all lookup 52\n"
    "32766:\tfrom all lookup main\n"
    "32767:\tfrom all lookup default\n"
)


def table52(site: str, *, captured: str | None = None) -> str:
    other = "100.64.0.2" if site == "A" else "100.64.0.1"
    lines = [f"{other} dev tailscale0", "100.100.100.100 dev tailscale0"]
    if captured is not None:
        lines.append(f"{captured} dev tailscale0")
    return "\n".join(lines) + "\n"


def facts(plan: Plan, site: str, **override: tuple[str, int]) -> DeviceFacts:
    outputs = {
        "uci_changes": ("", 0),
        "uci_network": (network_uci(plan, site), 0),
        "uci_firewall": (firewall_uci(plan, site), 0),
        "wg": (wg_dump(plan, site), 0),
        "routes4": (routes4(plan, site), 0),
        "rules4": (TAILSCALE_RULES, 0),
        "table52_4": (table52(site), 0),
        "rc_local": ("", 0),
        **override,
    }
    return facts_from_sections(site, Platform.OPENWRT, openwrt_sections(**outputs))


def probes(plan: Plan, site: str) -> Probes:
    other = "B" if site == "A" else "A"
    theirs = (other, LAN_PREFIX[other])
    me = plan.site(site)
    return Probes(
        addresses=(
            "127.0.0.1",
            "::1",
            WAN4[site],
            WAN6[site],
            LAN_ROUTER[site],
            str(me.addresses[0].ip),
            "fe80::1",
        ),
        route_lan={theirs: f"{LAN_ROUTER[other]} from {LAN_HOST[site]} dev wg0"},
        route_router={theirs: f"{LAN_ROUTER[other]} dev wg0 src {me.addresses[0].ip} uid 0"},
        ping_router={theirs: True},
        small={other: True},
        large={other: True},
        resolved={NAME: (WAN6["A"], WAN4["A"])} if site == "B" else {},
        lan={4: (LAN_HOST[site], "br-lan")},
    )


def seed_live(
    plan: Plan | None = None,
    facts_of: Mapping[str, DeviceFacts] | None = None,
    probes_of: Mapping[str, Probes] | None = None,
) -> Live:
    plan = plan or seed_plan()
    return Live(
        plan,
        {s: (facts_of or {}).get(s) or facts(plan, s) for s in ("A", "B")},
        {s: (probes_of or {}).get(s) or probes(plan, s) for s in ("A", "B")},
    )


def one(findings: list[Finding], check: str, site: str) -> Finding:
    assert [(f.check, f.site) for f in findings] == [(check, site)], "\n".join(
        f.text() for f in findings
    )
    return findings[0]


def none(findings: list[Finding]) -> None:
    assert findings == [], "\n".join(f.text() for f in findings)


# --- healthy ----------------------------------------------------------------------------------


def test_the_healthy_seed_network_has_no_finding() -> None:
    none(diagnose(seed_live()))


def test_the_healthy_seed_keeping_accepted_routes_with_pins_has_no_finding() -> None:
    """accept_routes = true: table 52 holds the other LAN, but the pin sends it through wg0."""
    plan = seed_plan(KEEP_ROUTES)
    rules = TAILSCALE_RULES.replace(
        "5270:", "5100:\tfrom all to 192.168.7.0/24 lookup main\n5270:", 1
    )
    a = facts(plan, "A", rules4=(rules, 0), table52_4=(table52("A", captured="192.168.7.0/24"), 0))
    none(diagnose(seed_live(plan, {"A": a})))


# --- 1. Tailscale captures a WireGuard-routed prefix ------------------------------------------


def _captured(site: str, *, router_too: bool = True, router_ok: bool = True) -> Probes:
    plan = seed_plan()
    other = "A" if site == "B" else "B"
    p = probes(plan, site)
    theirs = (other, LAN_PREFIX[other])
    p.route_lan[theirs] = f"{LAN_ROUTER[other]} from {LAN_HOST[site]} dev tailscale0 table 52"
    if router_too:
        p.route_router[theirs] = f"{LAN_ROUTER[other]} dev tailscale0 table 52 src 100.64.0.2 uid 0"
    p.ping_router[theirs] = router_ok
    return p


def test_1_accepted_routes_capture_the_other_lan_works_from_the_router_not_the_lan() -> None:
    plan = seed_plan()
    b = facts(plan, "B", table52_4=(table52("B", captured="192.168.3.0/24"), 0))
    finding = one(
        diagnose(seed_live(plan, {"B": b}, {"B": _captured("B")})),
        "tailscale-captures-route",
        "B",
    )
    assert "capture 192.168.3.0/24" in finding.problem
    assert "over the tailnet: it works from the router and fails from the LAN" in finding.problem
    assert finding.evidence[:2] == ("$ ip rule show", "5270:\tfrom all lookup 52")
    assert "192.168.3.0/24 dev tailscale0" in finding.evidence
    at = finding.evidence.index("$ ip route get 192.168.3.1 from 192.168.7.254 iif br-lan")
    assert finding.evidence[at + 1] == "192.168.3.1 from 192.168.7.254 dev tailscale0 table 52"
    assert "$ ping -c 2 192.168.3.1   → ok  (from the router itself)" in finding.evidence
    assert finding.fix.startswith("tailscale set --accept-routes=false")


def test_1_when_the_router_fails_too_the_shape_is_not_claimed() -> None:
    plan = seed_plan()
    finding = one(
        diagnose(seed_live(plan, probes_of={"B": _captured("B", router_ok=False)})),
        "tailscale-captures-route",
        "B",
    )
    assert "works from the router" not in finding.problem
    assert not any(line.startswith("$ ping") for line in finding.evidence)


def test_1_an_exit_node_is_named_as_the_exit_node_with_its_own_fix() -> None:
    """An exit node is a default route in table 52: it takes the other LAN, though no
    accepted route names it."""
    plan = seed_plan()
    prefs = TailscalePrefs(
        route_all=False,
        advertise_routes=(),
        exit_node_id="nExit",
        exit_node_ip=strict.address("100.64.0.9"),
        exit_node_allow_lan_access=False,
        netfilter_mode=NetfilterMode.ON,
        no_snat=False,
        want_running=True,
        shields_up=False,
    )
    default = Route(strict.network("0.0.0.0/0"), dev="tailscale0", table="52")
    b = replace(facts(plan, "B"), tailscale=TailscaleFacts(True, prefs), table52=(default,))
    finding = one(
        diagnose(seed_live(plan, {"B": b}, {"B": _captured("B")})),
        "tailscale-captures-route",
        "B",
    )
    assert finding.problem.startswith(
        "Tailscale's exit node (a default route in table 52) takes 192.168.3.0/24"
    )
    assert finding.fix.startswith("tailscale set --exit-node=   (or keep it")


def test_1_router_through_wireguard_lan_through_tailscale_names_that_path() -> None:
    p = _captured("A", router_too=False)
    finding = one(diagnose(seed_live(probes_of={"A": p})), "tailscale-captures-route", "A")
    assert "over WireGuard: it works from the router and fails from the LAN" in finding.problem


def test_1_a_spec_that_keeps_accepted_routes_is_fixed_by_apply_restoring_the_pins() -> None:
    plan = seed_plan(KEEP_ROUTES)
    finding = one(
        diagnose(seed_live(plan, probes_of={"B": _captured("B")})),
        "tailscale-captures-route",
        "B",
    )
    assert finding.fix.startswith("sitewire apply")
    assert "--accept-routes=false" not in finding.fix


# --- 2. a forwarding missing between the WireGuard zone and lan -------------------------------


@pytest.mark.parametrize(
    ("site", "src", "dest"),
    [("A", "lan", "sitewire"), ("A", "sitewire", "lan"), ("B", "lan", "sitewire")],
)
def test_2_a_missing_forwarding_either_direction(site: str, src: str, dest: str) -> None:
    plan = seed_plan()
    fw = firewall_uci(plan, site, drop=(f"sw_fwd_{src}_{dest}",))
    broken = facts(plan, site, uci_firewall=(fw, 0))
    finding = one(diagnose(seed_live(plan, {site: broken})), "missing-forwarding", site)
    assert f"no firewall forwarding {src} → {dest}" in finding.problem
    assert finding.evidence[0] == "$ uci show firewall | grep forwarding"
    assert not any(f"sw_fwd_{src}_{dest}" in line for line in finding.evidence)
    assert "firewall.sw_fwd_sitewire_wan=forwarding src=sitewire dest=wan" in finding.evidence
    assert f"uci set firewall.sw_fwd_{src}_{dest}=forwarding" in finding.fix
    assert f"uci set firewall.sw_fwd_{src}_{dest}.dest='{dest}'" in finding.fix


@pytest.mark.parametrize("off", ["0", "no", "off", "false"])
def test_2_a_disabled_forwarding_is_named_as_disabled(off: str) -> None:
    """fw4 reads `enabled` as a boolean (0/no/off/false): the section is there, and ignored."""
    plan = seed_plan()
    fw = firewall_uci(plan, "A").replace(
        "option dest 'sitewire'\n", f"option dest 'sitewire'\n\toption enabled '{off}'\n"
    )
    finding = one(
        diagnose(seed_live(plan, {"A": facts(plan, "A", uci_firewall=(fw, 0))})),
        "disabled-forwarding",
        "A",
    )
    assert f"lan → sitewire is disabled (enabled '{off}')" in finding.problem
    assert finding.evidence[0] == "$ uci show firewall.sw_fwd_lan_sitewire"
    assert finding.fix.startswith(
        "uci set firewall.sw_fwd_lan_sitewire.enabled='1' && uci commit firewall"
    )


@pytest.mark.parametrize("on", ["1", "yes", "on", "true", "maybe"])
def test_2_an_enabled_forwarding_in_any_spelling_is_no_finding(on: str) -> None:
    plan = seed_plan()
    fw = firewall_uci(plan, "A").replace(
        "option dest 'sitewire'\n", f"option dest 'sitewire'\n\toption enabled '{on}'\n"
    )
    none(diagnose(seed_live(plan, {"A": facts(plan, "A", uci_firewall=(fw, 0))})))


def test_a_disabled_zone_is_named_once_not_as_no_zone() -> None:
    plan = seed_plan()
    fw = firewall_uci(plan, "B").replace(
        "option name 'sitewire'\n", "option name 'sitewire'\n\toption enabled 'off'\n"
    )
    finding = one(
        diagnose(seed_live(plan, {"B": facts(plan, "B", uci_firewall=(fw, 0))})),
        "disabled-zone",
        "B",
    )
    assert "zone 'sitewire' holds wg0 but is disabled (enabled 'off')" in finding.problem
    assert finding.fix.startswith("uci set firewall.sw_zone.enabled='1'")


def test_a_disabled_second_zone_is_no_second_zone() -> None:
    plan = seed_plan()
    extra = "\nconfig zone\n\toption name 'old'\n\tlist network 'wg0'\n\toption enabled '0'\n"
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A") + extra, 0))
    none(diagnose(seed_live(plan, {"A": a})))


def test_2_a_wildcard_forwarding_covers_the_zone() -> None:
    """fw4 accepts `*` for src or dest: a person's `lan -> *` forwarding is enough."""
    plan = seed_plan()
    fw = firewall_uci(plan, "A", drop=("sw_fwd_lan_sitewire",))
    fw += "\nconfig forwarding\n\toption src 'lan'\n\toption dest '*'\n"
    none(diagnose(seed_live(plan, {"A": facts(plan, "A", uci_firewall=(fw, 0))})))


# --- 3. the listener's port not open on its WAN -----------------------------------------------


def test_3_no_rule_for_the_listen_port() -> None:
    plan = seed_plan()
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A", allow=None), 0))
    finding = one(diagnose(seed_live(plan, {"A": a})), "port-closed", "A")
    assert "udp/51820" in finding.problem
    wan = next(line for line in finding.evidence if "name=wan" in line)
    assert "input=REJECT" in wan
    assert any("Allow-DHCP-Renew" in line for line in finding.evidence)
    assert not any("51820" in line for line in finding.evidence)
    fix = finding.fix
    assert fix.startswith("uci -q delete firewall.sw_allow_wg0; uci set firewall.sw_allow_wg0=rule")
    for option in ("name='Allow-sitewire-wg0'", "src='wan'", "proto='udp'", "dest_port='51820'"):
        assert f"uci set firewall.sw_allow_wg0.{option}" in fix
    assert "/etc/init.d/firewall reload" in fix


@pytest.mark.parametrize(
    "rule",
    [
        # LuCI's own shape (reference §2.5, systemcrash verbatim): src '*', list proto.
        "\nconfig rule\n\toption name 'wg'\n\tlist proto 'udp'\n\toption src '*'\n"
        "\toption dest_port '51820'\n\toption target 'ACCEPT'\n",
        # No proto: fw4's default is tcpudp.
        "\nconfig rule\n\toption src 'wan'\n\toption dest_port '51820'\n\toption target 'ACCEPT'\n",
        "\nconfig rule\n\toption src 'wan'\n\toption proto 'tcpudp'\n\toption dest_port '51820'\n"
        "\toption target 'accept'\n",
        "\nconfig rule\n\toption src 'wan'\n\toption proto 'udp'\n"
        "\toption dest_port '51000-52000'\n\toption target 'ACCEPT'\n",
    ],
    ids=["luci-star", "default-proto", "tcpudp-lowercase", "range"],
)
def test_3_other_rules_that_open_the_port(rule: str) -> None:
    plan = seed_plan()
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A", allow=rule), 0))
    none(diagnose(seed_live(plan, {"A": a})))


@pytest.mark.parametrize(
    "rule",
    [
        ALLOW_WG0.replace("'ACCEPT'", "'ACCEPT'\n\toption enabled '0'"),
        ALLOW_WG0.replace("'51820'", "'51821'"),
        ALLOW_WG0.replace("'udp'", "'tcp'"),
        ALLOW_WG0.replace("option src 'wan'", "option src 'wan'\n\toption dest 'lan'"),
    ],
    ids=["disabled", "other-port", "tcp", "forward-rule"],
)
def test_3_rules_that_do_not_open_the_port(rule: str) -> None:
    plan = seed_plan()
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A", allow=rule), 0))
    one(diagnose(seed_live(plan, {"A": a})), "port-closed", "A")


def test_3_a_site_nobody_dials_needs_no_open_port() -> None:
    plan = seed_plan()
    assert plan.site("B").firewall.open_port is None
    b = facts(plan, "B", uci_firewall=(firewall_uci(plan, "B", allow=None), 0))
    none(diagnose(seed_live(plan, {"B": b})))


# --- 4. a dialer without persistent keepalive -------------------------------------------------


def test_4_the_dialer_behind_a_firewall_without_keepalive() -> None:
    plan = seed_plan()
    b = facts(
        plan,
        "B",
        uci_network=(network_uci(plan, "B", keepalive=False), 0),
        wg=(wg_dump(plan, "B", keepalive=False), 0),
    )
    finding = one(diagnose(seed_live(plan, {"B": b})), "dialer-without-keepalive", "B")
    assert "dials A without persistent keepalive" in finding.problem
    dump = finding.evidence[1]
    assert dump.split("\t")[:3] == ["wg0", KEYS["A"], "198.18.0.10:51820"]
    assert dump.endswith("\toff")
    assert "uci set network.sw_peer_A.persistent_keepalive='25'" in finding.fix
    assert f"wg set wg0 peer {KEYS['A']} persistent-keepalive 25" in finding.fix


# --- 5. a DDNS name that is not where the listener is -----------------------------------------


def _moved() -> tuple[Plan, dict[str, Probes]]:
    """A's WAN moved to .12; B's WireGuard still sends to .10, and the tunnel is down."""
    plan = seed_plan()
    a, b = probes(plan, "A"), probes(plan, "B")
    a.addresses = tuple(
        x.replace(WAN4["A"], "198.18.0.12").replace(WAN6["A"], "fd53:5357:0:1::12")
        for x in a.addresses
    )
    b.resolved = {NAME: ("fd53:5357:0:1::12", "198.18.0.12")}
    b.small["A"] = b.ping_router["A", LAN_PREFIX["A"]] = False
    b.large["A"] = False
    return plan, {"A": a, "B": b}


def _a_moved_to_12(plan: Plan) -> DeviceFacts:
    return facts(plan, "A", routes4=(routes4(plan, "A").replace("198.18.0.10", "198.18.0.12"), 0))


def test_5_the_listener_moved_and_wireguard_kept_the_old_address() -> None:
    plan, p = _moved()
    finding = one(diagnose(seed_live(plan, {"A": _a_moved_to_12(plan)}, p)), "ddns-stale", "B")
    assert finding.problem.startswith("talks to A at 198.18.0.10, which A no longer has")
    assert "resolved the name once" in finding.problem
    assert finding.evidence[1].split("\t")[2] == "198.18.0.10:51820"
    held = finding.evidence[finding.evidence.index("$ ip -o addr  (on A)") + 1].split()
    assert "198.18.0.12" in held and "198.18.0.10" not in held
    assert finding.evidence[-1] == "fd53:5357:0:1::12 198.18.0.12"
    command = finding.fix.split("   (")[0]
    assert command == f"wg set wg0 peer {KEYS['A']} endpoint {NAME}:51820"
    assert "ifup wg0" in finding.fix and "sitewire apply" not in finding.fix


def test_5_the_name_still_points_at_the_old_address() -> None:
    plan, p = _moved()
    p["B"].resolved = {NAME: (WAN6["A"], WAN4["A"])}
    finding = one(diagnose(seed_live(plan, {"A": _a_moved_to_12(plan)}, p)), "ddns-stale", "B")
    assert finding.problem.endswith(f"{NAME} still resolves to the old address")
    assert finding.fix.startswith(f"update the DNS record of {NAME} to 198.18.0.12 ")
    assert finding.fix.endswith(f"; then: wg set wg0 peer {KEYS['A']} endpoint {NAME}:51820")


def test_5_the_name_points_elsewhere_while_the_tunnel_still_runs() -> None:
    """Nothing is down yet: the next resolve (ifup, reboot, the watchdog) breaks it."""
    plan = seed_plan()
    b = probes(plan, "B")
    b.resolved = {NAME: ("203.0.113.9",)}
    finding = one(diagnose(seed_live(plan, probes_of={"B": b})), "ddns-stale", "B")
    assert finding.problem.startswith(f"{NAME} resolves to 203.0.113.9, which A does not have")
    assert finding.fix.startswith(f"update the DNS record of {NAME} to 198.18.0.10 ")


def test_5_a_listener_behind_a_port_forward_is_not_stale() -> None:
    """A's public address lives on the router in front of it: neither the endpoint nor the
    name is an address A holds, but they agree and the tunnel runs."""
    plan = seed_plan()
    b = probes(plan, "B")
    b.resolved = {NAME: ("203.0.113.9",)}
    b_facts = facts(plan, "B", wg=(wg_dump(plan, "B", endpoint={"A": "203.0.113.9:51820"}), 0))
    none(diagnose(seed_live(plan, {"B": b_facts}, {"B": b})))


def test_5_an_endpoint_a_no_longer_holds_but_that_still_answers_is_not_stale() -> None:
    plan = seed_plan()
    b_facts = facts(plan, "B", wg=(wg_dump(plan, "B", endpoint={"A": "198.51.100.1:51820"}), 0))
    none(diagnose(seed_live(plan, {"B": b_facts})))


def test_findings_carry_no_secret() -> None:
    """The collector hides keys before they leave the router; a dump that still had one is
    reported, and the key appears in no finding."""
    plan = seed_plan()
    secret = "MMZVkC7Oz6MhvcDLUUqwkwk7EcGNenlW6Ny6tljnp1A="
    leaky = wg_dump(plan, "B", keepalive=False).replace(HIDDEN, secret)
    b = facts(plan, "B", wg=(leaky, 0), uci_network=(network_uci(plan, "B", keepalive=False), 0))
    findings = diagnose(seed_live(plan, {"B": b}))
    assert [f.check for f in findings] == ["dialer-without-keepalive"]
    assert all(secret not in f.text() for f in findings)
    assert all(secret not in str(f.as_json()) for f in findings)


def _linux_b(plan: Plan, **override: tuple[str, int]) -> DeviceFacts:
    """B as a Linux host (wg-quick): no UCI, no openwrt_release, `wg` on the PATH."""
    outputs = {
        "openwrt_release": ("", 1),
        "os_release": ('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n', 0),
        "commands": ("apt-get /usr/bin/apt-get\nwg /usr/bin/wg\nwg-quick /usr/bin/wg-quick\n", 0),
        "wg": (wg_dump(plan, "B"), 0),
        "routes4": (routes4(plan, "B"), 0),
        "rules4": (TAILSCALE_RULES, 0),
        "table52_4": (table52("B"), 0),
        "rc_local": ("", 0),
        **override,
    }
    return facts_from_sections("B", Platform.LINUX, openwrt_sections(**outputs))


def test_fixes_on_a_linux_host_say_what_a_linux_host_runs() -> None:
    plan = seed_plan(
        SEED.read_text().replace('[sites.B]\nplatform = "openwrt"', '[sites.B]\nplatform = "linux"')
    )
    assert plan.site("B").platform is Platform.LINUX
    b = _linux_b(plan, wg=(wg_dump(plan, "B", keepalive=False), 0))
    finding = one(diagnose(seed_live(plan, {"B": b})), "dialer-without-keepalive", "B")
    assert "uci" not in finding.fix
    assert f"wg set wg0 peer {KEYS['A']} persistent-keepalive 25" in finding.fix
    assert "PersistentKeepalive = 25" in finding.fix and "/etc/wireguard/wg0.conf" in finding.fix


# --- issue 12: what a hand-made network leaves beside sitewire's ----------------------------


def test_one_public_key_in_two_peer_sections() -> None:
    plan = seed_plan()
    hand_made = (
        f"\nconfig wireguard_wg0\n\toption public_key '{KEYS['B']}'\n"
        "\tlist allowed_ips '192.168.5.0/24'\n\toption route_allowed_ips '1'\n"
    )
    a = facts(plan, "A", uci_network=(network_uci(plan, "A") + hand_made, 0))
    finding = one(diagnose(seed_live(plan, {"A": a})), "duplicate-peer", "A")
    assert "two peer sections for B's key (sw_peer_B, @wireguard_wg0[2])" in finding.problem
    assert "uci delete network.@wireguard_wg0[2]" in finding.fix


def test_the_interface_in_two_zones() -> None:
    plan = seed_plan()
    extra = (
        "\nconfig zone\n\toption name 'wireguard'\n\tlist network 'wg0'\n\toption input 'ACCEPT'\n"
    )
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A") + extra, 0))
    finding = one(diagnose(seed_live(plan, {"A": a})), "interface-in-two-zones", "A")
    assert "wg0 is in two firewall zones (sitewire, wireguard)" in finding.problem
    assert finding.fix.startswith("uci del_list firewall.@zone[")
    assert "network='wg0'" in finding.fix


def test_the_interface_in_a_second_zone_by_device_or_by_its_own_zone_option() -> None:
    plan = seed_plan()
    by_device = "\nconfig zone\n\toption name 'vpn'\n\tlist device 'wg0'\n"
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A") + by_device, 0))
    finding = one(diagnose(seed_live(plan, {"A": a})), "interface-in-two-zones", "A")
    assert "(sitewire, vpn)" in finding.problem
    assert finding.fix.startswith("uci del_list firewall.@zone[") and "device='wg0'" in finding.fix
    # netifd's `option zone` on the interface puts it in that zone too (fw4 reads it over ubus).
    named = "\nconfig zone\n\toption name 'vpn'\n"
    network = network_uci(plan, "A").replace(
        "config interface 'wg0'\n", "config interface 'wg0'\n\toption zone 'vpn'\n"
    )
    assert "option zone 'vpn'" in network
    a = facts(
        plan,
        "A",
        uci_network=(network, 0),
        uci_firewall=(firewall_uci(plan, "A") + named, 0),
    )
    finding = one(diagnose(seed_live(plan, {"A": a})), "interface-in-two-zones", "A")
    assert "network.wg0.zone=vpn" in finding.evidence
    assert finding.fix.startswith("uci delete network.wg0.zone && uci commit network && ifup wg0")


@pytest.mark.parametrize(
    ("probe", "why"),
    [("", "no cron job runs it"), ("line 3\n", "cron is not enabled at boot")],
)
def test_a_name_dialled_with_nothing_to_re_resolve_it(probe: str, why: str) -> None:
    plan = seed_plan()
    b = facts(plan, "B", watchdog=(probe, 0))
    finding = one(diagnose(seed_live(plan, {"B": b})), "no-watchdog", "B")
    assert f"dials A (a.example.net) by name, but {why}" in finding.problem
    assert "/etc/init.d/cron enable && /etc/init.d/cron restart" in finding.fix
    # A dials nobody: its missing watchdog is no finding; facts without the probe say nothing.
    a = facts(plan, "A", watchdog=("", 0))
    assert diagnose(seed_live(plan, {"A": a})) == []
    sections = openwrt_sections(watchdog=("", 0))
    del sections["watchdog"]
    assert facts_from_sections("B", Platform.OPENWRT, sections).watchdog is None


def test_a_foreign_peer_is_named_and_kept() -> None:
    plan = seed_plan()
    stranger = "S" * 43 + "="
    dump = wg_dump(plan, "A") + (f"wg0\t{stranger}\t(none)\t(none)\t10.99.0.2/32\t0\t0\t0\toff\n")
    a = facts(plan, "A", wg=(dump, 0))
    finding = one(diagnose(seed_live(plan, {"A": a})), "foreign-peer", "A")
    assert f"runs a peer sitewire does not plan ({stranger[:8]}…, 10.99.0.2/32)" in finding.problem
    assert f"wg set wg0 peer {stranger} remove" in finding.fix


@pytest.mark.parametrize(
    ("family", "dialled", "found"),
    [
        ("ipv4", "[fd53:5357:0:1::10]:51820", True),  # the story's A: reached over IPv6
        ("ipv6", "198.18.0.10:51820", True),
        ("ipv4", "198.18.0.10:51820", False),
        ("any", "[fd53:5357:0:1::10]:51820", False),
    ],
)
def test_3_a_port_open_for_the_other_ip_version_than_the_one_dialled(
    family: str, dialled: str, found: bool
) -> None:
    plan = seed_plan()
    allow = ALLOW_WG0 + f"\toption family '{family}'\n"
    a = facts(plan, "A", uci_firewall=(firewall_uci(plan, "A", allow=allow), 0))
    b = facts(plan, "B", wg=(wg_dump(plan, "B", endpoint={"A": dialled}), 0))
    findings = diagnose(seed_live(plan, {"A": a, "B": b}))
    if not found:
        none(findings)
        return
    finding = one(findings, "port-closed-for-family", "A")
    assert f"and B dials this site over IPv{6 if family == 'ipv4' else 4}" in finding.problem
    assert any(f"family={family}" in line for line in finding.evidence), finding.evidence
    assert finding.fix.startswith("uci -q delete firewall.sw_allow_wg0.family; uci commit firewall")
