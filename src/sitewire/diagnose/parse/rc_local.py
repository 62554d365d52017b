"""/etc/rc.local lines that run `tailscale up`, as the collector's probe reports them."""

from __future__ import annotations

from dataclasses import dataclass

from sitewire.diagnose.parse.base import UnexpectedOutput, parse_number


@dataclass(frozen=True, slots=True)
class RcLocal:
    """/etc/rc.local lines (not comments) that run `tailscale up`, by line number."""

    tailscale_up_lines: tuple[int, ...] = ()
    accept_routes_lines: tuple[int, ...] = ()

    @property
    def runs_tailscale_up(self) -> bool:
        return bool(self.tailscale_up_lines)


def parse_rc_local_probe(text: str) -> RcLocal:
    """The collector's rc.local probe: `<line> accept-routes|-` per `tailscale up` line."""
    up: list[int] = []
    accept: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        line_number = parse_number(words[0])
        if line_number is None:
            raise UnexpectedOutput(f"line {number}: expected a line number")
        up.append(line_number)
        if "accept-routes" in words[1:]:
            accept.append(line_number)
    return RcLocal(tuple(up), tuple(accept))
