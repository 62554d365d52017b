"""The Tailscale stand-in: prefs semantics in-process; the hijack it reproduces, with real packets.

Lab tests build two routers (network namespace + private mount namespace with its own /run, as
docs/lab.md has them) on a shared "internet" bridge, each with one LAN host. Both routers
advertise their LAN on the lab tailnet; router B drops new inbound traffic on its WAN (a
stateful firewall), so the tailnet only works because B keeps its path open with keepalives.
Plain routes in `main` between the LANs stand in for sitewire's WireGuard, so the tests show
what table 52 does to them.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sitewire.lab.tailnet.base import Paths, TailnetError
from sitewire.lab.tailnet.control import Endpoint, Node, Tailnet, ipv6_for, tailnet_ipv4
from sitewire.lab.tailnet.prefs import (
    ACCIDENTAL_UP_PREFIX,
    DEFAULT_CONTROL_URL,
    SET_FLAGS,
    UP_FLAGS,
    FlagError,
    Prefs,
    apply_set,
    apply_up,
    calc_advertise_routes,
    parse_flags,
)
from sitewire.lab.tailnet.routing import QUAD_100, netstate, rule_base
from sitewire.lab.tailscale import main, provision_command
from tests.conftest import FIXTURES

FIXTURE_PREFS = FIXTURES / "tailscale-debug-prefs.json.txt"
FIXTURE_STATUS = FIXTURES / "tailscale-status.with-subnet-router-peer.SYNTHETIC.json"
LAN = {"a": ipaddress.ip_network("192.168.3.0/24"), "b": ipaddress.ip_network("192.168.7.0/24")}


def _fixture_json(path: Path) -> dict[str, object]:
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("#"))
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


# ---------------------------------------------------------------------------------------------
# In-process: flags, prefs, netmap → routes. No root needed.


def test_flags_parse_like_go() -> None:
    values, rest = parse_flags(
        UP_FLAGS, ["--accept-routes=false", "-advertise-routes", "10.0.0.0/24", "--ssh", "x", "-y"]
    )
    assert values == {"accept-routes": False, "advertise-routes": "10.0.0.0/24", "ssh": True}
    assert rest == ["x", "-y"]
    with pytest.raises(FlagError, match="flag provided but not defined: -reset"):
        parse_flags(SET_FLAGS, ["--reset"])
    with pytest.raises(FlagError, match='invalid boolean value "yes"'):
        parse_flags(SET_FLAGS, ["--accept-routes=yes"])


def test_advertise_routes_are_checked_and_sorted_like_the_cli() -> None:
    assert calc_advertise_routes("192.168.7.0/24,10.0.0.0/8", True) == (
        _net("0.0.0.0/0"),
        _net("::/0"),
        _net("10.0.0.0/8"),
        _net("192.168.7.0/24"),
    )
    with pytest.raises(
        TailnetError, match=re.escape("non-address bits set; expected 192.168.3.0/24")
    ):
        calc_advertise_routes("192.168.3.1/24", False)
    with pytest.raises(TailnetError, match="without its IPv6 counterpart"):
        calc_advertise_routes("0.0.0.0/0", False)


def test_set_changes_only_what_it_names() -> None:
    prefs = Prefs(control_url=DEFAULT_CONTROL_URL, advertise_routes=(_net("192.168.3.0/24"),))
    routed = apply_set(prefs, {"accept-routes": True})
    assert routed == Prefs(
        control_url=DEFAULT_CONTROL_URL, route_all=True, advertise_routes=prefs.advertise_routes
    )
    exit_too = apply_set(routed, {"advertise-exit-node": True})
    assert exit_too.advertise_routes == (_net("0.0.0.0/0"), _net("::/0"), _net("192.168.3.0/24"))
    assert apply_set(exit_too, {"advertise-routes": ""}).advertise_routes == EXIT_ONLY


EXIT_ONLY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def test_up_refuses_to_revert_an_unmentioned_pref_with_the_real_message() -> None:
    prefs = Prefs(
        control_url=DEFAULT_CONTROL_URL, route_all=True, advertise_routes=(_net("10.0.0.0/24"),)
    )
    with pytest.raises(TailnetError) as refused:
        apply_up(prefs, {"ssh": True, "accept-dns": False})
    assert str(refused.value) == (
        ACCIDENTAL_UP_PREFIX
        + " --accept-dns=false --ssh --accept-routes --advertise-routes=10.0.0.0/24\n\n"
    )
    complete = apply_up(prefs, {"accept-routes": True, "advertise-routes": "10.0.0.0/24"})
    assert complete == Prefs(**{**prefs.__dict__, "want_running": True})
    reset = apply_up(prefs, {"reset": True})
    assert (reset.route_all, reset.advertise_routes, reset.want_running) == (False, (), True)
    assert apply_up(prefs, {}) == Prefs(**{**prefs.__dict__, "want_running": True})


def test_cli_set_and_debug_prefs_match_the_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SITEWIRE_LAB_ROOT", str(tmp_path))
    assert main(["set", "--advertise-routes=192.168.3.0/24", "--accept-dns=false"]) == 0
    assert main(["debug", "prefs"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == list(_fixture_json(FIXTURE_PREFS))
    assert (shown["AdvertiseRoutes"], shown["CorpDNS"], shown["RouteAll"]) == (
        ["192.168.3.0/24"],
        False,
        False,
    )
    assert (tmp_path / "etc/tailscale/lab-prefs.json").stat().st_mode & 0o777 == 0o600
    assert main(["set", "--advertise-routes=192.168.3.1/24"]) == 1
    assert "non-address bits" in capsys.readouterr().err
    assert main(["set", "--frobnicate"]) == 2


def _node(n: int, routes: Sequence[str] = ()) -> Node:
    ipv4 = tailnet_ipv4(f"100.64.0.{n}")
    key = "".join(chr(ord("A") + n) for _ in range(43)) + "="
    endpoint = Endpoint.parse(f"198.18.0.{10 + n}:41641")
    return Node(f"n{n}", ipv4, ipv6_for(ipv4), key, endpoint, tuple(_net(r) for r in routes))


def test_table52_holds_subnet_routes_only_with_route_all() -> None:
    me, peer = _node(1, ["192.168.3.0/24"]), _node(2, ["192.168.7.0/24", "0.0.0.0/0", "::/0"])
    tailnet = Tailnet((me, peer))
    off = netstate(me, Prefs(), tailnet)
    assert off.routes == (*QUAD_100, _net("100.64.0.2/32"), _net("fd7a:115c:a1e0::2/128"))
    assert off.peers[0].allowed_ips == (_net("100.64.0.2/32"), _net("fd7a:115c:a1e0::2/128"))
    on = netstate(me, Prefs(route_all=True), tailnet)
    assert on.routes == (*off.routes, _net("192.168.7.0/24"))
    assert on.peers[0].allowed_ips == (*off.peers[0].allowed_ips, _net("192.168.7.0/24"))
    assert on.addresses == (_net("100.64.0.1/32"), _net("fd7a:115c:a1e0::1/128"))


def test_an_exit_node_in_use_takes_the_default_routes_and_throws_local_subnets() -> None:
    me, peer = _node(1, ["192.168.3.0/24"]), _node(2, ["192.168.7.0/24", "0.0.0.0/0", "::/0"])
    tailnet = Tailnet((me, peer))
    local = (_net("192.168.3.0/24"), _net("198.18.0.0/24"))
    base = netstate(me, Prefs(), tailnet, local)
    using = apply_set(Prefs(), {"exit-node": "100.64.0.2"})
    assert using.exit_node_ip == "100.64.0.2"
    state = netstate(me, using, tailnet, local)
    defaults = (_net("0.0.0.0/0"), _net("::/0"))
    assert state.routes == (*base.routes, *defaults)
    assert state.peers[0].allowed_ips == (*base.peers[0].allowed_ips, *defaults)
    assert state.throws == ()  # LAN access not allowed: the LAN too goes to the exit node
    lan_too = apply_set(using, {"exit-node-allow-lan-access": True})
    assert netstate(me, lan_too, tailnet, local).throws == local
    # a peer that does not offer to be an exit node is not used as one
    quiet = Tailnet((me, _node(2, ["192.168.7.0/24"])))
    assert netstate(me, lan_too, quiet, local).routes == base.routes
    assert apply_set(lan_too, {"exit-node": ""}).exit_node_ip == ""
    by_v6 = apply_set(Prefs(), {"exit-node": "fd7a:115c:a1e0:0::2"})
    assert by_v6.exit_node_ip == "fd7a:115c:a1e0::2"  # as the peer's address is written
    assert netstate(me, by_v6, tailnet, local).routes == state.routes
    with pytest.raises(TailnetError, match="tailnet address"):
        apply_set(Prefs(), {"exit-node": "a-name"})


def test_mwan3_moves_the_rules_to_1300() -> None:
    marked = [{"priority": 2001, "fwmark": "0x100", "fwmask": "0x3f00", "table": "1"}]
    assert rule_base(False, marked) == 5200
    assert rule_base(True, []) == 5200
    assert rule_base(True, marked) == 1300


def test_provision_command_runs_the_stand_in_with_a_checked_record() -> None:
    node = {"name": "A", "ip": "100.64.0.1", "endpoint": "198.18.0.10:41641"}
    argv = provision_command(
        {**node, "advertise_routes": ["192.168.3.0/24"], "accept_routes": True}
    )
    assert argv[:2] == [sys.executable, "-c"]
    assert argv[3] == "lab-provision"
    assert json.loads(argv[4])["advertise_routes"] == ["192.168.3.0/24"]
    with pytest.raises(TailnetError, match=re.escape("not in 100.64.0.0/10")):
        provision_command({**node, "ip": "10.0.0.1"})
    with pytest.raises(TailnetError, match="non-address bits"):
        provision_command({**node, "advertise_routes": ["192.168.3.1/24"]})


def test_control_file_refuses_a_second_node_on_one_address(tmp_path: Path) -> None:
    with pytest.raises(TailnetError, match="already n1's"):
        Tailnet((_node(1),)).with_node(Node(**{**_node(2).__dict__, "ipv4": _node(1).ipv4}))
    assert Paths(tmp_path).control == tmp_path / "etc/lab/tailnet.json"


# ---------------------------------------------------------------------------------------------
# Lab: real namespaces, real wireguard-go, real packets.

LAB_TOOLS = ("ip", "nft", "unshare", "nsenter", "mount", "umount", "wireguard-go", "wg")
lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in LAB_TOOLS),
    reason=f"needs root and {', '.join(LAB_TOOLS)}",
)
_serial = itertools.count()


def _sh(
    *argv: str, check: bool = True, timeout: float = 15, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def _ping_argv(address: str) -> list[str]:
    ping = ["ping"] if shutil.which("ping") else ["busybox", "ping"]
    return [*ping, "-c", "1", "-W", "1", address]


B_FIREWALL = """
table inet swts {
    chain input {
        type filter hook input priority 0; policy accept;
        iifname "wan" ct state new drop
    }
}
"""


@dataclass
class Router:
    name: str
    index: int
    netns: str
    host_netns: str
    state: Path

    @property
    def root(self) -> Path:
        return self.state / "root"

    @property
    def wan(self) -> str:
        return f"198.18.0.{10 + self.index}"

    @property
    def lan(self) -> ipaddress.IPv4Network:
        network = LAN[self.name]
        assert isinstance(network, ipaddress.IPv4Network)
        return network

    @property
    def lan_host(self) -> str:
        return str(self.lan.network_address + 100)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Inside the router, as the lab enters it: its mount and network namespaces."""
        return _sh(
            "nsenter", f"--mount={self.state / 'mnt'}", f"--net=/run/netns/{self.netns}", "--",
            "env", f"SITEWIRE_LAB_ROOT={self.root}", *argv, check=check,
        )  # fmt: skip

    def tailscale(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.root / "usr/sbin/tailscale"), *args, check=check)

    def ip(self, *args: str) -> str:
        return self.run("ip", *args).stdout

    def table52(self, family: str = "-4") -> set[str]:
        out = self.run("ip", family, "-j", "route", "show", "table", "52", check=False).stdout
        return {r["dst"] for r in json.loads(out)} if out.strip() not in ("", "[") else set()

    def pings(self, address: str, tries: int = 5) -> bool:
        return any(
            self.run(*_ping_argv(address), check=False).returncode == 0 for _ in range(tries)
        )

    def host_pings(self, address: str, tries: int = 5) -> bool:
        argv = ["ip", "netns", "exec", self.host_netns, *_ping_argv(address)]
        return any(_sh(*argv, check=False).returncode == 0 for _ in range(tries))

    def wireguard_pid(self) -> int:
        return int((self.root / "run/tailscale/lab-wireguard-go.pid").read_text())


