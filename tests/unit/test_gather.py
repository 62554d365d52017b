"""status and doctor's fan-outs over a fake transport: a site that cannot be read is reported,
the others are read all the same, and every session opened is closed.

SYNTHETIC: the fake answers each script with the sections it asks for, framed as the collector
frames them, from the shapes of tests/unit/test_diagnose_parse.py.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Callable, Mapping

import pytest

from sitewire.deploy.remote import Credentials, RemoteError, RemoteResult, Shell, Target
from sitewire.diagnose import gather
from sitewire.diagnose.parse import ScriptSection
from sitewire.plan import Plan
from tests.unit.test_diagnose_parse import openwrt_sections
from tests.unit.test_doctor import seed_plan

Answer = Callable[[list[str]], str]


def framed(sections: Mapping[str, ScriptSection], names: list[str]) -> str:
    """What the script prints for `names`, each section between its markers; a section the
    fake does not know answers as a missing command does."""
    out = ""
    for name in names:
        s = sections.get(name) or ScriptSection(name, 127, "", "not found")
        out += f"@@sitewire begin {name}\n{s.stdout}\n@@sitewire stderr {name}\n{s.stderr}\n"
        out += f"@@sitewire end {name} {s.rc}\n"
    return out


class FakeShell(Shell):
    def __init__(self, target: Target, answer: Answer) -> None:
        self.target = target
        self.answer = answer
        self.closed = False

    async def execute(self, command: str, stdin: str | None) -> RemoteResult:
        script = stdin if command == "sh -s" and stdin is not None else shlex.split(command)[2]
        return RemoteResult(0, self.answer(re.findall(r"^section (\S+)$", script, re.M)), "")

    def abort(self) -> None:
        self.closed = True

    async def close(self) -> None:
        self.closed = True


class Network:
    """The fake devices: by site, how each answers, or the error its connection raises."""

    def __init__(self, answers: Mapping[str, Answer | Exception]) -> None:
        self.answers = answers
        self.shells: dict[str, FakeShell] = {}

    async def connect(self, target: Target, creds: Credentials, timeout: float = 10.0) -> Shell:
        answer = self.answers[target.name]
        if isinstance(answer, Exception):
            raise answer
        shell = self.shells[target.name] = FakeShell(target, answer)
        return shell


def healthy(names: list[str]) -> str:
    sections = {**openwrt_sections(), "ts_status": ScriptSection("ts_status", 127, "", "")}
    return framed(sections, names)


def garbled_probes(names: list[str]) -> str:
    return "@@sitewire begin sw_probes\n" if "sw_probes" in names else healthy(names)


def garbled_pings(names: list[str]) -> str:
    return "@@sitewire begin sw_rtt\n" if "sw_rtt" in names else healthy(names)


DOWN = RemoteError("cannot connect: Connection refused", where="B")


def targets(plan: Plan) -> dict[str, Target]:
    return {name: Target(name, f"{name.lower()}.example.net") for name in plan.site_names}


def network(monkeypatch: pytest.MonkeyPatch, **answers: Answer | Exception) -> Network:
    fake = Network(answers)
    monkeypatch.setattr(gather, "connect", fake.connect)
    return fake


def test_doctor_reads_the_sites_it_reaches_and_names_the_one_it_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = seed_plan()
    fake = network(monkeypatch, A=healthy, B=DOWN)
    got = asyncio.run(gather.gather_network(plan, targets(plan), Credentials()))
    assert got.unreachable == {"B": str(DOWN)}
    assert list(got.live.facts) == ["A"] and list(got.live.probes) == ["A"]
    assert fake.shells["A"].closed


def test_a_site_whose_probes_fail_is_unreachable_and_its_facts_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = seed_plan()
    fake = network(monkeypatch, A=healthy, B=garbled_probes)
    got = asyncio.run(gather.gather_network(plan, targets(plan), Credentials()))
    assert list(got.unreachable) == ["B"]
    assert got.unreachable["B"].startswith("B: fact-gathering output is garbled")
    assert list(got.live.facts) == ["A"] and list(got.live.probes) == ["A"]
    assert all(shell.closed for shell in fake.shells.values())


def test_a_bug_is_raised_once_every_session_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = seed_plan()
    fake = network(monkeypatch, A=healthy, B=RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(gather.gather_network(plan, targets(plan), Credentials()))
    assert fake.shells["A"].closed


def test_status_shows_the_site_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = seed_plan()
    network(monkeypatch, A=healthy, B=DOWN)
    got = asyncio.run(gather.gather_status(plan, targets(plan), Credentials()))
    a, b = got.site("A"), got.site("B")
    assert a is not None and a.reachable and a.error is None
    assert b is not None and not b.reachable and b.error == str(DOWN)


def test_status_says_when_round_trip_times_were_not_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = seed_plan()
    network(monkeypatch, A=garbled_pings, B=garbled_pings)
    got = asyncio.run(gather.gather_status(plan, targets(plan), Credentials()))
    errors = {s.name: s.error for s in got.sites}
    measured = [s for s, e in errors.items() if e is not None]
    assert measured and all(s.reachable for s in got.sites)
    for site in measured:
        assert str(errors[site]).startswith("round-trip times not measured: ")
