"""`sitewire doctor` names faults 6–10 of issue 5 on the seed network, one fault at a time;
and reports nothing on a healthy ten-site network with relays.

One seed lab for the module (`sitewire lab up` as a person runs it, then one apply). Each test
breaks the healthy network one way, expects exactly one finding of the expected check on the
expected site, with the evidence line that shows the cause and the fix, then repairs the
network with the finding's own fix (or puts it back as planned) and expects doctor to report
nothing again. A test that fails before its repair leaves the network to the `seed` fixture,
which runs the test's undo steps and `sitewire apply`, so the next test starts healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sitewire.cli.apply import lab_reach
from sitewire.cli.main import run
from sitewire.diagnose.doctor import Finding, diagnose
from sitewire.diagnose.gather import Gathered, gather_network
from sitewire.lab.host import host_exec, lab_down, router_exec
from sitewire.lab.state import LabState, load_state
from sitewire.pipeline import make_plan, open_workspace
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, router, settled, wait_for, write_spec
from tests.lab.conftest import MakeLab, unique_name

A_LAN_HOST = "192.168.3.100"
B_LAN_HOST = "192.168.7.100"
A_OVERLAY, B_OVERLAY = "192.168.5.1", "192.168.5.2"


@dataclass
class Seed:
    """The shared lab, and whether the test running now has left it broken."""

    state: LabState
    spec: Path
    secrets: tuple[str, ...]  # every private and preshared key: doctor must never show one
    broken: bool = False
    undo: list[Callable[[], object]] = field(default_factory=list)


def _secrets(state: LabState, sites: tuple[str, ...]) -> tuple[str, ...]:
    """Every router's private key and the preshared key of each of its peers."""
    out = []
    for site in sites:
        out.append(router(state, site, "uci", "get", "network.wg0.private_key").strip())
        shown = router(state, site, "uci", "show", "network").splitlines()
        out += [line.split("=", 1)[1].strip("'") for line in shown if ".preshared_key=" in line]
    assert out and all(len(secret) == 44 for secret in out)
    assert len(out) > len(sites)  # the preshared keys too
    return tuple(out)


@contextlib.contextmanager
def seed_lab(directory: Path, text: str, sites: tuple[str, ...] = ("A", "B")) -> Iterator[Seed]:
    """A lab of the network `text` (`sitewire lab up` as a person runs it, then one apply),
    taken down again afterwards."""
    spec = write_spec(directory / "network.toml", text)
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name]) == 0
        state = load_state(name)
        outcome, ui = apply_lab(state, spec)
        assert outcome.ok, ui.text
        yield Seed(state, spec, _secrets(state, sites))
    finally:
        lab_down(name, missing_ok=True)


@pytest.fixture(scope="module")
def seed_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    with seed_lab(tmp_path_factory.mktemp("doctor2"), SEED.read_text()) as seed:
        yield seed


def each_test(network: Seed) -> Iterator[Seed]:
    """The shared lab for one test; put back by the test's undo steps and an apply when the
    test left it broken."""
    network.broken = True  # until the test has seen doctor report nothing again
    network.undo.clear()
    yield network
    if network.broken:
        for step in reversed(network.undo):
            step()
        outcome, ui = apply_lab(network.state, network.spec)
        assert outcome.ok, ui.text
        network.broken = False


@pytest.fixture
def seed(seed_network: Seed) -> Iterator[Seed]:
    yield from each_test(seed_network)


def gather(state: LabState, spec: Path) -> Gathered:
    """What `sitewire doctor SPEC --lab` reads, in-process: every site, then the probes."""
    plan = make_plan(open_workspace(spec, state.dir / "network.lock"))
    where = lab_reach(state, plan.site_names)
    gathered = asyncio.run(gather_network(plan, where.targets, where.creds))
    assert gathered.unreachable == {}
    return gathered


