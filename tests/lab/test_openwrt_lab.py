"""OpenWrt-behaving routers with real packets: two routers, a LAN host behind each, WireGuard.

Each test builds its own namespaces: routers A and B (WANs joined by one veth, 198.18.0.10/.11),
a host on each LAN (192.168.3.100, 192.168.7.100). A router is a network namespace plus a
persistent mount namespace with a private tmpfs on /run (so both routers' wireguard-go sockets
can be named wg0) and, for B, an /etc/hosts that resolves A's endpoint name. The router's files
live under SITEWIRE_LAB_ROOT in the test's temporary directory. Everything is removed when the
test ends, failed or not: processes in the namespaces (by PID), mounts, namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sitewire.lab.openwrt.provision import provision_command
from sitewire.pipeline import make_plan, open_workspace, render_all

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "networks"
TOOLS = ("ip", "nsenter", "unshare", "wireguard-go", "wg", "nft", "ping", "mount", "umount")
ROUTER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
B_KEY = "37oMV6Y4y9zrMtm95LTUfNa0tmqvsaLedJJdq2I2Rhw="  # site B's public key in seed.keys.json

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"
    ),
]


def sh(
    *argv: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def ns_inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass
class Router:
    name: str
    netns: str
    home: Path

    @property
    def root(self) -> Path:
        return self.home / "root"

    @property
    def mnt(self) -> Path:
        return self.home / "ns" / "mnt"

    def run(
        self, *argv: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = ["env", "-i", f"PATH={ROUTER_PATH}", f"SITEWIRE_LAB_ROOT={self.root}", "HOME=/root"]
        return sh(
            "nsenter",
            f"--mount={self.mnt}",
            f"--net=/run/netns/{self.netns}",
            "--",
            *env,
            *argv,
            stdin=stdin,
            check=check,
        )

    def tool(
        self, path: str, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """One of the router's commands (/sbin/uci, /etc/init.d/network, ...)."""
        return self.run(str(self.root / path.lstrip("/")), *args, stdin=stdin, check=check)

    def ifindex(self, device: str) -> int:
        return int(self.run("ip", "-o", "link", "show", "dev", device).stdout.split(":")[0])

    def allowed_ips(self) -> str:
        """`wg show wg0 allowed-ips`, peers sorted (wg lists the latest handshake first)."""
        out = self.run(str(self.root / "usr/bin/wg"), "show", "wg0", "allowed-ips").stdout
        return "".join(sorted(out.splitlines(keepends=True)))

    def handshakes(self) -> list[str]:
        """Latest handshake with site B (the seed's second peer of A is a phone, never seen)."""
        out = self.run(str(self.root / "usr/bin/wg"), "show", "wg0", "latest-handshakes").stdout
        return [line.split("\t")[1] for line in out.splitlines() if line.startswith(B_KEY)]


@dataclass
class Lab:
    tag: str
    home: Path
    namespaces: list[str] = field(default_factory=list)
    routers: dict[str, Router] = field(default_factory=dict)
    mounts: list[Path] = field(default_factory=list)

    def netns(self, suffix: str) -> str:
        name = f"swo{self.tag}-{suffix}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        return name

    def host_ping(self, host: str, address: str, tries: int = 1) -> bool:
        for _ in range(tries):
            proc = sh(
                "ip", "netns", "exec", host, "ping", "-c", "1", "-W", "1", address, check=False
            )
            if proc.returncode == 0:
                return True
        return False

    def cleanup(self) -> None:
        wanted = {ns_inode(f"/run/netns/{n}") for n in self.namespaces}
        wanted |= {ns_inode(str(r.mnt)) for r in self.routers.values()}
        wanted.discard(None)
        for pid in _pids_in(wanted):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in reversed(self.mounts):
            sh("umount", "--lazy", str(mount), check=False)
        for name in self.namespaces:
            sh("ip", "netns", "del", name, check=False)


