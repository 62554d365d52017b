"""Keys born on lab routers: private keys stay there, PSKs match on both ends, nothing is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy.keys import ensure_preshared_key, ensure_private_key
from sitewire.deploy.ssh import Credentials, Session, Target, connect
from sitewire.driver.linux import DRIVER as LINUX
from sitewire.driver.openwrt import DRIVER as OPENWRT
from sitewire.keys import public_key
from sitewire.lab.host import lab_down, router_exec
from sitewire.lab.state import LabState, load_state
from tests.conftest import SEED
from tests.lab.conftest import LINUX_SPEC, unique_name


@pytest.fixture
def mixed_lab(tmp_path: Path) -> Iterator[LabState]:
    """A factory OpenWrt router A and a plain Linux router B."""
    spec = tmp_path / "network.toml"
    spec.write_text(LINUX_SPEC.replace('platform = "linux"', 'platform = "openwrt"', 1))
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name]) == 0
        yield load_state(name)
    finally:
        lab_down(name, missing_ok=True)


async def _sessions(state: LabState) -> dict[str, Session]:
    creds = Credentials((state.client_key,), state.known_hosts, use_user_config=False)
    return {
        site: await connect(Target(site, str(state.layout.router(site).mgmt.ip)), creds)
        for site in ("A", "B")
    }


@pytest.mark.lab
def test_keys_are_born_on_the_routers_and_never_seen(
    mixed_lab: LabState, caplog: pytest.LogCaptureFixture
) -> None:
    state = mixed_lab
    # As a person does on a factory router: the lists first (a router keeps them in RAM).
    install = ["sh", "-c", "opkg update >/dev/null && opkg install wireguard-tools"]
    assert router_exec(state, "A", install).returncode == 0
    caplog.set_level(logging.DEBUG)

    async def go() -> tuple[str, str, bool, bool, str]:
        sessions = await _sessions(state)
        try:
            pub_a = await ensure_private_key(sessions["A"], OPENWRT, "wg0")
            pub_b = await ensure_private_key(sessions["B"], LINUX, "wg0")
            again = await ensure_private_key(sessions["A"], OPENWRT, "wg0")
            a = (sessions["A"], OPENWRT, "wg0", "B")
            b = (sessions["B"], LINUX, "wg0", "A")
            first = await ensure_preshared_key(a, b)
            second = await ensure_preshared_key(a, b)
            return pub_a, pub_b, first, second, again
        finally:
            for session in sessions.values():
                await session.close()

    pub_a, pub_b, made, remade, again = asyncio.run(go())
    private_a = router_exec(state, "A", ["uci", "get", "network.wg0.private_key"]).stdout.strip()
    private_b = router_exec(state, "B", ["cat", "/etc/wireguard/wg0.key"]).stdout.strip()
    assert public_key(private_a) == pub_a == again  # made once, kept on a second call
    assert public_key(private_b) == pub_b
    assert (made, remade) == (True, False)  # the second call finds matching hashes
    psk_a = router_exec(state, "A", ["uci", "get", "network.sw_peer_B.preshared_key"]).stdout
    psk_b = router_exec(state, "B", ["cat", "/etc/wireguard/wg0-A.psk"]).stdout
    assert psk_a.strip() == psk_b.strip() and len(psk_a.strip()) == 44
    assert router_exec(state, "A", ["uci", "changes"]).stdout == ""  # everything committed
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "[#] A:" in logged
    for secret in (private_a, private_b, psk_a.strip()):
        assert secret not in logged


@pytest.mark.lab
def test_without_wireguard_tools_the_error_names_the_fix(tmp_path: Path) -> None:
    spec = tmp_path / "network.toml"
    spec.write_text(SEED.read_text())
    name = unique_name()
    try:
        assert run(["lab", "up", str(spec), "--name", name]) == 0
        state = load_state(name)

        async def go() -> None:
            sessions = await _sessions(state)
            try:
                await ensure_private_key(sessions["A"], OPENWRT, "wg0")
            finally:
                for session in sessions.values():
                    await session.close()

        with pytest.raises(Exception, match=r"could not create a WireGuard key") as err:
            asyncio.run(go())
        assert str(err.value) == (
            "A: could not create a WireGuard key: wg: not installed (install wireguard-tools first)"
        )
        # Nothing was half-made: no interface section, nothing committed or pending.
        assert router_exec(state, "A", ["uci", "-q", "get", "network.wg0"]).returncode != 0
        assert router_exec(state, "A", ["uci", "changes"]).stdout == ""
    finally:
        lab_down(name, missing_ok=True)
