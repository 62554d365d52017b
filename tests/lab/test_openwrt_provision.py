"""A fresh lab router becomes a factory-state OpenWrt router through its own uci; provisioning
again changes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sitewire.lab.openwrt import userland
from sitewire.lab.openwrt.provision import (
    firewall_batch,
    network_batch,
    parse_site,
    stock_firewall,
    system_batch,
)
from sitewire.lab.router import provision
from tests.conftest import SEED, spec_from
from tests.lab.applying import router
from tests.lab.conftest import MakeLab

SITE: dict[str, Any] = {
    "site": "A",
    "release": "25.12",
    "wan4": "198.18.0.10/24",
    "wan6": "fd53:5357:0:1::10/64",
    "lans": [
        {"device": "br-lan", "router": ["192.168.3.1/24", "fd00:3::1/64"]},
        {"device": "lan1", "router": ["192.168.4.1/24"]},
    ],
}


def _uci(confdir: Path, *argv: str, stdin: str = "") -> str:
    """The built uci of 24.10, on a private config and save directory."""
    usr = userland.rootfs_usr("24.10")
    env = {"LD_LIBRARY_PATH": str(usr / "lib"), "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    argv = (str(usr / "sbin/uci"), "-c", str(confdir), "-t", str(confdir / ".save"), *argv)
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    try:
        userland.userland("24.10")
    except userland.UserlandMissing as exc:
        pytest.skip(str(exc))
    (tmp_path / ".save").mkdir()
    return tmp_path


def test_network_has_lans_wan_and_wan6_as_static_interfaces(confdir: Path) -> None:
    (confdir / "network").write_text("")
    _uci(confdir, "batch", stdin=network_batch(parse_site(SITE)))
    shown = _uci(confdir, "show", "network").splitlines()
    for line in (
        "network.lan.device='br-lan'",
        "network.lan.proto='static'",
        "network.lan.ipaddr='192.168.3.1'",
        "network.lan.netmask='255.255.255.0'",
        "network.lan.ip6addr='fd00:3::1/64'",
        "network.lan2.device='lan1'",
        "network.wan.gateway='198.18.0.1'",
        "network.wan6.ip6addr='fd53:5357:0:1::10/64'",
        "network.wan6.ip6gw='fd53:5357:0:1::1'",
    ):
        assert line in shown, line
    assert not any("mgmt" in line for line in shown)


def test_firewall_is_the_release_stock_file_with_extra_lans_in_the_lan_zone(
    confdir: Path,
) -> None:
    site = parse_site(SITE)
    (confdir / "firewall").write_text(stock_firewall(site.release))
    _uci(confdir, "batch", stdin=firewall_batch(site))
    assert _uci(confdir, "get", "firewall.@zone[0].network") == "lan lan2\n"
    assert _uci(confdir, "get", "firewall.@zone[1].forward") == "DROP\n"
    only = parse_site({**SITE, "release": "24.10", "lans": SITE["lans"][:1]})
    assert firewall_batch(only) == ""
    assert stock_firewall(only.release).startswith("config defaults\n\toption syn_flood\t1\n")
    (confdir / "system").write_text("")
    _uci(confdir, "batch", stdin=system_batch(site))
    assert _uci(confdir, "get", "system.@system[0].hostname") == "A\n"


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for the lab")
def test_provisioning_again_changes_nothing(make_lab: MakeLab) -> None:
    state = make_lab(spec_from(SEED.read_text()), release="25.12")
    files = "find /etc /usr/lib/netifd /usr/sbin -xdev -type f | sort | xargs sha256sum"
    before = router(state, "A", "sh", "-c", files)
    netifd = router(state, "A", "cat", "/var/run/netifd.pid")
    provision(state, state.layout.router("A"))
    assert router(state, "A", "sh", "-c", files) == before
    assert router(state, "A", "cat", "/var/run/netifd.pid") == netifd, "netifd kept running"
    assert "DISTRIB_RELEASE='25.12.0'" in router(state, "A", "cat", "/etc/openwrt_release")
    assert router(state, "A", "readlink", "/usr/bin/sh") == "busybox\n"
    assert router(state, "A", "ls", "/etc/crontabs") == ""
