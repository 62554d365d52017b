"""Device output parsers against captures (tests/captures/openwrt) and marked synthetic lines."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sitewire.diagnose.facts import FactsError, PackageManager, facts_from_sections
from sitewire.diagnose.parse import (
    HIDDEN,
    Handler,
    IpRule,
    NetfilterMode,
    ScriptSection,
    SecretState,
    SocketAddress,
    UnexpectedOutput,
    default_route,
    lookup52_priority,
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
from sitewire.diagnose.script import PRELUDE
from sitewire.diagnose.summary import format_facts
from sitewire.spec.model import Platform
from tests.conftest import FIXTURES

net = ipaddress.ip_network


def capture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def runs(text: str, pattern: str) -> list[str]:
    """Each run of consecutive lines matching `pattern`, with the capture's `# ...` notes cut."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if re.match(pattern, line):
            blocks[-1].append(re.sub(r"\s+#.*", "", line))
        elif blocks[-1]:
            blocks.append([])
    return ["\n".join(b) + "\n" for b in blocks if b]


# --- wg show all dump ------------------------------------------------------------------------

DUMP = "".join(
    line + "\n"
    for line in capture("wg-show-all-dump.format.md").splitlines()
    if line[:4] == "wg0\t"
)
PRIVATE = "AAsWISw3Qk1YY255hI+apbC7xtHc5/L9CBMeKTQ/SlU="  # the capture's synthetic keys
PSK = "SlVga3aBjJeirbjDztnk7/oFEBsmMTxHUl1oc36JlJ8="


def test_wg_dump_capture_reads_as_documented() -> None:
    dump = parse_wg_dump(DUMP)
    assert dump.names == ("wg0",)
    wg0 = dump.interfaces[0]
    assert wg0.private_key_set and wg0.private_key is SecretState.SENT
    assert wg0.public_key == "ucTP2uXw+wYRHCcyPUhTXml0f4qVoKu2wczX4u34Aw4="
    assert (wg0.listen_port, wg0.fwmark) == (51820, None)
    first, second = wg0.peers
    assert first.public_key == "JTA7RlFcZ3J9iJOeqbS/ytXg6/YBDBciLThDTllkb3o="
    assert first.preshared_key_set
    assert first.endpoint == SocketAddress(ipaddress.ip_address("203.0.113.9"), 51820)
    assert first.allowed_ips == (net("10.99.0.2/32"), net("192.168.20.0/24"))
    assert (first.latest_handshake, first.rx_bytes, first.tx_bytes) == (1738411180, 1842296, 923140)
    assert first.keepalive == 25
    assert not second.preshared_key_set and second.endpoint is None
    assert second.latest_handshake is None  # 0 = never
    assert second.allowed_ips == (net("10.99.0.3/32"), net("192.168.30.0/24"))
    assert wg0.peer(second.public_key) is second


def test_private_and_preshared_keys_are_nowhere_in_the_parsed_dump() -> None:
    dump = parse_wg_dump(DUMP)
    assert PRIVATE in DUMP and PSK in DUMP
    for text in (repr(dump), str(dump), repr(dump.interfaces[0].peers)):
        assert PRIVATE not in text and PSK not in text
    assert dump.secrets_sent


def test_hidden_keys_count_as_set_and_as_not_sent() -> None:
    # SYNTHETIC: what the collector's awk filter sends, IPv6 endpoint, fwmark, no keepalive.
    text = (
        f"wg0\t{HIDDEN}\t{'A' * 43}=\t51820\t0xca6c\n"
        f"wg0\t{'B' * 43}=\t{HIDDEN}\t[fd00::1]:51820\t(none)\t0\t0\t0\toff\n"
        f"wg1\t(none)\t(none)\t0\toff\n"
    )
    dump = parse_wg_dump(text)
    wg0, wg1 = dump.interfaces
    assert wg0.private_key is SecretState.REDACTED and wg0.fwmark == 0xCA6C
    peer = wg0.peers[0]
    assert peer.preshared_key is SecretState.REDACTED and peer.keepalive is None
    assert str(peer.endpoint) == "[fd00::1]:51820" and peer.allowed_ips == ()
    assert not wg1.private_key_set and wg1.public_key is None
    assert not dump.secrets_sent


