"""Fuzz tier, the person's files (issue 9): specs, locks and key files mutated the way a crafted
or broken file would be, run through the real CLI (`render`, `plan`) in a temp directory.

Properties: the exit code is 0, or 3 with one line on stderr (never a traceback or exit 1);
nothing is written outside the directory; no key from the key file is ever printed; and what
render writes parses back as the format it claims to be: a wg-quick file is only comments,
sections and known `Key = value` lines, each PostUp/PostDown a planned command; a uci batch only
set/add_list/delete/commit lines with quoted values; no script shows a value outside single
quotes (the shell model of the router tier).

Examples per test: SITEWIRE_FUZZ_EXAMPLES (200, derandomized, in CI); see the router tier.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from sitewire.cli.main import run
from sitewire.errors import ExitCode
from tests.fuzz.test_fuzz_router_output import BITS, FUZZ, MARKER, _mutate, exposed

SPEC = """\
[network]
name = "home"
overlay = "192.168.5.0/24"
overlay6 = "fd42::/64"
port = 51820

[sites.A]
platform = "openwrt"
lan = ["192.168.3.0/24", "fd00:3::/64"]
endpoint = "a.example.net"
ssh = "root@192.168.3.1"
tailscale = { advertise_routes = ["192.168.3.0/24"], exit_node = true }

[sites.B]
platform = "linux"
lan = ["192.168.7.0/24"]
endpoint = "[fd53::b]:51821"
ssh = "admin@[fd53::b]:2222"
interface = "wg_b"
address6 = "fd42::2"
tailscale = { advertise_routes = ["192.168.7.0/24"] }

[sites.C]
platform = "openwrt"
lan = ["10.7.0.0/16"]
relay = "A"

[clients.phone]
via = "A"
dns = ["192.168.3.1", "fd00:3::1"]

[clients.laptop]
via = "B"
tunnel = "full"
address = "192.168.5.77"
"""

# Values a crafted spec would carry: zones, new lines, comments, quotes, shell, odd numbers.
HOSTILE = [
    *BITS,
    f"%x\nPreUp = touch {MARKER}",
    f"\n[Interface]\nPostUp = touch {MARKER} #",
    f"' ; touch {MARKER} ; '",
    f"# {MARKER}",
    f"x\nset network.lan.proto='{MARKER}'",
    "-oProxyCommand=touch",
    ":99999",
    "/0",
    "0.0.0.0/0",
    "::/0",
    "fe80::1%eth0",
    "é",
]
# And values the types take, so that some mutated specs get through to be rendered and checked.
PLAUSIBLE = ["192.168.9.0/24", "fd00:9::/64", "10.1.0.0/16", "b.example.org", "fd53::9", "wg9"]
_STRING = re.compile(r'"([^"\n]*)"')
KNOWN = {
    "Interface": {"PrivateKey", "Address", "ListenPort", "MTU", "DNS", "PostUp", "PostDown"},
    "Peer": {"PublicKey", "PresharedKey", "AllowedIPs", "Endpoint", "PersistentKeepalive"},
}
_COMMANDS = re.compile(r"(wg set %i |nft -f |nft delete table inet |ip -[46] rule (add|del) to )")
_UCI_VALUE = r"'(?:[^'\n]|'\\'')*'"
_UCI = re.compile(
    rf"# .*|set [a-z]+\.[A-Za-z0-9_]+(?:\.[a-z0-9_]+)?=(?:{_UCI_VALUE}|[A-Za-z0-9_]+)"
    rf"|add_list [a-z]+\.[A-Za-z0-9_]+\.[a-z0-9_]+={_UCI_VALUE}"
    r"|delete [a-z]+\.[A-Za-z0-9_]+(?:\.[a-z0-9_]+)?|commit [a-z]+|"
)


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value`: the file parses, the types must refuse."""
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@st.composite
def hostile_specs(draw: st.DrawFn) -> str:
    text = SPEC
    for _ in range(draw(st.integers(1, 3))):
        spots = list(_STRING.finditer(text))
        spot = draw(st.sampled_from(spots))
        old = spot[1]
        pool = st.sampled_from(HOSTILE) | st.text(max_size=12) | st.sampled_from(PLAUSIBLE)
        bit = draw(pool)
        how = draw(st.sampled_from(["append", "prepend", "replace", "middle"]))
        middle = len(old) // 2
        new = {
            "append": old + bit,
            "prepend": bit + old,
            "replace": bit,
            "middle": old[:middle] + bit + old[middle:],
        }[how]
        text = text[: spot.start()] + toml_string(new) + text[spot.end() :]
    if draw(st.integers(0, 9)) == 0:
        text = _mutate(draw, text)  # now and then a file that is not even TOML
    return text


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = run(list(argv))
    return code, err.getvalue()


