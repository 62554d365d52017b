"""The lab's firewall4: stock files plus sitewire's sections, rendered to one nft transaction."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from sitewire.lab.openwrt.fw4_render import render_ruleset
from sitewire.lab.openwrt.fw4_rules import parse_firewall
from sitewire.render.uci import Package
from sitewire.render.uci_store import UciStore
from tests.conftest import FIXTURES

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "expected" / "seed"
DATA = resources.files("sitewire.lab.openwrt").joinpath("data")
needs_nft = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None,
    reason="needs root, nft and unshare",
)


def configured(series: str, batch: str | None = None, lines: str = "") -> UciStore:
    store = UciStore.from_texts(
        {
            "firewall": DATA.joinpath(f"firewall.{series}").read_text(),
            "network": (FIXTURES / "network.stock-lan-wan.uci").read_text(),
        }
    )
    for text in (batch, lines):
        if text:
            assert store.batch(text).stderr == ""
    return store


def ruleset(store: UciStore) -> str:
    fw = parse_firewall(store.staged("firewall"), store.staged("network"))
    assert fw.warnings == []
    return render_ruleset(fw)


def chain(text: str, name: str) -> list[str]:
    match = re.search(rf"\n\tchain {re.escape(name)} {{\n(.*?)\n\t}}\n", text, re.S)
    assert match, f"no chain {name}"
    lines = [line.strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("type ")]


@pytest.fixture(params=["24.10", "25.12"])
def seeded(request: pytest.FixtureRequest) -> tuple[str, str]:
    batch = (GOLDEN / "A" / "uci-batch").read_text()
    return request.param, ruleset(configured(request.param, batch))


def test_stock_rules_render_as_firewall4_renders_them() -> None:
    text = ruleset(configured("24.10"))
    # Lines from firewall4's own test of its default configuration (tests/01_configuration).
    assert chain(text, "input_wan")[:7] == [
        'meta nfproto ipv4 udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"',
        'meta nfproto ipv4 icmp type 8 counter accept comment "!fw4: Allow-Ping"',
        'meta nfproto ipv4 meta l4proto igmp counter accept comment "!fw4: Allow-IGMP"',
        'meta nfproto ipv6 udp dport 546 counter accept comment "!fw4: Allow-DHCPv6"',
        "ip6 saddr fe80::/10 icmpv6 type . icmpv6 code { 130 . 0, 131 . 0, 132 . 0, 143 . 0 } "
        'counter accept comment "!fw4: Allow-MLD"',
        "meta nfproto ipv6 icmpv6 type { 128, 129, 1, 3, 133, 134 } limit rate 1000/second "
        'counter accept comment "!fw4: Allow-ICMPv6-Input"',
        "meta nfproto ipv6 icmpv6 type . icmpv6 code { 2 . 0, 4 . 0, 4 . 1, 135 . 0, 136 . 0 } "
        'limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"',
    ]
    assert chain(text, "forward_lan") == [
        'jump accept_to_wan comment "!fw4: Accept lan to wan forwarding"',
        "jump accept_to_lan",
    ]
    assert chain(text, "accept_to_wan") == [
        'meta nfproto ipv4 oifname "wan" ct state invalid counter drop '
        'comment "!fw4: Prevent NAT leakage"',
        'oifname "wan" counter accept comment "!fw4: accept wan IPv4/IPv6 traffic"',
    ]
    assert 'meta l4proto esp counter jump accept_to_lan comment "!fw4: Allow-IPSec-ESP"' in (
        chain(text, "forward_wan")
    )


def test_a_zone_forward_policy_covers_only_traffic_leaving_through_the_zone(
    seeded: tuple[str, str],
) -> None:
    _, text = seeded
    assert chain(text, "forward_sitewire") == [
        'jump accept_to_lan comment "!fw4: Accept sitewire to lan forwarding"',
        'jump accept_to_wan comment "!fw4: Accept sitewire to wan forwarding"',
        "jump accept_to_sitewire",
    ]
    assert chain(text, "accept_to_sitewire") == [
        'oifname "wg0" counter accept comment "!fw4: accept sitewire IPv4/IPv6 traffic"'
    ]
    assert chain(text, "forward")[-1] == "jump handle_reject"
    assert 'iifname "wg0" jump forward_sitewire' in " ".join(chain(text, "forward"))


def test_wan_forward_policy_differs_by_release(seeded: tuple[str, str]) -> None:
    series, text = seeded
    assert chain(text, "forward_wan")[-1] == (
        "jump drop_to_wan" if series == "25.12" else "jump reject_to_wan"
    )


def test_seed_rule_opens_the_listen_port_on_the_wan_and_mtu_fix_clamps(
    seeded: tuple[str, str],
) -> None:
    _, text = seeded
    assert 'udp dport 51820 counter accept comment "!fw4: Allow-sitewire-wg0"' in (
        chain(text, "input_wan")
    )
    assert any(
        'oifname "wg0" tcp flags syn / syn,fin,rst' in line
        for line in chain(text, "mangle_forward")
    )
    assert chain(text, "srcnat") == [
        'oifname "wan" jump srcnat_wan comment "!fw4: Handle wan IPv4/IPv6 srcnat traffic"'
    ]


def test_lab_management_device_is_accepted_first(seeded: tuple[str, str]) -> None:
    _, text = seeded
    assert chain(text, "input")[1].startswith('iifname "mgmt" accept')
    assert chain(text, "output")[1].startswith('oifname "mgmt" accept')


def test_rule_direction_follows_src_and_dest() -> None:
    lines = """