def test_single_interface_dump_has_no_name_column() -> None:
    lines = [line.split("\t", 1)[1] for line in DUMP.splitlines()]
    dump = parse_wg_dump("\n".join(lines), interface="wg7")
    assert dump.names == ("wg7",) and len(dump.interfaces[0].peers) == 2


@pytest.mark.parametrize(
    "line",
    [
        f"wg0\t{PRIVATE}\tnot-a-key\t51820\toff",  # SYNTHETIC: bad public key
        f"wg0\t{PRIVATE}\t{PRIVATE}\t51820",  # SYNTHETIC: a field short
        f"wg0\t{PRIVATE}\t{PRIVATE}\tport\toff",  # SYNTHETIC: port not a number
    ],
)
def test_malformed_dump_lines_are_refused_without_quoting_them(line: str) -> None:
    with pytest.raises(UnexpectedOutput) as caught:
        parse_wg_dump(line + "\n")
    assert PRIVATE not in str(caught.value)
    assert "line 1" in str(caught.value)


def test_peer_before_interface_is_refused() -> None:
    with pytest.raises(UnexpectedOutput, match="before its interface"):
        parse_wg_dump(DUMP.splitlines()[1] + "\n")


# --- ip rule ---------------------------------------------------------------------------------

RULES = runs(capture("ip-rule-and-table52.tailscale.txt"), r"\d+:\s")


def test_every_captured_rule_block_parses() -> None:
    assert len(RULES) >= 5
    for block in RULES:
        assert parse_ip_rules(block)


def test_canonical_tailscale_rules_put_lookup_52_at_5270() -> None:
    rules = parse_ip_rules(RULES[0])
    assert [r.priority for r in rules] == [0, 5210, 5230, 5250, 5270, 32766, 32767]
    assert rules[1] == IpRule(5210, "lookup", "main", fwmark="0x80000/0xff0000")
    assert rules[3].action == "unreachable" and rules[3].table is None
    assert rules[4] == IpRule(5270, "lookup", "52")
    assert not rules[4].has_selector
    assert lookup52_priority(rules) == 5270


def test_hand_made_pin_below_tailscale_and_unmasked_busybox_fwmark() -> None:
    pinned = next(parse_ip_rules(b) for b in RULES if "5000:" in b)
    assert pinned[1] == IpRule(5000, "lookup", "main", dest="10.0.0.0/16")
    assert lookup52_priority(pinned) == 5270
    unmasked = next(parse_ip_rules(b) for b in RULES if "fwmark 0x80000 lookup" in b)
    assert unmasked[1].fwmark == "0x80000"


def test_vendor_rules_after_5270_on_a_gl_inet_router() -> None:
    rules = [
        r for block in RULES if "9920" in block or "6000" in block for r in parse_ip_rules(block)
    ]
    assert IpRule(6000, "lookup", "main", fwmark="0x8000/0xf000") in rules
    assert IpRule(9920, "blackhole", None, iif="br-lan") in rules
    assert lookup52_priority(rules) == 5270


def test_lookup_52_is_read_not_assumed_beside_mwan3() -> None:
    # SYNTHETIC: the mwan3 shape (reference §6.1), BusyBox spacing with trailing blanks.
    text = (
        "0:\tfrom all lookup local \n"
        "1310:\tfrom all fwmark 0x80000/0xff0000 lookup main \n"
        "1370:\tfrom all lookup 52 \n"
        "2001:\tfrom all fwmark 0x100/0x3f00 lookup 1 \n"
        "5100:\tnot from all to 192.168.20.0/24 lookup 52 \n"
        "32766:\tfrom all lookup main \n"
    )
    rules = parse_ip_rules(text)
    assert lookup52_priority(rules) == 1370
    assert rules[4].invert and rules[4].dest == "192.168.20.0/24"
    assert lookup52_priority(parse_ip_rules("0:\tfrom all lookup local\n")) is None


