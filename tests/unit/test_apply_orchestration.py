"""deploy's orchestration over a fake transport: the order of stages and the decisions per site.

The devices replay real OpenWrt configuration files (tests/captures/openwrt) as the fact
script frames them; what is asserted is what deploy sends where, in which order, and what it
decides — the behaviour a lab test would need minutes and root to show.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sitewire.cli.report import event_json, lines_for
from sitewire.deploy import safety
from sitewire.deploy.apply import apply_network
from sitewire.deploy.events import Decided, Event, StepStarted
from sitewire.deploy.problems import ApplyError, Kind
from sitewire.deploy.remote import Credentials, RemoteResult, Target
from sitewire.deploy.run import Options, Outcome, Result
from sitewire.diagnose.parse import ScriptSection
from sitewire.keys import generate_private_key, public_key
from sitewire.pipeline import open_workspace
from tests.conftest import FIXTURES, SEED
from tests.fake_transport import CUT, FakeDevice, FakeNetwork, Sent
from tests.unit.test_diagnose_parse import openwrt_sections

PHONE = public_key(generate_private_key())


def _uci(file: str, package: str, lan: str = "192.168.3.1") -> str:
    text = (FIXTURES / file).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return f"package {package}\n\n{body.strip()}\n".replace("192.168.3.1", lan)


def factory(lan: str, *, wireguard: bool = True) -> dict[str, ScriptSection]:
    """A factory 24.10 router: stock network and firewall, nothing of WireGuard running."""
    packages = (
        "kmod-wireguard - 6.6.73-r1\nwireguard-tools - 1.0.20210914-r4\n"
        "luci-proto-wireguard - 24.10.0\n"
    )
    return openwrt_sections(
        uci_network=(_uci("network.stock-lan-wan.uci", "network", lan), 0),
        uci_firewall=(_uci("firewall.stock-23.05-24.10.uci", "firewall"), 0),
        uci_changes=("", 0),
        wg=("", 0),
        routes4=(
            "default via 198.18.0.1 dev wan proto static\n"
            f"{lan.rsplit('.', 1)[0]}.0/24 dev br-lan proto kernel scope link src {lan}\n",
            0,
        ),
        rc_local=("", 0),
        packages=(packages if wireguard else "dnsmasq - 2.90-r3\n", 0),
    )


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def event(self, event: Event) -> None:
        self.events.append(event)

    def ask(self, question: str) -> bool:
        return True

    @property
    def text(self) -> str:
        return "\n".join(line for e in self.events for line in lines_for(e))


def seed(tmp_path: Path) -> Path:
    spec = tmp_path / "network.toml"
    spec.write_text(SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{PHONE}"'))
    return spec


def network(**devices: FakeDevice) -> FakeNetwork:
    return FakeNetwork(dict(devices))


def apply(spec: Path, net: FakeNetwork, **options: object) -> tuple[Outcome, Recorder]:
    ws = open_workspace(spec)
    targets = {n: Target(n, f"192.0.2.{i + 1}") for i, n in enumerate(net.devices)}
    opts = Options(**{"yes": True, "revert_after": 60, "reconnect_timeout": 2.0, **options})  # type: ignore[arg-type]
    recorder = Recorder()
    outcome = asyncio.run(apply_network(ws, targets, Credentials(), opts, recorder, dial=net.dial))
    return outcome, recorder


@pytest.fixture
def seed_net() -> FakeNetwork:
    return network(
        A=FakeDevice("A", factory("192.168.3.1")), B=FakeDevice("B", factory("192.168.7.1"))
    )


def test_a_fresh_network_is_read_armed_keyed_configured_listener_first_verified_confirmed(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    outcome, ui = apply(seed(tmp_path), seed_net)
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}
    for device in seed_net.devices.values():
        kinds = [s.kind for s in device.sent]
        # Each stage before the next, on every device.
        order = ["facts", "safety:status", "safety:arm", "key", "push", "verify", "safety:confirm"]
        assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order), kinds
        assert device.lock is None and set(device.commits.values()) == {"confirmed"}
    # A has the endpoint: it listens, so it is configured before B dials it.
    assert seed_net.order("push") == ["A", "B"]
    # The preshared key is made here and written on both, one command each, on its stdin.
    writes = {
        name: [s for s in device.sent if s.kind == "psk" and "read -r psk" in s.command]
        for name, device in seed_net.devices.items()
    }
    assert [len(w) for w in writes.values()] == [1, 1], writes
    (a,), (b,) = writes.values()
    assert a.stdin == b.stdin and a.stdin is not None and len(a.stdin.strip()) == 44
    assert a.stdin.strip() not in a.command + b.command
    # Verification runs over a second connection, never the one that made the change.
    for device in seed_net.devices.values():
        assert {s.session for s in device.sent if s.kind == "verify"} == {2}
    # The live steps: the interface is new on both, so ifup, after the uci batch.
    steps = [e for e in ui.events if isinstance(e, StepStarted) and e.why]
    assert {e.site for e in steps if e.command == "ifup wg0"} == {"A", "B"}
    # The lock now carries the keys born on the devices.
    lock = open_workspace(tmp_path / "network.toml").lock
    assert lock is not None
    assert {n: e.public_key for n, e in lock.sites.items()} == {
        n: d.pubkey for n, d in seed_net.devices.items()
    }


def test_a_busy_site_at_arm_releases_the_armed_ones_and_changes_nothing(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    def busy(sent: Sent) -> RemoteResult | None:
        return (
            RemoteResult(3, "fail busy 0123456789abcdef 120 -\n", "")
            if sent.kind == "safety:arm"
            else None
        )

    seed_net.devices["B"].faults.append(busy)
    with pytest.raises(safety.CommitInProgress, match="another apply is in progress"):
        apply(seed(tmp_path), seed_net)
    a = seed_net.devices["A"]
    # A was armed, then let go with a confirm (nothing of it had changed), never configured.
    assert [s.kind for s in a.sent if s.kind.startswith("safety:")][-2:] == [
        "safety:arm",
        "safety:confirm",
    ]
    assert not seed_net.order("push") and not seed_net.order("key")
    assert a.lock is None
    assert not (tmp_path / "network.lock").exists()


def test_a_failed_verification_rolls_that_site_back_and_keeps_the_other(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    seed_net.devices["B"].route_dev = "tailscale0 table 52"  # the Tailscale trap
    outcome, ui = apply(seed(tmp_path), seed_net)
    a, b = outcome.sites["A"], outcome.sites["B"]
    assert not outcome.ok
    assert b.result is Result.ROLLED_BACK, ui.text
    [problem] = b.problems
    assert (
        problem.kind is Kind.VERIFY
        and "would not use wg0" in problem.text
        and "dev tailscale0" in problem.text
    )
    # B judged itself wrong, so it is no judge of A: A keeps its change.
    assert a.result is Result.CONFIRMED, ui.text
    assert seed_net.devices["B"].commands("safety:rollback")
    assert not seed_net.devices["B"].commands("safety:confirm")
    assert "B: FAILED: a LAN host's packet to A would not use wg0" in ui.text
    # The lock keeps B's key as it was before (none), and A's new one.
    lock = open_workspace(tmp_path / "network.toml").lock
    assert lock is not None
    assert lock.sites["A"].public_key == seed_net.devices["A"].pubkey
    assert lock.sites["B"].public_key is None


def test_a_session_dropped_mid_step_is_resumed_on_the_new_connection(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    cut: list[Sent] = []

    def drop_first_ifup(sent: Sent) -> RemoteResult | None:
        if sent.kind == "step" and sent.command == "ifup wg0" and not cut:
            cut.append(sent)
            return CUT
        return None

    seed_net.devices["A"].faults.append(drop_first_ifup)
    outcome, ui = apply(seed(tmp_path), seed_net)
    assert outcome.ok, ui.text
    a = seed_net.devices["A"]
    ifups = [s.session for s in a.sent if s.command == "ifup wg0"]
    assert ifups == [1, 2]  # cut on the first connection, run again on the new one
    # On the new connection: first the switch's state (still pending?), then the step, then
    # the verification, then the confirm.
    second = [s.kind for s in a.sent if s.session == 2]
    assert second[:2] == ["safety:status", "step"], second
    assert second[-2:] == ["verify", "safety:confirm"], second
    assert outcome.sites["A"].problems == ()


def test_an_unreachable_site_after_the_change_is_left_to_its_own_timer(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    def cut_and_stay_away(sent: Sent) -> RemoteResult | None:
        if sent.kind == "step" and sent.command == "ifup wg0":
            seed_net.unreachable.add("B")
            return CUT
        return None

    seed_net.devices["B"].faults.append(cut_and_stay_away)
    outcome, ui = apply(seed(tmp_path), seed_net)
    b = outcome.sites["B"]
    assert b.result is Result.REVERTING, ui.text
    assert [p.kind for p in b.problems] == [Kind.UNREACHABLE]
    # Nobody could send B a rollback: its own timer reverts it; the lock keeps its old key.
    assert not seed_net.devices["B"].commands("safety:rollback")
    decided = [e for e in ui.events if isinstance(e, Decided) and e.site == "B"]
    assert decided and decided[0].within is not None
    assert "the router restores its backup by itself within" in ui.text


def test_missing_packages_are_installed_then_the_network_restarted(tmp_path: Path) -> None:
    net = network(
        A=FakeDevice("A", factory("192.168.3.1", wireguard=False)),
        B=FakeDevice("B", factory("192.168.7.1")),
    )
    outcome, ui = apply(seed(tmp_path), net)
    assert outcome.ok, ui.text
    a = net.devices["A"]
    [install] = a.commands("install")
    assert install.startswith("opkg update && opkg install ") and "wireguard-tools" in install
    # netifd loads handlers only at its start: a restart instead of ifup, after the batch.
    steps = a.commands("step")
    assert "/etc/init.d/network restart" in steps and "ifup wg0" not in steps
    assert a.commands("probe") == []  # installed now: no need to ask netifd
    assert net.devices["B"].commands("install") == []


def test_a_dry_run_shows_the_diff_and_changes_nothing(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    spec = seed(tmp_path)
    outcome, ui = apply(spec, seed_net, dry_run=True)
    assert {r.result for r in outcome.sites.values()} == {Result.UNCHANGED}
    assert not [s for s in seed_net.journal if s.kind not in ("facts", "safety:status")]
    assert "A: private key: made on the device (only its public key returns)" in ui.text


def test_every_event_has_words_and_json(tmp_path: Path, seed_net: FakeNetwork) -> None:
    _, ui = apply(seed(tmp_path), seed_net)
    for event in ui.events:
        assert lines_for(event), event
        shown = event_json(event)
        assert shown["event"] and "site" in shown
    kinds = {event_json(e)["event"] for e in ui.events}
    assert {"read", "planned", "armed", "step_started", "verified", "decided"} <= kinds


def test_confirm_tries_every_site_and_names_each_that_failed(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    from sitewire.deploy.changes import plan_with
    from sitewire.deploy.decide import settle
    from sitewire.errors import SitewireError

    outcome, ui = apply(seed(tmp_path), seed_net, confirm=False)
    assert {r.result for r in outcome.sites.values()} == {Result.PENDING}, ui.text
    seed_net.unreachable.add("A")
    plan = plan_with(open_workspace(tmp_path / "network.toml"), {}, {})
    targets = {n: Target(n, "192.0.2.9") for n in plan.site_names}
    recorder = Recorder()
    with pytest.raises(SitewireError) as failed:
        asyncio.run(settle(plan, targets, Credentials(), "confirm", recorder, dial=seed_net.dial))
    assert failed.value.where == "A"  # the one that failed is named ...
    # ... and the other was confirmed all the same.
    assert set(seed_net.devices["B"].commits.values()) == {"confirmed"}
    assert recorder.text == f"B: commit {outcome.sites['B'].token} confirmed"


def test_sites_are_configured_at_once_and_a_dialer_restarts_a_peer_that_never_shook_hands(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "network.toml"
    # B listens, A dials it: A comes first in the spec.
    text = seed(tmp_path).read_text().replace('endpoint = "a.example.net"\n', "")
    text = text.replace(
        'lan = ["192.168.7.0/24"]', 'lan = ["192.168.7.0/24"]\nendpoint = "b.example.net"'
    )
    spec.write_text(text.replace('via = "A"', 'via = "B"'))
    net = network(
        A=FakeDevice("A", factory("192.168.3.1"), delays={"push": 0.3}),
        B=FakeDevice("B", factory("192.168.7.1"), delays={"push": 0.3}),
    )
    outcome, ui = apply(spec, net)
    assert outcome.ok, ui.text
    kinds = [(s.site, s.kind) for s in net.journal]
    # Neither waits for the other: both pushes are under way at once, so the second ends
    # before the first one's following step is sent.
    pushes = [i for i, k in enumerate(kinds) if k[1] == "push"]
    assert len(pushes) == 2 and pushes[1] - pushes[0] == 1, kinds
    # Probes only once both are done; the dialer first re-creates the peer it dials, since B's
    # interface is new (a first handshake may have gone out before B was up).
    assert max(pushes) < min(i for i, k in enumerate(kinds) if k[1] == "verify")
    (probe_a,) = net.devices["A"].commands("verify")
    assert " remove\n" in probe_a
    assert probe_a.index(" remove\n") < probe_a.index("ping overlay")
    (probe_b,) = net.devices["B"].commands("verify")
    assert " remove\n" not in probe_b  # the listener dials nobody


def test_each_site_goes_at_its_own_pace_and_is_probed_once_every_site_is_done(
    tmp_path: Path,
) -> None:
    # B and C both dial A; C's configuration is slow. B's verification starts as soon as B is
    # done (its new connection, its timer's state) while C still configures; its probes wait
    # for C, which they ping too. Nobody is confirmed before every site is verified.
    spec = tmp_path / "network.toml"
    text = SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{PHONE}"')
    spec.write_text(text + '\n[sites.C]\nlan = ["192.168.9.0/24"]\n')
    net = network(
        A=FakeDevice("A", factory("192.168.3.1")),
        B=FakeDevice("B", factory("192.168.7.1")),
        C=FakeDevice("C", factory("192.168.9.1"), delays={"push": 0.5}),
    )
    outcome, ui = apply(spec, net)
    assert outcome.ok, ui.text
    done = [(s.site, s.kind, s.session) for s in net.journal]
    index = {entry: i for i, entry in reversed(list(enumerate(done)))}  # first of each
    assert index["B", "safety:status", 2] < index["C", "push", 1] < index["B", "verify", 2]
    # B's own time leaves out its wait for C's half-second push.
    assert outcome.sites["B"].seconds < 0.3 < 0.5 < outcome.sites["C"].seconds
    done2 = [(site, kind) for site, kind, _ in done]
    confirms = [i for i, (_, kind) in enumerate(done2) if kind == "safety:confirm"]
    verifies = [i for i, (_, kind) in enumerate(done2) if kind == "verify"]
    assert len(verifies) == 3 and max(verifies) < min(confirms)
    # Preshared keys: one command per device, all of its pairs' keys on its stdin.
    writes = {
        name: [s.stdin for s in device.sent if "read -r psk" in s.command]
        for name, device in net.devices.items()
    }
    assert {n: [len((w or "").split()) for w in ws] for n, ws in writes.items()} == {
        "A": [2],
        "B": [1],
        "C": [1],
    }


def test_a_failed_install_releases_that_site_and_rolls_back_the_one_whose_key_was_made(
    tmp_path: Path,
) -> None:
    net = network(
        A=FakeDevice("A", factory("192.168.3.1", wireguard=False)),
        B=FakeDevice("B", factory("192.168.7.1")),
    )

    def no_feed(sent: Sent) -> RemoteResult | None:
        return (
            RemoteResult(1, "", "Failed to download the package list\n")
            if sent.kind == "install"
            else None
        )

    net.devices["A"].faults.append(no_feed)
    with pytest.raises(ApplyError, match="could not install"):
        apply(seed(tmp_path), net)
    # A wrote nothing (its install failed before any key): let go with a confirm. B made its
    # key: its backup is restored.
    assert net.devices["A"].commands("safety:rollback") == []
    assert net.devices["A"].commits and set(net.devices["A"].commits.values()) == {"confirmed"}
    assert set(net.devices["B"].commits.values()) == {"reverted"}
    assert not net.order("push")


def test_a_failed_psk_write_rolls_back_both_ends_of_the_pair(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    # Both hold their keys already: only the preshared key is written in prepare.
    for device in seed_net.devices.values():
        device.pubkey = public_key(generate_private_key())

    def full(sent: Sent) -> RemoteResult | None:
        failing = sent.kind == "psk" and "read -r psk" in sent.command
        return RemoteResult(1, "", "uci: I/O error\n") if failing else None

    seed_net.devices["B"].faults.append(full)
    with pytest.raises(ApplyError, match="read failed: uci: I/O error"):
        apply(seed(tmp_path), seed_net)
    for device in seed_net.devices.values():
        assert set(device.commits.values()) == {"reverted"}, device.name
    assert not seed_net.order("push")


def test_a_site_whose_configuration_failed_is_no_judge_of_the_others(
    tmp_path: Path, seed_net: FakeNetwork
) -> None:
    def batch_fails(sent: Sent) -> RemoteResult | None:
        failing = sent.kind == "push"
        return (
            RemoteResult(1, "", "uci: Parse error (invalid command) at line 3\n")
            if failing
            else None
        )

    def cannot_reach_a(sent: Sent) -> RemoteResult | None:
        if sent.kind != "verify":
            return None
        return RemoteResult(0, "hs A none\nping overlay A fail\n", "")

    seed_net.devices["A"].faults.append(batch_fails)
    seed_net.devices["B"].faults.append(cannot_reach_a)
    outcome, ui = apply(seed(tmp_path), seed_net)
    a, b = outcome.sites["A"], outcome.sites["B"]
    assert a.result is Result.ROLLED_BACK, ui.text
    assert [p.kind for p in a.problems] == [Kind.CONFIGURE]
    # A is going back to what it was: B not reaching it says nothing about B.
    assert b.result is Result.CONFIRMED, ui.text


RECORDED = Path(__file__).resolve().parents[1] / "captures"


@pytest.mark.parametrize("release", ["openwrt-24.10", "openwrt-25.12"])
def test_routers_recorded_after_an_apply_have_nothing_to_change(
    tmp_path: Path, release: str
) -> None:
    """The facts two real lab routers answered right after `sitewire apply` (recorded by
    scripts/record-driver-captures): a second apply reads them, finds nothing, arms nothing."""
    import shutil

    from sitewire.deploy.events import NothingToChange
    from sitewire.diagnose.parse import parse_sections

    cases = {site: RECORDED / release / f"seed-applied-{site}" for site in ("A", "B")}
    for name in ("network.toml", "network.lock"):
        shutil.copy(cases["A"] / name, tmp_path / name)
    net = network(
        **{
            site: FakeDevice(site, parse_sections((case / "facts.out").read_text()))
            for site, case in cases.items()
        }
    )
    lock_before = (tmp_path / "network.lock").read_text()
    outcome, ui = apply(tmp_path / "network.toml", net)
    assert outcome.ok and not outcome.lock_changed, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.UNCHANGED}
    assert any(isinstance(e, NothingToChange) for e in ui.events)
    assert {s.kind for s in net.journal} == {"facts", "safety:status"}
    assert (tmp_path / "network.lock").read_text() == lock_before
