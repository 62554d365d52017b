"""What runs at boot and from cron, as doctor's boot probe prints it (state.BOOT): the lines
that touch Tailscale or WireGuard, the init scripts enabled, the wg-quick units' state."""

from __future__ import annotations

from dataclasses import dataclass

from sitewire.diagnose.parse.sections import ScriptSection


@dataclass(frozen=True, slots=True)
class BootLine:
    path: str
    number: int
    text: str


@dataclass
class Boot:
    lines: list[BootLine]
    services: dict[str, bool]  # OpenWrt init scripts: enabled at boot
    units: dict[str, str]  # wg-quick@<name>: `systemctl is-enabled`


def parse_boot(section: ScriptSection | None) -> Boot | None:
    if section is None or not section.ok:
        return None
    boot = Boot([], {}, {})
    for raw in section.stdout.splitlines():
        match raw.split(maxsplit=3):
            case ["line", path, number, text] if number.isdigit():
                boot.lines.append(BootLine(path, int(number), text))
            case ["service", name, state]:
                boot.services[name] = state == "on"
            case ["unit", name, state]:
                boot.units[name] = state
    return boot