def test_rule_extras_are_kept_and_garbage_refused() -> None:
    # SYNTHETIC: iproute2 selectors sitewire does not model.
    rule = parse_ip_rules(
        "100:\tfrom 10.0.0.0/8 ipproto udp dport 51820 iif lo [detached] goto 200\n"
    )
    assert rule[0].src == "10.0.0.0/8" and rule[0].iif == "lo" and rule[0].action == "goto"
    assert ("ipproto", "udp") in rule[0].extra and ("[detached]", "") in rule[0].extra
    with pytest.raises(UnexpectedOutput, match="line 2"):
        parse_ip_rules("0:\tfrom all lookup local\nRTNETLINK answers: no\n")


# --- ip route --------------------------------------------------------------------------------

ROUTES = runs(
    capture("ip-rule-and-table52.tailscale.txt"),
    r"(\d+\.|default |throw |10\.|8\.8\.8\.8 |\s+cache )",
)


def test_table_52_captures_parse() -> None:
    parsed = [parse_routes(block) for block in ROUTES]
    assert all(parsed)
    first = parsed[0]
    assert [str(r.dest) for r in first] == [
        "100.81.246.73/32",
        "100.100.100.100/32",
        "100.104.167.17/32",
    ]
    assert {r.dev for r in first} == {"tailscale0"}


def test_exit_node_table_has_a_default_and_throw_routes() -> None:
    # The capture elides lines with `...` between the default route and the throw routes.
    default = default_route(next(parse_routes(b) for b in ROUTES if b.startswith("default")))
    block = next(parse_routes(b) for b in ROUTES if "throw" in b)
    assert default is not None and default.dev == "tailscale0"
    throws = [str(r.dest) for r in block if r.type == "throw"]
    assert throws == ["127.0.0.0/8", "192.168.1.0/24", "192.168.8.0/23"]


def test_route_get_output_names_table_52_and_skips_the_cache_line() -> None:
    (route,) = next(parse_routes(b) for b in ROUTES if "8.8.8.8" in b)
    assert (route.dev, route.table) == ("tailscale0", "52")
    assert ("from", "192.168.8.209") in route.extra and ("mark", "0x8000") in route.extra


def test_accepted_subnet_route_in_table_52() -> None:
    block = next(parse_routes(b) for b in ROUTES if "10.42.168.0" in b)
    assert next(r for r in block if r.dest == net("10.42.168.0/24")).table == "52"


def test_main_table_v4_and_v6_as_a_lab_router_prints_them() -> None:
    # SYNTHETIC (shape recorded from a lab router and from BusyBox `ip`).
    v4 = parse_routes(
        "default via 198.18.0.1 dev wan proto static \n"
        "default via 198.18.9.1 dev wwan proto static metric 10 \n"
        "192.168.3.0/24 dev wg0 proto static scope link \n"
        "192.168.5.0/24 dev wg0 proto kernel scope link src 192.168.5.2 linkdown \n"
    )
    assert default_route(v4) == v4[0]
    assert v4[3].src == ipaddress.ip_address("192.168.5.2") and ("linkdown", "") in v4[3].extra
    v6 = parse_routes("default via fd00::1 dev eth0  metric 1024 pref medium\n", family=6)
    assert v6[0].dest == net("::/0") and v6[0].metric == 1024
    assert parse_routes("default via inet6 fe80::1 dev wan\n")[0].via == ipaddress.ip_address(
        "fe80::1"
    )
    with pytest.raises(UnexpectedOutput):
        parse_routes("Error: ipv4: FIB table does not exist.\n")


# --- ip link ---------------------------------------------------------------------------------

LINKS = (  # SYNTHETIC: recorded from a lab router (iproute2) and from BusyBox `ip -o link`
    "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group "
    "default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
    "2: wan@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT "
    "group default qlen 1000\\    link/ether de:a0:c7:2b:c2:27 brd ff:ff:ff:ff:ff:ff "
    "link-netnsid 0\n"
    "6: wg0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1420 qdisc pfifo_fast state UNKNOWN "
    "mode DEFAULT group default qlen 500\\    link/none \n"
    "7: pppoe-wan: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1492 qdisc fq_codel qlen 3\\    "
    "link/ppp \n"
)


