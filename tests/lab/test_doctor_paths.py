"""`sitewire doctor` traces each planned path through what the routers really run (issue 14).

Each test breaks the healthy seed network one way, as a person would at the router's shell
(nft, ip, uci + reload, a line in rc.local or cron), checks the fault is real (LAN hosts
cannot reach each other, or the kernel shows it), expects exactly one finding naming that
cause, runs the finding's own fix, and expects doctor to report nothing again. The faults here
are the ones only the live data path shows: rules of any nftables table walked for the packet,
NAT on the tunnel, a blackhole route, a prefix WireGuard sends to another peer, a dialer and a
listener on different ports; the boot-time hazards (warnings: it works now, and breaks at the
next boot or cron run); and a drop doctor cannot name, which it still reports, with exit 1.

The seed lab and its helpers are test_doctor_faults2's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.diagnose.doctor import Finding, diagnose
from sitewire.diagnose.doctor.paths import paths
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, write_spec
from tests.lab.conftest import MakeLab
from tests.lab.test_doctor_faults2 import (
    A_LAN_HOST,
    B_LAN_HOST,
    Seed,
    doctor,
    fix_command,
    gather,
    healthy,
    lan_ping,
    only,
    public_key,
    seed,
    seed_network,
    sh,
    tunnel_up,
)

__all__ = ["seed", "seed_network"]  # the fixtures, shared with test_doctor_faults2


def _lan_works(seed: Seed) -> bool:
    return lan_ping(seed, "A", B_LAN_HOST) and lan_ping(seed, "B", A_LAN_HOST)


def _fix(seed: Seed, finding: Finding) -> None:
    sh(seed, finding.site, fix_command(finding))


@pytest.mark.lab
def test_an_nft_drop_rule_in_a_table_of_its_own(seed: Seed) -> None:
    seed.undo.append(lambda: sh(seed, "B", "nft delete table inet guard 2>/dev/null; true"))
    sh(seed, "B", "nft add table inet guard")
    sh(seed, "B", "nft add chain inet guard block '{ type filter hook forward priority -10; }'")
    sh(seed, "B", "nft add rule inet guard block ip daddr 192.168.7.0/24 drop")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "firewall-drops", "B")
    assert "drops LAN traffic from A to B: drop at forward (inet guard block" in finding.problem
    assert "ip daddr 192.168.7.0/24 drop" in finding.evidence
    assert fix_command(finding).startswith("nft delete rule inet guard block handle ")

    _fix(seed, finding)
    assert _lan_works(seed)
    healthy(seed)


@pytest.mark.lab
def test_the_listen_port_dropped_for_new_flows_while_conntrack_keeps_the_old_one(
    seed: Seed,
) -> None:
    """A drops new UDP flows to its listen port; B's running flow is established in conntrack
    and still passes, so LAN traffic works until the flow expires or B's address changes."""
    seed.undo.append(lambda: sh(seed, "A", "nft delete table inet guard 2>/dev/null; true"))
    sh(seed, "A", "nft add table inet guard")
    sh(seed, "A", "nft add chain inet guard in '{ type filter hook input priority -10; }'")
    sh(seed, "A", "nft add rule inet guard in ct state new udp dport 51820 drop")
    assert _lan_works(seed)  # the fault is latent: conntrack hides it

    finding = only(doctor(seed), "firewall-drops", "A")
    assert "drops the handshake from B (UDP to the listen port)" in finding.problem
    assert "ct state new udp dport 51820 drop" in finding.evidence

    _fix(seed, finding)
    healthy(seed)


@pytest.mark.lab
def test_a_firewall_rule_made_with_uci_drops_lan_to_the_tunnel(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(seed, "A", "uci -q delete firewall.nolan; uci commit firewall; fw4 reload")
    )
    sh(
        seed,
        "A",
        "uci set firewall.nolan=rule && uci set firewall.nolan.name='No-LAN-to-B' && "
        "uci set firewall.nolan.src=lan && uci set firewall.nolan.dest=sitewire && "
        "uci set firewall.nolan.proto=all && uci set firewall.nolan.target=DROP && "
        "uci commit firewall && fw4 reload",
    )
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "firewall-drops", "A")
    assert "No-LAN-to-B" in finding.problem
    assert fix_command(finding) == (
        "uci delete firewall.nolan && uci commit firewall && /etc/init.d/firewall reload"
    )

    _fix(seed, finding)
    assert _lan_works(seed)
    healthy(seed)


