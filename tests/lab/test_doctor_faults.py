"""`sitewire doctor` names faults 1–5 of issue 5 on the seed network, one fault at a time.

One lab for the whole module, built as a person would (`sitewire lab up`, which also starts
the Tailscale stand-in on both routers) and applied once. Each test breaks the healthy network
one way, expects exactly one finding of the expected check on the expected site, with the
evidence line that shows the cause, then repairs it with the finding's own fix and expects
doctor to report nothing again. A test that fails before its repair leaves the network to the
`seed` fixture, which undoes what it can and runs `sitewire apply`, so the next test starts
from a healthy network.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sitewire.cli.apply import lab_reach
from sitewire.cli.main import run
from sitewire.diagnose.doctor import Finding, diagnose
from sitewire.diagnose.gather import gather_network
from sitewire.lab.host import host_exec, lab_down, lab_move, router_exec
from sitewire.lab.layout import hosts_text
from sitewire.lab.router import write_router_file
from sitewire.lab.state import LabState, load_state
from sitewire.pipeline import make_plan, open_workspace
from tests.conftest import SEED
from tests.lab.applying import apply_lab, router, settled, wait_for, write_spec
from tests.lab.conftest import unique_name

NAME = "a.example.net"  # A's DDNS name in the seed; B dials it


@dataclass
class Seed:
    """The shared lab, and whether the test running now has left it broken."""

    state: LabState
    spec: Path
    secrets: tuple[str, ...]  # every private and preshared key: doctor must never show one
    broken: bool = False
    undo: list[Callable[[], None]] = field(default_factory=list)


def _secrets(state: LabState) -> tuple[str, ...]:
    out = []
    for site, other in (("A", "B"), ("B", "A")):
        for option in ("network.wg0.private_key", f"network.sw_peer_{other}.preshared_key"):
            secret = router(state, site, "uci", "get", option).strip()
            assert len(secret) == 44
            out.append(secret)
    return tuple(out)


@pytest.fixture(scope="module")
def seed_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    spec = write_spec(tmp_path_factory.mktemp("doctor") / "network.toml", SEED.read_text())
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name]) == 0
        state = load_state(name)
        outcome, ui = apply_lab(state, spec)
        assert outcome.ok, ui.text
        yield Seed(state, spec, _secrets(state))
    finally:
        lab_down(name, missing_ok=True)


@pytest.fixture
def seed(seed_network: Seed) -> Iterator[Seed]:
    seed_network.broken = True  # until the test has seen doctor report nothing again
    seed_network.undo.clear()
    yield seed_network
    if seed_network.broken:
        for step in reversed(seed_network.undo):
            step()
        outcome, ui = apply_lab(seed_network.state, seed_network.spec)
        assert outcome.ok, ui.text
        seed_network.broken = False


def doctor(seed: Seed) -> list[Finding]:
    """`sitewire doctor SPEC --lab` in-process: every site read, then the checks."""
    plan = make_plan(open_workspace(seed.spec, seed.state.dir / "network.lock"))
    where = lab_reach(seed.state, plan.site_names)
    gathered = asyncio.run(gather_network(plan, where.targets, where.creds))
    assert gathered.unreachable == {}
    findings = diagnose(gathered.live)
    shown = "\n".join(f.text() for f in findings)
    assert not any(secret in shown for secret in seed.secrets)
    return findings


def only(findings: list[Finding], check: str, site: str) -> Finding:
    """The one finding there must be: `check` on `site`, and nothing else on any site."""
    assert [(f.check, f.site) for f in findings] == [(check, site)], "\n".join(
        f.text() for f in findings
    )
    return findings[0]


def healthy(seed: Seed) -> None:
    findings = doctor(seed)
    assert findings == [], "\n".join(f.text() for f in findings)
    seed.broken = False


def fix_command(finding: Finding) -> str:
    """The command of a finding's fix, without the alternatives in parentheses after it."""
    return finding.fix.split("   (")[0]


def sh(seed: Seed, site: str, command: str) -> None:
    """A command as a person types it on the router; after an ifup, until netifd is done."""
    router(seed.state, site, "sh", "-c", command)
    if "ifup wg0" in command:
        settled(seed.state, site)


