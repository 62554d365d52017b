"""What OpenWrt's own programs do in a lab router, where sitewire depends on it (issue 10).

Every lab router runs the real uci, ubusd, netifd with the release's wireguard handler, and fw4
(docs/lab.md). These tests pin the behaviour sitewire's apply and doctor are built on, so a
change of commit or handler that changes it fails here, not in a person's network:
- a factory router has no WireGuard until the package is installed, and netifd knows a
  handler only from its next start (an interface of an unknown proto is `none` / NO_DEVICE);
- `network reload` ignores peer changes on both releases; 24.10's handler has no renew and
  `ifup` re-creates the device; 25.12's renew applies them in place, keeping the session;
- fw4 writes rules only for devices that exist when it loads, and the hotplug after `ifup`
  reloads it;
- a zone's forward policy covers traffic inside the zone only.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sitewire.lab.host import host_argv, router_exec
from sitewire.lab.openwrt import userland
from sitewire.lab.state import LabState
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, router, unreachable, write_spec
from tests.lab.conftest import MakeLab

pytestmark = pytest.mark.lab


def _ok(state: LabState, site: str, *argv: str) -> str:
    done = router_exec(state, site, list(argv))
    assert done.returncode == 0, f"{' '.join(argv)} -> {done.returncode}: {done.stderr}"
    return done.stdout


def _status(state: LabState, site: str, iface: str) -> dict[str, object]:
    data = json.loads(_ok(state, site, "ubus", "call", f"network.interface.{iface}", "status"))
    assert isinstance(data, dict)
    return data


def _ifindex(state: LabState, site: str) -> str:
    """wg0's interface index, '' while it does not exist."""
    return router_exec(state, site, ["cat", "/sys/class/net/wg0/ifindex"]).stdout.strip()


def _routed(state: LabState, site: str, address: str) -> bool:
    return "dev wg0" in router_exec(state, site, ["ip", "route", "get", address]).stdout


def _allowed(state: LabState, site: str) -> list[str]:
    """`wg show wg0 allowed-ips`, peers sorted (wireguard-go lists them in no fixed order);
    nothing while ifup has the device deleted."""
    shown = router_exec(state, site, ["wg", "show", "wg0", "allowed-ips"])
    return sorted(shown.stdout.splitlines()) if shown.returncode == 0 else []


def _handshakes(state: LabState, site: str) -> list[str]:
    """`wg show wg0 latest-handshakes`, sorted like `_allowed`."""
    return sorted(router(state, site, "wg", "show", "wg0", "latest-handshakes").splitlines())


