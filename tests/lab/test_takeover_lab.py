"""A network made by hand the LuCI way, then `sitewire apply` (issue 12), on OpenWrt's own
uci, netifd, wireguard handler and fw4: the hand-made sections are taken over, keys and traffic
kept.

Both routers are configured as a person does it in LuCI (the seed network this project
started from): wg0 with a key made on the router, anonymous `wireguard_wg0` peer sections
holding the overlay /24 and the other LAN, B dialling A's name with keepalive; a zone
`wireguard` with lan↔wireguard and wireguard→wan; A's `Allow-WireGuard` rule for udp/51820.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sitewire.keys import generate_private_key, public_key
from sitewire.lab.host import host_exec
from sitewire.lab.state import LabState
from tests.conftest import SEED, spec_from
from tests.lab import applying
from tests.lab.applying import apply_lab, router, settled, write_spec
from tests.lab.conftest import MakeLab
from tests.lab.test_apply_live import REBIND_LOSS
from tests.lab.test_doctor_faults2 import Seed, doctor

A_HOST, B_HOST = "192.168.3.100", "192.168.7.100"
PHONE = public_key(generate_private_key())
PHONE_LUCI = "192.168.5.3/32"


def sh(state: LabState, site: str, command: str) -> str:
    return router(state, site, "sh", "-c", command)


def _install(state: LabState, site: str) -> None:
    install = (
        "apk add wireguard-tools >/dev/null"
        if state.openwrt_release == "25.12"
        else "opkg update >/dev/null && opkg install wireguard-tools >/dev/null"
    )
    sh(state, site, f"{install} && /etc/init.d/network restart")


LANS = {"A": "192.168.3.0/24", "B": "192.168.7.0/24", "C": "192.168.9.0/24"}


def luci_made(
    state: LabState,
    iface: str = "wg0",
    zone_name: str = "wireguard",
    sites: tuple[str, ...] = ("A", "B"),
    phone: bool = True,
    member: str = "network",
) -> dict[str, str]:
    """The hand-made network: every other site dials A (a.example.net); A relays between them.
    Returns each router's public key."""
    keys = {}
    for n, site in enumerate(sites, 1):
        _install(state, site)
        sh(
            state,
            site,
            f"uci set network.{iface}=interface && uci set network.{iface}.proto=wireguard && "
            f'uci set network.{iface}.private_key="$(wg genkey)" && '
            f"uci set network.{iface}.listen_port=51820 && "
            f"uci add_list network.{iface}.addresses=192.168.5.{n}/24 && "
            "uci commit network",
        )
        keys[site] = sh(state, site, f"uci get network.{iface}.private_key | wg pubkey").strip()
    spokes = sites[1:]
    peers: dict[str, list[tuple[str, str, list[str], str]]] = {"A": []}
    for n, spoke in enumerate(spokes, 2):
        # One spoke: the overlay's /24 on each side, as LuCI users write it; more: each its own.
        own = "192.168.5.0/24" if len(spokes) == 1 else f"192.168.5.{n}/32"
        peers["A"].append((spoke, keys[spoke], [own, LANS[spoke]], ""))
        relayed = [LANS[s] for s in spokes if s != spoke]
        ips = ["192.168.5.0/24", LANS["A"], *relayed]
        peers[spoke] = [("A", keys["A"], ips, "a.example.net")]
    if phone:
        peers["A"].append(("phone", PHONE, [PHONE_LUCI], ""))
    for site, entries in peers.items():
        for name, key, ips, endpoint in entries:
            lines = [
                f"uci add network wireguard_{iface} >/dev/null",
                f"uci set network.@wireguard_{iface}[-1].description='{name}'",
                f"uci set network.@wireguard_{iface}[-1].public_key='{key}'",
                f"uci set network.@wireguard_{iface}[-1].route_allowed_ips='1'",
            ]
            lines += [
                f"uci add_list network.@wireguard_{iface}[-1].allowed_ips='{ip}'" for ip in ips
            ]
            if endpoint:
                lines += [
                    f"uci set network.@wireguard_{iface}[-1].endpoint_host='{endpoint}'",
                    f"uci set network.@wireguard_{iface}[-1].endpoint_port='51820'",
                    f"uci set network.@wireguard_{iface}[-1].persistent_keepalive='25'",
                ]
            sh(state, site, " && ".join([*lines, "uci commit network"]))
        zone = [
            "uci add firewall zone >/dev/null",
            f"uci set firewall.@zone[-1].name='{zone_name}'",
            "uci set firewall.@zone[-1].input='ACCEPT'",
            "uci set firewall.@zone[-1].output='ACCEPT'",
            "uci set firewall.@zone[-1].forward='ACCEPT'",
            f"uci add_list firewall.@zone[-1].{member}='{iface}'",  # or by its device
        ]
        for src, dest in (("lan", zone_name), (zone_name, "lan"), (zone_name, "wan")):
            zone += [
                "uci add firewall forwarding >/dev/null",
                f"uci set firewall.@forwarding[-1].src='{src}'",
                f"uci set firewall.@forwarding[-1].dest='{dest}'",
            ]
        if site == "A":
            zone += [
                "uci add firewall rule >/dev/null",
                "uci set firewall.@rule[-1].name='Allow-WireGuard'",
                "uci set firewall.@rule[-1].src='wan'",
                "uci set firewall.@rule[-1].proto='udp'",
                "uci set firewall.@rule[-1].dest_port='51820'",
                "uci set firewall.@rule[-1].target='ACCEPT'",
            ]
        sh(state, site, " && ".join([*zone, "uci commit firewall", "/etc/init.d/firewall reload"]))
        sh(state, site, f"ifup {iface}")
        settled(state, site, iface)
    return keys