def doctor(seed: Seed, spec: Path | None = None) -> list[Finding]:
    findings = diagnose(gather(seed.state, spec or seed.spec).live)
    shown = "\n".join(f.text() for f in findings)
    assert not any(secret in shown for secret in seed.secrets)
    return findings


def only(findings: list[Finding], check: str, site: str) -> Finding:
    """The one finding there must be: `check` on `site`, and nothing else on any site."""
    assert [(f.check, f.site) for f in findings] == [(check, site)], "\n".join(
        f.text() for f in findings
    )
    return findings[0]


def healthy(seed: Seed, spec: Path | None = None) -> None:
    findings = doctor(seed, spec)
    assert findings == [], "\n".join(f.text() for f in findings)
    seed.broken = False


def fix_command(finding: Finding) -> str:
    """The command of a finding's fix, without the alternatives in parentheses after it."""
    return finding.fix.split("   (")[0]


def sh(seed: Seed, site: str, command: str) -> str:
    """A command as a person types it on the router; after an ifup, until netifd is done."""
    out = router(seed.state, site, "sh", "-c", command)
    if "ifup wg0" in command:
        settled(seed.state, site)
    return out


def lan_ping(seed: Seed, site: str, address: str) -> bool:
    """A ping from SITE's LAN host: what the person's LAN hosts see."""
    argv = ["ping", "-c", "2", "-i", "0.2", "-W", "2", address]
    return host_exec(seed.state, site, argv).returncode == 0


def router_ping(seed: Seed, site: str, address: str, *options: str) -> bool:
    argv = ["ping", "-c", "1", "-W", "1", *options, address]
    return router_exec(seed.state, site, argv).returncode == 0


def tunnel_up(seed: Seed) -> None:
    """Both LANs reach each other again (after an ifup the peers re-handshake first)."""
    assert wait_for(lambda: router_ping(seed, "B", A_OVERLAY), 20)
    assert lan_ping(seed, "B", A_LAN_HOST) and lan_ping(seed, "A", B_LAN_HOST)


def public_key(seed: Seed, site: str) -> str:
    return router(seed.state, site, "wg", "show", "wg0", "public-key").strip()


# --- 6 to 10 --------------------------------------------------------------------------------


