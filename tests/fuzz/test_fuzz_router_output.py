"""Fuzz tier, router output (issue 9): real captures and fixtures, then mutated the way a hostile
or broken router would (unicode digits, zone IDs, shell metacharacters, newlines, NULs, deep
JSON, huge numbers), into every parser of what a router sends.

Properties: nothing but a SitewireError (UnexpectedOutput, FactsError, UciError) ever escapes;
every address or prefix parsed has no zone and prints as `[0-9a-fA-F:./]+`; a value from one
router reaches another router's script only inside single quotes; no key wg would read survives
the redaction, on the device (BusyBox awk) or on the controller.

Examples per test: SITEWIRE_FUZZ_EXAMPLES (200, derandomized, in CI). A long run explores at
random: `SITEWIRE_FUZZ_EXAMPLES=10000 .venv/bin/pytest tests/fuzz`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitewire.deploy.read import hide_secrets, read_files
from sitewire.deploy.verify import parse_evidence, verify_script
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.parse import (
    ScriptSection,
    parse_apk_installed,
    parse_handler,
    parse_ip_links,
    parse_ip_links_json,
    parse_ip_rules,
    parse_openwrt_release,
    parse_opkg_installed,
    parse_os_release,
    parse_rc_local_probe,
    parse_routes,
    parse_sections,
    parse_tailscale_prefs,
    parse_wg_dump,
)
from sitewire.diagnose.probes import parse_probes, probe_sections
from sitewire.diagnose.status import (
    parse_pings,
    parse_tailnet,
    ping_sections,
    read_sections,
    status_from_json,
)
from sitewire.driver.linux import HIDE_KEYS as _HIDE
from sitewire.errors import SitewireError
from sitewire.plan import Plan
from sitewire.spec.model import Platform
from tests.conftest import FIXTURES
from tests.unit import test_diagnose_parse as captured
from tests.unit import test_doctor as doctor

EXAMPLES = int(os.environ.get("SITEWIRE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # CI runs the same cases every time; a long run asked for by name explores.
    derandomize="SITEWIRE_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BUSYBOX = "/bin/busybox"
MARKER = "PWNED"
PLAIN = re.compile(r"[0-9a-fA-F:./]+")
ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")

# --- seeds: what routers really print ---------------------------------------------------------


def _capture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


PLAN = doctor.seed_plan()
ROUTES = [
    *captured.ROUTES,
    doctor.routes4(PLAN, "A"),
    doctor.routes4(PLAN, "B"),
    "default via fe80::1 dev wan proto static metric 512 pref medium\n"
    "fd00:3::/64 dev br-lan proto kernel metric 256 pref medium\n"
    "unreachable fd00:3::/48 dev lo proto static metric 2147483647 pref medium\n"
    "fe80::/64 dev eth0 proto kernel metric 256 pref medium\n",
    "fd00:3::/64 dev br-lan proto kernel metric 256 src fd00:3::1\n",  # the shape of issue 9
]
DUMPS = [
    captured.DUMP,
    doctor.wg_dump(PLAN, "A"),
    doctor.wg_dump(PLAN, "B", endpoint={"A": "[fd53:5357:0:1::10]:51820"}),
]
RULES = [*captured.RULES, doctor.TAILSCALE_RULES]
LINKS_JSON = json.dumps(
    [
        {"ifindex": 2, "ifname": "wan", "link": "if3", "flags": ["UP"], "mtu": 1492},
        {"ifindex": 6, "ifname": "wg0", "flags": [], "mtu": 1420, "operstate": "UNKNOWN"},
    ]
)
PREFS = captured.prefs_capture()
EXIT_PREFS = json.dumps(
    {
        **json.loads(PREFS),
        "RouteAll": True,
        "AdvertiseRoutes": ["0.0.0.0/0", "::/0", "192.168.3.0/24", "fd00:3::/64"],
        "ExitNodeIP": "fd7a:115c:a1e0::1",
    }
)
TS_STATUS = [
    _capture("tailscale-status.dufour.json"),
    _capture("tailscale-status.with-subnet-router-peer.SYNTHETIC.json"),
]
RELEASES = [
    "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='24.10.2'\nDISTRIB_REVISION='r28739-d9340319c6'\n"
    "DISTRIB_TARGET='mediatek/filogic'\nDISTRIB_ARCH='aarch64_cortex-a53'\n",
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nID=debian\n# comment\nID_LIKE="rhel fedora"\n',
]
PACKAGES = [
    "kmod-wireguard - 6.6.73-r1\nwireguard-tools - 1.0.20210914-r4\n",
    "kmod-wireguard-6.12.57-r1 x86_64 {linux} (GPL-2.0-only) [installed]\n"
    "wireguard-tools-1.0.20250521-r1 x86_64 {wireguard-tools} (GPL-2.0-only) [installed]\n",
]
SMALL = [
    "file /lib/netifd/proto/wireguard.sh\nsyncconf\nrenew\n",
    "3 accept-routes\n7 -\n",
]
PINGS = (
    "rtt B wireguard rtt min/avg/max/mdev = 0.036/0.048/0.063/0.010 ms\n"
    "rtt B lan round-trip min/avg/max = 0.050/8.125/9.082 ms\nrtt B tailnet no reply\n"
)
PROBES = (
    "addr 127.0.0.1\naddr fd53:5357:0:1::10\naddr 192.168.3.1\nlan 192.168.3.254 br-lan\n"
    "route_router B 192.168.7.0/24 192.168.7.1 dev wg0 src 192.168.5.1 uid 0\n"
    "route_lan B 192.168.7.0/24 192.168.7.1 from 192.168.3.254 dev wg0\n"
    "ping_router B 192.168.7.0/24 ok\nsmall B ok\n"
    "large B fail\nfits B 1400\nresolved a.example.net 198.18.0.10\n"
)
EVIDENCE = (
    "hs A ok\nping overlay A ok\nping lan A ok\nroute A 192.168.3.1 from 192.168.7.254 dev wg0\n"
)
WG_CONF = (
    "[Interface]\nPrivateKey = (hidden)\nAddress = 10.9.0.2/24\nListenPort = 51820\n\n"
    "[Peer]\nPublicKey = BbPF7Lw4WvCoNwkm85wf5IHZVCVSYfZqpkfnsUDUdUQ=\n"
    "PresharedKey = SlVga3aBjJeirbjDztnk7/oFEBsmMTxHUl1oc36JlJ8=\n"
    "AllowedIPs = 10.9.0.1/32, 192.168.3.0/24\nEndpoint = a.example.net:51820\n"
)
OUTPUTS = {name: (s.stdout, s.rc) for name, s in captured.openwrt_sections().items()}


def _framed(outputs: Mapping[str, tuple[str, int]]) -> str:
    return "".join(captured.frame(name, out, rc) for name, (out, rc) in outputs.items())


# --- mutations: what a hostile or broken router prints instead -------------------------------

BITS = [
    "²",
    "٣",
    "%;touch${IFS}PWNED;true",
    "%eth0",
    "%$(touch PWNED)",
    "`touch PWNED`",
    ";touch${IFS}PWNED;",
    "'",
    '"',
    "\\",
    "$(",
    "\n",
    "\r",
    "\t",
    " ",
    "\x00",
    "\x1b[2J",
    "\u2028",
    "\x85",
    "9" * 25,
    "9" * 5000,
    "1..2",
    "-1",
    "1_0",
    "0x",
    "inf",
    "nan",
    "1e999",
    ":",
    "/",
    "/129",
    "::",
    "%",
    "[" * 3000,
    '{"a":' * 3000,
    "@@sitewire end wg 0\n",
    "@@sitewire begin x\n",
    "(none)",
    "(hidden)",
    "=",
    "#",
    "PrivateKey",
]
BIT = st.one_of(st.sampled_from(BITS), st.text(max_size=8))
_TOKEN = re.compile(r"[0-9A-Fa-f:.]{3,}|[0-9]+|br-lan|wg0|wan|eth0|\t|\n| ")
_ADDRESS = re.compile(r"(?:[0-9A-Fa-f]{0,4}:){2,}[0-9A-Fa-f.]*|[0-9]+(?:\.[0-9]+){3}")
_NUMBER = re.compile(r"[0-9]+")
ZONES = ["eth0", "br-lan", ";touch${IFS}PWNED;true", "$(touch PWNED)", "\n", "x y", ""]
DIGITS = ["²", "٣", "１", "𝟗", "⁹", "½"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        text = _mutate(draw, text)
    return text


def _mutate(draw: st.DrawFn, text: str) -> str:
    kind = draw(
        st.sampled_from(
            ["insert", "replace", "after-token", "token", "cut", "line", "zone", "digit", "huge"]
        )
    )
    at = draw(st.integers(0, len(text)))
    if kind in ("zone", "digit", "huge"):
        found = list((_ADDRESS if kind == "zone" else _NUMBER).finditer(text))
        if not found:
            return text + draw(BIT)
        spot = draw(st.sampled_from(found))
        if kind == "zone":  # what Python's ipaddress takes after '%' and gives back verbatim
            bit = "%" + draw(st.sampled_from(ZONES))
            return text[: spot.end()] + bit + text[spot.end() :]
        if kind == "digit":
            where = draw(st.integers(spot.start(), spot.end() - 1))
            return text[:where] + draw(st.sampled_from(DIGITS)) + text[where + 1 :]
        huge = draw(st.sampled_from(["9" * 25, "9" * 5000, "0" * 30 + "1", "1" + "0" * 400]))
        return text[: spot.start()] + huge + text[spot.end() :]
    if kind == "insert":
        return text[:at] + draw(BIT) + text[at:]
    if kind == "replace":
        return text[:at] + draw(BIT) + text[at + draw(st.integers(1, 8)) :]
    if kind == "cut":
        return text[:at] + text[at + draw(st.integers(1, 64)) :]
    if kind == "line":
        lines = text.split("\n")
        line = draw(st.sampled_from(lines))
        return "\n".join([*lines, *([line] * draw(st.integers(1, 3)))])
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text + draw(BIT)
    token = draw(st.sampled_from(tokens))
    if kind == "after-token":  # a zone after an address, `;...` after a device name
        return text[: token.end()] + draw(BIT) + text[token.end() :]
    return text[: token.start()] + draw(BIT) + text[token.end() :]


def text_or_noise(seeds: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(mutated(seeds), st.text(max_size=300))


# --- properties ------------------------------------------------------------------------------


def _values(value: object, depth: int = 0) -> Iterator[object]:
    """Every value inside a parse result: dataclass fields, mappings, sequences."""
    yield value
    if depth > 12:
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _values(getattr(value, f.name), depth + 1)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _values(k, depth + 1)
            yield from _values(v, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _values(item, depth + 1)
    elif hasattr(value, "sections") and hasattr(value, "name"):  # a uci Package
        yield from _values(list(value.sections), depth + 1)
    elif hasattr(value, "options"):  # a uci Section
        yield from _values(dict(value.options), depth + 1)


def assert_plain_addresses(result: object) -> None:
    for value in _values(result):
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            assert getattr(value.network_address, "scope_id", None) is None, value
            assert PLAIN.fullmatch(str(value)), repr(str(value))
        elif isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            assert getattr(value, "scope_id", None) is None, value
            assert PLAIN.fullmatch(str(value)), repr(str(value))
        elif isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
            assert getattr(value.ip, "scope_id", None) is None, value
            assert PLAIN.fullmatch(str(value)), repr(str(value))
    for value in _values(result):
        zone = getattr(value, "zone", None)
        if isinstance(zone, str):
            assert ZONE.fullmatch(zone), zone


def parsed(parser: Callable[[str], object], text: str) -> object | None:
    """The parser's value, or None when it refused the text the one allowed way."""
    try:
        result = parser(text)
    except SitewireError:
        return None
    assert_plain_addresses(result)
    return result


