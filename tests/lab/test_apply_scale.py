"""`sitewire apply` from factory on ten sites, most of them reaching each other through relays.

Every fourth site has an endpoint; the others dial those and reach each other through them. Two
are Linux hosts, which apply reads file by file (their paths rendered with stand-in keys before
any key exists). 24 pairs share preshared keys, in parallel where the pairs are disjoint. Then
`rotate --all` gives all ten new keys while two relayed links are pinged.

And a site joining a Linux hub: wg-quick takes preshared keys as [Interface] PostUp lines, yet a
new one is a peer change, made live; the hub's device is not re-created under its other peers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sitewire.deploy.run import Result
from sitewire.lab.state import LabState
from tests.conftest import spec_from
from tests.lab.applying import Pinger, apply_lab, router, unreachable, write_spec
from tests.lab.conftest import MakeLab


def relayed(n: int) -> str:
    """benchmarks/lab_scale.py's networks: listeners s00, s04, s08; s04 and s09 are Linux."""
    lines = ["[network]", 'name = "relayed"', 'overlay = "10.99.0.0/24"']
    for i in range(n):
        lines += [
            f"[sites.s{i:02d}]",
            f'platform = "{"linux" if i % 5 == 4 else "openwrt"}"',
            f'lan = ["10.{i + 1}.0.0/24"]',
        ]
        if i % 4 == 0:
            lines.append(f'endpoint = "s{i:02d}.example.net"')
    return "\n".join(lines) + "\n"


@pytest.mark.lab
def test_ten_relayed_sites_from_factory(make_lab: MakeLab, tmp_path: Path) -> None:
    text = relayed(10)
    spec_path = write_spec(tmp_path / "network.toml", text)
    state = make_lab(spec_from(text))

    outcome, ui = apply_lab(state, spec_path)

    assert outcome.ok, ui.text
    assert {n: r.result for n, r in outcome.sites.items()} == dict.fromkeys(
        (f"s{i:02d}" for i in range(10)), Result.CONFIRMED
    ), ui.text
    shared = [line for line in ui.lines if "preshared key made in memory" in line]
    assert len(shared) == len(set(shared)) == 24, ui.text
    assert unreachable(state, spec_path) == []

    # `rotate --all`: ten new keys at once, each made live while every peer learns it; two
    # relayed links (through an OpenWrt hub and through the Linux one) stop for a handshake.
    before = {n: router(state, n, "wg", "show", "wg0", "public-key") for n in outcome.sites}
    with (
        Pinger(state, "s01", "10.3.0.100") as via_s00,
        Pinger(state, "s05", "10.7.0.100") as via_s04,
    ):
        outcome, ui = apply_lab(state, spec_path, rotate=frozenset(outcome.sites))
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    after = {n: router(state, n, "wg", "show", "wg0", "public-key") for n in outcome.sites}
    assert not set(before.values()) & set(after.values())
    for name, ping in (("s01->s02", via_s00), ("s05->s06", via_s04)):
        assert ping.sent > 20 and ping.gap < ROTATE_GAP, (name, ping.gap, ping.lost)
        print(f"rotate --all, 10 sites: {name} {ping.lost} of {ping.sent} lost, {ping.gap:.2f} s")
    assert unreachable(state, spec_path) == []


# Seconds without a reply across a relay, well under the 5 s of one failed handshake's retry.
ROTATE_GAP = 2.5


HUB = """
[network]
name = "hub"
overlay = "192.168.5.0/24"

[sites.A]
platform = "linux"
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"

[sites.B]
platform = "openwrt"
lan = ["192.168.7.0/24"]
"""

WITH_C = (
    HUB
    + """
[sites.C]
platform = "openwrt"
lan = ["192.168.9.0/24"]
"""
)


def ifindex(state: LabState, site: str) -> str:
    return router(state, site, "ip", "-o", "link", "show", "wg0").split(":")[0]


@pytest.mark.lab
def test_a_site_joins_a_linux_hub_without_re_creating_its_device(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    state = make_lab(spec_from(WITH_C))
    pair = write_spec(tmp_path / "pair.toml", HUB)
    trio = write_spec(tmp_path / "trio.toml", WITH_C)
    outcome, ui = apply_lab(state, pair)
    assert outcome.ok, ui.text
    before = ifindex(state, "A")

    b_to_a, a_to_b = Pinger(state, "B", "192.168.3.100"), Pinger(state, "A", "192.168.7.100")
    with b_to_a, a_to_b:
        outcome, ui = apply_lab(state, trio)

    assert outcome.ok, ui.text
    assert outcome.sites["A"].result is Result.CONFIRMED, ui.text
    steps = [line for line in ui.lines if line.startswith("A: [#]")]
    assert any("wg set" in line for line in steps), ui.text
    assert not any("wg-quick" in line for line in steps), ui.text
    assert ifindex(state, "A") == before
    for ping in (b_to_a, a_to_b):
        assert ping.sent > 20 and ping.lost == 0, (ping.sent, ping.lost, ui.text)
    assert unreachable(state, trio) == []
