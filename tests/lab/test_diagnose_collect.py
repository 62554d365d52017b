"""gather_facts on real lab routers over SSH: factory, configured, Linux; keys stay home."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from sitewire.deploy.ssh import Credentials, RemoteResult, Target, connect
from sitewire.diagnose import DeviceFacts, FactsError, Handler, PackageManager, gather_facts
from sitewire.diagnose.collect import run_sections
from sitewire.diagnose.parse import HIDDEN
from sitewire.diagnose.script import build_script
from sitewire.lab.host import router_exec
from sitewire.lab.rehearse import after_up
from sitewire.lab.state import LabState
from sitewire.spec.model import Platform
from tests.conftest import SEED, spec_from
from tests.lab.conftest import LINUX_SPEC, MakeLab

pytestmark = pytest.mark.lab

Gathered = tuple[DeviceFacts, str]  # the facts, and every byte the router sent back
Gather = Callable[..., Gathered]


@pytest.fixture
def gather(monkeypatch: pytest.MonkeyPatch) -> Gather:
    """gather(state, site, platform=OPENWRT) over real SSH, recording what crossed the wire."""

    def run(state: LabState, site: str, platform: Platform = Platform.OPENWRT) -> Gathered:
        return asyncio.run(_gather(state, site, platform, monkeypatch))

    return run


async def _gather(
    state: LabState, site: str, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> Gathered:
    creds = Credentials((state.client_key,), state.known_hosts, use_user_config=False)
    session = await connect(Target(site, str(state.layout.router(site).mgmt.ip)), creds)
    received: list[str] = []
    real_run = session.run

    async def recording_run(
        command: str, stdin: str | None = None, *, shown: str | None = None
    ) -> RemoteResult:
        result = await real_run(command, stdin, shown=shown)
        received.append(result.stdout + result.stderr)
        return result

    monkeypatch.setattr(session, "run", recording_run)
    async with session:
        try:
            facts = await gather_facts(session, platform)
        finally:
            monkeypatch.undo()
    return facts, "".join(received)


def configured_seed(make_lab: MakeLab, release: str) -> LabState:
    state = make_lab(spec_from(SEED.read_text()), release=release)
    state.spec_path = str(SEED)
    state.save()
    after_up(state, configured=True, accept_routes=False)
    return state


def uci_get(state: LabState, site: str, key: str) -> str:
    return router_exec(state, site, ["uci", "get", key]).stdout.strip()


def wan_mtu(state: LabState, site: str) -> int:
    return int(router_exec(state, site, ["cat", "/sys/class/net/wan/mtu"]).stdout)


@pytest.mark.parametrize(
    ("release", "manager"), [("24.10", PackageManager.OPKG), ("25.12", PackageManager.APK)]
)
def test_factory_router_has_no_wireguard(
    make_lab: MakeLab, gather: Gather, release: str, manager: PackageManager
) -> None:
    state = make_lab(spec_from(SEED.read_text()), release=release)
    facts, _ = gather(state, "A")
    assert facts.openwrt is not None and facts.openwrt.series == release
    assert facts.package_manager is manager
    assert "busybox" in facts.packages and "wireguard-tools" not in facts.packages
    assert not facts.wireguard_tools and "wg" not in facts.commands
    assert facts.handler is Handler.ABSENT
    assert facts.wg.interfaces == () and facts.wireguard_interfaces == ()
    assert facts.network is not None and facts.network.section("lan") is not None
    assert facts.firewall is not None and facts.firewall.sections_of_type("zone")
    assert facts.pending_changes == ()
    assert not facts.tailscale.installed and facts.lookup52 is None
    assert (facts.wan_device, facts.wan_mtu) == ("wan", wan_mtu(state, "A"))
    assert "wireguard-tools not installed" in facts.summary()
    with pytest.raises(FactsError) as caught:
        gather(state, "A", Platform.LINUX)
    assert caught.value.where == "A" and caught.value.fix is not None
    assert 'platform = "openwrt"' in caught.value.fix


@pytest.mark.parametrize(
    ("release", "handler"), [("24.10", Handler.CLASSIC), ("25.12", Handler.SYNCCONF)]
)
def test_configured_routers_show_the_tunnel_tailscale_and_lookup_52(
    make_lab: MakeLab, gather: Gather, release: str, handler: Handler
) -> None:
    state = configured_seed(make_lab, release)
    (a, sent_a), (b, sent_b) = gather(state, "A"), gather(state, "B")
    for facts in (a, b):
        assert facts.wireguard_tools and facts.handler is handler
        assert facts.pending_changes == () and facts.warnings == ()
        assert facts.tailscale.prefs is not None and not facts.tailscale.prefs.route_all
        assert (facts.lookup52, facts.lookup52_v6) == (5270, 5270)
        assert "wg0" in facts.wireguard_interfaces
    assert a.network is not None
    wg0 = a.network.section("wg0")
    assert wg0 is not None and wg0.options["proto"] == "wireguard"
    assert wg0.options["private_key"] == HIDDEN
    b_wg0, a_wg0 = b.wg.interface("wg0"), a.wg.interface("wg0")
    assert a_wg0 is not None and b_wg0 is not None and b_wg0.public_key is not None
    peer_b = a.network.section("sw_peer_B")
    assert peer_b is not None and peer_b.type == "wireguard_wg0"
    assert peer_b.options["public_key"] == b_wg0.public_key
    seen_b = a_wg0.peer(b_wg0.public_key)
    assert seen_b is not None and seen_b.preshared_key_set
    assert a_wg0.private_key_set and a_wg0.listen_port == 51820
    assert f"handler {handler}" in a.summary() and "sw_peer_B" in a.summary()
    for site, sent in (("A", sent_a), ("B", sent_b)):
        assert uci_get(state, site, "network.wg0.private_key") not in sent


def test_private_keys_never_reach_the_controller(make_lab: MakeLab, gather: Gather) -> None:
    state = configured_seed(make_lab, "24.10")
    private = uci_get(state, "A", "network.wg0.private_key")
    psk = uci_get(state, "A", "network.sw_peer_B.preshared_key")
    assert len(private) == 44 and len(psk) == 44
    live = router_exec(state, "A", ["wg", "show", "wg0", "private-key"]).stdout.strip()
    assert live == private  # so an unfiltered dump would have carried it

    facts, sent = gather(state, "A")
    assert private not in sent and psk not in sent
    assert private not in repr(facts) and psk not in repr(facts)
    assert not facts.wg.secrets_sent and not facts.notes

    # A key change saved but not committed shows in `uci changes`: hidden there too.
    new = router_exec(state, "A", ["wg", "genkey"]).stdout.strip()
    assert router_exec(state, "A", ["uci", "set", f"network.wg0.private_key={new}"]).returncode == 0
    facts, sent = gather(state, "A")
    assert new not in sent and private not in sent
    assert facts.pending_changes == (f"network.wg0.private_key='{HIDDEN}'",)
    assert any("uncommitted" in w for w in facts.warnings)
    router_exec(state, "A", ["uci", "revert", "network"])

    # Without awk nothing can hide the dump's keys: the dump is not sent at all.
    assert router_exec(state, "A", ["mv", "/usr/bin/awk", "/usr/bin/awk.off"]).returncode == 0
    with pytest.raises(FactsError) as caught:
        gather(state, "A")
    assert "awk" in caught.value.message and caught.value.where == "A"
    assert private not in str(caught.value)


def test_linux_router_facts(
    linux_lab: LabState, make_lab: MakeLab, gather: Gather, tmp_path: Path
) -> None:
    facts, _ = gather(linux_lab, "A", Platform.LINUX)
    assert facts.platform is Platform.LINUX and facts.openwrt is None
    assert facts.os_release is not None and facts.os_release.id == "debian"
    assert facts.package_manager is PackageManager.APT
    assert facts.handler is None and facts.network is None and facts.pending_changes == ()
    assert facts.wireguard_tools and "wg-quick" in facts.commands
    assert facts.wg.interfaces == () and facts.wg_quick_configs == ()
    assert (facts.wan_device, facts.wan_mtu) == ("wan", wan_mtu(linux_lab, "A"))
    assert "Debian" in facts.summary()
    with pytest.raises(FactsError) as caught:
        gather(linux_lab, "A", Platform.OPENWRT)
    assert caught.value.fix is not None and 'platform = "linux"' in caught.value.fix

    spec = tmp_path / "pair.toml"
    spec.write_text(LINUX_SPEC)
    state = make_lab(spec_from(LINUX_SPEC))
    state.spec_path = str(spec)
    state.save()
    after_up(state, configured=True, accept_routes=False)
    (a, sent), (b, _) = gather(state, "A", Platform.LINUX), gather(state, "B", Platform.LINUX)
    a_wg0, b_wg0 = a.wg.interface("wg0"), b.wg.interface("wg0")
    assert a_wg0 is not None and b_wg0 is not None and b_wg0.public_key is not None
    assert a_wg0.peer(b_wg0.public_key) is not None
    assert a.wg_quick_configs == ("wg0",) and a.wireguard_interfaces == ("wg0",)
    private = router_exec(state, "A", ["wg", "show", "wg0", "private-key"]).stdout.strip()
    assert len(private) == 44 and private not in sent


def test_a_script_longer_than_dropbear_takes_as_a_command_still_runs(make_lab: MakeLab) -> None:
    # dropbear refuses an exec request over 9000 bytes (MAX_CMD_LEN) and drops the channel:
    # a listener of a 20-site network read that way failed with "connection lost".
    state = make_lab(spec_from(SEED.read_text()))
    sections = [(f"sw_n{i}", f"echo {i} {'x' * 60}") for i in range(200)]

    async def go() -> dict[str, str]:
        creds = Credentials((state.client_key,), state.known_hosts, use_user_config=False)
        session = await connect(Target("A", str(state.layout.router("A").mgmt.ip)), creds)
        async with session:
            found = await run_sections(session, sections)
        return {name: s.stdout for name, s in found.items()}

    assert len(build_script(sections)) > 9000
    out = asyncio.run(go())
    assert [out[f"sw_n{i}"].strip() for i in range(200)] == [f"{i} {'x' * 60}" for i in range(200)]
