"""Linux and client renderers: real nft accepts the table, wg-quick files say what the plan says."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sitewire.plan import Plan, plan_network
from sitewire.render import NoSecrets, render_client, render_site
from sitewire.render.client import client_config, qr_terminal
from sitewire.spec.secrets import LocalKeys
from tests.conftest import spec_from

NET = """
[network]
name = "n"
overlay = "10.5.0.0/24"
overlay6 = "fd42:5::/64"
[sites.hub]
platform = "linux"
lan = ["10.1.0.0/24"]
endpoint = "hub.example.net"
tailscale = { accept_routes = true, pin_priority = 1200 }
[sites.spoke]
platform = "linux"
lan = ["10.2.0.0/24"]
[clients.laptop]
via = "hub"
tunnel = "full"
"""


def _planned() -> tuple[Plan, LocalKeys]:
    spec = spec_from(NET)
    keys = LocalKeys()
    keys.ensure(["hub", "spoke", "laptop"], [])
    plan = plan_network(spec, None, keys.public_keys())
    keys.ensure([], [(link.a, link.b) for link in plan.links()])
    return plan, keys


def _wg_quick(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Sections of a wg-quick file in order, with repeated keys kept."""
    out: list[tuple[str, dict[str, list[str]]]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            out.append((line.strip("[]"), {}))
            continue
        key, _, value = line.partition(" = ")
        out[-1][1].setdefault(key, []).append(value)
    return out


def test_wg_quick_file_carries_the_plan() -> None:
    plan, keys = _planned()
    conf = render_site(plan, "spoke", keys).text("wg0.conf")
    sections = _wg_quick(conf)
    (iface_name, iface), (peer_name, peer) = sections
    assert (iface_name, peer_name) == ("Interface", "Peer")
    assert iface["Address"] == ["10.5.0.2/24, fd42:5::2/64"]
    assert iface["PrivateKey"] == [keys.private_keys["spoke"]]
    assert peer["PublicKey"] == [keys.public_keys()["hub"]]
    assert peer["PresharedKey"] == [keys.preshared_key("hub", "spoke")]
    assert peer["Endpoint"] == ["hub.example.net:51820"]
    assert peer["PersistentKeepalive"] == ["25"]
    assert "10.5.0.3/32" in peer["AllowedIPs"][0]  # the laptop rides on the hub


def test_keys_born_on_the_host_are_referenced_not_embedded() -> None:
    plan, keys = _planned()
    rendered = render_site(plan, "hub", NoSecrets())
    conf = rendered.text("wg0.conf")
    assert "PrivateKey" not in conf and "PresharedKey" not in conf
    assert not rendered.file("wg0.conf").secret
    iface = _wg_quick(conf)[0][1]
    assert "wg set %i private-key /etc/wireguard/wg0.key" in iface["PostUp"]
    spoke_key = keys.public_keys()["spoke"]
    assert (
        f"wg set %i peer {spoke_key} preshared-key /etc/wireguard/wg0-spoke.psk" in iface["PostUp"]
    )
    # accept_routes kept: each WireGuard prefix pinned to main below Tailscale's rule, and unpinned.
    assert "ip -4 rule add to 10.2.0.0/24 lookup main priority 1200" in iface["PostUp"]
    assert "ip -4 rule del to 10.2.0.0/24 lookup main priority 1200" in iface["PostDown"]


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed (scripts/bootstrap)")
@pytest.mark.parametrize("site", ["hub", "spoke"])
def test_real_nft_accepts_the_table(site: str, tmp_path: Path) -> None:
    plan, keys = _planned()
    nft = tmp_path / "wg0.nft"
    nft.write_text(render_site(plan, site, keys).text("wg0.nft"))
    check = subprocess.run(["nft", "-c", "-f", str(nft)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    text = nft.read_text()
    assert ("udp dport 51820" in text) == (site == "hub")
    assert ("ip saddr 10.5.0.3/32 masquerade" in text) == (site == "hub")


def test_client_config_and_qr_codes(tmp_path: Path) -> None:
    plan, keys = _planned()
    rendered = render_client(plan, plan.client("laptop"), keys)
    conf = rendered.text("laptop.conf")
    parser = configparser.ConfigParser()
    parser.read_string(conf)
    assert parser["Interface"]["PrivateKey"] == keys.private_keys["laptop"]
    assert parser["Peer"]["AllowedIPs"] == "0.0.0.0/0, ::/0"
    assert parser["Peer"]["Endpoint"] == "hub.example.net:51820"
    assert all(f.secret for f in rendered.files)
    svg = ET.fromstring(rendered.file("laptop.svg").content)
    assert svg.tag.endswith("svg")
    assert qr_terminal(conf).count("\n") > 10
    if shutil.which("zbarimg") is None:
        pytest.skip("zbarimg not installed (scripts/bootstrap)")
    png = tmp_path / "laptop.png"
    qr = rendered.file("laptop.png").content
    assert isinstance(qr, bytes)
    png.write_bytes(qr)
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True)
    expected = "\n".join(line for line in conf.splitlines() if not line.startswith("#")).strip()
    assert decoded.stdout.strip() == expected


def test_client_with_its_own_key_gets_no_private_key_and_no_qr() -> None:
    spec = spec_from(NET.replace('tunnel = "full"', 'public_key = "' + "Q" * 43 + '="'))
    keys = LocalKeys()
    keys.ensure(["hub", "spoke"], [])
    plan = plan_network(spec, None, keys.public_keys())
    rendered = render_client(plan, plan.client("laptop"), keys)
    assert [f.path for f in rendered.files] == ["laptop.conf"]
    assert "PrivateKey =" not in rendered.text("laptop.conf")
    assert rendered.notes


def test_client_without_any_key_is_refused() -> None:
    plan, _ = _planned()
    with pytest.raises(
        Exception, match=r"clients\.laptop: the private key of laptop is not known yet"
    ):
        client_config(plan, plan.client("laptop"), NoSecrets())