@pytest.mark.lab
def test_6_route_allowed_ips_off(seed: Seed) -> None:
    """B's peer A without route_allowed_ips: wg0 still carries A's LAN, but nothing routes it
    there; B's packets to A's LAN leave through the WAN default route."""
    seed.undo.append(
        lambda: sh(
            seed,
            "B",
            "uci set network.sw_peer_A.route_allowed_ips=1 && uci commit network && ifup wg0",
        )
    )
    sh(seed, "B", "uci set network.sw_peer_A.route_allowed_ips=0 && uci commit network")
    sh(seed, "B", "ifup wg0")
    assert "192.168.3.0/24" not in router(seed.state, "B", "ip", "route", "show")
    assert not lan_ping(seed, "B", A_LAN_HOST)

    finding = only(doctor(seed), "no-route", "B")
    assert "no route to 192.168.3.0/24 through wg0 (route_allowed_ips is off)" in finding.problem
    leak = finding.evidence.index("$ ip route get 192.168.3.1") + 1
    assert finding.evidence[leak].startswith("192.168.3.1 via 198.18.0.1 dev wan "), finding
    flag = finding.evidence.index("$ uci get network.sw_peer_A.route_allowed_ips") + 1
    assert finding.evidence[flag] == "0"
    assert fix_command(finding) == (
        "uci set network.sw_peer_A.route_allowed_ips='1' && uci commit network && ifup wg0"
    )

    sh(seed, "B", fix_command(finding))
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_7_a_public_key_mismatch_names_the_side_holding_the_wrong_key(seed: Seed) -> None:
    """A holds another (valid) key for B: B's handshakes reach A, which knows no such peer.
    B holds A's right key and gets no finding."""
    state = seed.state
    key_b = public_key(seed, "B")
    seed.undo.append(
        lambda: sh(
            seed,
            "A",
            f"uci set network.sw_peer_B.public_key='{key_b}' && uci commit network && ifup wg0",
        )
    )
    wrong = sh(seed, "A", "wg genkey | wg pubkey").strip()
    assert len(wrong) == 44 and wrong != key_b
    sh(seed, "A", f"uci set network.sw_peer_B.public_key='{wrong}' && uci commit network")
    sh(seed, "A", "ifup wg0")
    assert wrong in router(state, "A", "wg", "show", "wg0", "peers").split()

    finding = only(doctor(seed), "wrong-key", "A")
    assert "holds the wrong public key for B" in finding.problem
    dump = next(line for line in finding.evidence if line.startswith("wg0\t"))
    fields = dump.split("\t")
    assert fields[1] == wrong and "192.168.7.0/24" in fields[3], dump
    assert fields[4] == "0", dump  # never a handshake
    real = finding.evidence.index("$ wg show wg0 public-key  (on B)") + 1
    assert finding.evidence[real] == key_b
    by_hand = finding.fix.partition("or by hand: ")[2].removesuffix(")")
    assert by_hand == (
        f"uci set network.sw_peer_B.public_key='{key_b}' && uci commit network && ifup wg0"
    )

    sh(seed, "A", by_hand)
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_8_a_peer_change_saved_but_not_live(seed: Seed) -> None:
    """24.10: B's peer A gains an allowed IP in UCI; `network reload` ignores peer sections,
    so wg0 keeps running the old peer."""
    state = seed.state
    assert state.openwrt_release == "24.10"
    sh(seed, "B", "uci add_list network.sw_peer_A.allowed_ips='10.77.0.0/24'")
    sh(seed, "B", "uci commit network && /etc/init.d/network reload")
    assert "10.77.0.0/24" not in router(state, "B", "wg", "show", "wg0", "allowed-ips")

    finding = only(doctor(seed), "saved-not-live", "B")
    assert "peer A in /etc/config/network differs from what wg0 runs" in finding.problem
    saved = finding.evidence.index("$ uci get network.sw_peer_A.allowed_ips") + 1
    assert "10.77.0.0/24" in finding.evidence[saved].split()
    running = finding.evidence[finding.evidence.index("$ wg show all dump") + 1]
    assert running.split("\t")[1] == public_key(seed, "A")
    assert "192.168.3.0/24" in running and "10.77.0.0/24" not in running, running
    assert fix_command(finding) == "ifup wg0"

    sh(seed, "B", fix_command(finding))  # the saved change goes live
    assert "10.77.0.0/24" in router(state, "B", "wg", "show", "wg0", "allowed-ips")
    tunnel_up(seed)
    healthy(seed)
    # The change itself was never planned: back to the plan for the tests after this one.
    seed.broken = True
    outcome, ui = apply_lab(state, seed.spec)
    assert outcome.ok, ui.text
    assert "10.77.0.0/24" not in router(state, "B", "wg", "show", "wg0", "allowed-ips")
    seed.broken = False


def _path_mtu(seed: Seed, mtu: int) -> None:
    """The internet's ports towards A and B carry at most `mtu` bytes per packet."""
    layout = seed.state.layout
    for site in ("A", "B"):
        argv = ["ip", "-n", layout.inet_netns, "link", "set"]
        argv += [layout.router(site).inet_port, "mtu", str(mtu)]
        subprocess.run(argv, check=True, timeout=30)