def _lan_to_lan(state: LabState) -> bool:
    from sitewire.lab.host import host_exec

    argv = ["ping", "-c", "3", "-i", "0.3", "-W", "2", B_HOST]
    return host_exec(state, "A", argv).returncode == 0


def _private(state: LabState, site: str, iface: str = "wg0") -> str:
    return sh(state, site, f"uci get network.{iface}.private_key").strip()


@pytest.mark.lab
@pytest.mark.parametrize("release", ["24.10", "25.12"])
def test_a_luci_made_network_is_taken_over_with_its_keys_and_no_packet_lost(
    make_lab: MakeLab, tmp_path: Path, release: str
) -> None:
    text = SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{PHONE}"')
    spec = write_spec(tmp_path / "network.toml", text)
    state = make_lab(spec_from(text), release=release)
    keys = luci_made(state)
    deadline = time.monotonic() + 30
    while not _lan_to_lan(state):
        assert time.monotonic() < deadline, "the hand-made network does not carry LAN to LAN"
    private = {s: _private(state, s) for s in ("A", "B")}

    with (
        applying.Pinger(state, "A", B_HOST) as a_to_b,
        applying.Pinger(state, "B", A_HOST) as b_to_a,
    ):
        outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    allowed = REBIND_LOSS.get(release, 0)
    for name, ping in (("A->B", a_to_b), ("B->A", b_to_a)):
        assert ping.sent > 20 and ping.lost <= allowed, (name, ping.sent, ping.lost, ui.text)
    assert "A: peer B: hand-made section @wireguard_wg0[0] taken over" in ui.lines, ui.text
    assert (
        "B: zone wireguard: hand-made section @zone[2] taken over, now named sitewire" in ui.lines
    ), ui.text
    assert not any(line.startswith(("A: interface wg0", "B: interface wg0")) for line in ui.lines)

    for site in ("A", "B"):
        # One peer section per public key, the interface in exactly one zone, the key kept.
        shown = sh(state, site, "uci show network")
        peer_keys = [
            line.split("=", 1)[1].strip("'")
            for line in shown.splitlines()
            if line.endswith(".public_key" + line.split(".public_key", 1)[-1])
            and ".public_key=" in line
        ]
        assert len(peer_keys) == len(set(peer_keys)), shown
        zones = sh(state, site, 'uci show firewall | grep "\\.network=.*wg0" || true')
        assert len(zones.strip().splitlines()) == 1, zones
        assert _private(state, site) == private[site]
        assert sh(state, site, "wg show wg0 public-key").strip() == keys[site]
    rules = sh(state, "A", "uci show firewall | grep \"dest_port='51820'\" || true")
    assert len(rules.strip().splitlines()) == 1, rules
    assert _lan_to_lan(state)
    # doctor: no findings; a second apply: nothing to change.
    seed = Seed(state, spec, ())
    assert doctor(seed) == []
    again, ui2 = apply_lab(state, spec)
    assert again.ok and "nothing to change" in ui2.lines, ui2.text


