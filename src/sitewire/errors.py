"""The one error hierarchy: every failure says where, what, and how to fix it, on one line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # something went wrong that the input did not cause
    USAGE = 2  # the command line itself is wrong (click's own code)
    BAD_INPUT = 3  # the spec, lock or key file is refused
    WARNINGS = 4  # doctor: nothing broken now, but what will break at the next boot


class SitewireError(Exception):
    """Root of every error sitewire raises on purpose.

    `where` names the place (file and key path, or a site), `message` the problem with the
    offending value quoted, and `fix` what the person should do about it.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.fix = fix

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} ({self.fix})" if self.fix else text


class InputError(SitewireError):
    """The person's input (spec, lock, key file, command line value) is refused."""

    exit_code = ExitCode.BAD_INPUT


class SpecError(InputError):
    """network.toml is malformed or asks for something impossible."""


class LockError(InputError):
    """network.lock is malformed or contradicts the spec."""


class KeyFileError(InputError):
    """The --local-keys file is malformed, unsafe, or contradicts the lock."""


class PlanError(InputError):
    """The spec is well-formed but describes a network that cannot work."""


class UciError(SitewireError):
    """UCI text could not be parsed, or a uci command is malformed."""


class RenderError(SitewireError):
    """A plan could not be turned into device configuration."""