@pytest.mark.lab
def test_masquerade_switched_on_for_the_tunnel_zone(seed: Seed) -> None:
    """LAN hosts still reach each other, but B's hosts see A's router, not A's hosts."""
    seed.undo.append(
        lambda: sh(
            seed, "A", "uci -q delete firewall.sw_zone.masq; uci commit firewall; fw4 reload"
        )
    )
    sh(seed, "A", "uci set firewall.sw_zone.masq='1' && uci commit firewall && fw4 reload")
    assert "masquerade" in sh(seed, "A", "nft list chain inet fw4 srcnat_sitewire")
    assert _lan_works(seed)

    finding = only(doctor(seed), "nat-on-tunnel", "A")
    assert finding.problem.startswith("applies masquerade to LAN traffic between A and B")
    assert fix_command(finding) == (
        "uci delete firewall.sw_zone.masq && uci commit firewall && /etc/init.d/firewall reload"
    )

    _fix(seed, finding)
    healthy(seed)


@pytest.mark.lab
def test_snat_to_the_tunnel_in_a_table_of_its_own(seed: Seed) -> None:
    """A hand-made nft NAT table on A rewrites its LAN hosts' source to A's overlay address
    on the way into wg0: the LANs still reach each other, B sees A's router."""
    seed.undo.append(lambda: sh(seed, "A", "nft delete table ip mynat 2>/dev/null; true"))
    sh(seed, "A", "nft add table ip mynat")
    sh(seed, "A", "nft add chain ip mynat post '{ type nat hook postrouting priority 100; }'")
    sh(
        seed,
        "A",
        "nft add rule ip mynat post oifname wg0 ip saddr 192.168.3.0/24 snat to 192.168.5.1",
    )
    assert _lan_works(seed)

    finding = only(doctor(seed), "nat-on-tunnel", "A")
    assert finding.problem.startswith("applies snat to LAN traffic between A and B"), (
        finding.problem
    )
    assert fix_command(finding).startswith("nft delete rule ip mynat post handle ")

    _fix(seed, finding)
    healthy(seed)


@pytest.mark.lab
def test_a_policy_rule_sends_the_other_lan_to_a_table_of_its_own(seed: Seed) -> None:
    """Policy routing by hand on A: B's LAN looked up in table 100, which sends it to the WAN,
    ahead of main's route through wg0."""
    seed.undo.append(
        lambda: sh(seed, "A", "ip rule del pref 1000 2>/dev/null; ip route flush table 100")
    )
    sh(seed, "A", "ip route add 192.168.7.0/24 dev wan table 100")
    sh(seed, "A", "ip rule add to 192.168.7.0/24 lookup 100 pref 1000")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "route-elsewhere", "A")
    assert finding.problem.startswith(
        "LAN traffic to B (192.168.7.0/24) is routed to wan, not wg0"
    ), finding.problem
    assert "1000:\tfrom all to 192.168.7.0/24 lookup 100" in finding.evidence
    assert fix_command(finding) == "ip rule del pref 1000"

    _fix(seed, finding)
    sh(seed, "A", "ip route flush table 100")
    assert _lan_works(seed)
    healthy(seed)


