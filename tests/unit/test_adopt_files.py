"""`sitewire adopt` from files: a wg-meshconf database and the wg-quick files it generates.

The database and the files are made by the real wg-meshconf 2.5.1 (a development dependency),
run as a person runs it; adopt must read both to the same network, with the keys it holds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sitewire.cli.main import run
from sitewire.keys import public_key
from sitewire.spec.lock import load_lock

MESHCONF = Path(sys.executable).parent / "wg-meshconf"


def meshconf(db: Path, *args: str) -> None:
    subprocess.run(
        [str(MESHCONF), "-d", str(db), *args], check=True, capture_output=True, timeout=60
    )


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """The story's pair, and a third site dialling A, as wg-meshconf keeps them."""
    db = tmp_path / "database.csv"
    meshconf(db, "addpeer", "A", "--address", "192.168.5.1/24", "--endpoint", "a.example.net",
             "--allowedips", "192.168.3.0/24", "--listenport", "51820",
             "--persistentkeepalive", "25")  # fmt: skip
    meshconf(db, "addpeer", "B", "--address", "192.168.5.2/24", "--allowedips", "192.168.7.0/24")
    meshconf(db, "addpeer", "C", "--address", "192.168.5.3/24", "--allowedips", "192.168.9.0/24")
    meshconf(db, "genconfig", "-o", str(tmp_path / "out"))
    return db


def _private(db: Path, name: str) -> str:
    import csv

    with db.open(encoding="utf-8") as f:
        return next(r["PrivateKey"] for r in csv.DictReader(f) if r["Name"] == name)


def _adopt(tmp_path: Path, *args: str) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "adopted" / "network.toml"
    out.parent.mkdir(exist_ok=True)
    assert run(["adopt", *args, "-o", str(out), "--force"]) == 0
    return tomllib.loads(out.read_text()), out


def test_a_wg_meshconf_database_becomes_a_spec_and_lock(tmp_path: Path, database: Path) -> None:
    data, out = _adopt(tmp_path, "--wg-meshconf", str(database), "--ssh", "A=root@198.18.0.10")
    assert data["network"]["overlay"] == "192.168.5.0/24"
    assert data["network"]["preshared_keys"] is False  # wg-meshconf has none
    assert data["network"]["keepalive"] == 25
    assert data["sites"]["A"] == {
        "platform": "linux",
        "lan": ["192.168.3.0/24"],
        "ssh": "root@198.18.0.10",
        "endpoint": "a.example.net",
    }
    assert data["sites"]["B"] == {"platform": "linux", "lan": ["192.168.7.0/24"]}
    assert data["sites"]["C"]["lan"] == ["192.168.9.0/24"]
    lock = load_lock(out.with_suffix(".lock"))
    assert lock is not None
    for name, address in (("A", "192.168.5.1"), ("B", "192.168.5.2"), ("C", "192.168.5.3")):
        assert lock.sites[name].public_key == public_key(_private(database, name))
        assert str(lock.sites[name].address) == address
    written = out.read_text() + out.with_suffix(".lock").read_text()
    assert not any(_private(database, n) in written for n in "ABC")  # private keys go nowhere


def test_its_generated_files_read_as_the_same_network(tmp_path: Path, database: Path) -> None:
    from_db, db_out = _adopt(tmp_path, "--wg-meshconf", str(database))
    files = []
    for n in "ABC":  # each as the host holds it: /etc/wireguard/wg0.conf names the interface
        (tmp_path / n).mkdir()
        (tmp_path / n / "wg0.conf").write_text((tmp_path / "out" / f"{n}.conf").read_text())
        files.append(f"--wg-quick={n}={tmp_path / n / 'wg0.conf'}")
    from_files, files_out = _adopt(tmp_path, *files)
    assert from_files == from_db
    assert files_out.with_suffix(".lock").read_text() == db_out.with_suffix(".lock").read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("addpeer", "D", "--address", "192.168.5.4/24", "--table", "off"), "D sets Table"),
        (("addpeer", "peer-1", "--address", "192.168.5.4/24"), "'peer-1' cannot be a site name"),
        (("addpeer", "E", "--address", "10.9.0.1/24"), "not in one overlay prefix"),
    ],
)
def test_what_a_spec_cannot_say_is_refused_writing_nothing(
    tmp_path: Path,
    database: Path,
    edit: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    meshconf(database, *edit)
    out = tmp_path / "adopted.toml"
    assert run(["adopt", "--wg-meshconf", str(database), "-o", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() and not out.with_suffix(".lock").exists()


def test_a_hook_it_would_drop_is_said(
    tmp_path: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meshconf(database, "updatepeer", "B", "--postup", "iptables -A FORWARD -i %i -j ACCEPT")
    _adopt(tmp_path, "--wg-meshconf", str(database))
    assert "B: PostUp is not carried over" in capsys.readouterr().out


def test_ssh_for_a_site_no_file_has_is_refused(
    tmp_path: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "adopt",
        "--wg-meshconf",
        str(database),
        "--ssh",
        "Z=root@h",
        "-o",
        str(tmp_path / "n.toml"),
    ]
    assert run(args) != 0
    assert "--ssh" in capsys.readouterr().err
    assert run(["adopt", "-o", str(tmp_path / "n.toml")]) != 0
    assert "nothing to adopt" in capsys.readouterr().err


def test_ipv6_overlay_addresses_and_an_mtu_are_read_from_the_files_as_from_the_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "database.csv"
    meshconf(db, "addpeer", "A", "--address", "192.168.5.1/24,fd00:5::1/64", "--endpoint",
             "a.example.net", "--allowedips", "192.168.3.0/24", "--mtu", "1380")  # fmt: skip
    meshconf(db, "addpeer", "B", "--address", "192.168.5.2/24,fd00:5::2/64")
    meshconf(db, "genconfig", "-o", str(tmp_path / "out"))
    from_db, db_out = _adopt(tmp_path, "--wg-meshconf", str(db))
    assert from_db["network"]["overlay6"] == "fd00:5::/64"
    assert from_db["sites"]["A"]["mtu"] == 1380 and "mtu" not in from_db["sites"]["B"]
    files = []
    for n in "AB":
        (tmp_path / n).mkdir()
        (tmp_path / n / "wg0.conf").write_text((tmp_path / "out" / f"{n}.conf").read_text())
        files.append(f"--wg-quick={n}={tmp_path / n / 'wg0.conf'}")
    from_files, files_out = _adopt(tmp_path, *files)
    assert from_files == from_db
    lock = load_lock(files_out.with_suffix(".lock"))
    assert lock is not None and str(lock.sites["B"].address6) == "fd00:5::2"
    assert files_out.with_suffix(".lock").read_text() == db_out.with_suffix(".lock").read_text()


def test_a_file_routing_into_another_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "B" / "wg0.conf"
    conf.parent.mkdir()
    key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    conf.write_text(
        f"[Interface]\nPrivateKey = {key.strip()}\nAddress = 192.168.5.2/24\nListenPort = 51820\n"
        "Table = off\n"
    )
    out = tmp_path / "adopted.toml"
    assert run(["adopt", f"--wg-quick=B={conf}", "-o", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sets Table (routing into another table)" in err[0], err
    assert not out.exists()
