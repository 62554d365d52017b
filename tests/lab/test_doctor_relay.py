"""`sitewire doctor` asks a relay how the kernel routes the packets it forwards (issue 14).

A is the listener; B and C sit behind firewalls and reach each other through A. Doctor used
to read a relay's main table for its hop, so a policy rule on A for packets coming in from the
tunnel went unseen, and the failing B↔C path was "unexplained". Now a relay with a policy
rule that could take a forwarded packet from its main table runs `ip route get <C host> from
<B host> iif wg0` for each path it relays.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewire.diagnose.doctor.paths import paths
from tests.lab.applying import router
from tests.lab.test_doctor_faults2 import (
    Seed,
    doctor,
    each_test,
    fix_command,
    gather,
    healthy,
    lan_ping,
    only,
    seed_lab,
    sh,
)

TRIO = """
[network]
name = "trio"
overlay = "192.168.5.0/24"

[sites.A]
platform = "openwrt"
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"

[sites.B]
platform = "openwrt"
lan = ["192.168.7.0/24"]

[sites.C]
platform = "openwrt"
lan = ["192.168.9.0/24"]
"""
C_LAN_HOST = "192.168.9.100"


@pytest.fixture(scope="module")
def trio_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    with seed_lab(tmp_path_factory.mktemp("trio"), TRIO, sites=("A", "B", "C")) as seed:
        yield seed


@pytest.fixture
def trio(trio_network: Seed) -> Iterator[Seed]:
    yield from each_test(trio_network)


@pytest.mark.lab
def test_the_relayed_paths_are_traced_through_the_relays_own_route(trio: Seed) -> None:
    live = gather(trio.state, trio.spec).live
    relayed = [p for p in paths(live) if p.sites == ("B", "A", "C")]
    assert len(relayed) == 1
    hop = next(h for h in relayed[0].hops if h.site == "A" and h.kind == "route")
    # no policy rule on A could take it from main: its main table is the kernel's answer
    assert hop.ok and hop.evidence == ("$ ip route show  (main table)", "192.168.9.0/24 dev wg0")
    healthy(trio)


@pytest.mark.lab
def test_a_policy_rule_on_the_relay_for_what_comes_in_from_the_tunnel(
    trio: Seed, tmp_path: Path
) -> None:
    """On A, packets arriving from wg0 for C's LAN are looked up in table 100 (to the WAN):
    A's own LAN still reaches C, B's does not."""
    trio.undo.append(
        lambda: sh(trio, "A", "ip rule del pref 1000 2>/dev/null; ip route flush table 100")
    )
    sh(trio, "A", "ip route add 192.168.9.0/24 dev wan table 100")
    sh(trio, "A", "ip rule add iif wg0 to 192.168.9.0/24 lookup 100 pref 1000")
    assert lan_ping(trio, "A", C_LAN_HOST)
    assert not lan_ping(trio, "B", C_LAN_HOST)

    finding = only(doctor(trio), "route-elsewhere", "A")
    assert finding.problem.startswith(
        "LAN traffic to C (192.168.9.0/24) that it relays is routed to wan, not wg0"
    ), finding.problem
    assert "1000:\tfrom all to 192.168.9.0/24 iif wg0 lookup 100" in finding.evidence
    assert "$ ip route get 192.168.9.254 from 192.168.7.254 iif wg0" in finding.evidence
    assert fix_command(finding) == "ip rule del pref 1000"

    sh(trio, "A", fix_command(finding))
    sh(trio, "A", "ip route flush table 100")
    assert "dev wg0" in router(trio.state, "A", "ip", "route", "get", C_LAN_HOST)
    assert lan_ping(trio, "B", C_LAN_HOST)
    healthy(trio)
