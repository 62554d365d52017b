"""What every parser of device output shares: its one error, ASCII numbers, bounded JSON.

Router output is hostile until read (issue 9): numbers are ASCII digits, JSON is depth-bounded,
and anything that does not read as the command's format raises UnexpectedOutput, never another
exception.
"""

from __future__ import annotations

from typing import TypeGuard

from sitewire import strict
from sitewire.errors import SitewireError

NONE = "(none)"
# What the fact-gathering script puts on the router in place of a key before anything is sent.
HIDDEN = "(hidden)"
V4_DEFAULT = strict.network("0.0.0.0/0")
V6_DEFAULT = strict.network("::/0")


class UnexpectedOutput(SitewireError):
    """Device output that does not read as the command's documented format.

    Messages name the line number and what was wrong, never the line itself: a dump line
    may carry a key.
    """


def parse_number(text: str) -> int | None:
    """ASCII digits, at most 20 (a u64), as an int; else None. `'²'.isdigit()` is True but
    `int('²')` raises; `int()` takes `1_000`, `٣` and ` 3 `, and refuses 5,000 digits."""
    return strict.digits(text) if len(text) <= 20 else None


def field_int(field: str, number: int, what: str) -> int:
    value = parse_number(field)
    if value is None:
        raise UnexpectedOutput(f"line {number}: {what} {field!r} is not a number")
    return value


def load_json(text: str) -> object:
    try:
        return strict.loads_json(text)
    except ValueError as exc:  # also nesting past strict.MAX_DEPTH and 5,000-digit numbers
        raise UnexpectedOutput(f"not JSON: {exc}") from None


def is_json_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
