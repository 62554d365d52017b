"""A router that lies (issue 9, items 1, 5 and 7): what it sends never runs anywhere, never shows
a key, and never ends the controller with a traceback.

SYNTHETIC: every hostile output below is made up; each is shaped like the real command's output
with one field turned into an attack. Scripts run under BusyBox sh with stub `ping`, `ip` and
`wg` that record their arguments, and a real `touch`: an injected `touch PWNED` would leave the
file behind.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from sitewire.deploy import read
from sitewire.deploy.read import extra_sections
from sitewire.deploy.verify import verify_script
from sitewire.diagnose.doctor import check_port_open, check_saved_not_live
from sitewire.diagnose.facts import DeviceFacts, FactsError, facts_from_sections
from sitewire.diagnose.lans import lan_address
from sitewire.diagnose.parse import (
    Route,
    ScriptSection,
    UnexpectedOutput,
    WgDump,
    parse_ip_links,
    parse_ip_links_json,
    parse_ip_rules,
    parse_rc_local_probe,
    parse_routes,
    parse_sections,
    parse_tailscale_prefs,
    parse_wg_dump,
)
from sitewire.diagnose.probes import parse_probes, probe_sections
from sitewire.diagnose.script import build_script
from sitewire.diagnose.status import (
    Seen,
    TailnetState,
    parse_pings,
    parse_tailnet,
    ping_sections,
    read_sections,
)
from sitewire.driver.linux import DRIVER as LINUX
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from sitewire.spec.model import Platform
from tests.conftest import spec_from
from tests.unit.test_diagnose_parse import frame, openwrt_sections
from tests.unit.test_doctor import facts as doctor_facts
from tests.unit.test_doctor import firewall_uci, seed_live, seed_plan

BUSYBOX = "/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox")

HOSTILE = "fd00:3::1%;touch${IFS}PWNED;true"
HOSTILE_ROUTE = f"fd00:3::/64 dev br-lan proto kernel metric 256 src {HOSTILE}\n"
KEY = "AAsWISw3Qk1YY255hI+apbC7xtHc5/L9CBMeKTQ/SlU="  # synthetic
OTHER = "SlVga3aBjJeirbjDztnk7/oFEBsmMTxHUl1oc36JlJ8="
PEER = "BbPF7Lw4WvCoNwkm85wf5IHZVCVSYfZqpkfnsUDUdUQ="
SIX = """
[network]
name = "hostile"
overlay = "10.9.0.0/24"

[sites.A]
lan = ["fd00:3::/64"]
endpoint = "a.example.net"