def _refused_cleanly(code: int, err: str) -> None:
    event(f"exit {code}")  # --hypothesis-show-statistics: how many cases got through
    assert code in (ExitCode.OK, ExitCode.BAD_INPUT), err
    if code != ExitCode.OK:
        assert err.startswith("sitewire: ") and err.count("\n") == 1, err
        assert "Traceback" not in err


def check_wg_quick(text: str) -> None:
    section = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line in ("[Interface]", "[Peer]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition(" = ")
        assert sep and section is not None and key in KNOWN[section], line
        assert "#" not in value and value.isprintable(), line
        if key in ("PostUp", "PostDown"):
            assert _COMMANDS.match(value), line
            assert exposed(value) == [], line


def check_uci_batch(text: str) -> None:
    for line in text.splitlines():
        assert _UCI.fullmatch(line), line


def check_rendered(out: Path) -> None:
    for path in _files(out):
        if path.suffix in (".png", ".svg"):
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".conf" and path.parent.name != "sysctl" and "[Interface]" in text:
            check_wg_quick(text)
        if path.name == "uci-batch":
            check_uci_batch(text)
        if path.name.endswith(".sh") or os.access(path, os.X_OK):
            assert exposed(text) == [], f"{path}:\n{text}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-spec")


def _fresh(base: Path) -> Path:
    root = Path(os.path.join(base, f"case{len(list(base.iterdir()))}"))
    root.mkdir()
    return root


@FUZZ
@given(text=hostile_specs())
def test_a_hostile_spec_renders_as_planned_or_is_refused(base: Path, text: str) -> None:
    root = _fresh(base)
    spec, out, keys = root / "network.toml", root / "out", root / "keys.json"
    spec.write_text(text, encoding="utf-8")
    code, err = _cli("render", str(spec), "--out", str(out), "--local-keys", str(keys))
    _refused_cleanly(code, err)
    allowed = {spec, keys, spec.with_suffix(".lock")}
    assert {p for p in _files(root) if out not in p.parents} <= allowed
    if code != ExitCode.OK:
        assert not out.exists() and not keys.exists()
        return
    check_rendered(out)
    secrets = json.loads(keys.read_text())
    shown = err + spec.with_suffix(".lock").read_text()
    for table in ("private_keys", "preshared_keys"):
        for key in secrets[table].values():
            assert key not in shown


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec rendered once, for its lock and key file to be mutated."""
    root = tmp_path_factory.mktemp("fuzz-files")
    (root / "network.toml").write_text(SPEC)
    keys = root / "keys.json"
    code, err = _cli(
        "render", str(root / "network.toml"), "--out", str(root / "out"), "--local-keys", str(keys)
    )
    assert code == ExitCode.OK, err
    return root


def _json_spots(text: str) -> list[re.Match[str]]:
    return list(re.finditer(r'"((?:[^"\\\n]|\\.)*)"|-?[0-9]+', text))


@st.composite
def hostile_json(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        spot = draw(st.sampled_from(_json_spots(text)))
        bit = draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12)))
        value = json.dumps(draw(st.sampled_from([bit, spot[0].strip('"') + bit])))
        if draw(st.integers(0, 5)) == 0:
            value = draw(st.sampled_from(["[" * 5000, "1e999", "9" * 5000, "null", "{}", "[]"]))
        text = text[: spot.start()] + value + text[spot.end() :]
    return text


def _copy(rendered: Path, base: Path) -> Path:
    root = _fresh(base)
    for name in ("network.toml", "network.lock", "keys.json"):
        (root / name).write_bytes((rendered / name).read_bytes())
    (root / "keys.json").chmod(0o600)
    return root


@FUZZ
@given(data=st.data())
def test_a_hostile_lock_plans_or_is_refused(
    rendered: Path, base: Path, data: st.DataObject
) -> None:
    root = _copy(rendered, base)
    lock = root / "network.lock"
    lock.write_text(data.draw(hostile_json(lock.read_text())))
    before = lock.read_bytes()
    code, err = _cli("plan", str(root / "network.toml"))
    _refused_cleanly(code, err)
    if code != ExitCode.OK:
        assert lock.read_bytes() == before  # a refused lock is never rewritten


@FUZZ
@given(data=st.data())
def test_a_hostile_key_file_renders_or_is_refused_and_shows_no_key(
    rendered: Path, base: Path, data: st.DataObject
) -> None:
    root = _copy(rendered, base)
    keys = root / "keys.json"
    original = json.loads(keys.read_text())
    text = data.draw(hostile_json(keys.read_text()))
    keys.write_text(text)
    out = root / "out"
    code, err = _cli(
        "render", str(root / "network.toml"), "--out", str(out), "--local-keys", str(keys)
    )
    _refused_cleanly(code, err)
    for table in ("private_keys", "preshared_keys"):
        for key in original[table].values():
            assert key not in err
    if code == ExitCode.OK:
        check_rendered(out)
    else:
        assert not out.exists()
