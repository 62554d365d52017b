"""Issue 9: what a router says is shown, never obeyed by the terminal.

A compromised router can put escape sequences in its stderr (which becomes a step's error), in
`tailscale status` or in a file read back for the diff. OSC 0 would set the window title, CSI 2J
clear the screen, a carriage return overwrite the line that said a step failed.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from sitewire.cli import main
from sitewire.cli.status import status_tables
from sitewire.diagnose.status import Health, LinkStatus, NetworkStatus, SiteStatus
from sitewire.errors import ExitCode, SitewireError
from sitewire.strict import printable

HOSTILE = "bad\x1b]0;owned\x07\x1b[2J\rok\x9b31m\x08"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_printable_shows_every_control_character_and_keeps_the_rest() -> None:
    assert printable(HOSTILE) == "bad\\x1b]0;owned\\x07\\x1b[2J\\x0dok\\x9b31m\\x08"
    assert printable("tab\there\nnext line, ü, →") == "tab\there\nnext line, ü, →"


def test_a_routers_text_in_the_status_table_is_shown_not_obeyed() -> None:
    site = SiteStatus("A", ("192.168.3.0/24",), "192.168.5.1", "wg0", False, error=HOSTILE)
    link = LinkStatus("A", "B", None, Health.UP, endpoint=f"[fd00::1]:51820{HOSTILE}")
    status = NetworkStatus("home", 0.0, 0.1, (site,), (link,))
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(status_tables(status))
    assert not CONTROL.search(out.getvalue())
    assert "\\x1b]0;owned\\x07" in out.getvalue()


def test_an_error_carrying_a_routers_stderr_is_one_visible_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Failing:
        def main(self, **_: object) -> int:
            raise SitewireError(f"uci failed: {HOSTILE}\nsecond line", where="B")

    monkeypatch.setattr(main, "cli", Failing())
    assert main.run(["validate"]) == ExitCode.FAILURE
    err = capsys.readouterr().err
    assert not CONTROL.search(err.rstrip("\n")) and err.count("\n") == 1
    assert err.startswith("sitewire: B: uci failed: bad\\x1b]0;owned")
    assert err.endswith("\\nsecond line\n")
