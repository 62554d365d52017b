"""A fresh lab router becomes a factory-state OpenWrt router; provisioning again changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sitewire.lab.openwrt.provision import (
    firewall_text,
    network_text,
    parse_site,
    provision_command,
)
from sitewire.render.uci import parse_uci

SITE: dict[str, Any] = {
    "site": "A",
    "index": 0,
    "platform": "openwrt",
    "netns": "swl-home-A",
    "release": "25.12",
    "wan4": "198.18.0.10/24",
    "wan6": "fd53:5357:0:1::10/64",
    "mgmt": "198.19.1.10/24",
    "lans": [
        {"device": "br-lan", "router": ["192.168.3.1/24", "fd00:3::1/64"], "host": []},
        {"device": "lan1", "router": ["192.168.4.1/24"], "host": []},
    ],
}


def test_network_has_lans_wan_and_wan6_as_static_interfaces() -> None:
    network = parse_uci(network_text(parse_site(SITE)), "network")
    options = {s.name: s.options for s in network.sections}
    assert options["lan"] == {
        "device": "br-lan",
        "proto": "static",
        "ipaddr": "192.168.3.1",
        "netmask": "255.255.255.0",
        "ip6addr": "fd00:3::1/64",
    }
    assert options["lan2"]["device"] == "lan1"
    assert options["wan"]["gateway"] == "198.18.0.1"
    assert options["wan6"] == {
        "device": "wan",
        "proto": "static",
        "ip6addr": "fd53:5357:0:1::10/64",
        "ip6gw": "fd53:5357:0:1::1",
    }
    assert "mgmt" not in network_text(parse_site(SITE))


def test_firewall_is_the_release_stock_file_with_extra_lans_in_the_lan_zone() -> None:
    site = parse_site(SITE)
    firewall = parse_uci(firewall_text(site), "firewall")
    lan, wan = firewall.sections_of_type("zone")
    assert lan.options["network"] == ("lan", "lan2")
    assert wan.options["forward"] == "DROP"
    only = parse_site({**SITE, "release": "24.10", "lans": SITE["lans"][:1]})
    assert firewall_text(only).startswith("config defaults\n\toption syn_flood\t1\n")
    assert "option forward\t\tREJECT\n\toption masq" in firewall_text(only)


def _snapshot(root: Path) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(("var/", "tmp/")):
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_provision_makes_a_factory_router_and_is_idempotent(tmp_path: Path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SITEWIRE_LAB_ROOT": str(tmp_path)}
    command = ["unshare", "--net", *provision_command(SITE)]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    snapshot = _snapshot(tmp_path)
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert _snapshot(tmp_path) == snapshot
    assert "DISTRIB_RELEASE='25.12.0'" in (tmp_path / "etc/openwrt_release").read_text()
    for shim in ("sbin/uci", "sbin/ifup", "sbin/fw4", "bin/ubus", "usr/bin/apk"):
        assert os.access(tmp_path / shim, os.X_OK), shim
    assert not (tmp_path / "bin/opkg").exists()
    assert not (tmp_path / "usr/bin/wg").exists()
    assert os.readlink(tmp_path / "usr/bin/sh") == "busybox"
    root_line = (tmp_path / "etc/passwd").read_text().splitlines()[0]
    assert root_line.startswith("root:") and root_line.endswith(":/bin/sh")
    assert list((tmp_path / "etc/crontabs").iterdir()) == []
    state = json.loads((tmp_path / "var/run/lab-netifd/state.json").read_text())
    assert state["running"] and "wireguard" not in state["handlers"]
