"""`sitewire apply` on Linux routers (wg-quick), alone and next to an OpenWrt one.

The lab's Linux routers have no kernel WireGuard and no systemd: apply prefixes wg-quick with
WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go (Options.env). The same life as on OpenWrt, in
both labs: from nothing to a working network, a second apply that changes nothing, peer-only
changes made live without re-creating wg0. The Linux pair then goes on (its B is the same
Linux dialer as the mixed lab's): a change whose verification fails is put back by B's revert
switch byte for byte, and B's re-resolve job finds A again after A's DDNS name moves.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from sitewire.deploy.problems import ApplyError
from sitewire.deploy.run import Result
from sitewire.lab.host import lab_move, router_exec
from sitewire.lab.state import LabState
from tests.conftest import spec_from
from tests.lab.applying import apply_lab, config_files, router, unreachable, write_spec
from tests.lab.conftest import LINUX_SPEC, MakeLab

MIXED_SPEC = LINUX_SPEC.replace('platform = "linux"', 'platform = "openwrt"', 1)
PORT = "port = 51821\n"  # LINUX_SPEC ends with sites.B
# Prefixes the lab has no host for: each site routes one more LAN, so each one's peer changes.
MORE_LAN = {"A": "192.168.9.0/24", "B": "192.168.11.0/24"}
LINUX_FILES = "/etc/wireguard /etc/sitewire /etc/sysctl.d/60-sitewire-wg0.conf /usr/local/sbin"


def _grown(spec: str) -> str:
    for site, lan in MORE_LAN.items():
        last = "fd00:3::/64" if site == "A" else "fd00:7::/64"
        assert f'"{last}"]' in spec
        spec = spec.replace(f'"{last}"]', f'"{last}", "{lan}"]', 1)
    return spec


def _ifindex(state: LabState, site: str) -> str:
    return router(state, site, "ip", "-o", "link", "show", "dev", "wg0").split(":", 1)[0]


def _files(state: LabState, site: str) -> dict[str, bytes]:
    """What apply may write on the site: on Linux each file's sha256, on OpenWrt the files."""
    if router_exec(state, site, ["test", "-f", "/etc/openwrt_release"]).returncode == 0:
        return config_files(state, site)
    listing = router(state, site, "sh", "-c", f"find {LINUX_FILES} -type f 2>/dev/null | sort")
    out = {}
    for path in listing.split():
        done = router_exec(state, site, ["sha256sum", path])
        assert done.returncode == 0, done.stderr
        out[path] = done.stdout.split()[0].encode()
    return out


def _block_wireguard(state: LabState, site: str, block: bool) -> None:
    """Drop (or stop dropping) WireGuard's UDP arriving at `site`: the tunnel goes dark."""
    if block:
        rules = (
            "table inet swtest { chain input { type filter hook input priority -5; "
            "udp dport 51820 drop; }; }"
        )
        done = router_exec(state, site, ["nft", "-f", "-"], rules)
    else:
        done = router_exec(state, site, ["nft", "delete", "table", "inet", "swtest"])
    assert done.returncode == 0, done.stderr


@pytest.mark.lab
@pytest.mark.parametrize("kind", ["linux", "mixed"])
def test_linux_sites_apply_from_nothing_then_change_live(
    make_lab: MakeLab, tmp_path: Path, kind: str
) -> None:
    text = LINUX_SPEC if kind == "linux" else MIXED_SPEC
    spec = write_spec(tmp_path / "network.toml", text)
    state = make_lab(spec_from(text))
    sites = ("A", "B")

    # From nothing (wireguard-tools present, no key, no wg0) to a working network.
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    assert unreachable(state, spec) == []
    assert router(state, "B", "cat", "/etc/cron.d/sitewire-wg0").startswith("* * * * * root ")

    # Again: nothing to change, nothing run.
    again, ui = apply_lab(state, spec)
    assert again.ok, ui.text
    assert {r.result for r in again.sites.values()} == {Result.UNCHANGED}, ui.text
    assert "nothing to change" in ui.lines
    assert not any("[#]" in line for line in ui.lines), ui.text

    # Peer-only changes (each site routes one more LAN): each peer gains it live, wg0 stays.
    ifindex = {s: _ifindex(state, s) for s in sites}
    grown = write_spec(tmp_path / "grown.toml", _grown(text))
    outcome, ui = apply_lab(state, grown)
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    assert {s: _ifindex(state, s) for s in sites} == ifindex, ui.text
    for site, other in (("A", "B"), ("B", "A")):
        assert MORE_LAN[other] in router(state, site, "wg", "show", "wg0", "allowed-ips")
        route = router(state, site, "ip", "route", "get", MORE_LAN[other].replace("0/24", "1"))
        assert " dev wg0 " in route, route
    assert unreachable(state, grown) == []
    kept = {s: _files(state, s) for s in sites}

    if kind == "linux":
        _roll_back_then_move(state, tmp_path, grown, kept)