def test_ip_oneline_links() -> None:
    links = {link.name: link for link in parse_ip_links(LINKS)}
    assert links["wan"].mtu == 1500 and links["wan"].parent == "if3" and links["wan"].up
    assert links["wg0"].link_type == "none" and links["wg0"].state == "UNKNOWN"
    assert links["pppoe-wan"].mtu == 1492 and links["pppoe-wan"].state is None


def test_ip_json_links() -> None:
    # SYNTHETIC: iproute2 `ip -j link` shape.
    text = json.dumps(
        [
            {"ifindex": 2, "ifname": "wan", "link": "if3", "flags": ["UP"], "mtu": 1492},
            {"ifindex": 6, "ifname": "wg0", "flags": [], "mtu": 1420, "operstate": "UNKNOWN"},
        ]
    )
    wan, wg0 = parse_ip_links_json(text)
    assert (wan.name, wan.mtu, wan.parent, wan.up) == ("wan", 1492, "if3", True)
    assert not wg0.up
    with pytest.raises(UnexpectedOutput):
        parse_ip_links_json("{}")
    with pytest.raises(UnexpectedOutput, match="line 1"):
        parse_ip_links('Object "lnk" is unknown, try "ip help".\n')


# --- tailscale debug prefs -------------------------------------------------------------------


def prefs_capture() -> str:
    return "".join(
        line + "\n"
        for line in capture("tailscale-debug-prefs.json.txt").splitlines()
        if not line.startswith("#")
    )


def test_captured_prefs() -> None:
    prefs = parse_tailscale_prefs(prefs_capture())
    assert not prefs.route_all and prefs.advertise_routes == ()
    assert prefs.netfilter_mode is NetfilterMode.ON
    assert not prefs.uses_exit_node and not prefs.advertises_exit_node
    assert prefs.want_running and not prefs.no_snat and not prefs.shields_up


def test_prefs_of_an_exit_node_that_accepts_routes() -> None:
    data = json.loads(prefs_capture())
    data.update(  # SYNTHETIC values on the captured shape
        RouteAll=True,
        AdvertiseRoutes=["0.0.0.0/0", "::/0", "192.168.3.0/24"],
        ExitNodeIP="100.64.0.7",
        NetfilterMode=1,
    )
    prefs = parse_tailscale_prefs("Warning: client version differs\n" + json.dumps(data))
    assert prefs.route_all and prefs.advertises_exit_node
    assert prefs.advertised_subnets == (net("192.168.3.0/24"),)
    assert prefs.uses_exit_node and prefs.exit_node_ip == ipaddress.ip_address("100.64.0.7")
    assert prefs.netfilter_mode is NetfilterMode.NODIVERT


@pytest.mark.parametrize("text", ["", "failed to connect to local tailscaled", '{"Foo": 1}'])
def test_prefs_that_are_not_prefs(text: str) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_tailscale_prefs(text)


def test_status_json_is_not_mistaken_for_prefs() -> None:
    with pytest.raises(UnexpectedOutput, match="RouteAll"):
        parse_tailscale_prefs(capture("tailscale-status.dufour.json"))


# --- releases and packages -------------------------------------------------------------------


def test_openwrt_release() -> None:
    # SYNTHETIC: /etc/openwrt_release as OpenWrt's base-files writes it.
    release = parse_openwrt_release(
        "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='24.10.2'\nDISTRIB_REVISION='r28739-d9340319c6'\n"
        "DISTRIB_TARGET='mediatek/filogic'\nDISTRIB_ARCH='aarch64_cortex-a53'\n"
        "DISTRIB_DESCRIPTION='OpenWrt 24.10.2 r28739-d9340319c6'\nDISTRIB_TAINTS=''\n"
    )
    assert (release.release, release.series) == ("24.10.2", "24.10")
    assert release.target == "mediatek/filogic" and release.revision == "r28739-d9340319c6"
    snapshot = parse_openwrt_release("DISTRIB_RELEASE='SNAPSHOT'\n")
    assert snapshot.series == "SNAPSHOT"
    with pytest.raises(UnexpectedOutput):
        parse_openwrt_release("cat: /etc/openwrt_release: No such file or directory\n")


