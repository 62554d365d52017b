"""Keys born on lab routers: private keys stay there, PSKs match on both ends, nothing is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.deploy.keys import ensure_private_key, new_psks, psk_hash_command, psks_by_site
from sitewire.deploy.ssh import Credentials, Session, Target, connect
from sitewire.driver import Driver
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

    async def go() -> tuple[str, str, str, list[str], list[int]]:
        sessions = await _sessions(state)
        try:
            pub_a = await ensure_private_key(sessions["A"], OPENWRT, "wg0")
            pub_b = await ensure_private_key(sessions["B"], LINUX, "wg0")
            again = await ensure_private_key(sessions["A"], OPENWRT, "wg0")
            keys = new_psks([("A", "B"), ("A", "C"), ("B", "C")])
            ends: dict[str, Driver] = {"A": OPENWRT, "B": LINUX}
            for site, driver in ends.items():
                mine = psks_by_site(keys)[site]  # two peers each, in one command
                stdin = "".join(f"{k}\n" for _, k in mine)
                command = driver.psk_write("wg0", [p for p, _ in mine])
                await sessions[site].check(command, stdin=stdin)
            hashes = [
                (
                    await sessions[s].run(psk_hash_command(d, "wg0", "B" if s == "A" else "A"))
                ).stdout.strip()
                for s, d in ends.items()
            ]
            # A short stdin writes none of the keys.
            short = [
                (await sessions[s].run(d.psk_write("wg0", ["D", "E"]), stdin=keys["A", "B"])).rc
                for s, d in ends.items()
            ]
            return pub_a, pub_b, again, hashes, short
        finally:
            for session in sessions.values():
                await session.close()

    pub_a, pub_b, again, hashes, short = asyncio.run(go())
    private_a = router_exec(state, "A", ["uci", "get", "network.wg0.private_key"]).stdout.strip()
    private_b = router_exec(state, "B", ["cat", "/etc/wireguard/wg0.key"]).stdout.strip()
    assert public_key(private_a) == pub_a == again  # made once, kept on a second call
    assert public_key(private_b) == pub_b
    assert hashes[0] == hashes[1] and len(hashes[0]) == 64  # both ends hold the same key
    psk_a = router_exec(state, "A", ["uci", "get", "network.sw_peer_B.preshared_key"]).stdout
    psk_b = router_exec(state, "B", ["cat", "/etc/wireguard/wg0-A.psk"]).stdout
    assert psk_a.strip() == psk_b.strip() and len(psk_a.strip()) == 44
    assert (
        router_exec(state, "A", ["uci", "get", "network.sw_peer_C.preshared_key"]).returncode == 0
    )
    mode = router_exec(state, "B", ["stat", "-c", "%a", "/etc/wireguard/wg0-C.psk"]).stdout
    assert mode.strip() == "600"
    assert all(rc != 0 for rc in short)
    assert router_exec(state, "A", ["uci", "-q", "get", "network.sw_peer_D"]).returncode != 0
    assert router_exec(state, "B", ["test", "-e", "/etc/wireguard/wg0-D.psk"]).returncode != 0
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
