"""Issue 9, the spec's side: values that would have become commands or config lines are refused
at load, with one line and exit 3, before anything is written.

Each case is a value the audit reproduced (or one of its neighbours): before the fix, `render`
exited 0 and a wg-quick file gained a `PreUp` line that `wg-quick up` runs as root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.errors import ExitCode, InputError, KeyFileError, LockError, RenderError, SpecError
from sitewire.plan import plan_network
from sitewire.render import quote
from sitewire.spec.load import load_spec
from sitewire.spec.lock import load_lock
from sitewire.spec.secrets import load_local_keys
from tests.conftest import SEED, spec_from

INJECT = "\\nPreUp = touch /tmp/PWNED"  # TOML escape: a real newline in the value

LINUX = """
[network]
name = "home"
overlay = "192.168.5.0/24"
overlay6 = "fd42::/64"

[sites.A]
platform = "linux"
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"
{a}

[sites.B]
platform = "linux"
lan = ["192.168.7.0/24"]
{b}

[clients.phone]
via = "A"
{phone}
"""


def _text(a: str = "", b: str = "", phone: str = "") -> str:
    return LINUX.format(a=a, b=b, phone=phone)


HOSTILE = [
    pytest.param({"phone": f'dns = ["fe80::53%x{INJECT}"]'}, "clients.phone.dns[0]", id="dns"),
    pytest.param(
        {"a": f'lan = ["fd00:3::%x{INJECT}\\n[Interface]\\nPreUp = id #/64"]'},
        "sites.A.lan",
        id="lan",
    ),
    pytest.param({"a": f'address6 = "fd42::9%x{INJECT}"'}, "sites.A.address6", id="address6"),
    pytest.param(
        {"phone": 'dns = ["fe80::53%;touch${IFS}PWNED"]'}, "clients.phone.dns[0]", id="dns-shell"
    ),
    pytest.param({"b": 'address6 = "fd42::1%x"'}, "sites.B.address6", id="zone-duplicate"),
    pytest.param({"a": 'endpoint = "fe80::1%eth0;id"'}, "sites.A.endpoint", id="endpoint-zone"),
    pytest.param({"phone": 'address = "192.168.5.9%x"'}, "clients.phone.address", id="v4-zone"),
]


@pytest.mark.parametrize(("parts", "where"), HOSTILE)
def test_zone_ids_and_new_lines_in_addresses_are_refused(
    parts: dict[str, str], where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _text(**parts)
    if "lan = " in parts.get("a", ""):
        text = text.replace('lan = ["192.168.3.0/24"]\nendpoint', "endpoint", 1)
    if "endpoint = " in parts.get("a", ""):
        text = text.replace('endpoint = "a.example.net"\n', "", 1)
    spec = tmp_path / "network.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    code = run(["render", str(spec), "--out", str(out), "--local-keys", str(tmp_path / "k")])
    _, err = capsys.readouterr()
    assert code == ExitCode.BAD_INPUT, err
    assert err.count("\n") == 1 and err.startswith("sitewire: "), err
    assert where in err and ("zone ID" in err or "not an" in err or "neither" in err), err
    assert not out.exists() and not (tmp_path / "k").exists()
    assert not spec.with_suffix(".lock").exists()


def test_the_issues_zone_address_is_not_a_second_copy_of_an_address() -> None:
    """`fd42::1%x` and `fd42::1` compared unequal, so two sites could hold one address."""
    with pytest.raises(SpecError, match="zone ID"):
        spec_from(_text(a='address6 = "fd42::1"', b='address6 = "fd42::1%x"'))


@pytest.mark.parametrize(
    ("ssh", "why"),
    [
        ("root@192.168.3.1:99999", "port 99999"),
        ("root@192.168.3.1:0", "port 0"),
        ("-oProxyCommand=id", "not an SSH target"),
        ("root@-oProxyCommand=id", "not an SSH target"),
        ("root@[fe80::1%eth0]", "not an SSH target"),
        ("root@[12345::]", "is not an IPv6 address"),
        ("root@host;id", "not an SSH target"),
    ],
)
def test_ssh_targets_are_checked_whole(ssh: str, why: str) -> None:
    with pytest.raises(SpecError, match=why) as caught:
        spec_from(_text(a=f'ssh = "{ssh}"'))
    assert "\n" not in str(caught.value)


def test_a_good_ssh_target_stays_as_written() -> None:
    spec = spec_from(_text(a='ssh = "admin@[fd00::1]:2222"'))
    assert spec.sites["A"].ssh == "admin@[fd00::1]:2222"


@pytest.mark.parametrize(
    "endpoint", ["a.example.net;id", "a.example.net\\nPreUp = id", "$(id).example.net", "-x"]
)
def test_endpoints_are_addresses_or_dns_names(endpoint: str) -> None:
    with pytest.raises(SpecError, match=r"sites\.A\.endpoint"):
        spec_from(_text().replace('"a.example.net"', f'"{endpoint}"'))


@pytest.mark.parametrize(
    ("lans", "family"),
    [
        ('["0.0.0.0/1", "128.0.0.0/1"]', "IPv4"),
        ('["0.0.0.0/0"]', "IPv4"),
        ('["::/1", "8000::/1"]', "IPv6"),
    ],
)
def test_lans_that_cover_every_address_are_refused(lans: str, family: str) -> None:
    """A LAN of 0.0.0.0/0 (or halves of it) is routed into the tunnel on every peer."""
    text = _text().replace('lan = ["192.168.3.0/24"]', f"lan = {lans}", 1)
    # Only the other family for the overlay and B: all of one family overlaps anything in it.
    if family == "IPv6":
        text = text.replace('overlay6 = "fd42::/64"\n', "", 1)
    else:
        text = text.replace('overlay = "192.168.5.0/24"\n', "", 1)
        text = text.replace('lan = ["192.168.7.0/24"]', 'lan = ["fd00:7::/64"]', 1)
    with pytest.raises(InputError, match=f"cover every {family} address") as caught:
        plan_network(spec_from(text))
    assert caught.value.fix is not None and "tunnel = 'full'" in caught.value.fix


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_deeply_nested_spec_is_a_spec_error(tmp_path: Path) -> None:
    spec = tmp_path / "network.toml"
    spec.write_text(SEED.read_text() + f"\n[extra]\nx = {_nested(100_000)}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert "\n" not in str(caught.value)


def test_a_number_too_long_for_python_is_a_spec_error(tmp_path: Path) -> None:
    # found by the 10,000-case fuzz run: tomllib raises a plain ValueError past 4300 digits
    spec = tmp_path / "network.toml"
    spec.write_text(SEED.read_text().replace("port = 51820", "port = " + "9" * 5000, 1))
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert "\n" not in str(caught.value)


def test_a_deeply_nested_lock_is_a_lock_error(tmp_path: Path) -> None:
    lock = tmp_path / "network.lock"
    lock.write_text('{"version": 1, "sites": ' + _nested(100_000) + "}")
    with pytest.raises(LockError, match="not a lock file"):
        load_lock(lock)


def test_a_deeply_nested_keys_file_is_a_key_file_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"private_keys": ' + _nested(100_000) + "}")
    keys.chmod(0o600)
    with pytest.raises(KeyFileError):
        load_local_keys(keys)


def test_a_bad_key_is_not_shown_back() -> None:
    """A private key pasted into public_key must not appear in the error, not even in part."""
    secret = "cGFzdGVkIGJ5IG1pc3Rha2UgaW50byB0aGUgc3BlYw"
    with pytest.raises(SpecError) as caught:
        spec_from(_text(phone=f'public_key = "{secret}"'))
    assert secret[:6] not in str(caught.value)
    assert "is not a WireGuard key" in str(caught.value)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "x\x00", "é"])
def test_every_writer_refuses_a_value_that_would_change_its_file(value: str) -> None:
    """The second wall: if a value ever got past the types, no format would take it."""
    for write in (quote.uci_value, quote.wg_quick, quote.uci_comment, quote.wg_quick_comment):
        with pytest.raises(RenderError):
            write(value)
    with pytest.raises(RenderError):
        quote.wg_quick("10.0.0.1 # comment")
    with pytest.raises(RenderError):
        quote.nft_word('wg0" accept')


def test_seed_still_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "network.toml"
    shutil.copy(SEED, spec)
    keys = tmp_path / "keys.json"
    assert (
        run(["render", str(spec), "--out", str(tmp_path / "out"), "--local-keys", str(keys)]) == 0
    )
    capsys.readouterr()
    assert json.loads(keys.read_text())["private_keys"]
