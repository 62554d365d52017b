"""The whole CLI in-process: exit codes, one-line errors, nothing half-written, no secret shown."""

from __future__ import annotations

import json
import re
import shutil
import stat
import tomllib
from pathlib import Path

import jsonschema
import pytest

from sitewire.cli.main import run
from sitewire.errors import ExitCode
from sitewire.spec.secrets import load_local_keys
from tests.conftest import SEED


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "network.toml"
    shutil.copy(SEED, path)
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _secrets(keys_file: Path, pairs: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """The file's private keys and preshared seed, and the preshared keys of `pairs`."""
    keys, _ = load_local_keys(keys_file)
    psks = [keys.preshared_key(a, b) or "" for a, b in pairs]
    seed = [keys.psk_seed] if keys.psk_seed else []
    return [*keys.private_keys.values(), *seed, *keys.preshared_keys.values(), *psks]


def test_init_writes_a_spec_that_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "network.toml"
    assert _cli(capsys, "init", str(path))[0] == ExitCode.OK
    code, _, err = _cli(capsys, "init", str(path))
    assert code == ExitCode.BAD_INPUT
    assert err == f"sitewire: {path}: already exists (pick another path or use --force)\n"
    assert _cli(capsys, "init", str(path), "--force")[0] == ExitCode.OK
    code, out, _ = _cli(capsys, "validate", str(path))
    assert code == ExitCode.OK and "ok: 2 sites, 1 client," in out


def test_plan_prints_summary_and_writes_a_lock_once(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "plan", str(spec))
    assert code == ExitCode.OK
    assert re.search(r"peer B +allowed_ips 192\.168\.5\.2/32, 192\.168\.7\.0/24; it dials us", out)
    assert "WAN accepts udp/51820" in out
    assert "network.lock updated" in err
    lock = json.loads(spec.with_suffix(".lock").read_text())
    assert lock["version"] == 1 and lock["sites"]["B"]["address"] == "192.168.5.2"
    code, _, err = _cli(capsys, "plan", str(spec), "--json")
    assert code == ExitCode.OK and err == ""  # unchanged lock is not rewritten


def test_plan_json_is_machine_readable(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "plan", str(spec), "--json")
    data = json.loads(out)
    b = next(s for s in data["sites"] if s["name"] == "B")
    assert code == ExitCode.OK
    assert b["peers"][0]["endpoint"] == "a.example.net:51820"
    assert b["peers"][0]["persistent_keepalive"] == 25
    assert b["role"] == "dialer" and b["watchdog"] is True


def test_bad_spec_is_one_line_exit_3_and_writes_nothing(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec.write_text(
        spec.read_text().replace('lan = ["192.168.7.0/24"]', 'lan = ["192.168.3.0/24"]')
    )
    out_dir = spec.parent / "out"
    keys = spec.parent / "keys.json"
    for argv in (
        ["validate", str(spec)],
        ["plan", str(spec)],
        ["render", str(spec), "--out", str(out_dir), "--local-keys", str(keys)],
    ):
        code, out, err = _cli(capsys, *argv)
        assert code == ExitCode.BAD_INPUT
        assert err == (
            f"sitewire: {spec}: sites.B.lan[0]: '192.168.3.0/24' overlaps sites.A.lan[0] "
            "'192.168.3.0/24' (give each site its own LAN subnet)\n"
        )
        assert "Traceback" not in out + err
    assert sorted(p.name for p in spec.parent.iterdir()) == ["network.toml"]


def test_toml_syntax_error_names_line_and_column(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec.write_text("[network]\nname = \n")
    code, _, err = _cli(capsys, "validate", str(spec))
    assert code == ExitCode.BAD_INPUT
    assert err.startswith(f"sitewire: {spec}: line 2, column 8: ")
    assert err.endswith("(fix the TOML syntax)\n") and err.count("\n") == 1


def test_missing_spec_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "plan", str(tmp_path / "nope.toml"))
    assert code == ExitCode.BAD_INPUT
    assert "no such file (create one with 'sitewire init')" in err
    assert _cli(capsys, "frobnicate")[0] == ExitCode.USAGE
    assert _cli(capsys, "render", str(tmp_path / "x.toml"))[0] == ExitCode.USAGE  # --out missing


def test_render_without_keys_refuses_and_leaves_no_trace(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = spec.parent / "out"
    code, _, err = _cli(capsys, "render", str(spec), "--out", str(out_dir))
    assert code == ExitCode.BAD_INPUT
    assert "the public key of B is not known yet" in err
    assert sorted(p.name for p in spec.parent.iterdir()) == ["network.toml"]


def test_render_with_local_keys(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir, keys = spec.parent / "out", spec.parent / "keys.json"
    code, out, err = _cli(
        capsys, "render", str(spec), "--out", str(out_dir), "--local-keys", str(keys)
    )
    assert code == ExitCode.OK, err
    for rel in ("A/uci-batch", "B/uci-batch", "A/packages", "clients/phone.conf",
                "clients/phone.png", "clients/phone.svg"):  # fmt: skip
        assert (out_dir / rel).is_file(), rel
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE((out_dir / "A" / "uci-batch").stat().st_mode) == 0o600
    lock_text = spec.with_suffix(".lock").read_text()
    secrets = _secrets(keys, (("A", "B"), ("A", "phone")))
    assert len(set(secrets)) == 6 and "" not in secrets  # A, B, phone; the seed; A+B, A+phone
    assert json.loads(keys.read_text())["preshared_keys"] == {}  # the seed stands for them
    assert secrets[-2] in (out_dir / "B" / "uci-batch").read_text()  # B's key with A
    for secret in secrets:
        assert secret not in out + err + lock_text
    # A second render with the same keys changes nothing and keeps the keys.
    before = keys.read_text()
    first = (out_dir / "B" / "uci-batch").read_text()
    assert (
        _cli(capsys, "render", str(spec), "--out", str(out_dir), "--local-keys", str(keys))[0] == 0
    )
    assert keys.read_text() == before
    assert (out_dir / "B" / "uci-batch").read_text() == first


def test_render_never_replaces_a_directory_it_did_not_write(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(
        capsys, "render", str(spec), "--out", str(spec.parent), "--local-keys", "k.json"
    )
    assert code == ExitCode.BAD_INPUT
    assert "exists and was not written by 'sitewire render'" in err
    assert spec.is_file()


def test_keys_file_safety(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = spec.parent / "keys.json"
    out_dir = spec.parent / "out"
    assert (
        _cli(capsys, "render", str(spec), "--out", str(out_dir), "--local-keys", str(keys))[0] == 0
    )
    keys.chmod(0o644)
    code, _, err = _cli(
        capsys, "render", str(spec), "--out", str(out_dir), "--local-keys", str(keys)
    )
    assert code == ExitCode.OK
    assert f"readable by group or others (mode 644); run: chmod 600 {keys}" in err
    data = json.loads(keys.read_text())
    secret = data["private_keys"]["A"]
    data["private_keys"]["A"] = secret[:-2] + "!="
    keys.write_text(json.dumps(data))
    code, _, err = _cli(
        capsys, "render", str(spec), "--out", str(out_dir), "--local-keys", str(keys)
    )
    assert code == ExitCode.BAD_INPUT
    assert "private_keys.A: is not a WireGuard key" in err
    assert secret[:10] not in err


def test_lock_holding_a_private_key_is_refused(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec.with_suffix(".lock").write_text(
        json.dumps({"version": 1, "network": "home", "sites": {"A": {"private_key": "x"}}})
    )
    code, _, err = _cli(capsys, "plan", str(spec))
    assert code == ExitCode.BAD_INPUT
    assert "sites.A.private_key: a secret key must never be stored in network.lock" in err


def test_schema_describes_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "schema")
    schema = json.loads(out)
    assert code == ExitCode.OK
    seed = tomllib.loads(SEED.read_text())
    jsonschema.validate(seed, schema)
    bad = dict(seed, network=dict(seed["network"], port=41641))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_qr_shows_a_client_in_the_terminal(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = spec.parent / "keys.json"
    code, out, _ = _cli(capsys, "qr", str(spec), "phone", "--local-keys", str(keys))
    assert code == ExitCode.OK and out.count("\n") > 15
    assert _cli(capsys, "qr", str(spec), "phone")[0] == ExitCode.BAD_INPUT
    code, _, err = _cli(capsys, "qr", str(spec), "tablet", "--local-keys", str(keys))
    assert code == ExitCode.BAD_INPUT and "'tablet' is not a client" in err


def test_unwritable_output_is_one_line_not_a_traceback(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = spec.parent / "keys.json"
    code, _, err = _cli(
        capsys, "render", str(spec), "--out", "/proc/sitewire-out", "--local-keys", str(keys)
    )
    assert code == ExitCode.FAILURE
    assert err.startswith("sitewire: ") and err.count("\n") == 1 and "Traceback" not in err
    assert keys.exists()  # the keys were saved before any file that needs them


@pytest.mark.parametrize("name", ["clients", "inet", "mgmt"])
def test_reserved_site_names(spec: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    spec.write_text(spec.read_text() + f'\n[sites.{name}]\nlan = ["10.9.0.0/24"]\n')
    code, _, err = _cli(capsys, "validate", str(spec))
    assert code == ExitCode.BAD_INPUT
    assert f"sites.{name}: '{name}' is a reserved name (rename the site;" in err


def test_apply_refuses_a_site_without_ssh_and_writes_nothing(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec.write_text(spec.read_text().replace('ssh = "root@192.168.7.1"\n', ""))
    code, _, err = _cli(capsys, "apply", str(spec), "--yes")
    assert code == ExitCode.BAD_INPUT
    assert err.count("\n") == 1 and "sites.B" in err and 'ssh = "root@' in err
    assert "Traceback" not in err and not spec.with_suffix(".lock").exists()


def test_apply_to_an_unreachable_router_is_one_line_and_changes_nothing(
    spec: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Port 9 on loopback: nothing listens, so the connection is refused at once.
    text = spec.read_text()
    text = text.replace("root@192.168.3.1", "root@127.0.0.1:9").replace(
        "root@192.168.7.1", "root@127.0.0.1:9"
    )
    spec.write_text(text.replace('[clients.phone]\nvia = "A"\n', ""))
    code, _, err = _cli(capsys, "apply", str(spec), "--yes")
    assert code == ExitCode.FAILURE
    assert err.count("\n") == 1 and "cannot connect" in err and "127.0.0.1" in err, err
    assert "Traceback" not in err and not spec.with_suffix(".lock").exists()


def test_apply_needs_a_client_key_or_local_keys(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, "apply", str(spec), "--yes")
    assert code == ExitCode.BAD_INPUT
    assert "clients.phone" in err and "--local-keys" in err and err.count("\n") == 1
