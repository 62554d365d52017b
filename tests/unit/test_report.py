"""cli.report: deploy's events as lines, as a live progress display, and as JSON."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from sitewire.cli.report import Json, ProgressLines, event_json, lines_for
from sitewire.deploy.events import Armed, Decided, Planned, Result, StepStarted, Verified
from sitewire.deploy.problems import Kind, Problem, warning


def test_the_words_of_each_ending() -> None:
    assert lines_for(Decided("A", Result.CONFIRMED)) == ["A: verified and confirmed"]
    pending = lines_for(Decided("A", Result.PENDING, within=300))
    assert pending == [
        "A: verified; not confirmed (--no-confirm): it reverts within 300 s unless you run: "
        "sitewire confirm"
    ]
    cut = Problem(Kind.UNREACHABLE, "no new SSH connection after the change (locked out?)")
    # The reasons come with the evidence, before the site is rolled back (which may take a
    # minute); the ending says only what became of it.
    assert lines_for(Verified("B", ("handshake with A: none",), (cut,))) == [
        "B: handshake with A: none",
        "B: FAILED: no new SSH connection after the change (locked out?)",
    ]
    assert lines_for(Decided("B", Result.REVERTING, (cut,), within=41)) == [
        "B: reverting: the router restores its backup by itself within 41 s",
    ]
    wrong = Problem(Kind.VERIFY, "cannot reach A across the tunnel")
    assert lines_for(Decided("B", Result.ROLLED_BACK, (wrong,))) == ["B: rolled back"]
    late = Problem(Kind.CONFIRM, "B: no answer within 60 s to 'confirm' (connection lost?)")
    assert lines_for(Decided("B", Result.REVERTING, (late,))) == [
        "B: could not confirm (B: no answer within 60 s to 'confirm' (connection lost?)); "
        "the router reverts by itself"
    ]
    assert (
        str(late) == "could not confirm: B: no answer within 60 s to 'confirm' (connection lost?)"
    )
    assert lines_for(Planned("A", (), (warning("rc.local runs tailscale up"),))) == [
        "A: no changes",
        "A: warning: rc.local runs tailscale up",
    ]
    two_lines = StepStarted("A", "set -e\nwg set wg0 peer X\nip route replace", "peer changes")
    assert lines_for(two_lines) == ["A: [#] wg set wg0 peer X ...  (peer changes)"]


def test_progress_prints_the_lines_and_keeps_one_live_line_per_site() -> None:
    out = io.StringIO()
    shown = ProgressLines(Console(file=out, force_terminal=True, width=120))
    with shown.shown():
        shown.event(Armed("A", 300))
        shown.event(StepStarted("A", "ifup wg0", "the interface is new"))
        shown.event(Armed("B", 300))
        # Router text with markup in it is shown as text, not as rich markup, and an IPv6
        # address is not an emoji code (`:100:`).
        shown.event(StepStarted("B", "echo [bold]x[/bold]", None))
        shown.event(Planned("B", ("B: interface wg0: addresses: [none] => [fd00:100::1/64]",)))
        tasks = {t.description for t in shown.progress.tasks}
    assert len(shown.progress.tasks) == 2
    assert "A: [#] ifup (the interface is new)" in tasks
    text = out.getvalue()
    assert "A: backed up; it reverts by itself in 300 s unless confirmed" in text
    assert "B: [#] echo [bold]x[/bold]" in text
    assert "[fd00:100::1/64]" in text


def test_json_is_one_object_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    problem = Problem(Kind.VERIFY, "cannot reach A across the tunnel")
    Json().event(Decided("B", Result.ROLLED_BACK, (problem,)))
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "event": "decided",
        "site": "B",
        "result": "rolled back",
        "problems": [{"kind": "verify", "text": "cannot reach A across the tunnel"}],
        "within": None,
    }
    assert event_json(StepStarted("A", "ifup wg0", "new"))["event"] == "step_started"