def lan_ping(seed: Seed, site: str, address: str) -> bool:
    """A ping from SITE's LAN host: what the person's LAN hosts see."""
    argv = ["ping", "-c", "2", "-i", "0.2", "-W", "2", address]
    return host_exec(seed.state, site, argv).returncode == 0


def router_ping(seed: Seed, site: str, address: str) -> bool:
    argv = ["ping", "-c", "1", "-W", "1", address]
    return router_exec(seed.state, site, argv).returncode == 0


def endpoint(seed: Seed, site: str) -> str:
    """The address SITE's WireGuard sends to for its one site peer."""
    line = router(seed.state, site, "wg", "show", "wg0", "endpoints").splitlines()[0]
    return line.split()[1].rsplit(":", 1)[0].strip("[]")


@pytest.mark.lab
def test_the_healthy_seed_network_has_no_finding(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI as a person runs it: exit 0, no finding, both sites read."""
    argv = ["doctor", str(seed.spec), "--lab", "--lab-name", seed.state.name, "--json"]
    capsys.readouterr()
    assert run(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["findings"] == [] and out["sites"] == ["A", "B"]
    seed.broken = False


@pytest.mark.lab
def test_1_tailscale_accepted_routes_capture_the_other_lan(seed: Seed) -> None:
    """B accepts A's advertised LAN: table 52 (rule 5270) wins over main's route via wg0."""
    state = seed.state
    router(state, "B", "tailscale", "set", "--accept-routes=true")
    router(state, "B", "tailscale", "lab-sync")
    assert "192.168.3.0/24 dev tailscale0" in router(
        state, "B", "ip", "route", "show", "table", "52"
    )
    # The shape people meet: B's router reaches A's LAN (over the tailnet), B's LAN does not.
    # (On a freshly applied lab the tailnet path takes a few seconds to carry the first ping.)
    assert wait_for(lambda: router_ping(seed, "B", "192.168.3.1"), 20)
    assert not lan_ping(seed, "B", "192.168.3.100")

    finding = only(doctor(seed), "tailscale-captures-route", "B")
    assert "192.168.3.0/24" in finding.problem
    assert "works from the router and fails from the LAN" in finding.problem
    assert "$ ip route show table 52" in finding.evidence
    assert "192.168.3.0/24 dev tailscale0" in finding.evidence
    route = next(line for line in finding.evidence if "dev tailscale0 table 52" in line)
    command = finding.evidence[finding.evidence.index(route) - 1]
    assert command.startswith("$ ip route get 192.168.3.1 from 192.168.7."), command
    assert command.endswith(" iif br-lan"), command
    assert fix_command(finding) == "tailscale set --accept-routes=false"

    sh(seed, "B", fix_command(finding))
    router(state, "B", "tailscale", "lab-sync")  # the stand-in's routes follow its prefs here
    assert lan_ping(seed, "B", "192.168.3.100")
    healthy(seed)


@pytest.mark.lab
@pytest.mark.parametrize(
    ("site", "src", "dest"),
    [("A", "lan", "sitewire"), ("B", "sitewire", "lan")],
    ids=["lan-to-wg-on-A", "wg-to-lan-on-B"],
)
def test_2_a_missing_forwarding_between_the_wireguard_zone_and_lan(
    seed: Seed, site: str, src: str, dest: str
) -> None:
    section = f"sw_fwd_{src}_{dest}"
    sh(seed, site, f"uci delete firewall.{section} && uci commit firewall && fw4 reload")
    assert not lan_ping(seed, "A", "192.168.7.100")  # either way A's LAN cannot reach B's

    finding = only(doctor(seed), "missing-forwarding", site)
    assert f"no firewall forwarding {src} → {dest}" in finding.problem
    assert finding.evidence[0] == "$ uci show firewall | grep forwarding"
    listed = finding.evidence[1:]
    other = "sw_fwd_sitewire_lan" if src == "lan" else "sw_fwd_lan_sitewire"
    assert any(line.startswith(f"firewall.{other}=forwarding") for line in listed), listed
    assert not any(section in line for line in listed), listed
    assert f"uci set firewall.{section}=forwarding" in fix_command(finding)

    sh(seed, site, fix_command(finding))
    assert lan_ping(seed, "A", "192.168.7.100")
    healthy(seed)


@pytest.mark.lab
def test_3_the_listeners_port_is_not_open_on_its_wan(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listens on 51820 and B dials it; A's rule for it is gone (the tunnel lives on only
    through conntrack's entry for the flow B keeps open). Doctor through the CLI: exit 1."""
    state = seed.state
    sh(seed, "A", "uci delete firewall.sw_allow_wg0 && uci commit firewall && fw4 reload")
    assert "51820" not in router(state, "A", "nft", "list", "ruleset")

    argv = ["doctor", str(seed.spec), "--lab", "--lab-name", state.name, "--json"]
    capsys.readouterr()
    assert run(argv) == 1
    out = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["site"]) for f in out["findings"]] == [("port-closed", "A")], out
    shown = out["findings"][0]
    finding = Finding(**{**shown, "evidence": tuple(shown["evidence"])})
    assert "udp/51820" in finding.problem
    wan = next(line for line in finding.evidence if "name=wan" in line)
    assert "input=REJECT" in wan
    assert not any("51820" in line for line in finding.evidence), finding.evidence
    assert "dest_port='51820'" in fix_command(finding)

    sh(seed, "A", fix_command(finding))
    assert "51820" in router(state, "A", "nft", "list", "ruleset")
    healthy(seed)


