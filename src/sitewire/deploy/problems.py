"""What can go wrong for one site during an apply, as typed values, never matched by text."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sitewire.errors import SitewireError


class ApplyError(SitewireError):
    """The apply could not go ahead (nothing was changed), or ended with sites not applied."""


class TimerRanOut(ApplyError):
    """The site's revert timer fired (or nearly) before the change was made: nothing written."""


class Kind(StrEnum):
    WARNING = "warning"  # shown, never fails the site
    CONFIGURE = "configure"  # a step of the change failed
    DROPPED = "dropped"  # the session dropped during a step; verification over a new one decides
    LOCKED_OUT = "locked-out"  # the revert timer fired before verification: the way in was cut
    VERIFY = "verify"  # the evidence over a new connection says no
    UNREACHABLE = "unreachable"  # no new connection after the change: only its timer can act
    CONFIRM = "confirm"  # verified, but the confirm did not go through
    INTERNAL = "internal"  # a bug in sitewire (not a SitewireError): the site is not kept


@dataclass(frozen=True, slots=True)
class Problem:
    kind: Kind
    text: str

    @property
    def fails(self) -> bool:
        """Whether it keeps the site from being confirmed."""
        return self.kind is not Kind.WARNING

    def __str__(self) -> str:
        if self.kind is Kind.WARNING:
            return f"warning: {self.text}"
        return f"could not confirm: {self.text}" if self.kind is Kind.CONFIRM else self.text


def warning(text: str) -> Problem:
    return Problem(Kind.WARNING, text)


class Touched(ApplyError):
    """A stage failed after it had written to the device: going back needs a rollback (the
    backup restored), not a release. Carries the cause's message, place and fix."""

    def __init__(self, cause: SitewireError) -> None:
        super().__init__(cause.message, where=cause.where, fix=cause.fix)