PARSERS: list[tuple[str, Callable[[str], object], list[str]]] = [
    ("wg_dump", parse_wg_dump, DUMPS),
    ("wg_dump_one", lambda t: parse_wg_dump(t, "wg0"), [d.replace("wg0\t", "") for d in DUMPS]),
    ("ip_rules", parse_ip_rules, RULES),
    ("routes4", lambda t: parse_routes(t, 4), ROUTES),
    ("routes6", lambda t: parse_routes(t, 6), ROUTES),
    ("ip_links", parse_ip_links, [captured.LINKS]),
    ("ip_links_json", parse_ip_links_json, [LINKS_JSON]),
    ("tailscale_prefs", parse_tailscale_prefs, [PREFS, EXIT_PREFS, *TS_STATUS]),
    ("openwrt_release", parse_openwrt_release, RELEASES),
    ("os_release", parse_os_release, RELEASES),
    ("opkg", parse_opkg_installed, PACKAGES),
    ("apk", parse_apk_installed, PACKAGES),
    ("handler", parse_handler, SMALL),
    ("rc_local", parse_rc_local_probe, SMALL),
    ("sections", parse_sections, [_framed(OUTPUTS)]),
    ("pings", lambda t: parse_pings(ScriptSection("sw_rtt", 0, t, "")), [PINGS]),
    ("probes", lambda t: parse_probes(ScriptSection("sw_probes", 0, t, "")), [PROBES]),
    ("evidence", parse_evidence, [EVIDENCE]),
    ("status_file", lambda t: status_from_json(t, "network.status.json"), TS_STATUS),
]


