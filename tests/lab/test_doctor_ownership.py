"""`sitewire doctor` names what a hand-made change leaves beside sitewire's sections (issue 12):
a second peer section for one key, a second zone for the interface, a foreign peer.

The seed lab and its helpers are test_doctor_faults2's: each test breaks the healthy network
as a person would with uci or wg, expects exactly one finding, runs its fix, expects none.
"""

from __future__ import annotations

import pytest

from sitewire.keys import generate_private_key, public_key
from tests.lab.test_doctor_faults2 import (
    Seed,
    doctor,
    fix_command,
    healthy,
    only,
    seed,
    seed_network,
    sh,
    tunnel_up,
)

__all__ = ["seed", "seed_network"]  # the fixtures, shared with test_doctor_faults2


@pytest.mark.lab
def test_a_hand_made_section_for_a_planned_key(seed: Seed) -> None:
    """LuCI's way: an anonymous wireguard_wg0 section for B beside sitewire's sw_peer_B."""
    key_b = sh(seed, "B", "wg show wg0 public-key").strip()
    seed.undo.append(
        lambda: sh(seed, "A", "uci delete network.@wireguard_wg0[-1]; uci commit network")
    )
    sh(
        seed,
        "A",
        "uci add network wireguard_wg0 >/dev/null && "
        f"uci set network.@wireguard_wg0[-1].public_key='{key_b}' && "
        "uci add_list network.@wireguard_wg0[-1].allowed_ips='192.168.5.0/24' && "
        "uci set network.@wireguard_wg0[-1].route_allowed_ips='1' && uci commit network",
    )
    finding = only(doctor(seed), "duplicate-peer", "A")
    assert "two peer sections for B's key (sw_peer_B, @wireguard_wg0[2])" in finding.problem
    assert fix_command(finding) == (
        "uci delete network.@wireguard_wg0[2] && uci commit network && ifup wg0"
    )
    sh(seed, "A", fix_command(finding))
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_the_interface_in_a_second_zone(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(
            seed,
            "A",
            "uci delete firewall.@zone[-1]; uci commit firewall; /etc/init.d/firewall reload",
        )
    )
    sh(
        seed,
        "A",
        "uci add firewall zone >/dev/null && uci set firewall.@zone[-1].name='wireguard' && "
        "uci add_list firewall.@zone[-1].network='wg0' && "
        "uci set firewall.@zone[-1].input='ACCEPT' && uci set firewall.@zone[-1].forward='ACCEPT' "
        "&& uci set firewall.@zone[-1].output='ACCEPT' && uci commit firewall && "
        "/etc/init.d/firewall reload",
    )
    finding = only(doctor(seed), "interface-in-two-zones", "A")
    assert "wg0 is in two firewall zones (sitewire, wireguard)" in finding.problem
    sh(seed, "A", fix_command(finding))
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_a_peer_added_by_hand(seed: Seed) -> None:
    stranger = public_key(generate_private_key())
    seed.undo.append(lambda: sh(seed, "A", f"wg set wg0 peer {stranger} remove"))
    sh(seed, "A", f"wg set wg0 peer {stranger} allowed-ips 10.99.0.2/32")
    finding = only(doctor(seed), "foreign-peer", "A")
    assert f"({stranger[:8]}…, 10.99.0.2/32)" in finding.problem
    assert finding.fix.startswith(f"wg set wg0 peer {stranger} remove")
    sh(seed, "A", finding.fix.split(",")[0])
    healthy(seed)