set firewall.r_in=rule
set firewall.r_in.src=lan
set firewall.r_in.dest_port=22
set firewall.r_in.target=DROP
set firewall.r_out=rule
set firewall.r_out.dest=wan
set firewall.r_out.proto=icmp
set firewall.r_out.target=REJECT
set firewall.r_fwd=rule
set firewall.r_fwd.src=lan
set firewall.r_fwd.dest=wan
add_list firewall.r_fwd.proto=udp
set firewall.r_fwd.dest_ip=192.0.2.0/24
set firewall.r_fwd.target=REJECT
set firewall.r_off=rule
set firewall.r_off.src=lan
set firewall.r_off.enabled=0
set firewall.r_off.target=ACCEPT
"""
    text = ruleset(configured("24.10", lines=lines))
    assert chain(text, "input_lan")[:2] == [
        'tcp dport 22 counter drop comment "!fw4: r_in"',
        'udp dport 22 counter drop comment "!fw4: r_in"',
    ]
    assert chain(text, "output_wan")[0] == (
        'meta l4proto { "icmp", "ipv6-icmp" } counter jump reject_to_wan comment "!fw4: r_out"'
    )
    assert chain(text, "forward_lan")[0] == (
        'meta l4proto udp ip daddr 192.0.2.0/24 counter jump reject_to_wan comment "!fw4: r_fwd"'
    )
    assert "r_off" not in text


def test_unusable_sections_are_skipped_with_a_warning() -> None:
    store = configured("24.10", lines="set firewall.x=forwarding\nset firewall.x.src=nowhere\n")
    fw = parse_firewall(store.staged("firewall"), store.staged("network"))
    assert fw.warnings == ["Section x option refers to unknown zone 'nowhere', skipping"]


@needs_nft
def test_ruleset_passes_nft_check_and_loads_in_a_namespace(seeded: tuple[str, str]) -> None:
    _, text = seeded
    check = subprocess.run(
        ["unshare", "--net", "nft", "-c", "-f", "-"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    script = "nft -f - && nft list chain inet fw4 forward_sitewire"
    loaded = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], input=text, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "jump accept_to_lan" in loaded.stdout


def test_empty_configuration_renders_defaults() -> None:
    text = render_ruleset(parse_firewall(Package("firewall"), None), mgmt=None)
    assert "policy drop;" in text and "mgmt" not in text


@needs_nft
def test_fw4_commands_keep_firewall4_state_rules_and_leave_lab_tables(tmp_path: Path) -> None:
    config = tmp_path / "etc/config"
    config.mkdir(parents=True)
    (config / "firewall").write_text(DATA.joinpath("firewall.24.10").read_text())
    (config / "network").write_text((FIXTURES / "network.stock-lan-wan.uci").read_text())
    fw4 = f"{sys.executable} -m sitewire.lab.openwrt.fw4"
    script = f"""
        nft add table inet lab_upstream
        {fw4} reload; echo "reload-before-start=$?"
        {fw4} start; echo "start=$?"
        {fw4} start; echo "second-start=$?"
        {fw4} -q network wan; {fw4} zone lan
        {fw4} check
        {fw4} flush; echo "flush=$?"
        nft list tables
    """
    env = {"PATH": os.environ["PATH"], "SITEWIRE_LAB_ROOT": str(tmp_path)}
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], env=env, capture_output=True, text=True
    )
    assert done.stdout.split("\n") == [
        "reload-before-start=1",
        "start=0",
        "second-start=1",
        "wan",
        "br-lan",
        "Ruleset passes nftables check.",
        "flush=0",
        "table inet lab_upstream",
        "",
    ]
    assert "The fw4 firewall appears to be already loaded." in done.stderr