@pytest.mark.parametrize(("name", "parser", "seeds"), PARSERS, ids=[p[0] for p in PARSERS])
def test_a_parser_refuses_only_with_a_sitewire_error(
    name: str, parser: Callable[[str], object], seeds: list[str]
) -> None:
    @FUZZ
    @given(text=text_or_noise(seeds))
    def check(text: str) -> None:
        parsed(parser, text)

    check()


SECTION_NAMES = sorted(OUTPUTS)


@FUZZ
@given(
    data=st.data(),
    names=st.lists(st.sampled_from(SECTION_NAMES), min_size=1, max_size=4),
    platform=st.sampled_from(list(Platform)),
)
def test_facts_from_hostile_sections(
    data: st.DataObject, names: list[str], platform: Platform
) -> None:
    """The top-level facts reader: some sections turned hostile, the rest as a router sends."""
    outputs = dict(OUTPUTS)
    seeds = {"routes4": ROUTES, "routes6": ROUTES, "wg": DUMPS, "rules4": RULES}
    for name in names:
        out, rc = outputs[name]
        text = data.draw(text_or_noise([out, *seeds.get(name, [])]), label=name)
        outputs[name] = (text, data.draw(st.sampled_from([rc, 0, 1, 127]), label=f"{name} rc"))
    sections = {n: ScriptSection(n, rc, out, "") for n, (out, rc) in outputs.items()}
    parsed(lambda _: facts_from_sections("A", platform, sections), "")


