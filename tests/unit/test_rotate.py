"""`sitewire rotate`: a site's private key replaced on its router, every peer told, under the
revert timer and the verification of apply (issue 13). The order and decisions over the fake
transport; what the commands do on real routers is tests/lab/test_rotate_lab.py's business."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy.events import KeyMade, StepStarted
from sitewire.deploy.remote import RemoteResult
from sitewire.deploy.run import Outcome, Result
from sitewire.pipeline import open_workspace
from tests.fake_transport import FakeDevice, FakeNetwork, Sent
from tests.unit.test_apply_orchestration import Recorder, apply, factory, network, seed


@pytest.fixture
def applied(tmp_path: Path) -> tuple[Path, FakeNetwork]:
    """The seed applied once: both routers hold keys, the lock has them."""
    net = network(
        A=FakeDevice("A", factory("192.168.3.1")), B=FakeDevice("B", factory("192.168.7.1"))
    )
    spec = seed(tmp_path)
    outcome, ui = apply(spec, net)
    assert outcome.ok, ui.text
    return spec, net


def _lock_keys(spec: Path) -> dict[str, str | None]:
    lock = open_workspace(spec).lock
    assert lock is not None
    return {n: e.public_key for n, e in lock.sites.items()}


def test_rotate_makes_a_new_key_on_the_router_and_tells_every_peer(
    applied: tuple[Path, FakeNetwork],
) -> None:
    spec, net = applied
    a, b = net.devices["A"], net.devices["B"]
    old = dict(_lock_keys(spec))
    for device in (a, b):
        device.sent.clear()
    outcome, ui = apply(spec, net, rotate=frozenset({"A"}))
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    # A made a new key (the replacing script, under its timer); B kept its own.
    assert a.pubkey != old["A"] and b.pubkey == old["B"]
    [script] = a.commands("key")
    assert "if [ -z " not in script and "wg genkey" in script
    assert [s.kind for s in a.sent].index("safety:arm") < [s.kind for s in a.sent].index("key")
    assert all("if [ -z " in c for c in b.commands("key"))
    assert [(e.site, e.replaced) for e in ui.events if isinstance(e, KeyMade)] == [("A", True)]
    assert f"A: new private key made on the device; public key {a.pubkey}" in ui.text
    assert "A: private key: replaced by a new one made on the device" in ui.text
    # B's peer A gets the new public key; A makes the new key live first, without ifup.
    assert a.pubkey is not None and old["A"] is not None
    [batch] = [s.stdin or "" for s in b.sent if s.kind == "push"]
    assert a.pubkey in batch and old["A"] not in batch
    steps = [e for e in ui.events if isinstance(e, StepStarted) and e.site == "A" and e.why]
    assert steps[0].command.startswith("uci get network.wg0.private_key | wg set wg0 private-key")
    # The lock holds the new key and not the old one.
    keys = _lock_keys(spec)
    assert keys["A"] == a.pubkey and keys["B"] == old["B"]
    assert old["A"] not in (tmp_path_of(spec) / "network.lock").read_text()


def tmp_path_of(spec: Path) -> Path:
    return spec.parent


def test_a_rotation_that_fails_verification_keeps_the_old_key_in_the_lock(
    applied: tuple[Path, FakeNetwork],
) -> None:
    spec, net = applied
    old = dict(_lock_keys(spec))
    net.devices["A"].route_dev = "tailscale0 table 52"  # A's verification fails
    outcome, ui = apply(spec, net, rotate=frozenset({"A"}))
    assert outcome.sites["A"].result is Result.ROLLED_BACK, ui.text
    assert net.devices["A"].commands("safety:rollback")
    # The router put its old key back (its backup): so does the lock.
    assert _lock_keys(spec)["A"] == old["A"]


def test_rotate_psk_makes_every_pair_key_anew_and_live(
    applied: tuple[Path, FakeNetwork],
) -> None:
    spec, net = applied
    for device in net.devices.values():
        device.sent.clear()
    outcome, ui = apply(spec, net, rotate=frozenset({"A"}), rotate_psk=True)
    assert outcome.ok, ui.text
    a, b = net.devices["A"], net.devices["B"]
    # A new key made though both ends held the same one, written to both.
    (wa,), (wb,) = ([s for s in d.sent if "read -r psk" in s.command] for d in (a, b))
    assert wa.stdin == wb.stdin and wa.stdin is not None and len(wa.stdin.strip()) == 44
    assert "preshared key with B: made anew, written to both ends" in ui.text
    for site in ("A", "B"):
        live = [
            e
            for e in ui.events
            if isinstance(e, StepStarted)
            and e.site == site
            and e.why == "the new preshared keys, live"
        ]
        assert len(live) == 1 and "preshared-key /proc/self/fd/0" in live[0].command, ui.text


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["rotate"], 2, "name the sites to rotate"),
        (["rotate", "A", "--all"], 2, "name the sites to rotate"),
        (["rotate", "Z"], 3, "no site 'Z' in the spec (its sites: A, B)"),
    ],
)
def test_a_rotate_without_sites_or_of_an_unknown_site_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    spec = seed(tmp_path)
    assert run([*argv, "--spec", str(spec)]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "network.lock").exists()


@pytest.mark.parametrize("kind", ["push", "step"])
def test_a_site_that_fails_before_the_switch_holds_no_other_site_at_the_gate(
    applied: tuple[Path, FakeNetwork], kind: str
) -> None:
    """Every site waits for the others' files (and live steps) before the switch; one that
    fails on the way must not leave them waiting for ever."""
    spec, net = applied

    def broken(sent: Sent) -> RemoteResult | None:
        return RemoteResult(1, "", "uci: Parse error\n") if sent.kind == kind else None

    net.devices["B"].faults.append(broken)
    finished: list[tuple[Outcome, Recorder]] = []
    worker = threading.Thread(
        target=lambda: finished.append(apply(spec, net, rotate=frozenset({"A", "B"}))),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=30)
    assert finished, "the rotation never finished: a site waits at a gate"
    outcome, ui = finished[0]
    assert outcome.sites["B"].result is not Result.CONFIRMED, ui.text