def _roll_back_then_move(
    state: LabState, tmp_path: Path, grown: Path, kept: dict[str, dict[str, bytes]]
) -> None:
    # A change to B (its listen port) whose verification fails, because A drops WireGuard's
    # packets: B's switch puts its files back byte for byte and brings wg0 up from them.
    _block_wireguard(state, "A", True)
    try:
        port = write_spec(tmp_path / "port.toml", grown.read_text() + PORT)
        outcome, ui = apply_lab(state, port, verify_timeout=3.0)  # no handshake will come
    finally:
        _block_wireguard(state, "A", False)
    assert not outcome.ok
    assert outcome.sites["A"].result is Result.UNCHANGED, ui.text
    assert outcome.sites["B"].result is Result.ROLLED_BACK, ui.text
    assert {s: _files(state, s) for s in ("A", "B")} == kept
    assert router(state, "B", "wg", "show", "wg0", "listen-port").strip() == "51820"
    assert unreachable(state, grown) == []

    # DDNS: A moves; B's re-resolve job (cron.d, installed by apply) finds it again. Run by
    # hand here, once a second and after 2 s without a handshake instead of cron's 150 s.
    assert router(state, "B", "cat", "/etc/cron.d/sitewire-wg0") == (
        "* * * * * root /usr/local/sbin/sitewire-reresolve-wg0\n"
    )
    before = _endpoint(state, "B")
    _, new = lab_move(state, "A")
    job = "SITEWIRE_RERESOLVE_AFTER=2 /usr/local/sbin/sitewire-reresolve-wg0"
    for _ in range(20):
        router(state, "B", "sh", "-c", job)
        if _endpoint(state, "B") != before:
            break
        time.sleep(1)
    assert _endpoint(state, "B").rsplit(":", 1)[0].strip("[]") in (
        str(new.wan4.ip),
        str(new.wan6.ip),
    )
    assert unreachable(state, grown) == []


def _endpoint(state: LabState, site: str) -> str:
    return router(state, site, "wg", "show", "wg0", "endpoints").split()[1]


def _commits(state: LabState, site: str) -> str:
    return router(state, site, "sh", "-c", "ls /tmp/sitewire 2>/dev/null || true")


@pytest.mark.lab
def test_a_linux_dialer_without_a_cron_daemon_is_refused_before_arming(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """B dials A's DNS name, so its re-resolve job is a cron job: with the router's cron
    daemon (Debian's, started as its boot would) stopped, apply refuses before anything is
    armed on either site; with it running again, apply goes ahead, and cron runs the router's
    own /etc/cron.d jobs, not the host's."""
    spec = write_spec(tmp_path / "network.toml", LINUX_SPEC)
    state = make_lab(spec_from(LINUX_SPEC))
    pid = int(router(state, "B", "cat", "/run/crond.pid"))
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "cron"  # the real Debian cron
    assert router(state, "B", "ls", "-A", "/etc/cron.d") == ""  # none of the host's jobs
    before = {s: _files(state, s) for s in ("A", "B")}
    router(state, "B", "kill", str(pid))
    for _ in range(50):  # gone, or a zombie nobody reaps (init of a container need not)
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.1)

    with pytest.raises(ApplyError) as refused:
        apply_lab(state, spec)
    assert (
        refused.value.where == "B"
        and "no cron daemon that reads /etc/cron.d runs here" in refused.value.message
    )
    assert "apt-get install cron" in str(refused.value.fix)
    assert {s: _files(state, s) for s in ("A", "B")} == before
    assert _commits(state, "A") == _commits(state, "B") == ""  # nothing armed anywhere

    router(state, "B", sys.executable, "-m", "sitewire.lab.boot", "start", "cron")
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    probe = "* * * * * root date +%s >> /tmp/cron-ran\n"
    router(state, "B", "sh", "-c", f"printf '{probe}' > /etc/cron.d/lab-probe")
    deadline = time.monotonic() + 75
    while router(state, "B", "sh", "-c", "cat /tmp/cron-ran 2>/dev/null || true") == "":
        assert time.monotonic() < deadline, "the router's cron ran no /etc/cron.d job"
        time.sleep(2)
