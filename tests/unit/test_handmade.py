"""A hand-made wg-quick file on a Linux host is taken over: keys kept, device not re-created.

The key-finding awk programs run for real (BusyBox awk as OpenWrt has it, mawk as Debian has
it) on files written the ways people write them; the driver's choices are checked on facts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.parse import HIDDEN
from sitewire.driver import handmade
from sitewire.driver.base import Held
from sitewire.driver.linux import DRIVER as LINUX
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from sitewire.render.linux import render_linux
from sitewire.render.model import NoSecrets, Rendered
from sitewire.spec.model import Platform
from tests.conftest import spec_from
from tests.unit.test_diagnose_parse import openwrt_sections

SPEC = """
[network]
name = "pair"
overlay = "192.168.5.0/24"

[sites.A]
platform = "linux"
lan = ["192.168.3.0/24"]
endpoint = "a.example.net"

[sites.B]
platform = "linux"
lan = ["192.168.7.0/24"]
"""
KEY_A, KEY_B = generate_private_key(), generate_private_key()
PUB = {"A": public_key(KEY_A), "B": public_key(KEY_B)}
PSK = generate_private_key()  # any 32 bytes in base64 will do


def hand_made(mtu: str = "") -> str:
    """B's file as a person writes it: odd case, blanks, comments, PSK before PublicKey."""
    return (
        "[Interface]\n# B, by hand\n"
        f"  privatekey= {KEY_B}   # mine\n"
        "Address = 192.168.5.2/24\nListenPort = 51820\n"
        f"{mtu}"
        "PostUp = iptables -A FORWARD -i %i -j ACCEPT\n\n"
        f"[Peer]\nPresharedKey\t=\t{PSK}\nPublicKey = {PUB['A']}\n"
        "AllowedIPs = 192.168.5.1/32, 192.168.3.0/24\nEndpoint = a.example.net:51820\n"
        "PersistentKeepalive = 25\n"
    )


@pytest.fixture
def plan() -> Plan:
    return plan_network(spec_from(SPEC), None, PUB)


AWKS = [a for a in ("busybox", "mawk") if shutil.which(a)]


def _awk(awk: str, program: str, path: Path, pub: str = "") -> str:
    assert program.startswith("awk ")
    run = "busybox awk" if awk == "busybox" else awk
    script = f"_pub='{pub}'; {run}{program[3:]} '{path}'"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("awk", AWKS)
def test_the_inline_keys_are_found_as_wg_quick_reads_them(tmp_path: Path, awk: str) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(hand_made())
    assert _awk(awk, handmade._INLINE_KEY, conf) == KEY_B
    assert _awk(awk, handmade._INLINE_PSK, conf, PUB["A"]) == PSK
    assert _awk(awk, handmade._INLINE_PSK, conf, PUB["B"]) == ""  # no [Peer] with that key
    conf.write_text(hand_made().replace(f"PresharedKey\t=\t{PSK}\n", ""))
    assert _awk(awk, handmade._INLINE_PSK, conf, PUB["A"]) == ""


def _facts(*, running: bool = True, mtu: int = 1420) -> DeviceFacts:
    wg = (
        f"wg0\t{HIDDEN}\t{PUB['B']}\t51820\toff\n"
        f"wg0\t{PUB['A']}\t{HIDDEN}\t198.18.0.10:51820\t192.168.5.1/32,192.168.3.0/24\t"
        "1795570490\t1\t2\t25\n"
    )
    links = (
        "2: wan@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    "
        "link/ether de:a0:c7:2b:c2:27 brd ff:ff:ff:ff:ff:ff\n"
        f"6: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu {mtu} qdisc noqueue state UNKNOWN\\    "
        "link/none \n"
    )
    sections = openwrt_sections(
        wg=(wg if running else "", 0), links=(links, 0), openwrt_release=("", 1)
    )
    return facts_from_sections("B", Platform.LINUX, sections)


def _held(plan: Plan, conf: str | None, facts: DeviceFacts) -> tuple[Held, Rendered]:
    rendered = render_linux(plan, plan.site("B"), NoSecrets())
    files: dict[str, str | None] = {f.device_path: None for f in rendered.files if f.device_path}
    files["/etc/wireguard/wg0.conf"] = conf
    return Held(facts, files, False), rendered


def _masked(text: str) -> str:
    from sitewire.deploy.live import mask_secrets

    return mask_secrets(text)


def test_a_hand_made_file_is_taken_over_with_its_keys(plan: Plan) -> None:
    held, rendered = _held(plan, _masked(hand_made()), _facts())
    took = LINUX.takeover(plan.site("B"), held)
    assert took is not None
    assert "/etc/wireguard/wg0.key" in took.command and "wg0-A.psk" in took.command
    assert KEY_B not in took.command and PSK not in took.command  # found on the host
    lines = LINUX.diff(plan.site("B"), held, rendered).lines
    assert lines[0] == (
        "B: hand-made /etc/wireguard/wg0.conf taken over: its key kept in "
        "/etc/wireguard/wg0.key, its preshared keys in /etc/wireguard/wg0-<peer>.psk"
    )


def test_sitewire_s_own_file_or_a_fresh_host_is_nothing_to_take_over(plan: Plan) -> None:
    rendered = render_linux(plan, plan.site("B"), NoSecrets())
    own = _masked(rendered.text("wg0.conf"))
    assert LINUX.takeover(plan.site("B"), _held(plan, own, _facts())[0]) is None
    fresh = _held(plan, None, _facts(running=False))[0]
    assert LINUX.takeover(plan.site("B"), fresh) is None
    # An interface someone brought up without any file: its running key is kept too.
    assert LINUX.takeover(plan.site("B"), _held(plan, None, _facts())[0]) is not None


def _steps(plan: Plan, conf: str, facts: DeviceFacts) -> list[str]:
    held, rendered = _held(plan, _masked(conf), facts)
    steps = LINUX.live_steps(plan.site("B"), held, rendered, [], handler_fresh=False, env="")
    return [s.command for s in steps]


def test_taking_over_the_device_it_runs_does_not_re_create_it(plan: Plan) -> None:
    steps = _steps(plan, hand_made(), _facts())
    assert not any("wg-quick up" in s for s in steps), steps
    assert any(s.startswith("nft delete table inet sitewire_wg0") for s in steps)
    assert any("systemctl enable -q wg-quick@wg0" in s for s in steps)
    # MTU unset by hand is the device's: 1420 is the plan's, so the same device.
    assert not any("wg-quick up" in s for s in _steps(plan, hand_made("MTU = 1420\n"), _facts()))


@pytest.mark.parametrize(
    "change",
    [
        ("Address = 192.168.5.2/24", "Address = 192.168.5.9/24"),
        ("ListenPort = 51820", "ListenPort = 51999"),
        ("[Interface]\n", "[Interface]\nTable = off\n"),
        ("[Interface]\n", "[Interface]\nDNS = 192.168.3.1\n"),
    ],
)
def test_a_different_device_is_re_created(plan: Plan, change: tuple[str, str]) -> None:
    steps = _steps(plan, hand_made().replace(*change, 1), _facts())
    assert any("wg-quick up wg0" in s for s in steps), steps


def test_a_device_running_another_mtu_is_re_created(plan: Plan) -> None:
    steps = _steps(plan, hand_made(), _facts(mtu=1380))
    assert any("wg-quick up wg0" in s for s in steps)
