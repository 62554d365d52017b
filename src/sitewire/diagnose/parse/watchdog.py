"""Whether cron runs OpenWrt's wireguard_watchdog, as the collector's probe reports it."""

from __future__ import annotations

from dataclasses import dataclass

from sitewire.diagnose.parse.base import UnexpectedOutput, parse_number


@dataclass(frozen=True, slots=True)
class Watchdog:
    """Root's crontab lines running wireguard_watchdog (by number), and cron enabled at boot."""

    lines: tuple[int, ...] = ()
    cron_enabled: bool = False

    @property
    def runs(self) -> bool:
        return bool(self.lines) and self.cron_enabled


def parse_watchdog_probe(text: str) -> Watchdog:
    """`line <n>` per crontab line, then `enabled` if cron starts at boot."""
    lines: list[int] = []
    enabled = False
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if words == ["enabled"]:
            enabled = True
        elif len(words) == 2 and words[0] == "line" and parse_number(words[1]) is not None:
            lines.append(int(words[1]))
        elif words:
            raise UnexpectedOutput(f"line {number}: expected 'line <n>' or 'enabled'")
    return Watchdog(tuple(lines), enabled)
