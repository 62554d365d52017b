"""`sitewire doctor` traces every LAN prefix of a site, IPv6 as well as IPv4 (issue 14).

The seed network with a second, IPv6, prefix in each LAN (`fd00:3::/64`, `fd00:7::/64`; the
lab gives each router `::1` and each LAN host `::100` there). Each fault below breaks only the
IPv6 path, as a person would (a Tailscale flag, uci + a firewall reload, nft), while IPv4
keeps working: doctor traced only a site's first prefix before and said "no findings" to all
of them. Each expects exactly one finding naming the cause, runs its fix, and expects none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sitewire.diagnose.doctor import diagnose
from sitewire.diagnose.doctor.paths import paths
from sitewire.diagnose.doctor.trace import Path as Traced
from sitewire.strict import network
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, write_spec
from tests.lab.conftest import LINUX_SPEC, MakeLab
from tests.lab.test_doctor_faults2 import (
    B_LAN_HOST,
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

DUAL = (
    SEED.read_text()
    .replace('lan = ["192.168.3.0/24"]', 'lan = ["192.168.3.0/24", "fd00:3::/64"]')
    .replace('lan = ["192.168.7.0/24"]', 'lan = ["192.168.7.0/24", "fd00:7::/64"]')
)
B_LAN6, B_LAN6_HOST = network("fd00:7::/64"), "fd00:7::100"


@pytest.fixture(scope="module")
def dual_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    with seed_lab(tmp_path_factory.mktemp("dual"), DUAL) as seed:
        yield seed


@pytest.fixture
def dual(dual_network: Seed) -> Iterator[Seed]:
    yield from each_test(dual_network)


def _only_ipv6_broken(seed: Seed) -> None:
    assert lan_ping(seed, "A", B_LAN_HOST)
    assert not lan_ping(seed, "A", B_LAN6_HOST)


def _traced_clean(traced: Sequence[Traced]) -> None:
    """Every planned path, each LAN prefix of both families, both ways, every hop passing."""
    assert sorted((p.source, p.dest, str(p.prefix)) for p in traced) == [
        ("A", "B", "192.168.7.0/24"),
        ("A", "B", "fd00:7::/64"),
        ("B", "A", "192.168.3.0/24"),
        ("B", "A", "fd00:3::/64"),
    ]
    for path in traced:
        assert all(h.ok for h in path.hops), [h.line() for h in path.hops]


@pytest.mark.lab
def test_a_healthy_dual_stack_network_traces_both_families_clean(dual: Seed) -> None:
    live = gather(dual.state, dual.spec).live
    _traced_clean(paths(live))
    assert live.probes["A"].ping_lan.get(("B", B_LAN6)) is True  # fd00:3::1 → fd00:7::1
    healthy(dual)


@pytest.mark.lab
@pytest.mark.parametrize("release", ["25.12", "linux"])
def test_a_healthy_dual_stack_network_on_25_12_and_linux_has_no_finding(
    make_lab: MakeLab, tmp_path: Path, release: str
) -> None:
    text = LINUX_SPEC if release == "linux" else DUAL
    state = make_lab(spec_from(text), release="24.10" if release == "linux" else release)
    spec = write_spec(tmp_path / "network.toml", text)
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    live = gather(state, spec).live
    _traced_clean(paths(live))
    findings = diagnose(live)
    assert findings == [], "\n".join(f.text() for f in findings)


@pytest.mark.lab
def test_tailscale_accepted_routes_take_only_the_ipv6_lan(dual: Seed) -> None:
    """B advertises its IPv6 LAN on the tailnet and A accepts routes: table 52 (looked up
    before main) sends A's LAN hosts' IPv6 packets for B into tailscale0."""
    dual.undo.append(lambda: sh(dual, "A", "tailscale set --accept-routes=false"))
    dual.undo.append(
        lambda: sh(
            dual, "B", "tailscale set --advertise-routes=192.168.7.0/24 && tailscale lab-sync"
        )
    )
    sh(dual, "B", "tailscale set --advertise-routes=fd00:7::/64 && tailscale lab-sync")
    sh(dual, "A", "tailscale set --accept-routes=true && tailscale lab-sync")
    assert "tailscale0" in sh(dual, "A", "ip -6 route show table 52")
    _only_ipv6_broken(dual)

    finding = only(doctor(dual), "tailscale-captures-route", "A")
    assert finding.problem.startswith("Tailscale's accepted routes capture fd00:7::/64")
    assert "$ ip -6 route show table 52" in finding.evidence
    assert "fd00:7::/64 dev tailscale0" in finding.evidence
    assert fix_command(finding) == "tailscale set --accept-routes=false"

    sh(dual, "A", fix_command(finding))
    sh(dual, "B", "tailscale set --advertise-routes=192.168.7.0/24 && tailscale lab-sync")
    assert lan_ping(dual, "A", B_LAN6_HOST)
    healthy(dual)


@pytest.mark.lab
def test_a_firewall_rule_for_ipv6_only_rejects_lan_to_the_tunnel(dual: Seed) -> None:
    """A rule made with uci, `family ipv6`, `proto all`, lan → sitewire, REJECT: fw4 puts it
    in forward_lan for IPv6 only."""
    dual.undo.append(
        lambda: sh(
            dual,
            "A",
            "uci -q delete firewall.no_v6_to_b; uci commit firewall; /etc/init.d/firewall reload",
        )
    )
    sh(
        dual,
        "A",
        "uci set firewall.no_v6_to_b=rule && uci set firewall.no_v6_to_b.name='no-v6-to-B' && "
        "uci set firewall.no_v6_to_b.src='lan' && uci set firewall.no_v6_to_b.dest='sitewire' && "
        "uci set firewall.no_v6_to_b.family='ipv6' && uci set firewall.no_v6_to_b.proto='all' && "
        "uci set firewall.no_v6_to_b.target='REJECT' && uci commit firewall && "
        "/etc/init.d/firewall reload 2>/dev/null",
    )
    _only_ipv6_broken(dual)

    finding = only(doctor(dual), "firewall-drops", "A")
    assert finding.problem.startswith(
        "the loaded nftables ruleset drops LAN traffic from A to B (fd00:7::/64)"
    ), finding.problem
    assert any('"!fw4: no-v6-to-B"' in line for line in finding.evidence), finding.evidence
    assert fix_command(finding) == (
        "uci delete firewall.no_v6_to_b && uci commit firewall && /etc/init.d/firewall reload"
    )

    sh(dual, "A", fix_command(finding) + " 2>/dev/null")
    assert lan_ping(dual, "A", B_LAN6_HOST)
    healthy(dual)


@pytest.mark.lab
def test_an_ipv6_drop_doctor_cannot_name_is_still_reported(dual: Seed) -> None:
    """A netdev ingress chain on B's wg0 drops IPv6 only: IPv4 and the overlay answer, every
    hop of the IPv6 path passes, its LAN pings fail, and doctor says so for that prefix."""
    dual.undo.append(lambda: sh(dual, "B", "nft delete table netdev guard6 2>/dev/null; true"))
    sh(dual, "B", "nft add table netdev guard6")
    sh(
        dual,
        "B",
        "nft add chain netdev guard6 in '{ type filter hook ingress device wg0 priority 0; }'",
    )
    sh(dual, "B", "nft add rule netdev guard6 in meta protocol ip6 drop")
    _only_ipv6_broken(dual)

    finding = only(doctor(dual), "path-unexplained", "A")
    assert finding.problem == (
        "LAN traffic from A to B (fd00:7::/64) fails (and back), and nothing doctor reads "
        "explains it"
    )
    assert "$ ping -I fd00:3::1 fd00:7::1   → no reply" in finding.evidence
    assert any("netdev ingress chain netdev guard6 in" in line for line in finding.evidence)

    sh(dual, "B", "nft delete table netdev guard6")
    assert lan_ping(dual, "A", B_LAN6_HOST)
    healthy(dual)