@pytest.mark.lab
def test_4_a_dialer_without_persistent_keepalive(seed: Seed) -> None:
    """B (behind a firewall that admits nothing) dials A but sends no keepalive: once B is
    quiet, its firewall forgets the flow and A cannot reach B."""
    state = seed.state
    sh(seed, "B", "uci delete network.sw_peer_A.persistent_keepalive && uci commit network")
    sh(seed, "B", "ifup wg0")
    assert router(state, "B", "wg", "show", "wg0", "persistent-keepalive").split()[1] == "off"
    key_a = router(state, "A", "wg", "show", "wg0", "public-key").strip()

    finding = only(doctor(seed), "dialer-without-keepalive", "B")
    assert "dials A without persistent keepalive" in finding.problem
    dump = next(line for line in finding.evidence if line.startswith("wg0\t"))
    assert dump.split("\t")[1] == key_a and dump.endswith("\toff"), dump
    assert f"wg set wg0 peer {key_a} persistent-keepalive 25" in fix_command(finding)
    assert "persistent_keepalive='25'" in fix_command(finding)

    sh(seed, "B", fix_command(finding))
    assert router(state, "B", "wg", "show", "wg0", "persistent-keepalive").split()[1] == "25"
    healthy(seed)


def _stop_cron_on_b(seed: Seed) -> None:
    """No wireguard_watchdog run may repair the fault before doctor has seen it."""
    sh(seed, "B", "/etc/init.d/cron stop")
    seed.undo.append(lambda: sh(seed, "B", "/etc/init.d/cron start"))


def _restore_hosts(seed: Seed) -> None:
    """B's names back to where the lab's addresses are now (after any move)."""
    seed.undo.append(
        lambda: write_router_file(seed.state, "B", "/etc/hosts", hosts_text(seed.state.layout))
    )


def _reresolve_on_b(seed: Seed) -> None:
    seed.undo.append(lambda: sh(seed, "B", "ifup wg0"))


@pytest.mark.lab
def test_5_a_ddns_name_whose_listener_moved(seed: Seed) -> None:
    """A gets a new WAN address and its name follows; B's WireGuard resolved the name once and
    still sends to the old address."""
    state = seed.state
    _stop_cron_on_b(seed)
    before = endpoint(seed, "B")
    _reresolve_on_b(seed)
    old, new = lab_move(state, "A")
    assert before in (str(old.wan4.ip), str(old.wan6.ip))
    key_a = router(state, "A", "wg", "show", "wg0", "public-key").strip()

    finding = only(doctor(seed), "ddns-stale", "B")
    assert endpoint(seed, "B") == before  # nothing re-resolved the name while doctor ran
    assert f"talks to A at {before}, which A no longer has" in finding.problem
    dump = next(line for line in finding.evidence if line.startswith("wg0\t"))
    assert dump.split("\t")[1] == key_a and before in dump.split("\t")[2], dump
    held = finding.evidence[finding.evidence.index("$ ip -o addr  (on A)") + 1].split()
    assert str(new.wan4.ip) in held and before not in held
    resolved = finding.evidence[finding.evidence.index(f"$ nslookup {NAME}  (on B)") + 1]
    assert set(resolved.split()) == {str(new.wan4.ip), str(new.wan6.ip)}
    assert fix_command(finding) == f"wg set wg0 peer {key_a} endpoint {NAME}:51820"

    sh(seed, "B", fix_command(finding))
    assert endpoint(seed, "B") in (str(new.wan4.ip), str(new.wan6.ip))
    assert lan_ping(seed, "B", "192.168.3.100")
    healthy(seed)
    sh(seed, "B", "/etc/init.d/cron start")