@FUZZ
@given(text=mutated([_framed(OUTPUTS)]), platform=st.sampled_from(list(Platform)))
def test_facts_from_a_hostile_framed_answer(text: str, platform: Platform) -> None:
    """What run_sections does with the whole answer: frames, then facts."""
    parsed(lambda t: facts_from_sections("A", platform, parse_sections(t)), text)


@FUZZ
@given(prefs=text_or_noise([PREFS, EXIT_PREFS]), status=text_or_noise(TS_STATUS))
def test_tailnet_from_hostile_tailscale_answers(prefs: str, status: str) -> None:
    state = parse_tailnet(
        ScriptSection("tailscale", 0, prefs, ""), ScriptSection("ts_status", 0, status, "")
    )
    if state.ip is not None:
        assert PLAIN.fullmatch(state.ip) and ipaddress.ip_address(state.ip).version == 4


# --- scripts built from what routers said ------------------------------------------------------


def exposed(script: str) -> list[int]:
    """Offsets of MARKER that sh would expand, split or run: anywhere but in single quotes.

    A small model of POSIX sh quoting: single and double quotes, backslashes, and `$( )`,
    `( )` and backticks, inside which quoting starts afresh."""
    plain = [True] * len(script)
    stack = ["top"]
    i = 0
    while i < len(script):
        c, ctx = script[i], stack[-1]
        nxt = script[i + 1] if i + 1 < len(script) else ""
        if ctx == "single":
            plain[i] = False
            if c == "'":
                stack.pop()
        elif c == "\\":
            i += 1  # the next character is taken literally, but stays outside single quotes
        elif ctx == "double":
            if c == '"':
                stack.pop()
            elif c == "$" and nxt == "(":
                stack.append("subst")
                i += 1
            elif c == "`":
                stack.append("tick")
        elif c == "'":
            stack.append("single")
            plain[i] = False
        elif c == '"':
            stack.append("double")
        elif c == "$" and nxt == "(":
            stack.append("subst")
            i += 1
        elif c == "(":
            stack.append("paren")
        elif c == ")" and ctx in ("subst", "paren"):
            stack.pop()
        elif c == "`":
            if ctx == "tick":
                stack.pop()
            else:
                stack.append("tick")
        i += 1
    return [m.start() for m in re.finditer(MARKER, script) if any(plain[m.start() : m.end()])]


def test_the_quoting_model_sees_an_unquoted_marker() -> None:
    assert exposed(f"ping -c 1 fd00:3::1%;touch${{IFS}}{MARKER};true\n")
    assert exposed(f'echo "x $(ip route get fd00::%;{MARKER} | head)"\n')
    assert not exposed(f"echo 'fd00::%;touch {MARKER}' \"$(ip route get 'a;{MARKER}')\"\n")
    assert not exposed(f"m 'it'\"'\"'s {MARKER}' &\n")