@dataclass
class Lab:
    tmp: Path
    tag: str
    routers: list[Router] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)

    @property
    def inet(self) -> str:
        return f"{self.tag}-inet"

    def netns(self, name: str) -> str:
        _sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def build(self) -> None:
        self.netns(self.inet)
        _sh("ip", "-n", self.inet, "link", "add", "inet", "type", "bridge")
        _sh("ip", "-n", self.inet, "link", "set", "inet", "up")
        (self.tmp / "shared").mkdir()
        for index, name in enumerate(LAN):
            self.routers.append(self._router(name, index))
        a, b = self.routers
        _sh("ip", "-n", a.netns, "route", "add", str(b.lan), "via", b.wan)
        _sh("ip", "-n", b.netns, "route", "add", str(a.lan), "via", a.wan)
        _sh("ip", "netns", "exec", b.netns, "nft", "-f", "-", stdin=B_FIREWALL)
        for router in self.routers:
            node = {
                "name": router.name,
                "ip": f"100.64.0.{router.index + 1}",
                "endpoint": f"{router.wan}:41641",
                "advertise_routes": [str(router.lan)],
            }
            router.run(*provision_command(node))
        self.sync()

    def _router(self, name: str, index: int) -> Router:
        netns = self.netns(f"{self.tag}-{name}")
        host = self.netns(f"{self.tag}-{name}-h0")
        state = self.tmp / name
        router = Router(name, index, netns, host, state)
        _sh("ip", "-n", netns, "link", "add", "wan", "type", "veth", "peer", "name", f"r{index}",
            "netns", self.inet)  # fmt: skip
        _sh("ip", "-n", self.inet, "link", "set", f"r{index}", "master", "inet", "up")
        _sh("ip", "-n", netns, "addr", "add", f"{router.wan}/24", "dev", "wan")
        _sh("ip", "-n", netns, "link", "set", "wan", "up")
        _sh("ip", "-n", netns, "link", "add", "br-lan", "type", "veth", "peer", "name", "eth0",
            "netns", host)  # fmt: skip
        _sh(
            "ip",
            "-n",
            netns,
            "addr",
            "add",
            f"{router.lan.network_address + 1}/24",
            "dev",
            "br-lan",
        )
        _sh("ip", "-n", netns, "link", "set", "br-lan", "up")
        _sh("ip", "-n", host, "addr", "add", f"{router.lan_host}/24", "dev", "eth0")
        _sh("ip", "-n", host, "link", "set", "eth0", "up")
        _sh("ip", "-n", host, "route", "add", "default", "via", str(router.lan.network_address + 1))
        _sh("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._mount_namespace(state)
        (router.root / "etc").mkdir(parents=True)
        (router.root / "etc/lab").symlink_to(self.tmp / "shared")
        return router

    def _mount_namespace(self, state: Path) -> None:
        """docs/lab.md: a persistent mount namespace whose /run is its own tmpfs."""
        state.mkdir()
        _sh("mount", "--bind", str(state), str(state))
        self.mounts.append(state)
        _sh("mount", "--make-private", str(state))
        (state / "mnt").touch()
        self.mounts.append(state / "mnt")
        _sh("unshare", f"--mount={state / 'mnt'}", "--propagation", "private",
            "mount", "-t", "tmpfs", "tmpfs", "/run")  # fmt: skip

    def sync(self) -> None:
        for router in self.routers:
            router.tailscale("lab-sync")

    def destroy(self) -> None:
        """Kill by PID whatever runs in our namespaces, then unmount and delete; never raises."""
        inodes = set()
        for name in self.namespaces:
            try:
                inodes.add(os.stat(f"/run/netns/{name}").st_ino)
            except OSError:
                continue
        for pid in _pids_in(inodes):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        for mount in reversed(self.mounts):
            _sh("umount", "-l", str(mount), check=False)
        for name in reversed(self.namespaces):
            _sh("ip", "netns", "del", name, check=False)


def _pids_in(inodes: set[int]) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "ns/net").stat().st_ino in inodes:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[Lab]:
    tag = f"swts{os.getpid()}n{next(_serial)}"
    built = Lab(tmp_path, tag)
    try:
        built.build()
        yield built
    finally:
        built.destroy()


