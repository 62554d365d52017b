"""What a person (or a program) sees while deploy runs: its events as lines, progress or JSON.

Deploy emits values (sitewire.deploy.events); this is the one place that words them. Three
observers: plain lines (pipes, logs, tests), the same lines above a live per-site progress
display on a terminal, and JSON lines for programs (`--json`). `-v` adds the `[#] site: cmd`
log of every remote command (logger "sitewire.remote").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn

from sitewire.cli.out import echo
from sitewire.deploy.events import (
    Armed,
    Decided,
    Event,
    KeyMade,
    NothingToChange,
    Planned,
    PskShared,
    Read,
    ReleaseFailed,
    Result,
    Settled,
    StepStarted,
    Verified,
)
from sitewire.deploy.problems import ApplyError, Kind, Problem
from sitewire.deploy.run import Outcome
from sitewire.strict import printable


def lines_for(event: Event) -> list[str]:
    """The lines a person reads for `event`."""
    match event:
        case Read(_, summary):
            return [summary]
        case Planned(site, lines, warnings):
            return [*(lines or [f"{site}: no changes"]), *(f"{site}: {w}" for w in warnings)]
        case NothingToChange():
            return ["nothing to change"]
        case Armed(site, seconds):
            return [f"{site}: backed up; it reverts by itself in {seconds} s unless confirmed"]
        case StepStarted(site, _, why):
            return [f"{site}: [#] {event.shown}" + (f"  ({why})" if why else "")]
        case KeyMade(site, key, replaced):
            made = "new private key" if replaced else "private key"
            return [f"{site}: {made} made on the device; public key {key}"]
        case PskShared(site, peer):
            return [f"{site}, {peer}: preshared key made in memory, written to both ends"]
        case Verified(site, evidence, problems):
            return [f"{site}: {line}" for line in evidence] + [
                f"{site}: FAILED: {p}" for p in problems
            ]
        case Decided():
            return _decided(event)
        case ReleaseFailed(site, error):
            return [f"{site}: could not release ({error}); its timer reverts it"]
        case Settled(site, None, state):
            return [f"{site}: {state}"]
        case Settled(site, token, state):
            return [f"{site}: commit {token} {state}"]
    raise AssertionError(f"no words for {event!r}")


def _decided(event: Decided) -> list[str]:
    site, result = event.site, event.result
    if result is Result.CONFIRMED:
        return [f"{site}: verified and confirmed"]
    if result is Result.PENDING:
        return [
            f"{site}: verified; not confirmed (--no-confirm): it reverts within "
            f"{event.within} s unless you run: sitewire confirm"
        ]
    # The reasons were shown with the evidence (Verified); only the confirm's own failure is new.
    late = [p for p in event.problems if p.kind is Kind.CONFIRM]
    out = [f"{site}: could not confirm ({p.text}); the router reverts by itself" for p in late]
    if event.within is not None:
        out.append(
            f"{site}: {result.value}: the router restores its backup by itself "
            f"within {event.within} s"
        )
    elif not late:
        out.append(f"{site}: {result.value}")
    return out


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise ApplyError(
            "nothing was changed: no terminal to ask on",
            where="apply",
            fix="pass --yes to apply without asking",
        )
    return click.confirm(question, default=False)


class Lines:
    """Every event as lines on stdout."""

    def event(self, event: Event) -> None:
        for line in lines_for(event):
            echo(line)

    def ask(self, question: str) -> bool:
        return _ask(question)


# What a site is doing, for the progress display.
def _stage(event: Event) -> str | None:
    match event:
        case Read():
            return "read"
        case Planned(_, lines):
            return f"{len(lines)} change(s)" if lines else "no changes"
        case Armed(_, seconds):
            return f"armed ({seconds} s timer)"
        case StepStarted(_, _, why):
            return f"[#] {event.shown.split()[0]}" + (f" ({why})" if why else "")
        case KeyMade():
            return "private key made"
        case Verified(_, _, problems):
            return "failed" if problems else "verified"
        case Decided(_, result):
            return result.value
        case Settled(_, _, state):
            return state
    return None


class ProgressLines:
    """The lines, above one live line per site saying what it is doing (terminals only)."""

    def __init__(self, console: Console | None = None) -> None:
        # No emoji codes (`fd00:100::1` holds `:100:`), no markup: router text is shown as is.
        self.console = console or Console(emoji=False, markup=False, highlight=False)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            console=self.console,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}

    def event(self, event: Event) -> None:
        for line in lines_for(event):
            self.console.out(printable(line), highlight=False)
        stage = _stage(event)
        if event.site is None or stage is None:
            return
        text = printable(f"{event.site}: {stage}")
        if event.site not in self.tasks:
            self.tasks[event.site] = self.progress.add_task(text, total=None)
        self.progress.update(self.tasks[event.site], description=text)

    def ask(self, question: str) -> bool:
        self.progress.stop()
        try:
            return _ask(question)
        finally:
            self.progress.start()

    @contextmanager
    def shown(self) -> Iterator[ProgressLines]:
        with self.progress:
            yield self


def _plain(value: Any) -> Any:
    if isinstance(value, Problem):
        return {"kind": value.kind.value, "text": value.text}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def event_json(event: Event) -> dict[str, Any]:
    """`event` as a JSON object: its kind and fields (problems as {kind, text})."""
    name = type(event).__name__
    kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    fields = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return {"event": kind, **fields}


class Json:
    """One JSON object per line on stdout: every event, then the summary."""

    def event(self, event: Event) -> None:
        click.echo(json.dumps(event_json(event)))

    def ask(self, question: str) -> bool:
        raise ApplyError(
            "nothing was changed: --json cannot ask", where="apply", fix="pass --yes with --json"
        )

    def summary(self, outcome: Outcome) -> None:
        sites = {
            n: {
                "result": r.result.value,
                "problems": _plain(r.problems),
                "seconds": round(r.seconds, 3),
                "commit": r.token,
            }
            for n, r in outcome.sites.items()
        }
        line = {"event": "summary", "ok": outcome.ok, "lock_changed": outcome.lock_changed}
        click.echo(json.dumps({**line, "sites": sites}))


class _CommandLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        echo(record.getMessage(), err=True)


@contextmanager
def command_log(verbose: bool) -> Iterator[None]:
    """With -v, every remote command as `[#] site: cmd` on stderr (keys are never in them)."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("sitewire.remote")
    handler = _CommandLog()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
