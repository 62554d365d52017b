"""Shell.script: the script and its input go on stdin, run by real shells; input is never logged."""

from __future__ import annotations

import asyncio
import logging
import subprocess

import pytest

from sitewire.deploy.remote import RemoteResult, Shell, Target

SHELLS = [["dash", "-s"], ["busybox", "sh", "-s"]]  # Debian's sh and OpenWrt's ash


class LocalShell(Shell):
    """Runs what would go over SSH in a local shell, as the router's would."""

    def __init__(self, argv: list[str]) -> None:
        self.target = Target("local", "127.0.0.1")
        self.argv = argv
        self.sent: list[tuple[str, str | None]] = []

    async def execute(self, command: str, stdin: str | None) -> RemoteResult:
        self.sent.append((command, stdin))
        assert command == "sh -s"
        done = subprocess.run(self.argv, input=stdin, capture_output=True, text=True, check=False)
        return RemoteResult(done.returncode, done.stdout, done.stderr)

    def abort(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("argv", SHELLS, ids=lambda a: a[0])
def test_the_input_is_the_scripts_stdin_and_never_logged(
    argv: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    shell = LocalShell(argv)
    secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0czA=\n"
    script = 'read -r a && read -r b && printf \'%s|%s\\n\' "$b" "$a"; cat'
    caplog.set_level(logging.INFO)
    result = asyncio.run(shell.script(script, secret + "second\nthird\n"))
    assert result.rc == 0, result.stderr
    assert result.stdout == f"second|{secret.strip()}\nthird\n"  # all of it, nothing more
    assert secret.strip() not in caplog.text and "(input)" in caplog.text
    # A long script is fine: it never goes on the command line.
    long = "\n".join(f"echo {i}" for i in range(3000))
    assert asyncio.run(shell.script(long, "x\n")).stdout.split() == [str(i) for i in range(3000)]


def test_input_that_could_end_the_here_document_early_is_refused() -> None:
    shell = LocalShell(SHELLS[0])
    with pytest.raises(ValueError, match="end with a newline"):
        asyncio.run(shell.script("cat", "no newline"))
    assert shell.sent == []
