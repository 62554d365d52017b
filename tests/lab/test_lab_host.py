"""The lab's host plumbing: pure layout tables, then real namespaces, packets, SSH and teardown."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import stat
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sitewire.cli.main import run
from sitewire.errors import ExitCode, InputError
from sitewire.lab import host as lab_host
from sitewire.lab import router as lab_router
from sitewire.lab import wiring as lab_wiring
from sitewire.lab.host import (
    host_exec,
    lab_down,
    lab_move,
    lab_status,
    lab_up,
    router_argv,
    router_exec,
)
from sitewire.lab.layout import compute_layout, hosts_text, layout_from_json, layout_to_json
from sitewire.lab.netns import NsId, netns_path, ns_id, pids_in
from sitewire.lab.router import inherited_mounts, ssh_banner, with_root_shell
from sitewire.lab.state import LabState, lab_dir, load_state
from sitewire.plan import plan_network
from tests.conftest import SEED, spec_from
from tests.lab.conftest import LINUX_SPEC, MakeLab, unique_name

LITERALS_SPEC = """
[network]
name = "literals"
overlay = "192.168.5.0/24"

[sites.A]
platform = "linux"
lan = ["192.168.3.0/24"]
endpoint = "203.0.113.5:51820"

[sites.B]
platform = "linux"
lan = ["192.168.7.0/24"]
endpoint = "[2001:db8::7]:51820"