def _rules(router: Router, family: str) -> list[str]:
    return [
        line for line in router.ip(family, "rule", "show").splitlines() if line.startswith("52")
    ]


TAILSCALE_RULES = [
    "5210:\tfrom all fwmark 0x80000/0xff0000 lookup main",
    "5230:\tfrom all fwmark 0x80000/0xff0000 lookup default",
    "5250:\tfrom all fwmark 0x80000/0xff0000 unreachable",
    "5270:\tfrom all lookup 52",
]


@lab
@pytest.mark.lab
def test_without_accept_routes_lan_traffic_stays_in_main(two_sites: Lab) -> None:
    a, b = two_sites.routers
    for family in ("-4", "-6"):
        assert [line.rstrip() for line in _rules(a, family)] == TAILSCALE_RULES
    assert a.table52() == {"100.64.0.2", "100.100.100.100"}
    assert a.table52("-6") == {"fd7a:115c:a1e0::2", "fd7a:115c:a1e0::53"}
    assert "100.100.100.100 dev tailscale0 \n" in a.ip("route", "show", "table", "52")
    path = a.ip("route", "get", b.lan_host, "from", a.lan_host, "iif", "br-lan")
    assert "table 52" not in path and f"via {b.wan} dev wan" in path
    assert a.host_pings(b.lan_host)
    # B drops new inbound on its WAN: the tailnet works because B's keepalive opened the path.
    assert a.pings("100.64.0.2") and a.pings("fd7a:115c:a1e0::2")
    allowed = a.run("wg", "show", "tailscale0", "allowed-ips").stdout.split()
    assert sorted(allowed[1:]) == ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"]
    status = json.loads(a.tailscale("status", "--json").stdout)
    (peer,) = status["Peer"].values()
    fixture_peers = _fixture_json(FIXTURE_STATUS)["Peer"]
    assert isinstance(fixture_peers, dict)
    assert set(fixture_peers["nodekey:" + "2" * 64]) >= set(peer)
    assert (status["BackendState"], peer["HostName"], peer["Online"]) == ("Running", "b", True)
    assert peer["TailscaleIPs"] == ["100.64.0.2", "fd7a:115c:a1e0::2"]
    assert peer["PrimaryRoutes"] == [str(b.lan)]
    assert peer["AllowedIPs"] == ["100.64.0.2/32", "fd7a:115c:a1e0::2/128", str(b.lan)]


