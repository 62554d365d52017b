"""A confirm or rollback whose reply never comes: apply asks the router over a new connection
what became of its commit and reports that, never a guess (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sitewire.deploy.problems import Kind
from sitewire.deploy.remote import RemoteResult
from sitewire.deploy.run import Result
from tests.fake_transport import CUT, FakeDevice, FakeNetwork, Sent
from tests.unit.test_apply_orchestration import apply, factory, network, seed

Fault = Callable[[Sent], RemoteResult | None]


@pytest.fixture
def seed_net() -> FakeNetwork:
    return network(
        A=FakeDevice("A", factory("192.168.3.1")), B=FakeDevice("B", factory("192.168.7.1"))
    )


def _once(kind: str, act: Callable[[Sent], object]) -> Fault:
    """Cut the session on the first command of `kind`, after `act` (what the router did)."""
    fired: list[Sent] = []

    def fault(sent: Sent) -> RemoteResult | None:
        if sent.kind != kind or fired:
            return None
        fired.append(sent)
        act(sent)
        return CUT

    return fault


def _cannot_reach_a(sent: Sent) -> RemoteResult | None:
    """B's verification: no handshake with A, no ping across: B is rolled back."""
    if sent.kind != "verify":
        return None
    return RemoteResult(0, "hs A none\nping overlay A fail\n", "")


def _token(sent: Sent) -> str:
    return sent.command.split()[-1]


def _sessions(device: FakeDevice, kind: str) -> list[int]:
    return [s.session for s in device.sent if s.kind == kind]


def test_a_confirm_done_whose_reply_is_lost_is_reported_confirmed(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    b = seed_net.devices["B"]
    b.faults.append(_once("safety:confirm", lambda sent: b._safety("confirm", sent.command)))
    outcome, ui = apply(seed(tmp_path), seed_net)
    assert outcome.sites["B"].result is Result.CONFIRMED, ui.text
    assert outcome.sites["B"].problems == ()
    assert set(b.commits.values()) == {"confirmed"}
    # the router was asked on a connection opened after the lost reply
    confirm_on = _sessions(b, "safety:confirm")[0]
    assert [s for s in _sessions(b, "safety:status") if s > confirm_on], b.sent
    # and confirmed once more there: the lost one may have stopped before it removed the
    # backup from flash and let go of the lock (a boot would restore that backup)
    assert len(_sessions(b, "safety:confirm")) == 2


def test_a_confirm_lost_before_the_router_acted_is_sent_again(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    b = seed_net.devices["B"]
    b.faults.append(_once("safety:confirm", lambda sent: None))
    outcome, ui = apply(seed(tmp_path), seed_net)
    assert outcome.sites["B"].result is Result.CONFIRMED, ui.text
    assert set(b.commits.values()) == {"confirmed"}
    first, second = _sessions(b, "safety:confirm")
    assert second > first  # once more, on the new connection, after asking


def test_a_router_that_reverted_before_the_confirm_arrived_is_reported_rolled_back(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    b = seed_net.devices["B"]

    def timer_fired(sent: Sent) -> None:
        b.commits[_token(sent)], b.lock = "reverted", None

    b.faults.append(_once("safety:confirm", timer_fired))
    outcome, ui = apply(seed(tmp_path), seed_net)
    site = outcome.sites["B"]
    assert site.result is Result.ROLLED_BACK, ui.text
    assert [p.kind for p in site.problems] == [Kind.CONFIRM]
    assert "commit reverted" in site.problems[0].text


def test_a_router_that_cannot_be_asked_is_left_to_its_timer_and_says_so(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    b = seed_net.devices["B"]
    b.faults.append(_once("safety:confirm", lambda sent: seed_net.unreachable.add("B")))
    outcome, ui = apply(seed(tmp_path), seed_net)
    site = outcome.sites["B"]
    assert site.result is Result.REVERTING, ui.text
    assert "could not be asked again" in site.problems[0].text


def test_a_rollback_whose_reply_is_lost_reports_what_the_router_did(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    b = seed_net.devices["B"]

    b.faults.append(_cannot_reach_a)
    b.faults.append(_once("safety:rollback", lambda sent: b._safety("rollback", sent.command)))
    outcome, ui = apply(seed(tmp_path), seed_net)
    assert outcome.sites["B"].result is Result.ROLLED_BACK, ui.text
    assert set(b.commits.values()) == {"reverted"}


def test_a_rollback_lost_on_a_commit_whose_timer_died_is_sent_again(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    """Abandoned (its timer died): nothing would revert it, so it is not left "reverting"."""
    b = seed_net.devices["B"]

    def timer_died(sent: Sent) -> None:
        b.commits[_token(sent)] = "abandoned"

    b.faults.append(_cannot_reach_a)
    b.faults.append(_once("safety:rollback", timer_died))
    outcome, ui = apply(seed(tmp_path), seed_net)
    assert outcome.sites["B"].result is Result.ROLLED_BACK, ui.text
    assert len(_sessions(b, "safety:rollback")) == 2