def test_os_release() -> None:
    # SYNTHETIC: Debian 12's /etc/os-release.
    release = parse_os_release(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nID=debian\n# comment\nID_LIKE="rhel fedora"\n'
    )
    assert (release.id, release.version_id) == ("debian", "12")
    assert release.pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert release.id_like == ("rhel", "fedora")


def test_opkg_list_installed() -> None:
    # SYNTHETIC: `opkg list-installed` lines.
    packages = parse_opkg_installed(
        "kmod-wireguard - 6.6.73-r1\nluci-proto-wireguard - 25.019.51014~3b7c2b1\n"
        "wireguard-tools - 1.0.20210914-r4\n"
    )
    assert "wireguard-tools" in packages and "wg" not in packages and len(packages) == 3
    assert packages.version("kmod-wireguard") == "6.6.73-r1"
    with pytest.raises(UnexpectedOutput):
        parse_opkg_installed("opkg: command not found\n")


def test_apk_list_installed_splits_name_and_version() -> None:
    # SYNTHETIC: apk v3 `apk list --installed` lines.
    packages = parse_apk_installed(
        "kmod-wireguard-6.12.57-r1 x86_64 {linux} (GPL-2.0-only) [installed]\n"
        "libstdcpp6-13.3.0-r4 x86_64 {gcc} (GPL-3.0-with-GCC-exception) [installed]\n"
        "luci-proto-wireguard-26.040.64338~d2d4e7c x86_64 {luci-proto-wireguard} "
        "(Apache-2.0) [installed]\n"
        "wireguard-tools-1.0.20250521-r1 x86_64 {wireguard-tools} (GPL-2.0-only) [installed]\n"
    )
    assert packages.version("kmod-wireguard") == "6.12.57-r1"
    assert packages.version("libstdcpp6") == "13.3.0-r4"
    assert packages.version("luci-proto-wireguard") == "26.040.64338~d2d4e7c"
    assert "wireguard-tools" in packages


@pytest.mark.parametrize(
    ("probe", "handler"),
    [
        ("", Handler.ABSENT),
        ("file /lib/netifd/proto/wireguard.sh\n", Handler.CLASSIC),
        ("file /lib/netifd/proto/wireguard.sh\nsyncconf\nrenew\n", Handler.SYNCCONF),
        ("file /lib/netifd/proto/wireguard.sh\nrenew\n", Handler.SYNCCONF),
        ("file /lib/netifd/proto/wireguard.uc\n", Handler.UCODE),
    ],
)
def test_handler_probe(probe: str, handler: Handler) -> None:
    assert parse_handler(probe) is handler


def test_rc_local_probe() -> None:
    rc = parse_rc_local_probe("3 accept-routes\n7 -\n")
    assert rc.runs_tailscale_up and rc.tailscale_up_lines == (3, 7)
    assert rc.accept_routes_lines == (3,)
    assert not parse_rc_local_probe("").runs_tailscale_up


# --- the collector's framing and facts -------------------------------------------------------


def frame(name: str, stdout: str, rc: int = 0, stderr: str = "") -> str:
    """What the script's `section` function prints."""
    return (
        f"@@sitewire begin {name}\n{stdout}\n@@sitewire stderr {name}\n{stderr}\n"
        f"@@sitewire end {name} {rc}\n"
    )


def test_sections_keep_output_exactly() -> None:
    text = (
        frame("a", "x\ny\n") + frame("b", "no newline") + frame("c", "", 127, "sh: c: not found\n")
    )
    sections = parse_sections(text)
    assert sections["a"] == ScriptSection("a", 0, "x\ny\n", "")
    assert sections["b"].stdout == "no newline"
    assert not sections["c"].ok and sections["c"].error == "sh: c: not found"
    with pytest.raises(UnexpectedOutput, match="cut short"):
        parse_sections(frame("a", "x")[:-30])