@lab
@pytest.mark.lab
def test_accept_routes_hijacks_forwarded_lan_traffic_into_tailscale0(two_sites: Lab) -> None:
    a, b = two_sites.routers
    a.tailscale("set", "--accept-routes")
    two_sites.sync()
    assert a.table52() == {"100.64.0.2", "100.100.100.100", str(b.lan)}
    path = a.ip("route", "get", b.lan_host, "from", a.lan_host, "iif", "br-lan")
    assert "dev tailscale0 table 52" in path
    assert "dev tailscale0 table 52" in a.ip("route", "get", b.lan_host)
    # The router itself reaches B's LAN over the tailnet (source 100.64.0.1, which B accepts)...
    assert a.pings(b.lan_host)
    # ...its LAN host does not: B does not accept A's routes, so WireGuard on B drops the
    # packet from 192.168.3.100 although main still has the working route.
    assert not a.host_pings(b.lan_host, tries=2)
    # sitewire's fix (reference §6.4): pin the prefix to main below the `lookup 52` rule.
    a.ip("rule", "add", "to", str(b.lan), "lookup", "main", "priority", "5100")
    assert a.host_pings(b.lan_host)


@lab
@pytest.mark.lab
def test_set_names_up_demands_the_complete_set_and_prefs_match_the_fixture(
    two_sites: Lab,
) -> None:
    a, b = two_sites.routers

    def prefs() -> dict[str, object]:
        shown = json.loads(a.tailscale("debug", "prefs").stdout)
        assert isinstance(shown, dict)
        return shown

    before = prefs()
    assert list(before) == list(_fixture_json(FIXTURE_PREFS))
    a.tailscale("set", "--accept-routes")
    after = prefs()
    assert {k for k in before if before[k] != after[k]} == {"RouteAll"}
    a.tailscale("set", "--advertise-exit-node")
    assert prefs()["AdvertiseRoutes"] == ["0.0.0.0/0", "::/0", str(a.lan)]
    refused = a.tailscale("up", "--accept-routes=false", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(ACCIDENTAL_UP_PREFIX)
    assert refused.stderr.rstrip().endswith(
        f"--accept-routes=false --advertise-exit-node --advertise-routes={a.lan}"
    )
    assert prefs()["AdvertiseRoutes"] == ["0.0.0.0/0", "::/0", str(a.lan)]
    a.tailscale("up", "--reset", "--accept-routes")
    assert (prefs()["AdvertiseRoutes"], prefs()["RouteAll"]) == (None, True)
    two_sites.sync()
    (peer,) = json.loads(b.tailscale("status", "--json").stdout)["Peer"].values()
    assert "PrimaryRoutes" not in peer and peer["ExitNodeOption"] is False
    assert a.table52() == {"100.64.0.2", "100.100.100.100", str(b.lan)}
    assert b.table52() == {"100.64.0.1", "100.100.100.100"}


@lab
@pytest.mark.lab
def test_down_removes_rules_table52_interface_and_process(two_sites: Lab) -> None:
    a, _ = two_sites.routers
    pid = a.wireguard_pid()
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "wireguard-go"
    a.tailscale("down")
    for family in ("-4", "-6"):
        assert _rules(a, family) == []
        assert a.table52(family) == set()
    assert a.run("ip", "link", "show", "tailscale0", check=False).returncode != 0
    assert _exits(pid)
    assert json.loads(a.tailscale("status", "--json").stdout)["BackendState"] == "Stopped"
    a.tailscale("up")
    assert [line.rstrip() for line in _rules(a, "-4")] == TAILSCALE_RULES
    assert _alive(a.wireguard_pid())


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _exits(pid: int, within: float = 2) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
