"""The confirm's reply lost: the SSH connection to B is cut right after the confirm is sent,
so sitewire cannot know whether the router got it. apply asks the router over a new connection
and reports what the router really holds (issue 13)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from pathlib import Path

import pytest

from sitewire.deploy.remote import ConnectionLost, Credentials, RemoteResult, Shell, Target
from sitewire.deploy.run import Result
from sitewire.deploy.safety import Outcome
from sitewire.deploy.ssh import connect
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, unreachable, write_spec
from tests.lab.conftest import MakeLab
from tests.lab.test_safety_lab import switch_status

SENT_FOR = 0.05  # seconds the confirm has on the wire before the connection is cut


class CutAfterConfirm(Shell):
    """An SSH session to B that, the first time a confirm goes out, drops the connection
    without waiting for its reply."""

    def __init__(self, inner: Shell, cut: list[str]) -> None:
        self.inner, self.cut, self.target = inner, cut, inner.target

    async def execute(self, command: str, stdin: str | None) -> RemoteResult:
        if "sitewire-confirm" not in command or self.cut:
            return await self.inner.execute(command, stdin)
        self.cut.append(command.split()[-1])
        sent = asyncio.ensure_future(self.inner.execute(command, stdin))
        await asyncio.sleep(SENT_FOR)
        self.inner.abort()
        with suppress(Exception):
            await sent
        raise ConnectionLost("connection lost: cut after the confirm was sent", where="B")

    def abort(self) -> None:
        self.inner.abort()

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.lab
def test_a_confirm_whose_reply_is_cut_off_reports_the_routers_real_state(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    state = make_lab(spec_from(SEED.read_text()))
    spec = write_spec(tmp_path / "network.toml", SEED.read_text())
    cut: list[str] = []

    async def dial(target: Target, creds: Credentials, timeout: float = 10.0) -> Shell:
        session = await connect(target, creds, timeout)
        return CutAfterConfirm(session, cut) if target.name == "B" else session

    outcome, ui = apply_lab(state, spec, dial=dial)
    assert cut, "no confirm was sent to B"
    b = outcome.sites["B"]
    router_holds = switch_status(state, "B").commits[cut[0]]
    assert router_holds is Outcome.CONFIRMED, ui.text  # pending was confirmed again
    assert b.result is Result.CONFIRMED and b.problems == (), ui.text
    assert unreachable(state, spec) == []
