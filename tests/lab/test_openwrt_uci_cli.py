"""The lab router's `uci`: staged changes persisted as uci delta files between invocations."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sitewire.lab.openwrt import uci_cli
from sitewire.lab.openwrt.uci_cli import format_deltas, load_config, parse_deltas
from tests.conftest import FIXTURES


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SITEWIRE_LAB_ROOT", str(tmp_path))
    config = tmp_path / "etc/config"
    config.mkdir(parents=True)
    (config / "network").write_text((FIXTURES / "network.stock-lan-wan.uci").read_text())
    return tmp_path


def uci(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = uci_cli.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_changes_stay_staged_across_invocations_until_commit(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = (root / "etc/config/network").read_text()
    assert uci(capsys, monkeypatch, "set", "network.wg0=interface")[0] == 0
    assert uci(capsys, monkeypatch, "add_list", "network.wg0.addresses=10.9.0.1/24")[0] == 0
    rc, out, _ = uci(capsys, monkeypatch, "add", "network", "wireguard_wg0")
    assert rc == 0 and out.startswith("cfg")
    assert (root / "etc/config/network").read_text() == committed
    assert (root / "tmp/.uci/network").read_text() == (
        "network.wg0='interface'\n"
        "|network.wg0.addresses='10.9.0.1/24'\n"
        f"+network.{out.strip()}='wireguard_wg0'\n"
    )
    assert uci(capsys, monkeypatch, "get", "network.wg0.addresses")[1] == "10.9.0.1/24\n"
    assert uci(capsys, monkeypatch, "commit", "network")[0] == 0
    assert (
        "config interface 'wg0'\n\tlist addresses '10.9.0.1/24'\n"
        in (root / "etc/config/network").read_text()
    )
    assert (root / "tmp/.uci/network").read_text() == ""
    assert uci(capsys, monkeypatch, "changes")[1] == ""


def test_batch_exits_zero_and_reports_a_bad_line(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = "set network.bad-name=interface\nfrobnicate\nset network.lan.ipaddr='10.0.0.1'\n"
    rc, _, err = uci(capsys, monkeypatch, "batch", stdin=batch)
    assert rc == 0
    assert err == "uci: Invalid argument\nUnknown command\n"
    assert uci(capsys, monkeypatch, "changes")[1] == "network.lan.ipaddr='10.0.0.1'\n"
    rc, _, err = uci(capsys, monkeypatch, "set", "network.bad-name=interface")
    assert (rc, err) == (1, "uci: Invalid argument\n")


def test_dash_p_stages_elsewhere_and_cannot_commit(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = (root / "etc/config/network").read_text()
    uci(capsys, monkeypatch, "-P", "/var/run/rpcd/uci-x", "set", "network.lan.ipaddr=10.1.1.1")
    assert uci(capsys, monkeypatch, "-P", "/var/run/rpcd/uci-x", "commit", "network")[0] == 0
    assert (root / "etc/config/network").read_text() == committed
    assert uci(capsys, monkeypatch, "changes")[1] == ""
    out = uci(capsys, monkeypatch, "-P", "/var/run/rpcd/uci-x", "changes", "network")[1]
    assert out == "network.lan.ipaddr='10.1.1.1'\n"


def test_revert_and_quiet(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uci(capsys, monkeypatch, "set", "network.lan.ipaddr=10.1.1.1")
    uci(capsys, monkeypatch, "set", "network.wan.proto=static")
    assert uci(capsys, monkeypatch, "revert", "network.lan")[0] == 0
    assert uci(capsys, monkeypatch, "changes")[1] == "network.wan.proto='static'\n"
    assert uci(capsys, monkeypatch, "-q", "get", "network.nope.x") == (1, "", "")


def test_services_see_staged_changes_as_libuci_loads_them(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uci(capsys, monkeypatch, "set", "network.lan.ipaddr=10.1.1.1")
    package = load_config("network")
    assert package is not None
    lan = package.section("lan")
    assert lan is not None and lan.options["ipaddr"] == "10.1.1.1"
    assert load_config("nonexistent") is None


@pytest.mark.parametrize(
    "line",
    [
        "network.lan.ipaddr='10.0.0.1'",
        "-network.wan6",
        "-network.lan.ports='1'",
        "@network.lan='lan0'",
        "^network.lan='2'",
        "+network.cfg0a1234='wireguard_wg0'",
        "|network.wg0.addresses='10.0.0.1/24'",
        "~network.wg0.addresses='10.0.0.1/24'",
        "network.x.description='it'\\''s'",
    ],
)
def test_delta_lines_round_trip(line: str) -> None:
    deltas = parse_deltas("network", line + "\n")
    assert len(deltas) == 1
    assert format_deltas("network", deltas) == line + "\n"


def test_unparsable_delta_lines_are_skipped() -> None:
    text = "firewall.x.y='other package'\nnetwork.@zone[0].x='1'\nnetwork.ok='interface'\n"
    assert format_deltas("network", parse_deltas("network", text)) == "network.ok='interface'\n"
