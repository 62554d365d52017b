"""A revert of a peers-only change puts the old peers back live, not by re-creating the
interface (issue 13): through a listener, the tunnels of the others never stop.

A is the hub (the only endpoint), B and C dial it, and B's LAN reaches C's through A. Adding
D changes only peers on A, B and C; it is applied unconfirmed and then rolled back while B's
and C's LAN hosts ping each other every 10 ms: not one ping may be lost, A's wg0 keeps its
ifindex, and every router's peers, routes and files are what they were. On 24.10 and Linux the
revert replays the peers saved at arm (`wg syncconf`, then the routes); 25.12's handler puts
them back itself (`renew`), which costs wireguard-go one packet (REBIND_LOSS).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sitewire.lab.state import LabState
from tests.conftest import spec_from
from tests.lab import applying
from tests.lab.applying import apply_lab, router, settle_lab, write_spec
from tests.lab.conftest import MakeLab
from tests.lab.test_apply_live import REBIND_LOSS

HUB = """
[network]
name = "hub"
overlay = "192.168.5.0/24"
port = 51820

[sites.A]
platform = "{platform}"
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"

[sites.B]
platform = "{platform}"
lan = ["192.168.7.0/24"]

[sites.C]
platform = "{platform}"
lan = ["192.168.9.0/24"]
"""
D = """
[sites.D]
platform = "{platform}"
lan = ["192.168.11.0/24"]
"""
B_HOST, C_HOST = "192.168.7.100", "192.168.9.100"
FILES = {
    "openwrt": ("/etc/config/network", "/etc/config/firewall", "/etc/crontabs/root"),
    "linux": ("/etc/wireguard/wg0.conf", "/etc/sitewire/wg0.nft", "/etc/cron.d/sitewire-wg0"),
}


def running(state: LabState, site: str, platform: str) -> dict[str, object]:
    """What a revert must give back: the device itself, its peers, its routes, its files."""
    files = {}
    for path in FILES[platform]:
        files[path] = router(state, site, "sh", "-c", f"cat {path} 2>/dev/null || true")
    return {
        "ifindex": router(state, site, "cat", "/sys/class/net/wg0/ifindex").strip(),
        "peers": sorted(router(state, site, "wg", "show", "wg0", "allowed-ips").splitlines()),
        "routes": sorted(
            router(state, site, "ip", "-4", "route", "show", "dev", "wg0").splitlines()
        ),
        "files": files,
    }


@pytest.mark.lab
@pytest.mark.parametrize("release", ["24.10", "25.12", "linux"])
def test_reverting_a_peers_only_change_drops_no_packet_through_the_listener(
    make_lab: MakeLab, tmp_path: Path, release: str
) -> None:
    platform = "linux" if release == "linux" else "openwrt"
    trio_text = HUB.format(platform=platform)
    four_text = trio_text + D.format(platform=platform)
    state = make_lab(spec_from(four_text), release="24.10" if platform == "linux" else release)
    trio = write_spec(tmp_path / "trio.toml", trio_text)
    four = write_spec(tmp_path / "four.toml", four_text)
    outcome, ui = apply_lab(state, trio)
    assert outcome.ok, ui.text
    before = {s: running(state, s, platform) for s in "ABC"}

    outcome, ui = apply_lab(state, four, confirm=False)
    assert outcome.ok, ui.text
    changed = {s: running(state, s, platform) for s in "ABC"}
    assert all(changed[s]["peers"] != before[s]["peers"] for s in "ABC"), ui.text
    assert changed["A"]["ifindex"] == before["A"]["ifindex"], ui.text  # applied live, too

    with (
        applying.Pinger(state, "B", C_HOST) as b_to_c,
        applying.Pinger(state, "C", B_HOST) as c_to_b,
    ):
        done, settled = settle_lab(state, four, "rollback")
    assert done == 4, settled.text
    log = router(state, "A", "sh", "-c", "cat /tmp/sitewire/*/log")
    allowed = REBIND_LOSS.get(release, 0)
    for name, ping in (("B->C", b_to_c), ("C->B", c_to_b)):
        assert ping.sent > 20 and ping.lost <= allowed, (name, ping.sent, ping.lost, log)
    after = {s: running(state, s, platform) for s in "ABC"}
    for site in "ABC":
        assert after[site] == before[site], site
    if release == "25.12":
        assert "[#] ubus call network.interface.wg0 renew" in log, log
    else:
        assert "restored the running peers and routes of wg0" in log, log
    assert "ifup wg0" not in log.replace("|| ifup wg0", ""), log