[sites.C]
platform = "linux"
lan = ["192.168.9.0/24"]
"""

# --- pure: the layout -------------------------------------------------------------------------


def test_seed_layout_follows_the_contract() -> None:
    layout = compute_layout(spec_from(SEED.read_text()), "home", 7)
    a, b = layout.routers
    assert (a.netns, str(a.wan4), str(a.wan6), str(a.mgmt)) == (
        "swl-home-A",
        "198.18.0.10/24",
        "fd53:5357:0:1::10/64",
        "198.19.7.10/24",
    )
    assert (str(b.wan4), str(b.wan6), str(b.mgmt)) == (
        "198.18.0.11/24",
        "fd53:5357:0:1::11/64",
        "198.19.7.11/24",
    )
    assert [(lan.device, lan.host_netns) for lan in a.lans] == [("br-lan", "swl-home-A-h0")]
    assert [str(x) for x in a.lans[0].router + a.lans[0].host] == [
        "192.168.3.1/24",
        "192.168.3.100/24",
    ]
    assert (a.firewalled, b.firewalled) == (False, True)
    assert (layout.root_link, str(layout.root_mgmt)) == ("swl7", "198.19.7.1/24")
    assert layout.dns_names() == {
        "a.example.net": (
            ipaddress.IPv4Address("198.18.0.10"),
            ipaddress.IPv6Address("fd53:5357:0:1::10"),
        )
    }
    assert layout.netns_names() == (
        "swl-home-A-h0",
        "swl-home-B-h0",
        "swl-home-A",
        "swl-home-B",
        "swl-home-inet",
        "swl-home-mgmt",
    )
    assert layout_from_json(layout_to_json(layout)) == layout


def test_lans_pair_families_and_small_lans_get_host_two() -> None:
    spec = spec_from(
        """
        [network]
        name = "n"
        overlay = "10.9.0.0/24"
        [sites.A]
        lan = ["192.168.3.0/24", "fd00:3::/64", "10.1.0.0/28"]
        """
    )
    lans = compute_layout(spec, "n", 1).routers[0].lans
    assert [lan.device for lan in lans] == ["br-lan", "lan1"]
    assert [str(a) for a in lans[0].router] == ["192.168.3.1/24", "fd00:3::1/64"]
    assert [str(a) for a in lans[0].host] == ["192.168.3.100/24", "fd00:3::100/64"]
    assert [str(a) for a in lans[1].host] == ["10.1.0.2/28"]


def test_literal_endpoints_are_the_wan_addresses() -> None:
    layout = compute_layout(spec_from(LITERALS_SPEC), "lit", 1)
    a, b, _ = layout.routers
    assert (str(a.wan4), a.fixed_wan) == ("203.0.113.5/32", True)
    assert (str(b.wan4), str(b.wan6)) == ("198.18.0.11/24", "2001:db8::7/128")
    assert [str(n) for n in layout.off_subnet_wans()] == ["203.0.113.5/32", "2001:db8::7/128"]
    assert layout.dns_names() == {}
    with pytest.raises(InputError, match="WAN address is fixed"):
        layout.moved("A")
    assert str(layout.moved("C").router("C").wan4) == "198.18.0.13/24"


def test_a_literal_inside_the_lab_internet_must_not_take_another_routers_address() -> None:
    clash = LITERALS_SPEC.replace("203.0.113.5", "198.18.0.11")
    with pytest.raises(InputError, match=r"198\.18\.0\.11, the lab WAN address of B"):
        compute_layout(spec_from(clash), "lit", 1)
    inside = compute_layout(spec_from(LITERALS_SPEC.replace("203.0.113.5", "198.18.0.40")), "l", 1)
    assert str(inside.routers[0].wan4) == "198.18.0.40/24"
    with pytest.raises(InputError, match="cannot be a lab WAN address"):
        compute_layout(spec_from(LITERALS_SPEC.replace("203.0.113.5", "127.0.0.1")), "l", 1)


def test_move_takes_the_next_free_number_and_rewrites_hosts() -> None:
    layout = compute_layout(spec_from(SEED.read_text()), "home", 1)
    moved = layout.moved("A")
    assert (str(moved.router("A").wan4), str(moved.router("A").wan6)) == (
        "198.18.0.12/24",
        "fd53:5357:0:1::12/64",
    )
    assert str(moved.moved("A").router("A").wan4) == "198.18.0.13/24"
    assert "198.18.0.12\ta.example.net\nfd53:5357:0:1::12\ta.example.net\n" in hosts_text(moved)


def test_inherited_mounts_drop_run_and_nsfs_copies() -> None:
    mountinfo = "\n".join(
        [
            "27 1 254:0 / / rw - ext4 /dev/vda rw",
            "42 27 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw",
            "43 42 0:4 net:[1] /run/netns/swl-x-A rw - nsfs nsfs rw",
            "44 27 254:0 /run/sitewire-lab/x /run/sitewire-lab/x rw - ext4 /dev/vda rw",
            "45 27 0:4 net:[2] /var/lib/other\\040ns rw - nsfs nsfs rw",
            "46 27 0:5 / /proc rw - proc proc rw",
        ]
    )
    assert inherited_mounts(mountinfo) == ["/run/netns", "/run/sitewire-lab/x", "/var/lib/other ns"]


def test_root_shell_is_replaced_only_for_root() -> None:
    passwd = "root:x:0:0:root:/root:/bin/bash\nrooty:x:5:5::/home/r:/bin/bash\n"
    assert with_root_shell(passwd, "/bin/sh") == (
        "root:x:0:0:root:/root:/bin/sh\nrooty:x:5:5::/home/r:/bin/bash\n"
    )


# --- real: namespaces, packets, SSH -----------------------------------------------------------


def _ping(argv_runner: Callable[[list[str]], subprocess.CompletedProcess[str]], dst: str) -> bool:
    family = "-6" if ":" in dst else "-4"
    return argv_runner(["busybox", "ping", family, "-c", "1", "-W", "1", dst]).returncode == 0


def router_pings(state: LabState, site: str, dst: str) -> bool:
    return _ping(lambda argv: router_exec(state, site, argv), dst)


def host_pings(state: LabState, site: str, dst: str, lan: int = 0) -> bool:
    return _ping(lambda argv: host_exec(state, site, argv, lan=lan), dst)


LISTEN = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family)
s.bind((sys.argv[1], 7000))
s.listen()
print("ready", flush=True)
s.settimeout(5)
c, _ = s.accept()
c.sendall(b"hi")
"""
CONNECT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=1.5)
print(c.recv(2).decode())
"""


@contextmanager
def listening(state: LabState, site: str, address: str) -> Iterator[None]:
    argv = router_argv(state, site, [sys.executable, "-c", LISTEN, address])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


def tcp_connects(state: LabState, src: str, dst: str, address: str) -> bool:
    with listening(state, dst, address):
        done = router_exec(state, src, [sys.executable, "-c", CONNECT, address], timeout=10)
        return done.returncode == 0 and done.stdout.strip() == "hi"


@pytest.mark.lab
def test_seed_lab_has_every_namespace_and_its_state(seed_lab: LabState) -> None:
    for name in seed_lab.layout.netns_names():
        assert netns_path(name).exists(), name
    saved = load_state(seed_lab.name)
    assert saved.layout == seed_lab.layout and saved.pids.keys() == {"A", "B"}
    (summary,) = lab_status(seed_lab.name)
    assert [(r.site, r.up, r.ssh) for r in summary.routers] == [
        ("A", True, True),
        ("B", True, True),
    ]


@pytest.mark.lab
def test_lan_hosts_reach_their_router_and_not_the_root_namespace(seed_lab: LabState) -> None:
    assert host_pings(seed_lab, "A", "192.168.3.1")
    assert host_pings(seed_lab, "B", "192.168.7.1")
    # The router would forward it to the management network; the guard there drops it.
    assert not host_pings(seed_lab, "A", str(seed_lab.layout.root_mgmt.ip))
    assert router_pings(seed_lab, "A", str(seed_lab.layout.root_mgmt.ip))


@pytest.mark.lab
def test_the_site_without_endpoint_admits_nothing_new(seed_lab: LabState) -> None:
    a, b = (str(r.wan4.ip) for r in seed_lab.layout.routers)
    a6, b6 = (str(r.wan6.ip) for r in seed_lab.layout.routers)
    # Stock fw4 on the OpenWrt routers admits ping on the WAN; B's upstream admits nothing new.
    assert router_pings(seed_lab, "B", a) and router_pings(seed_lab, "B", a6)
    assert not router_pings(seed_lab, "A", b) and not router_pings(seed_lab, "A", b6)


@pytest.mark.lab
def test_upstream_firewall_is_stateful_for_tcp(linux_lab: LabState) -> None:
    # Plain Linux routers run no fw4, so only B's upstream firewall decides.
    a, b = (str(r.wan4.ip) for r in linux_lab.layout.routers)
    assert tcp_connects(linux_lab, "B", "A", a)
    assert not tcp_connects(linux_lab, "A", "B", b)


@pytest.mark.lab
def test_endpoint_names_resolve_to_lab_wan_addresses_in_routers(seed_lab: LabState) -> None:
    v4 = router_exec(seed_lab, "B", ["getent", "ahostsv4", "a.example.net"])
    v6 = router_exec(seed_lab, "B", ["getent", "ahostsv6", "a.example.net"])
    assert v4.stdout.split()[0] == "198.18.0.10"
    assert v6.stdout.split()[0] == "fd53:5357:0:1::10"
    assert router_exec(seed_lab, "A", ["getent", "hosts", "a.example.net"]).returncode == 0


@pytest.mark.lab
def test_openwrt_routers_are_factory_fresh_busybox_systems(seed_lab: LabState) -> None:
    shell = router_exec(seed_lab, "A", ["sh", "-c", "readlink /bin/sh; getent passwd root"])
    assert shell.stdout.splitlines() == ["busybox", "root:x:0:0:root:/root:/bin/sh"]
    assert router_exec(seed_lab, "A", ["test", "-e", "/usr/bin/wg"]).returncode == 1
    devices = router_exec(seed_lab, "A", ["ls", "/sys/class/net"]).stdout.split()
    assert sorted(devices) == ["br-lan", "lo", "mgmt", "wan"]
    private = router_exec(seed_lab, "A", ["sh", "-c", "touch /run/x /etc/lab/shared-x; ls /run"])
    assert "x" in private.stdout.split() and not Path("/run/x").exists()
    assert "x" not in router_exec(seed_lab, "B", ["ls", "/run"]).stdout.split()
    assert (seed_lab.shared / "shared-x").exists()


@pytest.mark.lab
def test_openwrt_provisioning_runs_inside_each_router(
    make_lab: MakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = 'printf %s "$1" > /etc/provisioned; ls /sys/class/net > /etc/provisioned-net'
    fake = types.ModuleType(lab_router.PROVISION_MODULE)
    monkeypatch.setattr(
        fake,
        "provision_command",
        lambda site: ["sh", "-c", script, "sh", json.dumps(site)],
        raising=False,
    )
    monkeypatch.setitem(sys.modules, lab_router.PROVISION_MODULE, fake)
    state = make_lab(spec_from(SEED.read_text()), release="25.12")
    site = json.loads(router_exec(state, "B", ["cat", "/etc/provisioned"]).stdout)
    assert site == {
        "site": "B",
        "release": "25.12",
        "wan": {
            "device": "wan",
            "ipaddr": "198.18.0.11/24",
            "ip6addr": "fd53:5357:0:1::11/64",
            "gateway": "198.18.0.1",
            "gateway6": "fd53:5357:0:1::1",
            "routes": [],
        },
        "lans": [{"device": "br-lan", "ipaddr": ["192.168.7.1/24"], "ip6addr": []}],
        "mgmt_device": "mgmt",
        "python": sys.executable,
    }
    assert "wan" in router_exec(state, "B", ["cat", "/etc/provisioned-net"]).stdout.split()
    assert not Path("/etc/provisioned").exists() and not state.notes


@pytest.mark.lab
def test_dropbear_answers_with_the_recorded_host_key(seed_lab: LabState) -> None:
    for router in seed_lab.layout.routers:
        assert ssh_banner(str(router.mgmt.ip)).startswith("SSH-2.0-dropbear")
    known = seed_lab.known_hosts.read_text().splitlines()
    assert [line.split()[:2] for line in known] == [
        [f"198.19.{seed_lab.layout.k}.10", "ssh-ed25519"],
        [f"198.19.{seed_lab.layout.k}.11", "ssh-ed25519"],
    ]
    assert stat.S_IMODE(seed_lab.client_key.stat().st_mode) == 0o600
    keys = router_exec(
        seed_lab, "A", ["stat", "-c", "%a", "/root/.ssh", "/root/.ssh/authorized_keys"]
    )
    assert keys.stdout.split() == ["700", "600"]


def _ssh(state: LabState, site: str, command: str) -> subprocess.CompletedProcess[str]:
    address = str(state.layout.router(site).mgmt.ip)
    options = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    options += ["-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "ConnectTimeout=5"]
    argv = ["ssh", *options, "-i", str(state.client_key), f"root@{address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.lab
@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_ssh_logs_in_with_the_lab_key_under_busybox(seed_lab: LabState) -> None:
    done = _ssh(seed_lab, "A", "readlink /proc/$$/exe; ip -br link show wan")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "/usr/bin/busybox"
    assert done.stdout.splitlines()[1].startswith("wan")


@pytest.mark.lab
@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_without_ssh_keygen_the_client_key_comes_from_dropbear(
    make_lab: MakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == "ssh-keygen" else which(cmd))
    state = make_lab(spec_from(LINUX_SPEC))
    assert state.client_key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    done = _ssh(state, "A", "echo ok")
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


@pytest.mark.lab
def test_linux_routers_keep_the_host_shell_and_get_dual_stack_lans(linux_lab: LabState) -> None:
    root = router_exec(linux_lab, "A", ["getent", "passwd", "root"]).stdout.strip()
    host_root = subprocess.run(["getent", "passwd", "root"], capture_output=True, text=True)
    assert root == host_root.stdout.strip()
    assert router_exec(linux_lab, "A", ["test", "-L", "/usr/bin/sh"]).returncode == (
        0 if Path("/usr/bin/sh").is_symlink() else 1
    )
    assert host_pings(linux_lab, "A", "fd00:3::1") and host_pings(linux_lab, "B", "192.168.7.1")
    assert not linux_lab.notes


@pytest.mark.lab
def test_literal_endpoints_are_reachable_at_their_own_address(make_lab: MakeLab) -> None:
    state = make_lab(spec_from(LITERALS_SPEC))
    assert router_pings(state, "C", "203.0.113.5")
    assert router_pings(state, "C", "2001:db8::7")
    assert router_pings(state, "A", "2001:db8::7") and router_pings(state, "B", "203.0.113.5")
    assert tcp_connects(state, "C", "A", "203.0.113.5")


@pytest.mark.lab
def test_move_gives_a_new_wan_address_and_updates_every_hosts_file(seed_lab: LabState) -> None:
    old, new = lab_move(seed_lab, "A")
    assert (str(old.wan4), str(new.wan4)) == ("198.18.0.10/24", "198.18.0.12/24")
    wan = router_exec(seed_lab, "A", ["ip", "-br", "address", "show", "dev", "wan"]).stdout
    assert "198.18.0.12/24" in wan and "fd53:5357:0:1::12/64" in wan and "198.18.0.10/" not in wan
    for site in ("A", "B"):
        resolved = router_exec(seed_lab, site, ["getent", "ahostsv4", "a.example.net"]).stdout
        assert resolved.split()[0] == "198.18.0.12"
    assert router_pings(seed_lab, "B", "198.18.0.12") and not router_pings(
        seed_lab, "B", "198.18.0.10"
    )
    assert router_pings(seed_lab, "B", "fd53:5357:0:1::12")
    assert load_state(seed_lab.name).layout.router("A").wan4 == new.wan4


# --- real: nothing left behind ----------------------------------------------------------------


def _root_view(lab: str) -> dict[str, Any]:
    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    mounts = Path("/proc/self/mountinfo").read_text()
    return {
        "netns": sorted(p.name for p in Path("/run/netns").glob(f"swl-{lab}-*")),
        "links": sorted(
            line.split(":")[1].strip().split("@")[0]
            for line in out("ip", "-o", "link").splitlines()
        ),
        "mounts": [line for line in mounts.splitlines() if str(lab_dir(lab)) in line],
        "nft": out("nft", "list", "tables"),
        "state": lab_dir(lab).exists(),
    }


def _lab_ids(state: LabState) -> list[NsId]:
    paths = [netns_path(n) for n in state.layout.netns_names()]
    paths += [state.mnt(r.site) for r in state.layout.routers]
    return [i for i in map(ns_id, paths) if i is not None]


def _assert_nothing_left(lab: str, before: dict[str, Any], ids: list[NsId]) -> None:
    after = _root_view(lab)
    assert after == {**before, "netns": [], "mounts": [], "state": False}
    assert pids_in(ids) == []


@pytest.mark.lab
def test_lab_down_leaves_nothing_and_can_be_repeated(make_lab: MakeLab) -> None:
    name = unique_name()
    before = _root_view(name)
    state = make_lab(spec_from(SEED.read_text()), name=name)
    up_view = _root_view(name)
    assert f"swl{state.layout.k}" in up_view["links"] and up_view["mounts"]
    ids = _lab_ids(state)
    assert pids_in(ids)  # dropbear
    lab_down(name)
    _assert_nothing_left(name, before, ids)
    lab_down(name, missing_ok=True)
    with pytest.raises(InputError, match=f"no lab named '{name}' is up"):
        lab_down(name)


@pytest.mark.lab
@pytest.mark.parametrize("where", ["wire_router", "start_dropbear", "then"])
def test_a_failure_half_way_up_leaves_nothing(
    where: str, monkeypatch: pytest.MonkeyPatch, make_lab: MakeLab
) -> None:
    name = unique_name()
    before = _root_view(name)
    seen: list[LabState] = []

    def fail_on_second(original: Callable[..., Any]) -> Callable[..., Any]:
        def step(state: LabState, *args: Any) -> Any:
            seen.append(state)
            if len(seen) == 2:
                raise RuntimeError("injected")
            return original(state, *args)

        return step

    then = None
    if where == "wire_router":
        monkeypatch.setattr(lab_host, "wire_router", fail_on_second(lab_wiring.wire_router))
    elif where == "start_dropbear":
        monkeypatch.setattr(lab_router, "start_dropbear", fail_on_second(lab_router.start_dropbear))
    else:

        def then(state: LabState) -> None:
            seen.extend([state, state])
            raise RuntimeError("injected")

    plan = plan_network(spec_from(SEED.read_text()))
    try:
        with pytest.raises(RuntimeError, match="injected"):
            lab_up(plan, name, then=then)
        assert seen
        _assert_nothing_left(name, before, _lab_ids(seen[0]))
    finally:
        lab_down(name, missing_ok=True)


@pytest.mark.lab
def test_up_refuses_a_lab_that_exists_and_leaves_it_alone(seed_lab: LabState) -> None:
    plan = plan_network(spec_from(SEED.read_text()))
    with pytest.raises(InputError, match="already up"):
        lab_up(plan, seed_lab.name)
    assert lab_status(seed_lab.name)[0].routers[0].ssh


# --- the command line, in-process -------------------------------------------------------------


@pytest.mark.lab
def test_cli_up_status_exec_move_down(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "network.toml"
    shutil.copy(SEED, spec)
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name]) == ExitCode.OK
        out, _ = capfd.readouterr()
        assert f"lab {name} up in" in out and "ssh up" in out
        assert run(["lab", "status", "--name", name]) == ExitCode.OK
        assert "198.18.0.11/24" in capfd.readouterr()[0]
        assert run(["lab", "exec", "A", "--name", name, "--", "sh", "-c", "exit 7"]) == 7
        code = run(["lab", "exec", "B", "--host", "--name", name, "--", "ip", "-4", "-br", "a"])
        assert code == 0 and "192.168.7.100/24" in capfd.readouterr()[0]
        assert run(["lab", "exec", "C", "--name", name, "--", "true"]) == ExitCode.BAD_INPUT
        assert "'C' is not a site" in capfd.readouterr()[1]
        assert run(["lab", "move", "A", "--name", name]) == ExitCode.OK
        assert "198.18.0.10/24 => 198.18.0.12/24" in capfd.readouterr()[0]
        assert run(["lab", "down", "--name", name]) == ExitCode.OK
        assert run(["lab", "down", "--name", name]) == ExitCode.BAD_INPUT
        assert f"no lab named '{name}' is up" in capfd.readouterr()[1]
    finally:
        lab_down(name, missing_ok=True)


def test_cli_refuses_without_root(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert run(["lab", "status"]) == ExitCode.BAD_INPUT
    assert "the lab needs root" in capsys.readouterr().err
