"""A power cut inside the revert window, and `lab reboot` of a healthy network (issue 13).

The reboot is `lab reboot`: every process of the router killed, /tmp and /run emptied, the
kernel's network state forgotten, then the router's own boot (rc.d S* on OpenWrt; the units
wanted by sysinit and multi-user on Linux). The window is long (120 s): only the boot hook may
put the old files back, never the timer, whose process dies with the power.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy import safety
from sitewire.deploy.run import Result
from sitewire.deploy.safety import Device, Outcome
from sitewire.lab.host import lab_down, lab_up, router_exec
from sitewire.lab.reboot import lab_reboot
from sitewire.lab.rehearse import after_up
from sitewire.lab.state import LabState, load_state
from sitewire.plan import plan_network
from tests.conftest import SEED, spec_from
from tests.lab.applying import apply_lab, router, unreachable, write_spec
from tests.lab.conftest import LINUX_SPEC, unique_name
from tests.lab.test_safety_lab import (
    CHANGE,
    EXTRA,
    LINUX_CONF,
    LINUX_RELOAD,
    OPENWRT_FILES,
    RELOAD,
    has_extra,
    lan_to_lan,
    read,
    session_to,
    switch_status,
)

WINDOW = 120
POINTS = ("armed", "committed", "live", "verified")


@dataclass(frozen=True)
class Platform:
    spec: str
    release: str
    files: tuple[str, ...]
    reload: tuple[str, ...]
    device: Device
    commit: str  # the change written to flash, nothing made live

    @property
    def live(self) -> str:
        return " && ".join(self.reload)


PLATFORMS = {
    "openwrt-24.10": Platform(
        SEED.read_text(), "24.10", OPENWRT_FILES, RELOAD, safety.OPENWRT, CHANGE
    ),
    "openwrt-25.12": Platform(
        SEED.read_text(), "25.12", OPENWRT_FILES, RELOAD, safety.OPENWRT, CHANGE
    ),
    "linux": Platform(
        LINUX_SPEC,
        "24.10",
        (LINUX_CONF,),
        LINUX_RELOAD,
        safety.LINUX,
        f"sed -i 's|^Address = .*|&, {EXTRA}/32|' {LINUX_CONF}",
    ),
}


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[functools.partial[LabState]]:
    names: list[str] = []

    def up(platform: Platform) -> LabState:
        path = tmp_path / "network.toml"
        path.write_text(platform.spec)
        names.append(unique_name())
        then = functools.partial(after_up, configured=True, accept_routes=False)
        plan = plan_network(spec_from(platform.spec))
        return lab_up(plan, names[-1], platform.release, spec_path=str(path), then=then)

    try:
        yield functools.partial(up)
    finally:
        for name in names:
            lab_down(name, missing_ok=True)


def _reachable(state: LabState, site: str) -> bool:
    async def probe() -> bool:
        async with await session_to(state, site) as session:
            return (await session.run("echo up")).stdout.strip() == "up"

    return asyncio.run(probe())


def _leave_pending(state: LabState, p: Platform, token: str, point: str) -> None:
    """Arm a commit and go as far as `point` in its window, then walk away from it."""

    async def go() -> None:
        async with await session_to(state, "B") as session:
            await safety.arm(session, token, p.files, WINDOW, p.reload, device=p.device)
            if point != "armed":
                await session.check(p.commit)
            if point in ("live", "verified"):
                await session.check(p.live)
        if point == "verified":  # apply's verification: a new connection finds it pending
            async with await session_to(state, "B") as fresh:
                found = await safety.pending(fresh, device=p.device)
                assert found is not None and found.token == token

    asyncio.run(go())


@pytest.mark.lab
@pytest.mark.parametrize("kind", sorted(PLATFORMS))
def test_a_power_cut_inside_the_window_boots_the_old_configuration(
    configured: functools.partial[LabState], kind: str
) -> None:
    p = PLATFORMS[kind]
    state = configured(p)
    before = read(state, "B", p.files)
    for point in POINTS:
        token = safety.new_token()
        _leave_pending(state, p, token, point)
        if point != "armed":
            assert read(state, "B", p.files) != before, point
        lab_reboot(state, "B")
        assert read(state, "B", p.files) == before, f"{kind}, reboot when {point}"
        assert not has_extra(state, "B"), point  # the old files are what came up
        status = switch_status(state, "B", p.device)
        assert status.pending is None, point
        assert status.commits[token] is Outcome.BOOT_REVERTED, (point, status)
        assert _reachable(state, "B"), point
        boot_log = router_exec(state, "B", ["cat", "/tmp/sitewire-boot.log"]).stdout
        assert f"{token} restored" in boot_log, boot_log
    assert lan_to_lan(state)

    # Confirmed, then the power goes: the new configuration is the one that boots.
    token = safety.new_token()
    _leave_pending(state, p, token, "verified")

    async def confirm() -> None:
        async with await session_to(state, "B") as session:
            await safety.confirm(session, token, device=p.device)

    asyncio.run(confirm())
    after = read(state, "B", p.files)
    lab_reboot(state, "B")
    assert read(state, "B", p.files) == after != before
    assert has_extra(state, "B")
    status = switch_status(state, "B", p.device)
    # A confirmed commit's record was in /tmp: gone with the power, and not boot-reverted.
    assert status.pending is None and token not in status.commits, status
    assert lan_to_lan(state)


def _route_all(state: LabState, site: str) -> bool:
    value = json.loads(router(state, site, "tailscale", "debug", "prefs"))["RouteAll"]
    assert isinstance(value, bool)
    return value


TAILNET_LINUX = LINUX_SPEC.replace(
    'lan = ["192.168.7.0/24", "fd00:7::/64"]',
    'lan = ["192.168.7.0/24", "fd00:7::/64"]\n'
    'tailscale = { advertise_routes = ["192.168.7.0/24"] }',
).replace(
    'endpoint = "a.example.net"',
    'endpoint = "a.example.net"\ntailscale = { advertise_routes = ["192.168.3.0/24"] }',
)
LANS = {"A": "192.168.3.0/24", "B": "192.168.7.0/24"}


@pytest.mark.lab
@pytest.mark.parametrize("kind", ["openwrt", "linux"])
def test_a_reboot_of_an_applied_network_comes_back_working(tmp_path: Path, kind: str) -> None:
    """Tailscale accepting each other's LAN routes, sitewire applied, then both routers lose
    power: the boot brings WireGuard, the firewall and Tailscale back, the routes still off."""
    text = SEED.read_text() if kind == "openwrt" else TAILNET_LINUX
    spec = write_spec(tmp_path / "network.toml", text)
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name, "--tailscale-accept-routes"]) == 0
        state = load_state(name)
        outcome, ui = apply_lab(state, spec)
        assert {r.result for r in outcome.sites.values()} == {Result.CONFIRMED}, ui.text
        for site in ("A", "B"):
            lab_reboot(state, site)
        assert unreachable(state, spec) == []
        for site, other in (("A", "B"), ("B", "A")):
            assert not _route_all(state, site)
            assert LANS[other] not in router(state, site, "ip", "route", "show", "table", "52")
            assert "wg0" in router(state, site, "wg", "show", "interfaces")
        assert run(["lab", "reboot", "B", "--name", name]) == 0  # the command, as a person runs it
        assert unreachable(state, spec) == []
    finally:
        lab_down(name, missing_ok=True)