ROUTER_KEY = "MMZVkC7Oz6MhvcDLUUqwkwk7EcGNenlW6Ny6tljnp1A="
PEER_B = "BbPF7Lw4WvCoNwkm85wf5IHZVCVSYfZqpkfnsUDUdUQ="
NETWORK = f"""package network

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'

config interface 'wg0'
\toption proto 'wireguard'
\toption private_key '{HIDDEN}'
\toption listen_port '51820'

config wireguard_wg0 'sw_peer_B'
\toption public_key '{PEER_B}'
\toption preshared_key '{ROUTER_KEY}'
"""


def openwrt_sections(**override: tuple[str, int]) -> dict[str, ScriptSection]:
    """SYNTHETIC: a configured 24.10 router as the collector frames it (shapes from the lab)."""
    outputs = {
        "clock": ("1795570500\n", 0),
        "openwrt_release": ("DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='24.10.0'\n", 0),
        "os_release": ('NAME="OpenWrt"\nID="openwrt"\nVERSION_ID="24.10.0"\n', 0),
        "commands": ("opkg /bin/opkg\nuci /sbin/uci\nwg /usr/bin/wg\nip /sbin/ip\n", 0),
        "packages": ("kmod-wireguard - 6.6.73-r1\nwireguard-tools - 1.0.20210914-r4\n", 0),
        "handler": ("file /lib/netifd/proto/wireguard.sh\n", 0),
        "uci_network": (NETWORK, 0),
        "uci_firewall": ("package firewall\n\nconfig defaults\n\toption input 'REJECT'\n", 0),
        "uci_changes": (f"network.wg0.private_key='{ROUTER_KEY}'\nnetwork.wg0.mtu='1400'\n", 0),
        "wg": (
            f"wg0\t{HIDDEN}\t{'A' * 43}=\t51820\toff\n"
            f"wg0\t{PEER_B}\t{HIDDEN}\t198.18.0.11:51820\t192.168.7.0/24\t1795570490\t1\t2\toff\n",
            0,
        ),
        "rules4": ("0:\tfrom all lookup local\n5270:\tfrom all lookup 52\n", 0),
        "rules6": ("", 2),
        "routes4": ("default via 198.18.0.1 dev wan proto static\n", 0),
        "routes6": ("", 0),
        "table52_4": ("", 2),
        "table52_6": ("", 2),
        "links": (LINKS, 0),
        "tailscale": ("", 127),
        "rc_local": ("4 accept-routes\n", 0),
        "watchdog": ("line 2\nenabled\n", 0),
        "space": ("/etc 7424\n/tmp 60244\n", 0),
        "wg_quick": ("", 0),
    }
    outputs.update(override)
    return {n: ScriptSection(n, rc, out, "") for n, (out, rc) in outputs.items()}


def test_facts_from_a_configured_openwrt_router() -> None:
    facts = facts_from_sections("A", Platform.OPENWRT, openwrt_sections())
    assert facts.openwrt is not None and facts.openwrt.series == "24.10"
    assert facts.package_manager is PackageManager.OPKG and facts.wireguard_tools
    assert facts.handler is Handler.CLASSIC
    assert facts.lookup52 == 5270 and facts.lookup52_v6 is None
    assert (facts.wan_device, facts.wan_mtu) == ("wan", 1500)
    assert facts.wireguard_interfaces == ("wg0",)
    assert not facts.tailscale.installed
    assert facts.pending_changes == (
        f"network.wg0.private_key='{HIDDEN}'",
        "network.wg0.mtu='1400'",
    )
    assert any("rc.local" in w and "--accept-routes" in w for w in facts.warnings)
    assert any("uncommitted" in w for w in facts.warnings)
    summary = format_facts(facts)
    assert "handler classic" in summary and "sw_peer_B: 192.168.7.0/24" in summary
    assert "handshake 10 s ago" in summary and "MTU 1500" in summary


def test_a_key_the_router_failed_to_hide_is_dropped_and_reported() -> None:
    facts = facts_from_sections("A", Platform.OPENWRT, openwrt_sections())
    assert ROUTER_KEY not in repr(facts) and ROUTER_KEY not in facts.summary()
    assert facts.network is not None
    peer = facts.network.section("sw_peer_B")
    assert peer is not None and peer.options["preshared_key"] == HIDDEN
    assert any("in clear" in note for note in facts.notes)