[sites.B]
lan = ["fd00:7::/64"]
"""


@pytest.fixture
def six() -> Plan:
    keys = {name: public_key(generate_private_key()) for name in ("A", "B")}
    return plan_network(spec_from(SIX), None, keys)


# --- item 1: an address is only an address ----------------------------------------------------


def test_the_route_from_the_issue_is_refused() -> None:
    with pytest.raises(UnexpectedOutput, match="line 1"):
        parse_routes(HOSTILE_ROUTE, 6)


@pytest.mark.parametrize(
    "text",
    [
        "fd00:3::%x/64 dev br-lan\n",
        "default via fe80::1%$(id) dev wan\n",
        "10.0.0.0/8 dev wg0 src 10.0.0.1\n10.1.0.0/16 dev wg0 src ²\n",
        "fd00:3::/64 dev br-lan src fd00:3::1%br-lan\n",  # even a zone that looks harmless
    ],
)
def test_no_route_field_carries_a_zone_or_a_stray_character(text: str) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_routes(text, 6)


def test_a_router_sending_the_hostile_route_gets_no_facts() -> None:
    sections = openwrt_sections(routes6=(HOSTILE_ROUTE, 0))
    with pytest.raises(FactsError, match="ip -6 route show"):
        facts_from_sections("A", Platform.OPENWRT, sections)


@pytest.mark.parametrize(
    "line",
    [
        f"wg0\t{PEER}\t(none)\t[fd00::1%;id]:51820\t10.0.0.2/32\t0\t0\t0\toff",
        f"wg0\t{PEER}\t(none)\t10.0.0.9:51820\tfd00::%x/64\t0\t0\t0\toff",
        f"wg0\t{PEER}\t(none)\t10.0.0.9:99999\t10.0.0.2/32\t0\t0\t0\toff",
        f"wg0\t{PEER}\t(none)\t10.0.0.9:51820\t10.0.0.2/32\t0\t٣\t0\toff",
    ],
)
def test_dump_fields_with_zones_or_odd_numbers_are_refused(line: str) -> None:
    with pytest.raises(UnexpectedOutput, match="line 2"):
        parse_wg_dump(f"wg0\t(none)\t{KEY}\t51820\toff\n{line}\n")


def test_a_link_local_endpoint_keeps_its_interface_and_nothing_else() -> None:
    dump = parse_wg_dump(
        f"wg0\t(none)\t{KEY}\t51820\toff\n"
        f"wg0\t{PEER}\t(none)\t[fe80::1%eth0]:51820\t10.0.0.2/32\t0\t0\t0\toff\n"
    )
    endpoint = dump.interfaces[0].peers[0].endpoint
    assert endpoint is not None and endpoint.zone == "eth0"
    assert endpoint.ip == ipaddress.ip_address("fe80::1")
    assert str(endpoint) == "[fe80::1%eth0]:51820"


@pytest.mark.parametrize(
    "prefs",
    [
        {"AdvertiseRoutes": ["fd00:3::%;id/64"]},
        {"ExitNodeIP": "fd00::1%;id"},
        {"AdvertiseRoutes": "192.168.3.0/24"},
        {"AdvertiseRoutes": [24]},
    ],
)
def test_tailscale_prefs_carry_only_plain_prefixes(prefs: dict[str, object]) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_tailscale_prefs(json.dumps({"RouteAll": False, **prefs}))


def test_tailnet_addresses_with_zones_are_not_taken() -> None:
    status = {"BackendState": "Running", "Self": {"TailscaleIPs": ["100.64.0.1%;id", "fd7a::1"]}}
    state = parse_tailnet(
        ScriptSection("tailscale", 0, '{"RouteAll": false}', ""),
        ScriptSection("ts_status", 0, json.dumps(status), ""),
    )
    assert state.running and state.ip is None


# --- item 1, defence in depth: a hostile value that did get into the facts stays an argument ---


class RouterStub(Protocol):
    def __call__(self, script: str, *, stdin: bool = False) -> list[list[str]]: ...


def stub_router(tmp_path: Path) -> RouterStub:
    """Run a script as a router would, under BusyBox sh; returns each stub command's argv."""
    bin_dir, work, log = tmp_path / "bin", tmp_path / "work", tmp_path / "argv.log"
    bin_dir.mkdir()
    work.mkdir()
    for applet in ("sh", "awk", "sed", "cut", "head", "grep", "sleep", "mktemp", "rm", "cat"):
        (bin_dir / applet).symlink_to(BUSYBOX)
    (bin_dir / "touch").symlink_to(BUSYBOX)  # what the attack calls: it must be there
    answers = {
        "ping": "echo 'round-trip min/avg/max = 0.050/0.064/0.082 ms'",
        "ip": "echo '192.168.3.1 dev wg0 src 10.9.0.2'",
        "wg": ":",
    }
    for name, answer in answers.items():
        stub = bin_dir / name
        stub.write_text(
            f"#!{BUSYBOX} sh\n"
            # One write per call: the status script runs its pings in parallel, and one write
            # per argument let their lines interleave (a failure seen on a loaded machine).
            "sep=$(printf '\\037'); line=\n"
            'for a in "$0" "$@"; do line="$line$a$sep"; done\n'
            'printf "%s\\n" "$line" >> "$SW_LOG"\n'
            f"{answer}\n"
        )
        stub.chmod(0o755)

    def run(script: str, *, stdin: bool = False) -> list[list[str]]:
        """`sh -c script` as diagnose.collect runs sections, or the script on stdin as
        deploy.ssh's Session.script sends it (one compound command reading /dev/null)."""
        body = "{\n" + script.rstrip("\n") + "\n} </dev/null\n"
        subprocess.run(
            [BUSYBOX, "sh", "-s"] if stdin else [BUSYBOX, "sh", "-c", script],
            input=body if stdin else None,
            cwd=work,
            env={"PATH": str(bin_dir), "SW_LOG": str(log), "HOME": str(work)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        planted = [p for p in tmp_path.rglob("*PWNED*")]
        assert planted == [], f"the script ran an injected command: {planted}"
        text = log.read_text() if log.exists() else ""
        return [line.split("\037")[:-1] for line in text.splitlines() if line]

    return run


@needs_busybox
def test_the_stub_router_catches_an_injection(tmp_path: Path) -> None:
    """The harness itself: the issue's value, unquoted, does plant the file."""
    run = stub_router(tmp_path)
    with pytest.raises(AssertionError, match="injected"):
        run(f"ping -c 1 {HOSTILE}\n")


def hostile_facts(plan: Plan, site: str, src: str, dev: str) -> DeviceFacts:
    """Facts as if a parser had let a zone through: built directly, as Python allows."""
    facts = facts_from_sections(site, Platform.OPENWRT, openwrt_sections())
    lan = plan.site(site).lan[0]
    route = Route(dest=lan, dev=dev, proto="kernel", src=ipaddress.IPv6Address(src))
    return dataclasses.replace(facts, routes=(*facts.routes, route))


def every_argument(calls: list[list[str]]) -> set[str]:
    return {arg for call in calls for arg in call[1:]}


@needs_busybox
def test_verification_script_passes_hostile_facts_as_arguments(six: Plan, tmp_path: Path) -> None:
    facts = {
        "A": hostile_facts(six, "A", HOSTILE, "br-lan"),
        "B": hostile_facts(six, "B", "fd00:7::1%$(touch PWNED2)", "br-lan;touch${IFS}PWNED3"),
    }
    calls = stub_router(tmp_path)(verify_script(six, "B", facts, 0), stdin=True)
    args = every_argument(calls)
    assert HOSTILE in args and "fd00:7::1%$(touch PWNED2)" in args
    assert "br-lan;touch${IFS}PWNED3" in args


@needs_busybox
def test_status_pings_pass_hostile_facts_as_arguments(six: Plan, tmp_path: Path) -> None:
    def seen(site: str, src: str, dev: str, ip: str) -> Seen:
        route = Route(dest=six.site(site).lan[0], dev=dev, src=ipaddress.IPv6Address(src))
        tailnet = TailnetState(installed=True, state="Running", ip=ip)
        return Seen(None, WgDump(()), (route,), (), tailnet)

    both = {
        "A": seen("A", HOSTILE, "br-lan", "100.64.0.1;touch PWNED4"),
        "B": seen("B", "fd00:7::1%`touch PWNED5`", "br-lan", "100.64.0.2"),
    }
    [(name, body)] = ping_sections(six, "B", both)
    calls = stub_router(tmp_path)(build_script([(name, body)]))
    args = every_argument(calls)
    assert HOSTILE in args and "fd00:7::1%`touch PWNED5`" in args


@needs_busybox
def test_doctor_probes_pass_hostile_facts_as_arguments(six: Plan, tmp_path: Path) -> None:
    facts = {
        "A": hostile_facts(six, "A", HOSTILE, "br-lan"),
        "B": hostile_facts(six, "B", "fd00:7::1%;touch${IFS}PWNED6", "lan;touch${IFS}PWNED7"),
    }
    calls = stub_router(tmp_path)(build_script(probe_sections(six, "B", facts)))
    assert HOSTILE in every_argument(calls)
    assert "lan;touch${IFS}PWNED7" in every_argument(calls)


# --- item 5: keys hidden as wg reads them -----------------------------------------------------

SECRET = "cGxlYXNlIGRvIG5vdCBwcmludCB0aGlzIGtleSBldmVy"  # 44 characters, synthetic
HAND_WRITTEN = (
    "[Interface]\n"
    f"privatekey = {SECRET}1\n"
    f"PRIVATEKEY={SECRET}2\n"
    f"\tPresharedKey\t=\t{SECRET}3\n"
    f"  Private Key = {SECRET}4\n"  # wg drops every blank before it compares
    f"PrivateKey = {SECRET}5\r\n"
    f"PresharedKey\f=\v{SECRET}6\n"
    f"# PrivateKey = {SECRET}7 (an old one, commented out)\n"
    f"PrivateKey = {SECRET}8  # with a comment\n"
    "PrivateKey = (hidden)\n"
    "Address = 10.9.0.2/24\n"
    "[Peer]\n"
    f"PublicKey = {PEER}\n"
    "AllowedIPs = 10.9.0.0/24\n"
    "Endpoint = a.example.net:51820\n"
)


@pytest.fixture
def linux() -> Plan:
    text = SIX.replace('lan = ["fd00:7::/64"]', 'lan = ["fd00:7::/64"]\nplatform = "linux"')
    keys = {name: public_key(generate_private_key()) for name in ("A", "B")}
    return plan_network(spec_from(text), None, keys)


def hidden_as_expected(text: str) -> None:
    assert SECRET not in text
    lines = text.splitlines()
    assert "PrivateKey = (hidden)" in lines  # the line sitewire writes, as live.mask_secrets has it
    assert "privatekey = (hidden)" in lines and "PRIVATEKEY= (hidden)" in lines
    assert "\tPresharedKey\t= (hidden)" in lines and "  Private Key = (hidden)" in lines
    assert f"PublicKey = {PEER}" in lines and "Endpoint = a.example.net:51820" in lines
    assert "Address = 10.9.0.2/24" in lines and "[Peer]" in lines


@needs_busybox
@pytest.mark.parametrize("awk", [BUSYBOX, "mawk", "gawk", "original-awk"])
def test_the_router_hides_every_key_wg_would_read(linux: Plan, tmp_path: Path, awk: str) -> None:
    """BusyBox awk as on OpenWrt; the awks a Linux host may have."""
    found = shutil.which(awk)
    if found is None:
        pytest.skip(f"{awk} is not installed")
    conf = tmp_path / "wg0.conf"
    conf.write_text(HAND_WRITTEN)
    sections = [
        s for s in extra_sections(LINUX, linux.site("B"), [str(conf)]) if s[0] == "sw_file0"
    ]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("mktemp", "rm", "head", "cat"):
        (bin_dir / applet).symlink_to(BUSYBOX)
    (bin_dir / "awk").symlink_to(found)
    done = subprocess.run(
        [BUSYBOX, "sh", "-c", build_script(sections)],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    section = parse_sections(done.stdout)["sw_file0"]
    assert section.ok, section.stderr
    hidden_as_expected(section.stdout)


def test_the_controller_hides_a_key_the_router_let_through() -> None:
    hidden_as_expected(read.hide_secrets(HAND_WRITTEN))
    assert read.hide_secrets(read.hide_secrets(HAND_WRITTEN)) == read.hide_secrets(HAND_WRITTEN)
    sections = {"sw_file0": ScriptSection("sw_file0", 0, HAND_WRITTEN, "")}
    files, leaked = read.read_files(sections, ["/etc/wireguard/wg0.conf"])
    text = files["/etc/wireguard/wg0.conf"]
    assert text is not None and SECRET not in text
    assert leaked == ["/etc/wireguard/wg0.conf"]
    clean = {"sw_file0": ScriptSection("sw_file0", 0, read.hide_secrets(HAND_WRITTEN), "")}
    assert read.read_files(clean, ["/etc/wireguard/wg0.conf"])[1] == []


# --- item 7: no traceback, whatever the router prints ------------------------------------------

DEEP = '{"a": ' * 100_000 + "1" + "}" * 100_000


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_sections, "@@sitewire begin a\n\n@@sitewire stderr a\n\n@@sitewire end a ²\n"),
        (parse_sections, frame("a", "x").replace(" 0\n", f" {'9' * 5000}\n")),
        (parse_rc_local_probe, "² accept-routes\n"),
        (parse_rc_local_probe, "9" * 5000 + " -\n"),
        (parse_ip_links, "6: wg0: <UP> mtu ² qdisc noqueue\n"),
        (parse_ip_links, "٦: wg0: <UP> mtu 1420 qdisc noqueue\n"),
        (parse_ip_rules, "9" * 5000 + ":\tfrom all lookup main\n"),
        (parse_ip_rules, "٣:\tfrom all lookup main\n"),
        (parse_ip_links_json, '[{"ifindex": "x", "ifname": "a", "mtu": 1}]'),
        (parse_ip_links_json, '[{"ifindex": 1, "mtu": 1}]'),
        (parse_ip_links_json, '[{"ifindex": 1, "ifname": "a", "mtu": 1, "flags": 5}]'),
        (parse_ip_links_json, '[{"ifindex": 1, "ifname": "a", "mtu": 1, "operstate": []}]'),
        (parse_ip_links_json, "[" * 100_000),
        (parse_tailscale_prefs, DEEP),
        (parse_tailscale_prefs, '{"RouteAll": false, "NetfilterMode": ' + "9" * 5000 + "}"),
        (parse_tailscale_prefs, '{"RouteAll": false, "ExitNodeID": {"a": 1}}'),
        (lambda t: parse_routes(t, 4), "10.0.0.0/8 dev wg0 metric ²\n"),
        (parse_wg_dump, f"wg0\t(none)\t{KEY}\t{'9' * 5000}\toff\n"),
        (parse_wg_dump, f"wg0\t(none)\t{KEY}\t5_1820\toff\n"),
        # found by the 10,000-case fuzz run: a link line with nothing after its flags
        (parse_ip_links, "2: wan@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> \n"),
    ],
)
def test_odd_output_is_unexpected_output_not_a_traceback(
    parser: Callable[[str], object], text: str
) -> None:
    with pytest.raises(UnexpectedOutput):
        parser(text)


