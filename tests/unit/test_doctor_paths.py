"""doctor's traced paths and boot-time hazards on SYNTHETIC facts (test_doctor2's healthy seed
routers), with the fw4 ruleset recorded from the lab's 24.10 router as what nft printed."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sitewire import strict
from sitewire.diagnose.doctor import diagnose
from sitewire.diagnose.doctor.paths import paths
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import NetifdInterface, ScriptSection, WgDump, WgPeer, parse_ip_rules
from sitewire.diagnose.parse.boot import parse_boot
from sitewire.diagnose.parse.nft import Ruleset, parse_nft_json
from sitewire.diagnose.probes import (
    Probes,
    failed,
    mirror_overlay,
    probe_sections,
    second_look,
)
from sitewire.diagnose.state import HIDE_AWK
from sitewire.plan import Plan, plan_network
from tests.conftest import SEED, spec_from
from tests.unit.test_doctor2 import KEYS, WRONG, facts, lan_of, live, only, plan, probes

__all__ = ["plan"]

CAPTURES = Path(__file__).resolve().parent.parent / "captures" / "lab"


def _fw4(*extra: object) -> Ruleset:
    data = json.loads((CAPTURES / "nft-fw4-24.10-A.json").read_text())
    data["nftables"] += list(extra)
    return parse_nft_json(json.dumps(data), (CAPTURES / "nft-fw4-24.10-A.txt").read_text())


def _with_ruleset(plan: Plan, site: str, ruleset: Ruleset, **changes: object) -> Probes:
    return probes(plan, site, ruleset=ruleset, **changes)


def _guard(hook: str, *expr: object) -> list[object]:
    chain = {"family": "inet", "table": "guard", "name": "g", "type": "filter"}
    return [
        {"table": {"family": "inet", "name": "guard"}},
        {"chain": {**chain, "hook": hook, "prio": -10, "policy": "accept"}},
        {
            "rule": {
                "family": "inet",
                "table": "guard",
                "chain": "g",
                "handle": 7,
                "expr": list(expr),
            }
        },
    ]


def _wg(facts_: DeviceFacts, **changes: Any) -> DeviceFacts:
    iface = facts_.wg.interfaces[0]
    return replace(facts_, wg=WgDump((replace(iface, **changes),)))


def test_a_healthy_seed_traces_clean_both_ways(plan: Plan) -> None:
    rs = _fw4()
    state = live(plan, pa=_with_ruleset(plan, "A", rs), pb=_with_ruleset(plan, "B", rs))
    assert diagnose(state) == []
    traced = {(p.source, p.dest): p for p in paths(state)}
    assert set(traced) == {("A", "B"), ("B", "A")}
    kinds = [h.kind for h in traced[("A", "B")].hops]
    assert kinds == ["route", "firewall", "peer", "endpoint", "input", "handshake", "firewall"]
    assert all(h.ok for h in traced[("A", "B")].hops)


def test_a_drop_in_another_table_is_named_with_its_rule_and_handle(plan: Plan) -> None:
    daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
    match = {"op": "==", "left": daddr, "right": {"prefix": {"addr": "192.168.7.0", "len": 24}}}
    rs_b = _fw4(*_guard("forward", {"match": match}, {"drop": None}))
    state = live(plan, pa=_with_ruleset(plan, "A", _fw4()), pb=_with_ruleset(plan, "B", rs_b))
    finding = only(diagnose(state), "firewall-drops", "B")
    assert "LAN traffic from A to B: drop at forward (inet guard g" in finding.problem
    assert finding.fix.startswith("nft delete rule inet guard g handle 7")


def test_new_handshakes_dropped_at_the_listener_are_named_though_the_tunnel_runs(
    plan: Plan,
) -> None:
    ct = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}
    port = {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 51820}
    rs_a = _fw4(*_guard("input", ct, {"match": port}, {"drop": None}))
    state = live(plan, pa=_with_ruleset(plan, "A", rs_a), pb=_with_ruleset(plan, "B", _fw4()))
    finding = only(diagnose(state), "firewall-drops", "A")
    assert "the handshake from B (UDP to the listen port)" in finding.problem


def test_a_listener_on_another_port_is_named_on_the_listener(plan: Plan) -> None:
    a = _wg(facts(plan, "A"), listen_port=51821)
    finding = only(diagnose(live(plan, a=a)), "listen-port-changed", "A")
    assert "wg0 listens on port 51821, not the planned 51820 that B dials" in finding.problem
    assert finding.fix.startswith("uci set network.wg0.listen_port='51820' && uci commit")


def test_a_dialer_on_the_wrong_port_is_named_on_the_dialer(plan: Plan) -> None:
    b = facts(plan, "B")
    iface = b.wg.interfaces[0]
    peer = iface.peers[0]
    assert peer.endpoint is not None
    moved = replace(peer, endpoint=replace(peer.endpoint, port=51999))
    b = _wg(b, peers=(moved,))
    finding = only(diagnose(live(plan, b=b)), "endpoint-port", "B")
    assert "sends to port 51999, A is dialled on 51820" in finding.problem


def test_another_peer_holding_the_other_lan_is_named_with_its_key(plan: Plan) -> None:
    a = facts(plan, "A", ips={"B": "192.168.5.2/32"})
    iface = a.wg.interfaces[0]
    stranger = WgPeer(
        WRONG,
        iface.peers[0].preshared_key,
        None,
        (strict.network("192.168.7.0/24"),),
        None,
        0,
        0,
        None,
    )
    a = _wg(a, peers=(*iface.peers, stranger))
    finding = only(diagnose(live(plan, a=a)), "prefix-elsewhere", "A")
    assert f"192.168.7.0/24 is carried by {WRONG[:8]}…, not B" in finding.problem


def test_a_failing_path_with_every_hop_passing_is_reported_once_for_both_directions(
    plan: Plan,
) -> None:
    down = {"small": {"A": False}, "ping_lan": {lan_of("A"): False}}
    state = live(
        plan,
        pa=probes(plan, "A", small={"B": False}, ping_lan={lan_of("B"): False}),
        pb=probes(plan, "B", **down),
    )
    finding = only(diagnose(state), "path-unexplained", "A")
    assert finding.problem == (
        "LAN traffic from A to B fails (and back), and nothing doctor reads explains it"
    )
    assert "$ ping -I 192.168.3.1 192.168.7.1   → no reply" in finding.evidence
    assert "tc qdiscs and filters" in finding.fix


def test_a_failing_path_another_check_explains_is_not_also_unexplained(plan: Plan) -> None:
    a = facts(plan, "A", keys={"B": WRONG}, peer_options={"B": {"public_key": WRONG}})
    state = live(plan, a=a, pa=probes(plan, "A", small={"B": False}))
    assert [f.check for f in diagnose(state)] == ["wrong-key"]


def test_a_host_that_its_own_router_cannot_reach_says_nothing_about_the_path(plan: Plan) -> None:
    """A LAN host that does not answer pings (its own firewall) fails from both sides."""
    pa = probes(plan, "A", ping_host={"B": ("192.168.7.100", False)})
    pb = probes(plan, "B", ping_local={"192.168.7.100": False})
    assert diagnose(live(plan, pa=pa, pb=pb)) == []
    pb = probes(plan, "B", ping_local={"192.168.7.100": True})
    assert [f.check for f in diagnose(live(plan, pa=pa, pb=pb))] == ["path-unexplained"]


def test_a_boot_warning_does_not_hide_a_failing_path(plan: Plan) -> None:
    """A warning works now and breaks at the next boot: it cannot explain a path failing
    now, so both are said (and the exit code is an error's)."""
    boot = parse_boot(_boot("line /etc/crontabs/root 2 */5 * * * * wg set wg0 peer X remove\n"))
    down = {"small": {"A": False}, "ping_lan": {lan_of("A"): False}}
    state = live(
        plan,
        pa=probes(plan, "A", small={"B": False}, ping_lan={lan_of("B"): False}),
        pb=probes(plan, "B", boot=boot, **down),
    )
    found = [(f.check, f.site, f.kind) for f in diagnose(state)]
    assert sorted(found) == [
        ("boot-changes-wireguard", "B", "warning"),
        ("path-unexplained", "A", "error"),
    ]


def _boot(text: str) -> ScriptSection:
    return ScriptSection("sw_boot", 0, text, "")


@pytest.mark.parametrize(
    ("line", "check"),
    [
        ("tailscale up --accept-routes --auth-key=(hidden)", "boot-accepts-routes"),
        ("tailscale set --accept-routes=true", "boot-accepts-routes"),
        ("tailscale up --accept-routes=false", None),
        ("*/5 * * * * wg set wg0 peer X endpoint 1.2.3.4:5", "boot-changes-wireguard"),
        ("ifdown wg0; ifup wg0", "boot-changes-wireguard"),
        ("wg set wg1 listen-port 1", None),
    ],
)
def test_boot_and_cron_lines(plan: Plan, line: str, check: str | None) -> None:
    boot = parse_boot(_boot(f"line /etc/rc.local 3 {line}\nservice network on\n"))
    state = live(plan, pb=probes(plan, "B", boot=boot))
    found = [(f.check, f.site, f.kind) for f in diagnose(state)]
    assert found == ([(check, "B", "warning")] if check else [])


def test_a_service_off_at_boot_and_the_interface_not_started_at_boot(plan: Plan) -> None:
    boot = parse_boot(_boot("service network on\nservice firewall off\n"))
    finding = only(diagnose(live(plan, pa=probes(plan, "A", boot=boot))), "boot-service-off", "A")
    assert finding.fix == "/etc/init.d/firewall enable" and finding.kind == "warning"
    b = facts(plan, "B", iface="\toption auto '0'\n")
    finding = only(diagnose(live(plan, b=b)), "boot-not-started", "B")
    assert finding.fix == "uci delete network.wg0.auto && uci commit network"


def test_a_live_change_not_saved_is_a_warning_not_saved_not_live(plan: Plan) -> None:
    planned = ",".join(str(p) for p in plan.site("A").peer("B").allowed_ips)
    a = facts(plan, "A", ips={"B": planned + ",10.77.0.0/24"})
    finding = only(diagnose(live(plan, a=a)), "unsaved-live-change", "A")
    assert finding.kind == "warning" and finding.fix.startswith("ifup wg0")
    # the other way round (saved differs from the plan and from what runs) stays an error
    saved = {"B": {"allowed_ips": planned + ",10.77.0.0/24"}}
    a = facts(plan, "A", peer_options=saved)
    assert only(diagnose(live(plan, a=a)), "saved-not-live", "A").kind == "error"


def test_key_like_values_never_reach_a_finding() -> None:
    assert (
        KEYS
    )  # the synthetic routers' keys are public; a boot line's secret is hidden on the router
    boot = parse_boot(_boot("line /etc/rc.local 1 tailscale up --(hidden)\n"))
    assert boot is not None and boot.lines[0].text == "tailscale up --(hidden)"


def test_an_interface_that_does_not_run_is_one_finding_not_also_a_firewall_reject(
    plan: Plan,
) -> None:
    """fw4 leaves a device that is not there out of its zone, so the walk rejects what would
    come in through it: interface-not-running names that cause."""
    down = {"wg0": NetifdInterface("wg0", False, "none", ("NO_DEVICE",))}
    b = replace(facts(plan, "B"), wg=WgDump(()), netifd=down)
    rs = _fw4()
    without_wg0 = Ruleset(
        rs.chains,
        {k: tuple(r for r in v if "wg0" not in rs.line(r)) for k, v in rs.rules.items()},
        rs.sets,
        rs.lines,
    )
    state = live(
        plan, b=b, pa=_with_ruleset(plan, "A", rs), pb=_with_ruleset(plan, "B", without_wg0)
    )
    assert [f.check for f in diagnose(state)] == ["interface-not-running"]


def test_a_ping_that_failed_once_is_looked_at_again_and_passes_if_it_passes_then(
    plan: Plan,
) -> None:
    first = probes(plan, "A", small={"B": False}, ping_host={"B": ("192.168.7.100", False)})
    assert failed(first) == {"B"}
    assert failed(probes(plan, "A")) == set()
    again = Probes(small={"B": True}, ping_host={"B": ("192.168.7.100", True)})
    merged = second_look(first, again)
    assert merged.small["B"] and merged.ping_host["B"] == ("192.168.7.100", True)
    # a second failure leaves the first's answer as it was
    still = second_look(probes(plan, "A", small={"B": False}), Probes(small={"B": False}))
    assert still.small["B"] is False


def test_each_pair_pings_its_overlay_from_one_end_and_both_ends_get_the_answer(
    plan: Plan,
) -> None:
    every = {"A": facts(plan, "A"), "B": facts(plan, "B")}
    script_a = probe_sections(plan, "A", every)[0][1]
    script_b = probe_sections(plan, "B", every)[0][1]
    a_lan = "192.168.3.0/24 192.168.7.254 br-lan 192.168.3.1"
    assert (
        "\nprobe B 192.168.7.0/24 192.168.3.254 br-lan 192.168.7.1 1 192.168.3.1 192.168.5.2 &\n"
        in script_a
    )
    assert f"\nprobe A {a_lan} 1 192.168.7.1 - &\n" in script_b  # B leaves the overlay ping to A
    # ...unless A was not read: then B pings it itself
    assert (
        "\nprobe A 192.168.3.0/24 192.168.7.254 br-lan 192.168.3.1 0 192.168.7.1 192.168.5.1 &\n"
        in probe_sections(plan, "B", {"A": None, "B": every["B"]})[0][1]
    )
    a = probes(plan, "A", small={"B": True}, large={"B": False}, fits={"B": 1380})
    b = probes(plan, "B", small={}, large={}, fits={})
    mirror_overlay(plan, {"A": a, "B": b}, every)
    assert (b.small, b.large, b.fits) == ({"A": True}, {"A": False}, {"A": 1380})


def test_a_listener_behind_a_port_forward_is_no_port_fault() -> None:
    """A is dialled on 443 (its router's port forward) and listens on 51820: both ends run as
    planned, so no endpoint-port and no listen-port-changed."""
    spec = spec_from(
        SEED.read_text().replace('endpoint = "a.example.net"', 'endpoint = "a.example.net:443"')
    )
    forwarded = plan_network(spec, None, KEYS)
    b = facts(forwarded, "B")
    peer = b.wg.interfaces[0].peers[0]
    assert peer.endpoint is not None
    b = _wg(b, peers=(replace(peer, endpoint=replace(peer.endpoint, port=443)),))
    found = diagnose(live(forwarded, a=facts(forwarded, "A"), b=b))
    assert [f.check for f in found if f.check in ("endpoint-port", "listen-port-changed")] == []


def test_boot_lines_hide_secrets_under_every_awk_here(tmp_path: Path) -> None:
    """The boot probe's awk program, run by each awk on this machine over lines that carry an
    auth key or a WireGuard key in the ways a person writes them."""
    lines = [
        "tailscale up --accept-routes --authkey\ttskey-auth-kXYZ-abc",
        "TS_AUTHKEY=tskey-abc123 tailscale up --accept-routes",
        f"echo '{KEYS['A']}' | wg set wg0 private-key /dev/stdin",
        f"wg set wg0 peer X preshared-key <(echo {KEYS['B']})",
    ]
    rc = tmp_path / "rc.local"
    rc.write_text("\n".join(lines) + "\n")
    ran = 0
    for awk in (["mawk"], ["busybox", "awk"], ["gawk"], ["original-awk"]):
        if shutil.which(awk[0]) is None:
            continue
        out = subprocess.run(
            [*awk, "-v", "f=/etc/rc.local", HIDE_AWK, str(rc)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ran += 1
        assert out.count("line /etc/rc.local") == 4, (awk, out)
        for secret in ("tskey", KEYS["A"], KEYS["B"], "abc123"):
            assert secret not in out, (awk, out)
        assert "tailscale up --accept-routes" in out
    assert ran >= 1


def test_wireguards_own_packets_into_tailscale0_are_named_with_a_rule_to_pin_them(
    plan: Plan,
) -> None:
    """B's route to A's endpoint goes into tailscale0 (a WAN prefix accepted from the
    tailnet): the tunnel rides inside Tailscale, or not at all."""
    ep = "fd53:5357:0:1::10"
    captured = f"{ep} from :: dev tailscale0 table 52 src fd7a:115c:a1e0::2 metric 1024 pref medium"
    pb = probes(plan, "B", route_ep={ep: captured})
    finding = only(diagnose(live(plan, pb=pb)), "endpoint-route", "B")
    assert finding.problem.startswith(
        f"WireGuard's own packets to A's endpoint {ep} go out by tailscale0 (Tailscale's table 52"
    )
    assert finding.fix.startswith(f"ip -6 rule add to {ep} lookup main priority ")
    healthy = probes(plan, "B", route_ep={ep: f"{ep} from :: via fd53:5357:0:1::1 dev wan"})
    assert diagnose(live(plan, pb=healthy)) == []


@pytest.mark.parametrize(
    ("rule", "answer"),
    [
        ("to 192.168.7.0/24 lookup 100", "192.168.7.1 from 192.168.3.254 dev wan table 100"),
        ("to 192.168.7.0/24 prohibit", "RTNETLINK answers: Permission denied"),
        ("from all lookup 100", "192.168.7.1 from 192.168.3.254 via 198.18.0.1 dev wan table 100"),
    ],
)
def test_a_policy_rule_taking_the_other_lan_is_named_with_its_own_delete(
    plan: Plan, rule: str, answer: str
) -> None:
    a = facts(plan, "A")
    extra = parse_ip_rules(f"1000:\tfrom all {rule.removeprefix('from all ')}\n")
    a = replace(a, rules4=(*a.rules4, *extra, *parse_ip_rules("1001:\tfrom all lookup 200\n")))
    pa = probes(plan, "A", route_lan={lan_of("B"): f"{answer} iif br-lan"})
    finding = only(diagnose(live(plan, a=a, pa=pa)), "route-elsewhere", "A")
    assert "$ ip rule show" in finding.evidence
    assert any(line.startswith("1000:\tfrom all") for line in finding.evidence), finding.evidence
    assert not any(line.startswith("1001:") for line in finding.evidence)
    assert finding.fix.startswith("ip rule del pref 1000   (then: sitewire apply")


def test_a_dialer_without_an_endpoint_is_one_finding_naming_the_listener(plan: Plan) -> None:
    """Both directions meet B's peer for A without an endpoint: one finding, about A."""
    b = facts(plan, "B")
    b = _wg(b, peers=tuple(replace(p, endpoint=None) for p in b.wg.interfaces[0].peers))
    finding = only(diagnose(live(plan, b=b)), "no-endpoint", "B")
    assert finding.problem.startswith("dials A but its peer has no endpoint"), finding.problem
