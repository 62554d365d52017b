"""`sitewire doctor` names a firewall section that is there but switched off (issue 14):
firewall4 reads `enabled` as a boolean (`0`, `no`, `off`, `false` all mean off) and skips the
section, so a check that only looks for the section would say nothing while LAN hosts cannot
reach each other. Each test switches one off as a person would (uci + firewall reload), expects
exactly one finding naming it, runs its fix, and expects none again.

The seed lab and its helpers are test_doctor_faults2's.
"""

from __future__ import annotations

import pytest

from tests.lab.test_doctor_faults2 import (
    B_LAN_HOST,
    Seed,
    doctor,
    fix_command,
    healthy,
    lan_ping,
    only,
    seed,
    seed_network,
    sh,
    tunnel_up,
)

__all__ = ["seed", "seed_network"]  # the fixtures, shared with test_doctor_faults2


@pytest.mark.lab
def test_a_forwarding_switched_off(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(
            seed,
            "A",
            "uci -q delete firewall.sw_fwd_lan_sitewire.enabled; uci commit firewall; fw4 reload",
        )
    )
    sh(seed, "A", "uci set firewall.sw_fwd_lan_sitewire.enabled='no' && uci commit firewall")
    sh(seed, "A", "/etc/init.d/firewall reload")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "disabled-forwarding", "A")
    assert "lan → sitewire is disabled (enabled 'no')" in finding.problem
    assert any("enabled=no" in line for line in finding.evidence), finding.evidence

    sh(seed, "A", fix_command(finding))
    assert lan_ping(seed, "A", B_LAN_HOST)
    healthy(seed)


@pytest.mark.lab
def test_the_wireguard_zone_switched_off(seed: Seed) -> None:
    seed.undo.append(
        lambda: sh(
            seed, "B", "uci -q delete firewall.sw_zone.enabled; uci commit firewall; fw4 reload"
        )
    )
    sh(seed, "B", "uci set firewall.sw_zone.enabled='off' && uci commit firewall")
    sh(seed, "B", "/etc/init.d/firewall reload")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "disabled-zone", "B")
    assert "zone 'sitewire' holds wg0 but is disabled (enabled 'off')" in finding.problem

    sh(seed, "B", fix_command(finding))
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_the_listen_port_opened_for_ipv4_only_while_b_dials_over_ipv6(seed: Seed) -> None:
    """A's WAN rule restricted to IPv4 (`family ipv4`, as a person copying an IPv4 guide
    would) while B dials A's name, which it reaches over IPv6: the running flow survives in
    conntrack, the next one from B is dropped."""
    seed.undo.append(
        lambda: sh(
            seed, "A", "uci -q delete firewall.sw_allow_wg0.family; uci commit firewall; fw4 reload"
        )
    )
    endpoint = sh(seed, "B", "wg show wg0 endpoints").split()[1]
    assert endpoint.startswith("["), endpoint  # the lab's B reaches A over IPv6
    sh(seed, "A", "uci set firewall.sw_allow_wg0.family='ipv4' && uci commit firewall")
    sh(seed, "A", "/etc/init.d/firewall reload")
    rule = sh(seed, "A", "nft list chain inet fw4 input_wan | grep 'Allow-sitewire-wg0'")
    assert "meta nfproto ipv4" in rule, rule  # fw4 really made it IPv4 only

    finding = only(doctor(seed), "port-closed-for-family", "A")
    assert "accepted from wan for IPv4 only, and B dials this site over IPv6" in finding.problem

    sh(seed, "A", fix_command(finding))
    assert "nfproto" not in sh(seed, "A", "nft list chain inet fw4 input_wan | grep Allow-sitewire")
    healthy(seed)
