"""Every fan-out over sites runs here (Nornir's idea): one task per site, failures kept apart.

`run_on_sites` is the only place in sitewire that catches a broad exception: one site's error
never stops another site's task, and every task has finished (none still writing to its
device) when the results come back. Each site's time is measured, so the apply can say what it
would have cost that site alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sitewire.errors import SitewireError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Results(Generic[T]):
    """Per site: its task's value, or the exception it raised; and how long the task took."""

    ok: Mapping[str, T]
    failed: Mapping[str, Exception]
    seconds: Mapping[str, float] = field(default_factory=dict)

    def first_error(self, prefer: type[Exception] | None = None) -> Exception:
        """The error to report for the whole fan-out: the first of kind `prefer`, if any."""
        errors = list(self.failed.values())
        if prefer is not None:
            errors.sort(key=lambda e: not isinstance(e, prefer))
        return errors[0]

    def raise_first(self, prefer: type[Exception] | None = None) -> None:
        if self.failed:
            raise self.first_error(prefer)


async def run_on_sites(
    sites: Iterable[str], task: Callable[[str], Awaitable[T]], *, limit: int | None = None
) -> Results[T]:
    """Run `task(site)` for every site at once (at most `limit` at a time); wait for all."""
    names = list(dict.fromkeys(sites))
    gate = asyncio.Semaphore(limit) if limit else None
    loop = asyncio.get_running_loop()
    seconds: dict[str, float] = {}

    async def one(name: str) -> T:
        if gate is None:
            return await _timed(name, task(name))
        async with gate:
            return await _timed(name, task(name))

    async def _timed(name: str, work: Awaitable[T]) -> T:
        start = loop.time()
        try:
            return await work
        finally:
            seconds[name] = loop.time() - start

    done = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
    ok: dict[str, T] = {}
    failed: dict[str, Exception] = {}
    for name, result in zip(names, done, strict=True):
        if isinstance(result, Exception):
            failed[name] = result
        elif isinstance(result, BaseException):
            raise result  # cancelled, interrupted: not one site's failure
        else:
            ok[name] = result
    return Results(ok, failed, seconds)


def one_line(exc: Exception) -> str:
    """A site's failure as a person reads it; a bug (not a SitewireError) names its type."""
    if isinstance(exc, SitewireError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"
