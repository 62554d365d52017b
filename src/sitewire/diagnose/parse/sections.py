"""The collector script's framing: `@@sitewire begin/stderr/end` around each section's output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sitewire.diagnose.parse.base import UnexpectedOutput, parse_number

MARK = "@@sitewire"


@dataclass(frozen=True, slots=True)
class ScriptSection:
    name: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {self.rc}"


def parse_sections(text: str) -> dict[str, ScriptSection]:
    """Split `@@sitewire begin/stderr/end` framed output into its sections.

    The script prints a newline before each closing marker, so the last newline of every
    part belongs to the framing and output without a final newline survives exactly.
    """
    sections: dict[str, ScriptSection] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line.startswith(f"{MARK} begin "):
            continue
        name = line.removeprefix(f"{MARK} begin ").strip()
        stdout = _until(lines, f"{MARK} stderr {name}")
        stderr = _until(lines, f"{MARK} end {name} ")
        if stdout is None or stderr is None:
            raise UnexpectedOutput(f"section {name!r} is cut short")
        body, end = stderr
        rc = parse_number(end.removeprefix(f"{MARK} end {name} ").strip())
        if rc is None:
            raise UnexpectedOutput(f"section {name!r} ends without an exit status")
        sections[name] = ScriptSection(name, rc, stdout[0], body)
    return sections


def _until(lines: Iterator[str], marker: str) -> tuple[str, str] | None:
    taken: list[str] = []
    for line in lines:
        if line.startswith(marker):
            return "\n".join(taken), line
        taken.append(line)
    return None