@pytest.mark.lab
@pytest.mark.parametrize("release", ["24.10", "25.12"])
def test_adopt_writes_a_spec_and_lock_that_reproduce_the_hand_made_network(
    make_lab: MakeLab, tmp_path: Path, release: str
) -> None:
    import shutil
    import tomllib

    from sitewire.cli.main import run
    from sitewire.spec.lock import load_lock

    text = SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{PHONE}"')
    state = make_lab(spec_from(text), release=release)
    keys = luci_made(state)
    out = tmp_path / "adopted" / "network.toml"
    out.parent.mkdir()
    assert run(["adopt", "A", "B", "--lab-name", state.name, "-o", str(out)]) == 0
    data = tomllib.loads(out.read_text())
    assert data["network"]["overlay"] == "192.168.5.0/24"
    assert data["network"]["preshared_keys"] is False  # none in the hand-made network
    assert data["sites"]["A"]["endpoint"] == "a.example.net"
    assert "endpoint" not in data["sites"]["B"]
    assert data["sites"]["A"]["lan"] == ["192.168.3.0/24"]
    assert data["sites"]["B"]["lan"] == ["192.168.7.0/24"]
    assert data["clients"]["phone"] == {"via": "A", "public_key": PHONE}
    lock = load_lock(out.with_suffix(".lock"))
    assert lock is not None
    assert {n: e.public_key for n, e in lock.sites.items()} == keys
    assert {n: str(e.address) for n, e in lock.sites.items()} == {
        "A": "192.168.5.1",
        "B": "192.168.5.2",
    }
    assert str(lock.clients["phone"].address) == "192.168.5.3"
    # The lab's apply uses the lab's lock: the adopted one.
    shutil.copy(out.with_suffix(".lock"), state.dir / "network.lock")
    private = {s: _private(state, s) for s in ("A", "B")}
    # plan --live: only takeover lines and the fixes doctor names, nothing that cuts traffic.
    dry, shown = apply_lab(state, out, dry_run=True)
    assert dry.ok, shown.text
    fixes = (
        ": install luci-proto-wireguard",  # LuCI's protocol page, which apply's check needs
        ": zone sitewire: mtu_fix: [none] => 1",  # TCP MSS clamped to the tunnel
        ": cron: wireguard_watchdog every minute",  # the dialler re-resolves a.example.net
    )
    changes = [x for x in shown.lines[2:] if "taken over" not in x and not x.endswith(fixes)]
    # Left: each peer's AllowedIPs narrowed to the exact addresses behind it (the phone's via A
    # included), made live with `wg set`, no ifup.
    assert changes == [
        "A: peer B: allowed_ips: [192.168.5.0/24, 192.168.7.0/24] => [192.168.5.2/32, "
        "192.168.7.0/24]",
        "B: peer A: allowed_ips: [192.168.5.0/24, 192.168.3.0/24] => [192.168.5.1/32, "
        "192.168.3.0/24, 192.168.5.3/32]",
    ], shown.text
    with (
        applying.Pinger(state, "A", B_HOST) as a_to_b,
        applying.Pinger(state, "B", A_HOST) as b_to_a,
    ):
        outcome, ui = apply_lab(state, out)
    assert outcome.ok, ui.text
    allowed = REBIND_LOSS.get(release, 0)
    for name, ping in (("A->B", a_to_b), ("B->A", b_to_a)):
        assert ping.sent > 20 and ping.lost <= allowed, (name, ping.sent, ping.lost, ui.text)
    # Nothing re-keyed, nothing renumbered, nothing re-created.
    assert not any("private key" in line or "made anew" in line for line in ui.lines), ui.text
    assert not any(line.startswith(("A: interface wg0", "B: interface wg0")) for line in ui.lines)
    assert {s: _private(state, s) for s in ("A", "B")} == private
    assert doctor(Seed(state, out, ())) == []


@pytest.mark.lab
@pytest.mark.parametrize("member", ["network", "device"])
def test_an_interface_and_zone_named_otherwise_are_taken_over_too(
    make_lab: MakeLab, tmp_path: Path, member: str
) -> None:
    """The person called the interface vpn0 and its zone vpn (holding it by `network`, or by
    `device` as some guides do); the spec names the interface."""
    text = SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{PHONE}"')
    text = text.replace("[sites.A]\n", '[sites.A]\ninterface = "vpn0"\n')
    text = text.replace("[sites.B]\n", '[sites.B]\ninterface = "vpn0"\n')
    spec = write_spec(tmp_path / "network.toml", text)
    state = make_lab(spec_from(text))
    luci_made(state, "vpn0", "vpn", member=member)
    deadline = time.monotonic() + 30
    while not _lan_to_lan(state):
        assert time.monotonic() < deadline, "the hand-made network does not carry LAN to LAN"
    private = {s: _private(state, s, "vpn0") for s in ("A", "B")}
    with (
        applying.Pinger(state, "A", B_HOST) as a_to_b,
        applying.Pinger(state, "B", A_HOST) as b_to_a,
    ):
        outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    for name, ping in (("A->B", a_to_b), ("B->A", b_to_a)):
        assert ping.sent > 20 and ping.lost == 0, (name, ping.sent, ping.lost, ui.text)
    assert "A: peer B: hand-made section @wireguard_vpn0[0] taken over" in ui.lines, ui.text
    assert "A: zone vpn: hand-made section @zone[2] taken over, now named sitewire" in ui.lines, (
        ui.text
    )
    assert not any(line.startswith(("A: interface vpn0", "B: interface vpn0")) for line in ui.lines)
    for site in ("A", "B"):
        zones = sh(state, site, 'uci show firewall | grep -E "\\.(network|device)=.*vpn0" || true')
        assert len(zones.strip().splitlines()) == 1, zones
        assert _private(state, site, "vpn0") == private[site]
    assert doctor(Seed(state, spec, ())) == []
    again, ui2 = apply_lab(state, spec)
    assert again.ok and "nothing to change" in ui2.lines, ui2.text