@pytest.mark.lab
def test_a_dialer_whose_peer_lost_its_endpoint(seed: Seed) -> None:
    """B's endpoint for A deleted with uci and B's interface brought up again: B cannot start
    a handshake, and A cannot reach B behind its firewall."""
    sh(seed, "B", "uci delete network.sw_peer_A.endpoint_host && uci commit network && ifup wg0")
    assert "(none)" in sh(seed, "B", "wg show wg0 endpoints")
    assert not lan_ping(seed, "B", A_LAN_HOST)

    finding = only(doctor(seed), "no-endpoint", "B")
    assert finding.problem.startswith("dials A but its peer has no endpoint"), finding.problem
    assert finding.fix == "sitewire apply"

    outcome, ui = apply_lab(seed.state, seed.spec)
    assert outcome.ok, ui.text
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_an_exit_node_in_use_takes_the_other_lan(seed: Seed) -> None:
    """B uses A as its Tailscale exit node (A offers one in the seed), allowing LAN access:
    table 52 gets a default route into tailscale0, with B's own subnets thrown back to main,
    so B's LAN hosts' packets for A's LAN leave by tailscale0 although main routes it by wg0."""
    seed.undo.append(lambda: sh(seed, "B", "tailscale set --exit-node="))
    exit_ip = sh(seed, "A", "tailscale ip -4").strip()
    sh(seed, "B", f"tailscale set --exit-node={exit_ip} --exit-node-allow-lan-access")
    assert "default dev tailscale0" in sh(seed, "B", "ip route show table 52")
    assert "dev tailscale0" in sh(
        seed, "B", f"ip route get {A_LAN_HOST} from {B_LAN_HOST} iif br-lan"
    )

    finding = only(doctor(seed), "tailscale-captures-route", "B")
    assert finding.problem.startswith(
        "Tailscale's exit node (a default route in table 52) takes 192.168.3.0/24"
    ), finding.problem
    assert "0.0.0.0/0 dev tailscale0" in finding.evidence
    assert fix_command(finding) == "tailscale set --exit-node="

    sh(seed, "B", fix_command(finding))
    assert _lan_works(seed)
    healthy(seed)


@pytest.mark.lab
def test_a_blackhole_route_for_part_of_the_other_lan(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(seed, "B", "ip route del blackhole 192.168.3.0/25 2>/dev/null; true")
    )
    sh(seed, "B", "ip route add blackhole 192.168.3.0/25")
    assert not lan_ping(seed, "B", A_LAN_HOST)

    finding = only(doctor(seed), "route-elsewhere", "B")
    assert "blackhole 192.168.3.0/25" in finding.evidence
    assert fix_command(finding) == "ip route del blackhole 192.168.3.0/25"

    _fix(seed, finding)
    assert _lan_works(seed)
    healthy(seed)


@pytest.mark.lab
def test_the_listener_moved_to_another_port(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(seed, "A", "uci set network.wg0.listen_port=51820; uci commit network; ifup wg0")
    )
    sh(seed, "A", "uci set network.wg0.listen_port='51821' && uci commit network && ifup wg0")
    assert "51821" in sh(seed, "A", "wg show wg0 listen-port")

    finding = only(doctor(seed), "listen-port-changed", "A")
    assert "wg0 listens on port 51821, not the planned 51820 that B dials" in finding.problem

    _fix(seed, finding)
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_the_dialer_sends_to_the_wrong_port(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(
            seed,
            "B",
            "uci set network.sw_peer_A.endpoint_port=51820; uci commit network; ifup wg0",
        )
    )
    sh(seed, "B", "uci set network.sw_peer_A.endpoint_port='51999' && uci commit network")
    sh(seed, "B", "ifup wg0")
    assert ":51999" in sh(seed, "B", "wg show wg0 endpoints")

    finding = only(doctor(seed), "endpoint-port", "B")
    assert "sends to port 51999, A is dialled on 51820" in finding.problem
    assert fix_command(finding) == (
        "uci set network.sw_peer_A.endpoint_port='51820' && uci commit network && ifup wg0"
    )

    _fix(seed, finding)
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_a_hand_made_peer_takes_the_other_lan(seed: Seed) -> None:
    """A peer section added in UCI (as LuCI does) with B's LAN in its AllowedIPs: netifd adds
    it after sitewire's, and WireGuard gives the prefix to the peer set last."""
    seed.undo.append(
        lambda: sh(seed, "A", "uci -q delete network.old_b; uci commit network; ifup wg0")
    )
    stranger = sh(seed, "A", "wg genkey | wg pubkey").strip()
    sh(
        seed,
        "A",
        f"uci set network.old_b=wireguard_wg0 && uci set network.old_b.public_key='{stranger}' "
        "&& uci add_list network.old_b.allowed_ips='192.168.7.0/24' && uci commit network",
    )
    sh(seed, "A", "ifup wg0")
    assert stranger in sh(seed, "A", "wg show wg0 allowed-ips | grep 192.168.7.0/24")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "prefix-elsewhere", "A")
    assert f"192.168.7.0/24 is carried by {stranger[:8]}…, not B" in finding.problem
    assert fix_command(finding) == "uci delete network.old_b && uci commit network && ifup wg0"

    _fix(seed, finding)
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_a_peer_changed_live_and_not_saved(seed: Seed) -> None:
    key = public_key(seed, "B")
    seed.undo.append(lambda: sh(seed, "A", "ifup wg0"))
    sh(seed, "A", f"wg set wg0 peer {key} allowed-ips 192.168.5.2/32,192.168.7.0/24,10.77.0.0/24")
    assert _lan_works(seed)

    finding = only(doctor(seed), "unsaved-live-change", "A")
    assert finding.kind == "warning"
    assert any("10.77.0.0/24" in line for line in finding.evidence), finding.evidence
    assert _exit_code(seed) == 4  # warnings only: works now

    _fix(seed, finding)
    tunnel_up(seed)
    healthy(seed)