def test_odd_probe_answers_are_skipped() -> None:
    probes = parse_probes(
        ScriptSection(
            "sw_probes",
            0,
            "fits A ²\nfits B " + "9" * 5000 + "\nfits C 1400\naddr fd00::1%;id\naddr 10.0.0.1\n"
            "resolved a.example.net fe80::1%`id`\nresolved a.example.net 198.18.0.10\n",
            "",
        )
    )
    assert probes.fits == {"C": 1400}
    assert probes.addresses == ("10.0.0.1",)
    assert probes.resolved == {"a.example.net": ("198.18.0.10",)}


@pytest.mark.parametrize(
    "summary",
    [
        "round-trip min/avg/max = 1..2/1..2/3 ms",
        "rtt min/avg/max/mdev = 1/" + "9" * 400 + "/3/0 ms",
        "round-trip min/avg/max = ٣/٣/٣ ms",
    ],
)
def test_odd_ping_summaries_read_as_no_reply(summary: str) -> None:
    section = ScriptSection("sw_rtt", 0, f"rtt A wireguard {summary}\n", "")
    assert parse_pings(section) == {("A", "wireguard"): None}


@pytest.mark.parametrize("clock", ["²\n", "1_795_570_500\n", "9" * 5000 + "\n"])
def test_an_odd_clock_is_no_clock(clock: str) -> None:
    sections = {
        "clock": (clock, 0),
        "wg": ("", 0),
        "routes4": ("", 0),
        "routes6": ("", 0),
        "links": ("", 0),
        "tailscale": ("", 127),
        "ts_status": ("", 127),
    }
    seen = read_sections("A", {n: ScriptSection(n, rc, o, "") for n, (o, rc) in sections.items()})
    assert seen.clock is None
    facts = facts_from_sections("A", Platform.OPENWRT, openwrt_sections(clock=(clock, 0)))
    assert facts.clock is None