def _pids_in(namespaces: set[tuple[int, int] | None]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            ids = {ns_inode(f"/proc/{entry}/ns/{kind}") for kind in ("net", "mnt")}
            if ids & namespaces:
                found.append(int(entry))
    return found


def _router(lab: Lab, name: str, hosts: str) -> Router:
    router = Router(name, lab.netns(name.lower()), lab.home / name)
    folder = router.home / "ns"
    folder.mkdir(parents=True)
    router.root.mkdir()
    sh("mount", "--bind", str(folder), str(folder))
    lab.mounts.append(folder)
    sh("mount", "--make-private", str(folder))
    router.mnt.touch()
    sh("unshare", f"--mount={router.mnt}", "--propagation", "private", "true")
    lab.mounts.append(router.mnt)
    inside = ["nsenter", f"--mount={router.mnt}", "--"]
    sh(*inside, "mount", "-t", "tmpfs", "tmpfs", "/run")
    hosts_file = router.home / "hosts"
    hosts_file.write_text(f"127.0.0.1\tlocalhost\n{hosts}")
    sh(*inside, "mount", "--bind", str(hosts_file), "/etc/hosts")
    lab.routers[name] = router
    return router


def _host(lab: Lab, router: Router, suffix: str, address: str, gateway: str) -> str:
    host = lab.netns(suffix)
    sh("ip", "link", "add", "br-lan", "netns", router.netns, "type", "veth",
       "peer", "name", "eth0", "netns", host)  # fmt: skip
    sh("ip", "-n", host, "addr", "add", address, "dev", "eth0")
    sh("ip", "-n", host, "link", "set", "eth0", "up")
    sh("ip", "-n", host, "link", "set", "lo", "up")
    sh("ip", "-n", host, "route", "add", "default", "via", gateway)
    return host


def _site(name: str, release: str, number: int, lan: str) -> dict[str, object]:
    return {
        "site": name,
        "release": release,
        "wan4": f"198.18.0.{number}/24",
        "wan6": f"fd53:5357:0:1::{number}/64",
        "lans": [{"device": "br-lan", "router": [lan]}],
    }


@pytest.fixture(scope="module")
def seed_batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """sitewire's rendered uci-batch for the seed's A and B, from the fixed golden keys."""
    folder = tmp_path_factory.mktemp("seed")
    spec, keys = folder / "network.toml", folder / "keys.json"
    shutil.copy(GOLDEN / "seed.toml", spec)
    shutil.copy(GOLDEN / "seed.keys.json", keys)
    keys.chmod(0o600)
    ws = open_workspace(spec, keys_path=keys)
    return {
        subdir: rendered.text("uci-batch")
        for subdir, rendered in render_all(make_plan(ws), ws.secrets)
        if subdir in ("A", "B")
    }


def _build(tmp_path: Path, release: str) -> Iterator[Lab]:
    lab = Lab(secrets.token_hex(3), tmp_path)
    try:
        a = _router(lab, "A", "")
        b = _router(lab, "B", "198.18.0.10\ta.example.net\n")
        sh("ip", "link", "add", "wan", "netns", a.netns, "type", "veth",
           "peer", "name", "wan", "netns", b.netns)  # fmt: skip
        sh("ip", "-n", a.netns, "link", "add", "mgmt", "type", "veth", "peer", "name", "mgmt-peer")
        sh("ip", "-n", a.netns, "addr", "add", "10.254.0.1/24", "dev", "mgmt")
        sh("ip", "-n", a.netns, "link", "set", "mgmt", "up")
        _host(lab, a, "ha", "192.168.3.100/24", "192.168.3.1")
        _host(lab, b, "hb", "192.168.7.100/24", "192.168.7.1")
        a.run(*provision_command(_site("A", release, 10, "192.168.3.1/24")))
        b.run(*provision_command(_site("B", release, 11, "192.168.7.1/24")))
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def lab_2410(tmp_path: Path) -> Iterator[Lab]:
    yield from _build(tmp_path, "24.10")


@pytest.fixture
def lab_2512(tmp_path: Path) -> Iterator[Lab]:
    yield from _build(tmp_path, "25.12")


def _configure(router: Router, batch: str, release: str) -> None:
    """What `lab up --configured` does over SSH: uci batch, packages, network restart, fw4."""
    result = router.tool("/sbin/uci", "batch", stdin=batch)
    assert result.stderr == ""
    if release == "25.12":
        router.tool("/usr/bin/apk", "update")
        router.tool("/usr/bin/apk", "add", "wireguard-tools", "luci-proto-wireguard")
    else:
        router.tool("/bin/opkg", "update")
        router.tool("/bin/opkg", "install", "wireguard-tools", "luci-proto-wireguard")
    router.tool("/etc/init.d/network", "restart")
    router.tool("/etc/init.d/firewall", "reload")


def _tunnel(lab: Lab, batches: dict[str, str], release: str) -> tuple[Router, Router]:
    a, b = lab.routers["A"], lab.routers["B"]
    _configure(a, batches["A"], release)
    _configure(b, batches["B"], release)
    hb, ha = f"swo{lab.tag}-hb", f"swo{lab.tag}-ha"
    # B dials A: B's LAN speaks first, then A's LAN can answer and reach back.
    assert lab.host_ping(hb, "192.168.3.100", tries=8), "B's LAN host cannot reach A's"
    assert lab.host_ping(ha, "192.168.7.100", tries=3), "A's LAN host cannot reach B's"
    return a, b


def test_factory_router_has_no_wireguard_until_installed(lab_2410: Lab) -> None:
    a = lab_2410.routers["A"]
    assert not (a.root / "usr/bin/wg").exists()
    assert not (a.root / "usr/bin/wg-quick").exists()
    assert not (a.root / "lib/netifd/proto/wireguard.sh").exists()
    assert a.tool("/bin/opkg", "list-installed", "wireguard-tools").stdout == ""
    refused = a.tool("/bin/opkg", "install", "wireguard-tools", check=False)
    assert refused.returncode == 255 and "Unknown package 'wireguard-tools'." in refused.stdout
    a.tool("/bin/opkg", "update")
    a.tool("/bin/opkg", "install", "wireguard-tools")
    assert (a.root / "usr/bin/wg").exists()
    assert (a.root / "usr/bin/wireguard_watchdog").exists()
    assert "wireguard-tools - " in a.tool("/bin/opkg", "list-installed", "wireguard-tools").stdout
    assert "kmod-wireguard" in a.tool("/bin/opkg", "list-installed").stdout
    unknown = a.tool("/bin/opkg", "install", "no-such-package", check=False)
    assert unknown.returncode == 255 and "Unknown package 'no-such-package'." in unknown.stdout
    bad = a.tool("/sbin/uci", "batch", stdin="set network.bad-name=interface\nfrobnicate\n")
    assert (bad.returncode, bad.stderr) == (0, "uci: Invalid argument\nUnknown command\n")
    # the mgmt device is not in the configuration: provisioning left it alone
    assert "10.254.0.1/24" in a.run("ip", "-o", "addr", "show", "dev", "mgmt").stdout


def test_lan_to_lan_over_wireguard_and_reload_ignores_peers_on_24_10(
    lab_2410: Lab, seed_batches: dict[str, str]
) -> None:
    a, _ = _tunnel(lab_2410, seed_batches, "24.10")
    before = a.ifindex("wg0")
    peers = a.allowed_ips()
    a.tool("/sbin/uci", "add_list", "network.sw_peer_B.allowed_ips=192.168.9.0/24")
    a.tool("/sbin/uci", "commit", "network")
    a.tool("/etc/init.d/network", "reload")
    assert a.allowed_ips() == peers, "24.10's reload must ignore a peer-only change"
    a.tool("/bin/ubus", "call", "network.interface.wg0", "renew")
    assert a.allowed_ips() == peers, "the classic handler has no renew"
    assert a.ifindex("wg0") == before
    a.tool("/sbin/ifup", "wg0")
    assert "192.168.9.0/24" in a.allowed_ips()
    assert a.ifindex("wg0") != before, "ifup re-creates the device"
    assert "dev wg0" in a.run("ip", "route", "get", "192.168.9.1").stdout
    assert a.handshakes() == ["0"], "a new device has no session with B until B dials again"
    assert "10.254.0.1/24" in a.run("ip", "-o", "addr", "show", "dev", "mgmt").stdout


def test_renew_applies_peer_change_in_place_on_25_12(
    lab_2512: Lab, seed_batches: dict[str, str]
) -> None:
    a, _ = _tunnel(lab_2512, seed_batches, "25.12")
    assert (a.root / "usr/bin/apk").exists() and not (a.root / "bin/opkg").exists()
    before = a.ifindex("wg0")
    peers = a.allowed_ips()
    a.tool("/sbin/uci", "add_list", "network.sw_peer_B.allowed_ips=192.168.9.0/24")
    a.tool("/sbin/uci", "commit", "network")
    a.tool("/etc/init.d/network", "reload")
    assert a.allowed_ips() == peers, "reload still ignores peers: netifd has no peer_detect"
    a.tool("/bin/ubus", "call", "network.interface.wg0", "renew")
    assert "192.168.9.0/24" in a.allowed_ips()
    assert a.ifindex("wg0") == before, "renew keeps the device"
    assert "dev wg0" in a.run("ip", "route", "get", "192.168.9.1").stdout
    assert a.handshakes() != ["0"], "the session with B survives renew"
    hb = f"swo{lab_2512.tag}-hb"
    assert lab_2512.host_ping(hb, "192.168.3.100", tries=3)
    a.tool("/sbin/ifup", "wg0")
    assert a.ifindex("wg0") != before, "ifup still tears down on 25.12"


def test_zone_forward_policy_does_not_cross_zones(
    lab_2410: Lab, seed_batches: dict[str, str]
) -> None:
    a, b = _tunnel(lab_2410, seed_batches, "24.10")
    a.tool("/sbin/uci", "delete", "firewall.sw_fwd_sitewire_lan")
    a.tool("/sbin/uci", "commit", "firewall")
    a.tool("/sbin/fw4", "reload")
    ha, hb = f"swo{lab_2410.tag}-ha", f"swo{lab_2410.tag}-hb"
    assert not lab_2410.host_ping(hb, "192.168.3.100", tries=2), "sitewire->lan is gone"
    assert b.run("ping", "-c", "1", "-W", "2", "192.168.5.1", check=False).returncode == 0
    # A's LAN still starts flows to B (lan->sitewire); the replies are established traffic.
    assert lab_2410.host_ping(ha, "192.168.7.100", tries=2)


def test_network_reload_does_not_load_a_handler_installed_after_start(
    lab_2410: Lab, seed_batches: dict[str, str]
) -> None:
    a = lab_2410.routers["A"]
    a.tool("/sbin/uci", "batch", stdin=seed_batches["A"])
    a.tool("/bin/opkg", "update")
    a.tool("/bin/opkg", "install", "wireguard-tools")
    a.tool("/etc/init.d/network", "reload")
    status = a.tool("/bin/ubus", "call", "network.interface.wg0", "status").stdout
    assert '"up": false' in status and "INVALID_PROTO" in status
    assert a.run("ip", "link", "show", "dev", "wg0", check=False).returncode != 0
    a.tool("/etc/init.d/network", "restart")
    dump = a.tool("/bin/ubus", "-S", "call", "network.interface", "dump").stdout
    assert '"interface":"wg0","up":true' in dump
    assert a.run("ip", "link", "show", "dev", "wg0", check=False).returncode == 0
    pin = "set network.pin=rule\nset network.pin.dest=192.168.7.0/24\n"
    pin += "set network.pin.lookup=main\nset network.pin.priority=5100\ncommit network\n"
    a.tool("/sbin/uci", "batch", stdin=pin)
    a.tool("/etc/init.d/network", "reload")
    assert "5100:\tfrom all to 192.168.7.0/24 lookup main" in a.run("ip", "rule").stdout
    a.tool("/etc/init.d/network", "stop")
    assert "5100:" not in a.run("ip", "rule").stdout
    assert a.run("ip", "link", "show", "dev", "wg0", check=False).returncode != 0


def test_watchdog_re_resolves_a_silent_peer_by_name(
    lab_2410: Lab, seed_batches: dict[str, str]
) -> None:
    b = lab_2410.routers["B"]
    _configure(b, seed_batches["B"], "24.10")  # A stays unconfigured: no handshake ever
    wg = str(b.root / "usr/bin/wg")
    assert "198.18.0.10:51820" in b.run(wg, "show", "wg0", "endpoints").stdout
    (b.home / "hosts").write_text("127.0.0.1\tlocalhost\n198.18.0.99\ta.example.net\n")
    result = b.tool("/usr/bin/wireguard_watchdog")
    assert "wg0 endpoint a.example.net:51820 is not responding" in result.stderr
    assert "198.18.0.99:51820" in b.run(wg, "show", "wg0", "endpoints").stdout


def test_reload_config_reloads_what_changed_since_its_last_run(
    lab_2410: Lab, seed_batches: dict[str, str]
) -> None:
    a = lab_2410.routers["A"]
    _configure(a, seed_batches["A"], "24.10")
    wg = str(a.root / "usr/bin/wg")
    before = a.ifindex("wg0")
    a.tool("/sbin/uci", "set", "network.wg0.listen_port=51821")
    a.tool("/sbin/uci", "commit", "network")
    a.tool("/sbin/reload_config")  # its first run only records what the configuration is
    assert a.run(wg, "show", "wg0", "listen-port").stdout.strip() == "51820"
    a.tool("/sbin/uci", "set", "network.wg0.listen_port=51822")
    a.tool("/sbin/uci", "commit", "network")
    a.tool("/sbin/reload_config")
    assert a.run(wg, "show", "wg0", "listen-port").stdout.strip() == "51822"
    assert a.ifindex("wg0") != before, "a declared option changed: netifd re-creates wg0"