C_SITE = '\n[sites.C]\nplatform = "openwrt"\nlan = ["192.168.9.0/24"]\n'
C_HOST = "192.168.9.100"


def _adopted(state: LabState, tmp_path: Path, sites: tuple[str, ...]) -> Path:
    from sitewire.cli.main import run

    out = tmp_path / "adopted" / "network.toml"
    out.parent.mkdir()
    assert run(["adopt", *sites, "--lab-name", state.name, "-o", str(out)]) == 0
    (state.dir / "network.lock").write_bytes(out.with_suffix(".lock").read_bytes())
    return out


def _pings_kept(state: LabState, spec: Path, pairs: list[tuple[str, str]]) -> list[str]:
    """Apply while each (site, address) pair pings; every ping answered. The apply's lines."""
    import contextlib

    with contextlib.ExitStack() as stack:
        pings = [(p, stack.enter_context(applying.Pinger(state, *p))) for p in pairs]
        outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    for pair, ping in pings:
        assert ping.sent > 20 and ping.lost == 0, (pair, ping.sent, ping.lost, ui.text)
    return ui.lines


@pytest.mark.lab
def test_a_three_site_hand_made_network_with_a_relay_is_adopted_and_taken_over(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """B and C both dial A, which carries B↔C: what sitewire plans for two dialers."""
    import tomllib

    text = SEED.read_text().replace('[clients.phone]\nvia = "A"\n', "") + C_SITE
    state = make_lab(spec_from(text))
    sites = ("A", "B", "C")
    luci_made(state, sites=sites, phone=False)
    deadline = time.monotonic() + 30
    while host_exec(state, "B", ["ping", "-c", "2", "-W", "1", C_HOST]).returncode != 0:
        assert time.monotonic() < deadline, "the hand-made network does not carry B to C"
    out = _adopted(state, tmp_path, sites)
    data = tomllib.loads(out.read_text())
    assert set(data["sites"]) == set(sites) and "clients" not in data
    assert data["sites"]["C"]["lan"] == ["192.168.9.0/24"] and "endpoint" not in data["sites"]["C"]
    private = {s: _private(state, s) for s in sites}
    lines = _pings_kept(state, out, [("B", C_HOST), ("C", A_HOST), ("A", B_HOST)])
    assert "C: peer A: hand-made section @wireguard_wg0[0] taken over" in lines, lines
    assert not any(x.startswith(tuple(f"{s}: interface wg0" for s in sites)) for x in lines)
    assert {s: _private(state, s) for s in sites} == private
    assert doctor(Seed(state, out, ())) == []
    again, ui = apply_lab(state, out)
    assert again.ok and "nothing to change" in ui.lines, ui.text


@pytest.mark.lab
def test_a_hand_made_pair_is_joined_by_a_new_site(make_lab: MakeLab, tmp_path: Path) -> None:
    """Adopted, then a third site added to the spec: A↔B keep every packet, C joins both."""
    text = SEED.read_text().replace('via = "A"', f'via = "A"\npublic_key = "{PHONE}"') + C_SITE
    state = make_lab(spec_from(text))
    luci_made(state)
    deadline = time.monotonic() + 30
    while not _lan_to_lan(state):
        assert time.monotonic() < deadline, "the hand-made network does not carry LAN to LAN"
    out = _adopted(state, tmp_path, ("A", "B"))
    out.write_text(out.read_text() + C_SITE)
    private = {s: _private(state, s) for s in ("A", "B")}
    lines = _pings_kept(state, out, [("A", B_HOST), ("B", A_HOST)])
    assert "A: peer C: added" in lines and "B: peer A: hand-made section" in " ".join(lines)
    assert {s: _private(state, s) for s in ("A", "B")} == private
    assert applying.unreachable(state, out) == []
    assert doctor(Seed(state, out, ())) == []
