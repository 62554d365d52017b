"""The seed's two OpenWrt traps after `sitewire apply`: Tailscale's table 52 and a moving DDNS name.

Tailscale (DESIGN.md decision 8, reference §6): both routers run Tailscale, advertise their LAN
on the tailnet and accept the other's (`lab up --tailscale-accept-routes`), so table 52,
consulted before `main`, captures the other site's LAN. Apply fixes it with
`tailscale set --accept-routes=false`; a spec that keeps accepted routes gets netifd
`config rule ... lookup main` pins below the `lookup 52` rule.

DDNS (decision 9, reference §4): A is dialled by name; when A moves, B's WireGuard keeps the
address it resolved once, and only the wireguard_watchdog cron job apply installed brings the
tunnel back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy.run import Result
from sitewire.lab.host import lab_down, lab_move, router_exec
from sitewire.lab.state import LabState, load_state
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, router, unreachable, write_spec
from tests.lab.conftest import MakeLab, unique_name

KEEP_ROUTES = (
    SEED.read_text()
    .replace("exit_node = true }", "exit_node = true, accept_routes = true }")
    .replace('["192.168.7.0/24"] }', '["192.168.7.0/24"], accept_routes = true }')
)
LANS = {"A": "192.168.3.0/24", "B": "192.168.7.0/24"}


@pytest.fixture
def trapped_lab(tmp_path: Path) -> Iterator[tuple[LabState, Path]]:
    """The seed's factory routers with Tailscale up and accepting each other's LAN routes."""
    spec = write_spec(tmp_path / "network.toml", SEED.read_text())
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name, "--tailscale-accept-routes"]) == 0
        yield load_state(name), spec
    finally:
        lab_down(name, missing_ok=True)


def _route_all(state: LabState, site: str) -> bool:
    value = json.loads(router(state, site, "tailscale", "debug", "prefs"))["RouteAll"]
    assert isinstance(value, bool)
    return value


def _rules(state: LabState, site: str) -> list[tuple[int, str]]:
    """`ip rule show` as (priority, selector and action), in the kernel's order."""
    out = []
    for line in router(state, site, "ip", "rule", "show").splitlines():
        priority, _, rest = line.partition(":")
        out.append((int(priority), " ".join(rest.split())))
    return out


@pytest.mark.lab
def test_apply_turns_off_accepted_routes_or_pins_its_prefixes(
    trapped_lab: tuple[LabState, Path], tmp_path: Path
) -> None:
    state, spec = trapped_lab
    for site, other in (("A", "B"), ("B", "A")):
        assert _route_all(state, site)  # the trap is set: the other LAN sits in table 52
        assert LANS[other] in router(state, site, "ip", "route", "show", "table", "52")

    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    for site in ("A", "B"):
        assert f"{site}: [#] tailscale set --accept-routes=false" in ui.text, ui.text
    assert unreachable(state, spec) == []
    for site, other in (("A", "B"), ("B", "A")):
        assert not _route_all(state, site)
        assert LANS[other] not in router(state, site, "ip", "route", "show", "table", "52")
        assert "sw_pin_" not in router(state, site, "uci", "show", "network")

    # The person needs other tailnet subnets: Tailscale accepts routes again, and the
    # WireGuard prefixes are pinned to main ahead of table 52 by netifd rules.
    keep = write_spec(tmp_path / "keep-routes.toml", KEEP_ROUTES)
    outcome, ui = apply_lab(state, keep)
    assert outcome.ok, ui.text
    assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
    for site in ("A", "B"):
        assert f"{site}: [#] tailscale set --accept-routes=true" in ui.text, ui.text
    assert unreachable(state, keep) == []
    for site, other in (("A", "B"), ("B", "A")):
        assert _route_all(state, site)
        assert LANS[other] in router(state, site, "ip", "route", "show", "table", "52")
        uci = router(state, site, "uci", "show", "network")
        section = "sw_pin_" + re.sub(r"[^0-9A-Za-z]", "_", LANS[other])
        assert f"network.{section}=rule" in uci, uci
        assert f"network.{section}.dest='{LANS[other]}'" in uci
        assert f"network.{section}.lookup='main'" in uci
        rules = _rules(state, site)
        table52 = next(p for p, r in rules if r.endswith("lookup 52"))
        pin = next(p for p, r in rules if f"to {LANS[other]} lookup main" in r)
        assert pin < table52, rules
        assert [p for p, _ in rules].index(pin) < [p for p, _ in rules].index(table52)
        route = router(
            state, site, "ip", "route", "get", LANS[other].replace("0/24", "100")
        ).split()
        assert route[route.index("dev") + 1] == "wg0", route


# OpenWrt's own wireguard_watchdog, as cron runs it, but with its 150 s threshold at 3 s: the
# real wait (150 s of silence, then the next minute's cron run) is too long for a test.
FAST_WATCHDOG = (
    "grep -q 'idle_seconds} -lt 150 ]' /usr/bin/wireguard_watchdog && "
    "sed 's/idle_seconds} -lt 150 ]/idle_seconds} -lt 3 ]/' /usr/bin/wireguard_watchdog"
    " >/tmp/watchdog-3s && sh /tmp/watchdog-3s"
)


def _endpoint(state: LabState, site: str) -> str:
    return router(state, site, "wg", "show", "wg0", "endpoints").split()[1]


@pytest.mark.lab
def test_a_moved_ddns_endpoint_comes_back_through_the_watchdog(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """After `lab move A`, B re-resolves a.example.net through wireguard_watchdog.

    Apply must have installed the cron job (asserted); the test then runs OpenWrt's watchdog
    by hand inside router B once a second with a 3 s threshold instead of waiting for cron
    and the real 150 s.
    """
    spec = write_spec(tmp_path / "network.toml", SEED.read_text())
    state = make_lab(spec_from(SEED.read_text()))
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    assert unreachable(state, spec) == []

    # Apply installed the cron job and left cron enabled and running, on B (the dialer) only.
    assert (
        "* * * * * /usr/bin/wireguard_watchdog"
        in router(state, "B", "cat", "/etc/crontabs/root").splitlines()
    )
    assert router_exec(state, "B", ["/etc/init.d/cron", "enabled"]).returncode == 0
    crond = json.loads(router(state, "B", "cat", "/var/run/lab-cron.json"))
    assert crond["running"] and b"crond" in Path(f"/proc/{crond['pid']}/cmdline").read_bytes()
    crontab = router_exec(state, "A", ["cat", "/etc/crontabs/root"]).stdout
    assert "wireguard_watchdog" not in crontab

    before = _endpoint(state, "B")
    old, new = lab_move(state, "A")
    assert before.rsplit(":", 1)[0].strip("[]") in (str(old.wan4.ip), str(old.wan6.ip))
    # WireGuard resolved the name once: B still sends to A's old address, so nothing passes.
    probe = router_exec(state, "B", ["ping", "-c", "2", "-W", "1", "192.168.5.1"])
    assert probe.returncode != 0
    assert _endpoint(state, "B") == before

    for _ in range(30):
        router(state, "B", "sh", "-c", FAST_WATCHDOG)
        if _endpoint(state, "B") != before:
            break
        time.sleep(1)
    after = _endpoint(state, "B")
    assert after.rsplit(":", 1)[0].strip("[]") in (str(new.wan4.ip), str(new.wan6.ip)), after
    log = router(state, "B", "logread")
    assert "wireguard_monitor: wg0 endpoint a.example.net:51820 is not responding" in log
    assert unreachable(state, spec) == []