@pytest.mark.lab
def test_9_an_mtu_too_large_for_the_path(seed: Seed, tmp_path: Path) -> None:
    """The path between A and B carries 1492-byte packets (a PPPoE link) and says nothing
    about larger ones (no ICMP "too big": a PMTU black hole).

    The lab's internet is a bridge in its own namespace, one veth port per router. Lowering
    the MTU of the ports towards A and B to 1492 makes the bridge drop every larger frame
    on its way out, silently. wg0 keeps the plan's 1420, sized for a 1500-byte WAN: B reaches
    A by A's IPv6 address (its name resolves to it first), so a full 1420-byte inner packet
    is 1420 + 32 + 8 + 40 = 1500 bytes outside, and is lost; small pings still cross. Both
    ends' probes fail (a reply is as large as its request), and doctor reports the pair once,
    on A (first in the plan), with the largest size that did cross as the MTU to set.
    Applying that fix, with the path still narrow, leaves doctor nothing to report.
    """
    state = seed.state
    seed.undo.append(lambda: _path_mtu(seed, 1500))
    _path_mtu(seed, 1492)
    assert router_ping(seed, "A", B_OVERLAY, "-M", "do", "-s", "1300")
    assert not router_ping(seed, "A", B_OVERLAY, "-M", "do", "-s", "1392")

    finding = only(doctor(seed), "mtu-too-large", "A")
    assert "packets of wg0's MTU (1420) do not cross to B; small ones do" in finding.problem
    assert f"$ ping -c 2 {B_OVERLAY}   → ok" in finding.evidence
    assert f"$ ping -c 2 -M do -s 1392 {B_OVERLAY}   → no reply" in finding.evidence
    assert "(and the same from B to A)" in finding.evidence
    assert f"$ ping -c 1 -M do -s 1372 {B_OVERLAY}   → ok  (the largest that crossed)" in (
        finding.evidence
    )
    assert finding.fix == "set mtu = 1400 under sites.A and sites.B, then run sitewire apply"

    # The fix, as the finding gives it: the spec with that MTU, applied.
    text = SEED.read_text()
    for site in ("A", "B"):
        text = text.replace(f"[sites.{site}]\n", f"[sites.{site}]\nmtu = 1400\n")
    fixed = write_spec(tmp_path / "network.toml", text)
    outcome, ui = apply_lab(state, fixed)
    assert outcome.ok, ui.text
    healthy(seed, fixed)

    # The wide path and the plan's MTU again, for the tests after this one.
    seed.broken = True
    _path_mtu(seed, 1500)
    outcome, ui = apply_lab(state, seed.spec)
    assert outcome.ok, ui.text
    assert router(state, "A", "cat", "/sys/class/net/wg0/mtu").strip() == "1420"
    healthy(seed)


@pytest.mark.lab
def test_0_a_wireguard_handler_netifd_did_not_load(seed: Seed) -> None:
    """The handler is installed after netifd started (as with `opkg install` and then only a
    `network reload`): the real netifd shows wg0 as proto `none`, NO_DEVICE, and runs no
    device. Every other check would see only symptoms; doctor names the cause and the restart."""
    handler = "/lib/netifd/proto/wireguard.sh"
    seed.undo.append(lambda: sh(seed, "B", f"[ -e {handler} ] || mv /tmp/wg-handler {handler}"))
    sh(seed, "B", f"mv {handler} /tmp/wg-handler && /etc/init.d/network restart")
    sh(seed, "B", f"mv /tmp/wg-handler {handler}")  # back, but netifd has started without it
    assert router_exec(seed.state, "B", ["ip", "link", "show", "dev", "wg0"]).returncode != 0 or (
        '"proto": "none"'
        in router(seed.state, "B", "ubus", "call", "network.interface.wg0", "status")
    )
    finding = only(doctor(seed), "interface-not-running", "B")
    assert "netifd had no WireGuard handler when it started" in finding.problem
    assert '"up": false (proto none, NO_DEVICE)' in finding.evidence
    assert finding.fix == "/etc/init.d/network restart"

    sh(seed, "B", finding.fix)
    settled(seed.state, "B")
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
def test_10_the_wireguard_interface_in_no_firewall_zone(seed: Seed) -> None:
    """B's wg0 taken out of the sitewire zone: fw4 knows no zone for it, and its defaults
    reject what enters or crosses it."""
    seed.undo.append(
        lambda: sh(
            seed,
            "B",
            "uci add_list firewall.sw_zone.network=wg0 && uci commit firewall && fw4 reload",
        )
    )
    sh(seed, "B", "uci del_list firewall.sw_zone.network=wg0 && uci commit firewall")
    sh(seed, "B", "/etc/init.d/firewall reload")
    assert not lan_ping(seed, "A", B_LAN_HOST)

    finding = only(doctor(seed), "interface-without-zone", "B")
    assert finding.problem.startswith("wg0 is in no firewall zone")
    zone = next(line for line in finding.evidence if line.startswith("firewall.sw_zone=zone"))
    assert "name=sitewire" in zone and "network=" not in zone, zone
    assert fix_command(finding) == (
        "uci add_list firewall.sw_zone.network='wg0' && uci commit firewall "
        "&& /etc/init.d/firewall reload"
    )

    sh(seed, "B", fix_command(finding))
    tunnel_up(seed)
    healthy(seed)


