"""What an apply reports while it runs, as values for an observer; the CLI words and draws them.

Deploy never composes prose for a person: each stage emits an event, and `sitewire.cli.report`
turns events into the lines a person reads, a progress display, or JSON for programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sitewire.deploy.problems import Problem


class Result(StrEnum):
    UNCHANGED = "unchanged"
    CONFIRMED = "confirmed"
    PENDING = "pending"  # --no-confirm: the router reverts unless `sitewire confirm` runs
    ROLLED_BACK = "rolled back"
    REVERTING = "reverting"  # unreachable or slow: the router's own timer puts it back
    RELEASED = "released"  # armed, then let go before anything changed


@dataclass(frozen=True, slots=True)
class Read:
    """Facts read; `summary` is the device in one line."""

    site: str
    summary: str


@dataclass(frozen=True, slots=True)
class Planned:
    """What the apply would change on the site (no lines: nothing), and warnings about it."""

    site: str
    lines: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class NothingToChange:
    site: None = None


@dataclass(frozen=True, slots=True)
class Armed:
    site: str
    seconds: int  # until the router reverts unless confirmed


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A command that changes the device started; `why` is None for package installs."""

    site: str
    command: str
    why: str | None = None

    @property
    def shown(self) -> str:
        lines = self.command.splitlines()
        return self.command if len(lines) < 2 else f"{lines[1]} ..."


@dataclass(frozen=True, slots=True)
class KeyMade:
    site: str
    public_key: str
    replaced: bool = False  # `rotate`: a new key in place of the one the device had


@dataclass(frozen=True, slots=True)
class PskShared:
    site: str  # one end of the pair (the first in name order)
    peer: str


@dataclass(frozen=True, slots=True)
class Verified:
    """What the verification over a new connection found (evidence, one fact per line), and
    what keeps the site from being kept; sent before the site is confirmed or rolled back."""

    site: str
    evidence: tuple[str, ...]
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Decided:
    """The site's end: kept, pending, or going back; `within`: seconds until its own revert."""

    site: str
    result: Result
    problems: tuple[Problem, ...] = ()
    within: int | None = None


@dataclass(frozen=True, slots=True)
class ReleaseFailed:
    site: str
    error: str


@dataclass(frozen=True, slots=True)
class Settled:
    """`sitewire confirm|rollback` on one site: its pending commit (None: none) and its end."""

    site: str
    token: str | None
    state: str


Event = (
    Read
    | Planned
    | NothingToChange
    | Armed
    | StepStarted
    | KeyMade
    | PskShared
    | Verified
    | Decided
    | ReleaseFailed
    | Settled
)


class Observer(Protocol):
    def event(self, event: Event) -> None: ...

    def ask(self, question: str) -> bool:
        """Whether to go ahead; an observer that cannot ask raises ApplyError."""
        ...