HOSTILE_BITS = [b for b in BITS if MARKER in b]
_SRC = re.compile(r"(?<=src )[0-9a-fA-F:.]+|br-lan")


@st.composite
def hostile_routes(draw: st.DrawFn, site: str) -> str:
    """The site's real main table, with the marker after an address or a device name."""
    text = doctor.routes4(PLAN, site)
    spots = list(_SRC.finditer(text))
    for _ in range(draw(st.integers(1, 3))):
        spot = draw(st.sampled_from(spots))
        bit = draw(st.sampled_from(HOSTILE_BITS))
        text = text[: spot.end()] + bit + text[spot.end() :]
        spots = list(_SRC.finditer(text))
    if draw(st.booleans()):
        text = _mutate(draw, text)
    return text


def _facts(plan: Plan, site: str, routes: str) -> DeviceFacts | None:
    try:
        return doctor.facts(plan, site, routes4=(routes, 0))
    except SitewireError:
        return None


@FUZZ
@given(a=hostile_routes("A"), b=hostile_routes("B"))
def test_a_routers_facts_reach_other_scripts_only_quoted(a: str, b: str) -> None:
    facts = {"A": _facts(PLAN, "A", a), "B": _facts(PLAN, "B", b)}
    for site in ("A", "B"):
        scripts = [verify_script(PLAN, site, facts, 10)]
        scripts += [body for _, body in probe_sections(PLAN, site, facts)]
        seen = {}
        for name, routes in (("A", a), ("B", b)):
            sections = {
                "clock": ("1795570500\n", 0),
                "wg": (doctor.wg_dump(PLAN, name), 0),
                "routes4": (routes, 0),
                "routes6": ("", 0),
                "links": (captured.LINKS, 0),
                "tailscale": ("", 127),
                "ts_status": ("", 127),
            }
            try:
                seen[name] = read_sections(
                    name, {n: ScriptSection(n, rc, o, "") for n, (o, rc) in sections.items()}
                )
            except SitewireError:
                continue
        if site in seen:
            scripts += [body for _, body in ping_sections(PLAN, site, seen)]
        for script in scripts:
            assert exposed(script) == [], script


# --- keys in files read from a Linux host -------------------------------------------------------


def wg_reads_as_key(line: str) -> bool:
    """wireguard-tools config.c: drop blanks, cut at `#`, compare case-insensitively."""
    cleaned = re.sub(r"[ \t\n\v\f\r]", "", line.split("#", 1)[0]).lower()
    return cleaned.startswith(("privatekey=", "presharedkey="))


@FUZZ
@given(text=text_or_noise([WG_CONF, captured.DUMP]))
def test_no_key_wg_would_read_survives_the_controller(text: str) -> None:
    hidden = hide_secrets(text)
    assert hide_secrets(hidden) == hidden
    for line in hidden.split("\n"):
        if wg_reads_as_key(line):
            assert line.partition("=")[2] == " (hidden)", line
    files, _ = read_files({"sw_file0": ScriptSection("sw_file0", 0, text, "")}, ["/f"])
    assert files["/f"] == hidden


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox")
def test_the_device_and_the_controller_hide_the_same_lines(tmp_path: Path) -> None:
    """BusyBox awk on the device hides at least what wg would read, and never a line the
    controller would keep (the controller lowercases beyond ASCII, so it may hide more)."""
    awk = _HIDE.removeprefix("awk ")

    @FUZZ
    @given(text=mutated([WG_CONF]).filter(lambda t: "\x00" not in t))
    def check(text: str) -> None:
        text = text if text.endswith("\n") else text + "\n"
        data = text.encode("utf-8", "surrogateescape")
        done = subprocess.run(
            [BUSYBOX, "awk", awk.strip("'")], input=data, capture_output=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        device = done.stdout.decode("utf-8", "surrogateescape").split("\n")
        controller = hide_secrets(text).split("\n")
        original = text.split("\n")
        assert len(device) == len(controller) == len(original)
        for before, dev, ctl in zip(original, device, controller, strict=True):
            if wg_reads_as_key(before):
                assert dev.partition("=")[2] == " (hidden)", before
            if dev != before:
                assert ctl == dev, before

    check()
