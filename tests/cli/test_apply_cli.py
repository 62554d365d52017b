"""`sitewire apply` through the CLI in-process, over the fake transport: lines, -v and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy import decide
from sitewire.errors import ExitCode
from tests.fake_transport import FakeDevice, FakeNetwork
from tests.unit.test_apply_orchestration import factory, seed


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork(
        {"A": FakeDevice("A", factory("192.168.3.1")), "B": FakeDevice("B", factory("192.168.7.1"))}
    )
    monkeypatch.setattr(decide, "_ssh", lambda: fake.dial)
    return fake


def test_apply_prints_lines_and_a_summary(
    tmp_path: Path, net: FakeNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = seed(tmp_path)
    assert run(["apply", str(spec), "--yes", "--revert-after", "60"]) == ExitCode.OK
    out, err = capsys.readouterr()
    assert "A: backed up; it reverts by itself in 60 s unless confirmed" in out
    assert "A: [#] ifup wg0  (the interface is new: wg0 is (re-)created)" in out
    assert out.rstrip().endswith("summary:\n  A  confirmed\n  B  confirmed")
    assert "[#] A: sh -s" not in err  # the command log only with -v
    assert "network.lock updated" in err


def test_apply_verbose_logs_every_remote_command_without_keys(
    tmp_path: Path, net: FakeNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = seed(tmp_path)
    assert run(["apply", str(spec), "--yes", "-v"]) == ExitCode.OK
    _, err = capsys.readouterr()
    logged = [line for line in err.splitlines() if line.startswith("[#] ")]
    assert any(line.startswith("[#] A: sh -s -- sitewire-arm ") for line in logged)
    # Steps go as scripts on stdin, shown whole; the uci batch is an input, never shown (it
    # may carry a client's preshared key).
    assert any("ifup wg0" in line for line in err.splitlines())
    # (the push's `uci batch`, not the key scripts' own `printf ... | uci batch`)
    batch = [line for line in err.splitlines() if line.startswith("uci batch")]
    assert batch and all(line.endswith("<<(input)") for line in batch)
    assert "network.wg0.listen_port" not in err


def test_apply_json_is_one_object_per_line_and_a_summary(
    tmp_path: Path, net: FakeNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = seed(tmp_path)
    assert run(["apply", str(spec), "--yes", "--json"]) == ExitCode.OK
    out, _ = capsys.readouterr()
    objects = [json.loads(line) for line in out.splitlines()]
    assert objects[-1]["event"] == "summary" and objects[-1]["ok"] is True
    assert {n: s["result"] for n, s in objects[-1]["sites"].items()} == {
        "A": "confirmed",
        "B": "confirmed",
    }
    steps = [o for o in objects if o["event"] == "step_started"]
    assert {"site": "A", "command": "ifup wg0"}.items() <= steps[0].items() or any(
        o["command"] == "ifup wg0" and o["site"] == "A" for o in steps
    )


def test_apply_json_will_not_ask(
    tmp_path: Path, net: FakeNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = seed(tmp_path)
    assert run(["apply", str(spec), "--json"]) == ExitCode.FAILURE
    _, err = capsys.readouterr()
    assert "--json cannot ask" in err and "pass --yes" in err
    assert not [s for s in net.journal if s.kind == "safety:arm"]


def test_adopt_never_overwrites_a_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "network.toml"
    spec.write_text("# mine\n")
    assert run(["adopt", "A=root@192.0.2.1", "-o", str(spec)]) == ExitCode.BAD_INPUT
    _, err = capsys.readouterr()
    assert err.strip() == f"sitewire: {spec}: already exists (pass --force, or -o elsewhere)"
    assert spec.read_text() == "# mine\n" and not spec.with_suffix(".lock").exists()