def _exit_code(seed: Seed) -> int:
    return run(["doctor", str(seed.spec), "--lab", "--lab-name", seed.state.name])


@pytest.mark.lab
def test_rc_local_turns_accepted_routes_back_on_at_boot(seed: Seed) -> None:
    seed.undo.append(lambda: sh(seed, "B", "sed -i '/accept-routes/d' /etc/rc.local"))
    sh(
        seed,
        "B",
        "sed -i 's/^exit 0$/tailscale up --accept-routes --auth-key=tskey-x\\nexit 0/' "
        "/etc/rc.local",
    )
    assert "tailscale up --accept-routes" in sh(seed, "B", "cat /etc/rc.local")

    finding = only(doctor(seed), "boot-accepts-routes", "B")
    assert finding.kind == "warning"
    assert "tskey-x" not in finding.text()  # a key-like value is hidden on the router
    _fix(seed, finding)
    assert "accept-routes" not in sh(seed, "B", "cat /etc/rc.local")
    healthy(seed)


# (site, what a person does, how it is undone, the finding, what its problem says)
BOOT_HAZARDS = {
    "a cron job that changes wireguard": (
        "A",
        "echo '*/10 * * * * wg set wg0 listen-port 51820' >> /etc/crontabs/root",
        "sed -i '/wg set wg0/d' /etc/crontabs/root",
        "boot-changes-wireguard",
        "/etc/crontabs/root line ",
    ),
    "the tunnel not started at boot": (
        "B",
        "uci set network.wg0.auto='0' && uci commit network",
        "uci -q delete network.wg0.auto; uci commit network",
        "boot-not-started",
        "wg0 runs now but does not start at boot (auto '0')",
    ),
    "the firewall disabled at boot": (
        "A",
        "/etc/init.d/firewall disable",
        "/etc/init.d/firewall enable",
        "boot-service-off",
        "/etc/init.d/firewall is disabled",
    ),
    "the network disabled at boot": (
        "B",
        "/etc/init.d/network disable",
        "/etc/init.d/network enable",
        "boot-service-off",
        "/etc/init.d/network is disabled",
    ),
}


@pytest.mark.lab
@pytest.mark.parametrize("hazard", list(BOOT_HAZARDS))
def test_a_boot_hazard_is_one_warning_while_the_network_works(seed: Seed, hazard: str) -> None:
    site, make, undo, check, says = BOOT_HAZARDS[hazard]
    seed.undo.append(lambda: sh(seed, site, undo))
    sh(seed, site, make)
    assert _lan_works(seed)

    finding = only(doctor(seed), check, site)
    assert finding.kind == "warning" and says in finding.problem, finding.text()
    _fix(seed, finding)
    healthy(seed)