@pytest.mark.lab
@pytest.mark.parametrize("how", ["line removed", "cron disabled"])
def test_a_dialled_name_with_no_watchdog(seed: Seed, how: str) -> None:
    """B dials a.example.net: a person deletes the watchdog's crontab line (or disables cron)
    and nothing re-resolves the name when A's address changes."""
    seed.undo.append(lambda: sh(seed, "B", "/etc/init.d/cron enable"))
    if how == "line removed":
        sh(
            seed,
            "B",
            "sed -i '/wireguard_watchdog/d' /etc/crontabs/root && /etc/init.d/cron restart",
        )
    else:
        sh(seed, "B", "/etc/init.d/cron disable")

    finding = only(doctor(seed), "no-watchdog", "B")
    why = "no cron job runs it" if how == "line removed" else "cron is not enabled at boot"
    assert f"dials A (a.example.net) by name, but {why}" in finding.problem
    assert ("cron: enabled" in finding.evidence) == (how == "line removed"), finding.evidence

    sh(seed, "B", fix_command(finding))
    assert "wireguard_watchdog" in router(seed.state, "B", "cat", "/etc/crontabs/root")
    healthy(seed)


# --- a healthy network of ten -----------------------------------------------------------------


def relayed(n: int) -> str:
    """benchmarks/lab_scale.py's networks: every fourth site listens, the rest dial those and
    reach each other through them; one site in five (s04, s09) is a Linux router."""
    lines = ["[network]", 'name = "relayed"', 'overlay = "10.99.0.0/24"']
    for i in range(n):
        lines += [
            f"[sites.s{i:02d}]",
            f'platform = "{"linux" if i % 5 == 4 else "openwrt"}"',
            f'lan = ["10.{i + 1}.0.0/24"]',
        ]
        if i % 4 == 0:
            lines.append(f'endpoint = "s{i:02d}.example.net"')
    return "\n".join(lines) + "\n"


@pytest.mark.lab
def test_a_healthy_ten_site_network_with_relays_has_no_finding(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    text = relayed(10)
    spec = write_spec(tmp_path / "network.toml", text)
    state = make_lab(spec_from(text))
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text

    gathered = gather(state, spec)
    assert sorted(gathered.live.facts) == [f"s{i:02d}" for i in range(10)]
    # Every site probed every other, over the tunnel, with full-size packets too.
    for site, probes in gathered.live.probes.items():
        others = {f"s{i:02d}" for i in range(10)} - {site}
        assert {o for o, ok in probes.small.items() if ok} == others, (site, probes.small)
        assert {o for o, ok in probes.large.items() if ok} == others, (site, probes.large)
    findings = diagnose(gathered.live)
    assert findings == [], "\n".join(f.text() for f in findings)
    print(f"doctor on 10 sites: {gathered.seconds:.1f}s")
    assert gathered.seconds < 20, gathered.seconds