@pytest.mark.parametrize(
    ("platform", "override", "message", "fix"),
    [
        (Platform.OPENWRT, {"openwrt_release": ("", 1)}, "not an OpenWrt", 'platform = "linux"'),
        (Platform.LINUX, {}, "runs OpenWrt 24.10.0", 'platform = "openwrt"'),
        (Platform.OPENWRT, {"rules4": ("", 127)}, "ip -4 rule show", "install"),
        (Platform.OPENWRT, {"uci_network": ("", 1)}, "uci export network", "uci export network"),
        (Platform.OPENWRT, {"wg": ("(unexpected line with 3 fields)\n", 0)}, "wg show", "report"),
        (Platform.OPENWRT, {"packages": ("Collected errors:\n", 0)}, "opkg list-installed", ""),
    ],
)
def test_device_trouble_becomes_one_line_with_site_and_fix(
    platform: Platform, override: dict[str, tuple[str, int]], message: str, fix: str
) -> None:
    with pytest.raises(FactsError) as caught:
        facts_from_sections("A", platform, openwrt_sections(**override))
    error = caught.value
    assert error.where == "A" and message in error.message
    assert error.fix is not None and fix in error.fix
    assert "\n" not in str(error)


def test_tailscale_installed_but_not_answering() -> None:
    sections = openwrt_sections(
        commands=("opkg /bin/opkg\nuci /sbin/uci\ntailscale /usr/sbin/tailscale\n", 0),
        tailscale=("", 1),
    )
    sections["tailscale"] = ScriptSection("tailscale", 1, "", "failed to connect to tailscaled\n")
    facts = facts_from_sections("A", Platform.OPENWRT, sections)
    assert facts.tailscale.installed and facts.tailscale.prefs is None
    assert any("failed to connect" in w for w in facts.warnings)


# --- the on-router filters under BusyBox -----------------------------------------------------


@pytest.fixture
def busybox_path(tmp_path: Path) -> str:
    """A PATH where awk and sed are BusyBox's, as on OpenWrt (the lab routers use the host's)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("needs busybox")
    for applet in ("awk", "sed", "mktemp", "rm", "head"):
        (tmp_path / applet).symlink_to(busybox)
    return f"{tmp_path}:{os.environ.get('PATH', '')}"


def busybox_sh(script: str, path: str, data: str) -> str:
    env = {"PATH": path, "DATA": data}
    done = subprocess.run(
        ["busybox", "sh", "-c", PRELUDE + script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return done.stdout


def test_busybox_awk_hides_dump_keys_before_they_leave_the_router(busybox_path: str) -> None:
    out = busybox_sh('printf "%s" "$DATA" | hide_dump', busybox_path, DUMP + "odd\tline\n")
    assert PRIVATE not in out and PSK not in out
    dump_lines = out.splitlines()
    assert dump_lines[-1] == "(unexpected line with 2 fields)"
    dump = parse_wg_dump("\n".join(dump_lines[:-1]))
    assert dump.interfaces[0].private_key is SecretState.REDACTED
    assert [p.preshared_key for p in dump.interfaces[0].peers] == [
        SecretState.REDACTED,
        SecretState.UNSET,
    ]


def test_busybox_sed_hides_uci_keys(busybox_path: str) -> None:
    text = NETWORK + f"network.wg0.private_key='{ROUTER_KEY}'\n+network.x.preshared_key+='{PSK}'\n"
    out = busybox_sh('printf "%s" "$DATA" | hide_keys', busybox_path, text)
    assert ROUTER_KEY not in out and PSK not in out
    assert f"option preshared_key '{HIDDEN}'" in out and PEER_B in out
    assert f"private_key='{HIDDEN}'" in out


def test_filters_keep_the_status_of_the_command_before_the_pipe(busybox_path: str) -> None:
    script = 'fails() { echo out; return 3; }\nthrough fails hide_keys; echo "rc=$?"'
    assert busybox_sh(script, busybox_path, "") == "out\nrc=3\n"