def test_deeply_nested_tailscale_status_is_no_status() -> None:
    state = parse_tailnet(
        ScriptSection("tailscale", 0, '{"RouteAll": false}', ""),
        ScriptSection("ts_status", 0, DEEP, ""),
    )
    assert state.installed and state.state is None


@pytest.mark.parametrize("ports", ["²", "51820-x", "x-51820", "9" * 5000, "1-" + "9" * 5000])
def test_doctor_reads_odd_firewall_ports_as_not_open(ports: str) -> None:
    plan = seed_plan()
    rule = (
        "\nconfig rule 'sw_allow_wg0'\n\toption src 'wan'\n\toption proto 'udp'\n"
        f"\toption dest_port '{ports}'\n\toption target 'ACCEPT'\n"
    )
    a = doctor_facts(plan, "A", uci_firewall=(firewall_uci(plan, "A", allow=rule), 0))
    live = seed_live(plan, {"A": a})
    findings = check_port_open(live, plan.site("A"))
    assert [f.check for f in findings] == ["port-closed"]


def test_doctor_reads_odd_saved_allowed_ips_as_a_difference() -> None:
    plan = seed_plan()
    live = seed_live(plan)
    facts = live.facts["A"]
    assert facts.network is not None
    section = next(s for s in facts.network.sections if s.name == "sw_peer_B")
    section.options["allowed_ips"] = ("fd00::%;id/64", "²")
    [finding] = check_saved_not_live(live, plan.site("A"))
    assert finding.check == "saved-not-live"
    assert "²" in finding.evidence[1]


def test_a_lan_route_whose_src_is_outside_the_lan_gives_no_lan_address(six: Plan) -> None:
    """Found by the fuzz tier: verify and probe scripts raised StopIteration on it."""
    site = six.site("A")
    prefix = site.lan[0]
    routes = f"{prefix} dev br-lan proto kernel scope link src 10.1.2.3\n"
    facts = doctor_facts(six, "A", routes4=(routes, 0))
    assert lan_address(facts, prefix) is None
    verify_script(six, "B", {"A": facts, "B": None}, 10)
    probe_sections(six, "A", {"A": facts})