@pytest.mark.lab
def test_a_drop_doctor_cannot_name_is_still_reported(seed: Seed) -> None:
    """A netdev ingress chain on B's wg0 drops everything arriving through the tunnel: every
    hop doctor walks passes, the pings fail, and doctor says so, with exit 1."""
    seed.undo.append(lambda: sh(seed, "B", "nft delete table netdev guard 2>/dev/null; true"))
    sh(seed, "B", "nft add table netdev guard")
    sh(
        seed,
        "B",
        "nft add chain netdev guard in '{ type filter hook ingress device wg0 priority 0; }'",
    )
    sh(seed, "B", "nft add rule netdev guard in drop")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "path-unexplained", "A")
    assert finding.problem == (
        "LAN traffic from A to B fails (and back), and nothing doctor reads explains it"
    )
    # from A's LAN address: to a host in B's LAN that B reaches, or (none known) to B itself
    lan = [line for line in finding.evidence if line.startswith("$ ping -I 192.168.3.1 192.168.7.")]
    assert lan and "→ no reply" in lan[0], finding.evidence
    assert any(line.startswith("last hop known good: ") for line in finding.evidence)
    assert any("netdev ingress chain netdev guard in" in line for line in finding.evidence)
    assert _exit_code(seed) == 1

    sh(seed, "B", "nft delete table netdev guard")
    assert _lan_works(seed)
    healthy(seed)


@pytest.mark.lab
def test_a_healthy_seed_on_25_12_traces_clean(make_lab: MakeLab, tmp_path: Path) -> None:
    """25.12's fw4 and apk userland: every planned path walked hop by hop, both ways, every
    hop passing, and no finding (no false alarm on either release)."""
    state = make_lab(spec_from(SEED.read_text()), release="25.12")
    spec = write_spec(tmp_path / "network.toml", SEED.read_text())
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    live = gather(state, spec).live
    assert all(p.ruleset is not None for p in live.probes.values())
    traced = paths(live)
    assert sorted((p.source, p.dest) for p in traced) == [("A", "B"), ("B", "A")]
    for path in traced:
        assert all(h.ok for h in path.hops), [h.line() for h in path.hops]
        assert path.hops[0].kind == "route" and path.hops[-1].kind == "firewall"
    findings = diagnose(live)
    assert findings == [], "\n".join(f.text() for f in findings)


# B keeps Tailscale's accepted routes (its WireGuard prefixes pinned to main ahead of table 52).
KEEP_ROUTES = SEED.read_text().replace(
    '["192.168.7.0/24"] }', '["192.168.7.0/24"], accept_routes = true }'
)


@pytest.mark.lab
def test_wireguards_own_packets_routed_into_tailscale(seed: Seed, tmp_path: Path) -> None:
    """A advertises its WAN prefix on the tailnet; B, keeping accepted routes, now sends
    WireGuard's own UDP to A's endpoint into tailscale0: the LANs stay pinned to wg0, the
    tunnel under them rides inside Tailscale. One finding, on B, with the rule that pins the
    endpoint to main."""
    keep = write_spec(tmp_path / "network.toml", KEEP_ROUTES)
    seed.undo.append(
        lambda: sh(
            seed, "A", "tailscale set --advertise-routes=192.168.3.0/24 && tailscale lab-sync"
        )
    )
    outcome, ui = apply_lab(seed.state, keep)
    assert outcome.ok, ui.text
    healthy(seed, keep)
    seed.broken = True
    endpoint = sh(seed, "B", "wg show wg0 endpoints").split()[1].split("]:")[0].lstrip("[")
    sh(seed, "A", "tailscale set --advertise-routes=192.168.3.0/24,fd53:5357:0:1::/64")
    sh(seed, "A", "tailscale lab-sync")
    sh(seed, "B", "tailscale lab-sync")
    assert "tailscale0" in sh(seed, "B", f"ip -6 route get {endpoint}")

    finding = only(doctor(seed, keep), "endpoint-route", "B")
    assert finding.problem.startswith(
        f"WireGuard's own packets to A's endpoint {endpoint} go out by tailscale0"
    )
    fix = fix_command(finding)
    assert fix.startswith(f"ip -6 rule add to {endpoint} lookup main priority ")
    seed.undo.append(lambda: sh(seed, "B", f"ip -6 rule del to {endpoint} 2>/dev/null; true"))

    sh(seed, "B", fix)
    assert "tailscale0" not in sh(seed, "B", f"ip -6 route get {endpoint}")
    healthy(seed, keep)
    for step in reversed(seed.undo):
        step()
    outcome, ui = apply_lab(seed.state, seed.spec)
    assert outcome.ok, ui.text
    healthy(seed)