@pytest.mark.lab
def test_5_a_ddns_name_still_pointing_at_the_old_address(seed: Seed) -> None:
    """A moves but its DNS record is not updated: B's name resolves to A's old address."""
    state = seed.state
    _stop_cron_on_b(seed)
    _reresolve_on_b(seed)
    _restore_hosts(seed)  # undone first: then ifup resolves the name again
    before = endpoint(seed, "B")
    stale = hosts_text(state.layout)
    old, new = lab_move(state, "A")
    write_router_file(state, "B", "/etc/hosts", stale)  # the DDNS update never happened

    finding = only(doctor(seed), "ddns-stale", "B")
    assert f"talks to A at {before}, which A no longer has" in finding.problem
    assert f"{NAME} still resolves to the old address" in finding.problem
    resolved = finding.evidence[finding.evidence.index(f"$ nslookup {NAME}  (on B)") + 1]
    assert set(resolved.split()) == {str(old.wan4.ip), str(old.wan6.ip)}
    assert finding.fix.startswith(f"update the DNS record of {NAME} to {new.wan4.ip} ")
    reset = finding.fix.partition("; then: ")[2]
    assert reset.startswith("wg set wg0 peer ") and reset.endswith(f"endpoint {NAME}:51820")

    write_router_file(state, "B", "/etc/hosts", hosts_text(state.layout))  # the DNS update
    sh(seed, "B", reset)
    assert endpoint(seed, "B") in (str(new.wan4.ip), str(new.wan6.ip))
    healthy(seed)
    sh(seed, "B", "/etc/init.d/cron start")


@pytest.mark.lab
def test_5_a_ddns_name_pointing_elsewhere_while_the_tunnel_still_runs(seed: Seed) -> None:
    """The record went wrong but nothing has re-resolved it yet: the tunnel runs, and the next
    resolve (ifup, reboot, the watchdog) breaks it."""
    state = seed.state
    _stop_cron_on_b(seed)
    _restore_hosts(seed)
    a = state.layout.router("A")
    wrong = hosts_text(state.layout)
    wrong = wrong.replace(f"{a.wan4.ip}\t", "203.0.113.9\t").replace(
        f"{a.wan6.ip}\t", "2001:db8::9\t"
    )
    write_router_file(state, "B", "/etc/hosts", wrong)

    finding = only(doctor(seed), "ddns-stale", "B")
    assert finding.problem.startswith(f"{NAME} resolves to ")
    assert "which A does not have" in finding.problem and "the tunnel runs on" in finding.problem
    resolved = finding.evidence[finding.evidence.index(f"$ nslookup {NAME}  (on B)") + 1]
    assert set(resolved.split()) == {"203.0.113.9", "2001:db8::9"}
    assert finding.fix.startswith(f"update the DNS record of {NAME} to {a.wan4.ip} ")

    write_router_file(state, "B", "/etc/hosts", hosts_text(state.layout))  # the DNS update
    healthy(seed)
    sh(seed, "B", "/etc/init.d/cron start")


@pytest.mark.lab
def test_after_the_fixes_by_hand_apply_has_nothing_to_change(seed: Seed) -> None:
    """The fixes doctor printed left each router as `sitewire apply` would have (run last:
    after the tests above, the routers carry their repairs, not a fresh apply)."""
    outcome, ui = apply_lab(seed.state, seed.spec, dry_run=True)
    assert outcome.ok, ui.text
    for site in ("A", "B"):
        assert f"{site}: no changes" in ui.lines, ui.text
    healthy(seed)
