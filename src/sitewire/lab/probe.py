"""`lab test`: real pings between lab namespaces, run concurrently, shown as a matrix."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Probe:
    source: str  # row label, e.g. "A host 192.168.3.100"
    netns: str  # where the ping runs
    target: str  # column label
    address: str
    must_reach: bool  # the plan says this pair is connected


@dataclass(frozen=True, slots=True)
class Outcome:
    probe: Probe
    reached: bool

    @property
    def failed(self) -> bool:
        return self.probe.must_reach and not self.reached


async def _ping(probe: Probe, limit: asyncio.Semaphore) -> Outcome:
    # Most pairs answer the first ping; only a path still waiting for a handshake (through a
    # relay, two) needs the patient try: a few seconds, any reply counts.
    quick = ["-c", "1", "-W", "2"]
    patient = ["-c", "5", "-i", "0.3", "-W", "1", "-w", "6"]
    async with limit:
        for options in (quick, patient):
            argv = ["ip", "netns", "exec", probe.netns, "ping", "-n", "-q", *options, probe.address]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            if await proc.wait() == 0:
                return Outcome(probe, True)
    return Outcome(probe, False)


async def run_probes(probes: Sequence[Probe], parallel: int = 32) -> list[Outcome]:
    limit = asyncio.Semaphore(parallel)
    return list(await asyncio.gather(*(_ping(p, limit) for p in probes)))


def matrix(outcomes: Sequence[Outcome], columns: Sequence[str] | None = None) -> str:
    """Rows are sources, columns targets: `ok`, `FAIL` (must reach, did not), `-` (not tested).

    `columns` fixes the column order; by default targets appear in the order first probed.
    """
    rows = list(dict.fromkeys(o.probe.source for o in outcomes))
    cols = list(columns) if columns else list(dict.fromkeys(o.probe.target for o in outcomes))
    cell = {(o.probe.source, o.probe.target): o for o in outcomes}
    first = max(len(r) for r in rows) if rows else 0
    widths = [max(len(c), 4) for c in cols]
    lines = [" " * first + "  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    for row in rows:
        marks = []
        for col, width in zip(cols, widths, strict=True):
            o = cell.get((row, col))
            mark = "-" if o is None else "ok" if o.reached else "FAIL" if o.failed else "no"
            marks.append(mark.ljust(width))
        lines.append(row.ljust(first) + "  " + "  ".join(marks))
    return "\n".join(lines) + "\n"