def _eventually(what: str, check: Callable[[], bool], seconds: float = 10.0) -> None:
    """ifup and renew return once netifd has the request; the handler runs after that."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.1)


def _carries(state: LabState, site: str, prefix: str) -> bool:
    return any(prefix in line.split("\t")[-1].split() for line in _allowed(state, site))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reload_with_a_new_peer_prefix(state: LabState, peers: list[str]) -> None:
    """A's peer B gains 192.168.9.0/24 in UCI, then `network reload`: the peers stay as they
    were on both releases (netifd compares no peer section)."""
    _ok(state, "A", "uci", "add_list", "network.sw_peer_B.allowed_ips=192.168.9.0/24")
    _ok(state, "A", "uci", "commit", "network")
    _ok(state, "A", "/etc/init.d/network", "reload")
    time.sleep(1)  # time enough for netifd to act on it, if it did
    assert peers and _allowed(state, "A") == peers, "reload must ignore a peer-only change"


def _applied(make_lab: MakeLab, tmp_path: Path, release: str) -> LabState:
    spec = write_spec(tmp_path / "network.toml", SEED.read_text())
    state = make_lab(spec_from(SEED.read_text()), release=release)
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    assert unreachable(state, spec) == []
    return state


@pytest.mark.parametrize("release", ["24.10", "25.12"])
def test_a_factory_router_runs_openwrts_programs_and_has_no_wireguard(
    make_lab: MakeLab, release: str
) -> None:
    state = make_lab(spec_from(SEED.read_text()), release=release)
    built = userland.rootfs_usr(release)
    for program in ("sbin/uci", "sbin/netifd", "sbin/ubusd", "sbin/fw4", "bin/ubus"):
        seen = router(state, "A", "sha256sum", f"/usr/{program}").split()[0]
        assert seen == _digest((built / program).read_bytes()), program
    for daemon in ("netifd", "ubusd"):
        pid = router(state, "A", "cat", f"/var/run/{daemon}.pid").strip()
        exe = Path(f"/proc/{pid}/exe")
        assert _digest(exe.read_bytes()) == _digest((built / "sbin" / daemon).read_bytes())
    handlers = json.loads(_ok(state, "A", "ubus", "call", "network", "get_proto_handlers"))
    assert "static" in handlers and "wireguard" not in handlers
    assert router_exec(state, "A", ["test", "-e", "/usr/bin/wg"]).returncode != 0
    assert router_exec(state, "A", ["test", "-e", "/lib/netifd/proto/wireguard.sh"]).returncode
    # netifd left the management link alone (the lab's SSH path), and brought up the rest.
    assert "198.19." in router(state, "A", "ip", "-4", "-o", "addr", "show", "dev", "mgmt")
    for iface in ("lan", "wan", "wan6", "loopback"):
        assert _status(state, "A", iface)["up"] is True, iface


def test_a_handler_installed_after_netifd_started_is_known_only_after_a_restart(
    make_lab: MakeLab,
) -> None:
    state = make_lab(spec_from(SEED.read_text()), release="24.10")
    batch = "set network.wg0=interface\nset network.wg0.proto='wireguard'\ncommit network\n"
    assert router_exec(state, "A", ["uci", "batch"], batch).returncode == 0
    _ok(state, "A", "/etc/init.d/network", "reload")
    unknown = _status(state, "A", "wg0")
    assert (unknown["proto"], unknown["up"]) == ("none", False)
    assert unknown["errors"] == [{"subsystem": "interface", "code": "NO_DEVICE"}]
    _ok(state, "A", "opkg", "update")
    _ok(state, "A", "opkg", "install", "wireguard-tools")
    _ok(state, "A", "/etc/init.d/network", "reload")
    assert _status(state, "A", "wg0")["proto"] == "none", "reload does not load handlers"
    _ok(state, "A", "/etc/init.d/network", "restart")
    handlers = json.loads(_ok(state, "A", "ubus", "call", "network", "get_proto_handlers"))
    assert "wireguard" in handlers
    assert _status(state, "A", "wg0")["proto"] == "wireguard"


def test_reload_ignores_peers_and_ifup_recreates_the_device_on_24_10(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    state = _applied(make_lab, tmp_path, "24.10")
    before, peers = _ifindex(state, "A"), _allowed(state, "A")
    _reload_with_a_new_peer_prefix(state, peers)
    _ok(state, "A", "ubus", "call", "network.interface.wg0", "renew")
    time.sleep(1)  # time enough for a handler that has a renew to run it
    assert _allowed(state, "A") == peers, "the classic handler has no renew"
    assert _ifindex(state, "A") == before
    _ok(state, "A", "ifup", "wg0")
    _eventually("the new peer is live", lambda: _carries(state, "A", "192.168.9.0/24"))
    assert _ifindex(state, "A") != before, "ifup re-creates the device"
    _eventually("a route to the new prefix", lambda: _routed(state, "A", "192.168.9.1"))


def test_renew_applies_peer_changes_in_place_on_25_12(make_lab: MakeLab, tmp_path: Path) -> None:
    state = _applied(make_lab, tmp_path, "25.12")
    before, peers = _ifindex(state, "A"), _allowed(state, "A")
    handshake = _handshakes(state, "A")
    _reload_with_a_new_peer_prefix(state, peers)
    _ok(state, "A", "ubus", "call", "network.interface.wg0", "renew")
    _eventually("renew makes the peer live", lambda: _carries(state, "A", "192.168.9.0/24"))
    assert _ifindex(state, "A") == before, "renew keeps the device"
    assert _handshakes(state, "A") == handshake, "the session with B survives renew"
    _eventually("a route to the new prefix", lambda: _routed(state, "A", "192.168.9.1"))
    _ok(state, "A", "ifup", "wg0")
    _eventually("ifup re-creates the device", lambda: _ifindex(state, "A") not in ("", before))


def test_fw4_knows_only_devices_that_exist_and_the_ifup_hotplug_reloads_it(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    state = _applied(make_lab, tmp_path, "24.10")
    assert 'iifname "wg0"' in router(state, "A", "nft", "list", "chain", "inet", "fw4", "input")
    _ok(state, "A", "ifdown", "wg0")
    _ok(state, "A", "fw4", "-q", "reload")
    assert 'iifname "wg0"' not in router(state, "A", "nft", "list", "chain", "inet", "fw4", "input")
    _ok(state, "A", "ifup", "wg0")
    for _ in range(50):
        if 'iifname "wg0"' in router(state, "A", "nft", "list", "chain", "inet", "fw4", "input"):
            break
        router(state, "A", "sleep", "0.1")
    else:
        raise AssertionError("the ifup hotplug did not reload fw4")


def test_a_zones_forward_policy_does_not_cross_zones(make_lab: MakeLab, tmp_path: Path) -> None:
    state = _applied(make_lab, tmp_path, "24.10")
    _ok(state, "A", "uci", "delete", "firewall.sw_fwd_sitewire_lan")
    _ok(state, "A", "uci", "commit", "firewall")
    _ok(state, "A", "/etc/init.d/firewall", "reload")
    assert not _host_ping(state, "B", "192.168.3.100"), "sitewire->lan is gone"
    # A's LAN still starts flows to B (lan->sitewire); the replies are established traffic.
    assert _host_ping(state, "A", "192.168.7.100")


def _host_ping(state: LabState, site: str, address: str) -> bool:
    argv = host_argv(state, site, ["ping", "-c", "2", "-W", "1", address])
    return subprocess.run(argv, capture_output=True, check=False, timeout=30).returncode == 0
