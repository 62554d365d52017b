"""`sitewire apply` on factory lab routers: one command to a working network, then nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitewire.deploy.run import Result
from sitewire.lab.state import LabState
from tests.conftest import SEED, spec_from
from tests.lab.applying import Pinger, apply_lab, router, unreachable, write_spec
from tests.lab.conftest import MakeLab


@pytest.mark.lab
def test_seed_from_factory_then_a_second_apply_changes_nothing(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    spec_path = write_spec(tmp_path / "network.toml", SEED.read_text())
    state: LabState = make_lab(spec_from(SEED.read_text()))

    outcome, ui = apply_lab(state, spec_path)
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    assert unreachable(state, spec_path) == []

    # The planned sections, by name, are in the routers' UCI.
    shown = router(state, "B", "uci", "show", "network")
    for section in ("network.wg0=interface", "network.sw_peer_A=wireguard_wg0"):
        assert section in shown
    assert "sw_zone" in router(state, "B", "uci", "show", "firewall")

    # Private keys live only on the routers: not in the lock, not in anything apply said.
    lock = (state.dir / "network.lock").read_text()
    for site in ("A", "B"):
        private = router(state, site, "uci", "get", "network.wg0.private_key").strip()
        psk = router(
            state,
            site,
            "uci",
            "get",
            f"network.sw_peer_{'B' if site == 'A' else 'A'}.preshared_key",
        ).strip()
        assert len(private) == 44 and len(psk) == 44
        for secret in (private, psk):
            assert secret not in lock
            assert secret not in ui.text
            assert secret not in (tmp_path / "network.toml").read_text()
        public = router(state, site, "wg", "show", "wg0", "public-key").strip()
        assert public in lock

    # Again: no change, nothing re-created, no packet lost.
    ifindex = {s: router(state, s, "cat", "/sys/class/net/wg0/ifindex") for s in ("A", "B")}
    with Pinger(state, "B", "192.168.3.100") as ping:
        again, ui2 = apply_lab(state, spec_path)
    assert again.ok
    assert {r.result for r in again.sites.values()} == {Result.UNCHANGED}, ui2.text
    assert "nothing to change" in ui2.lines
    assert not any("[#]" in line for line in ui2.lines), ui2.text
    assert {s: router(state, s, "cat", "/sys/class/net/wg0/ifindex") for s in ("A", "B")} == ifindex
    assert ping.sent > 10 and ping.lost == 0, (ping.sent, ping.lost)


@pytest.mark.lab
def test_a_preshared_key_lost_on_one_end_is_made_anew(make_lab: MakeLab, tmp_path: Path) -> None:
    """Keys are hidden from the controller, so only hashes show that the two ends disagree
    (e.g. a site re-added with its old config, or a key deleted by hand)."""
    spec_path = write_spec(tmp_path / "network.toml", SEED.read_text())
    state: LabState = make_lab(spec_from(SEED.read_text()))
    assert apply_lab(state, spec_path)[0].ok
    router(state, "B", "sh", "-c", "uci delete network.sw_peer_A.preshared_key; uci commit network")

    outcome, ui = apply_lab(state, spec_path)
    assert outcome.ok, ui.text
    assert "B: preshared key with A: made anew, written to both ends" in ui.lines
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}
    hashes = {
        site: router(
            state, site, "sh", "-c", f"uci get network.sw_peer_{peer}.preshared_key | sha256sum"
        )
        for site, peer in (("A", "B"), ("B", "A"))
    }
    assert hashes["A"] == hashes["B"]
    assert unreachable(state, spec_path) == []
