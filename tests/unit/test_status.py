"""status and graph, pure parts: router output -> status values -> table cells, JSON, DOT."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.cli.status import format_bytes, link_cells, site_cells
from sitewire.diagnose.facts import FactsError
from sitewire.diagnose.graph import COLOURS, graph_format, network_graph, render_graph
from sitewire.diagnose.parse import HIDDEN, ScriptSection
from sitewire.diagnose.status import (
    RECENT,
    Health,
    NetworkStatus,
    Seen,
    build_status,
    pairs,
    parse_pings,
    parse_tailnet,
    ping_sections,
    read_sections,
    status_from_json,
    status_json,
    status_path,
)
from sitewire.errors import InputError
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from tests.conftest import FIXTURES, SEED, spec_from

KEYS = {name: public_key(generate_private_key()) for name in ("A", "B", "C", "phone")}
CLOCK = 1795570500
THREE = """
[network]
name = "three"
overlay = "10.9.0.0/24"

[sites.A]
lan = ["192.168.1.0/24"]
endpoint = "a.example.net"

[sites.B]
lan = ["192.168.2.0/24"]

[sites.C]
lan = ["192.168.3.0/24"]
"""
TS_STATUS = (FIXTURES / "tailscale-status.dufour.json").read_text()
PREFS = "\n".join(  # RouteAll false
    line
    for line in (FIXTURES / "tailscale-debug-prefs.json.txt").read_text().splitlines()
    if not line.startswith("#")
)
IPUTILS = "rtt min/avg/max/mdev = 0.036/0.048/0.063/0.010 ms"
BUSYBOX = "round-trip min/avg/max = 0.050/8.125/9.082 ms"


@pytest.fixture
def seed() -> Plan:
    return plan_network(spec_from(SEED.read_text()), None, KEYS)


@pytest.fixture
def three() -> Plan:
    return plan_network(spec_from(THREE), None, KEYS)


def _sections(**outputs: tuple[str, int]) -> dict[str, ScriptSection]:
    return {
        n: ScriptSection(n, rc, out, "" if rc == 0 else "boom") for n, (out, rc) in outputs.items()
    }


def _seen(
    plan: Plan,
    site: str,
    *,
    ages: dict[str, int | None] | None = None,
    tailscale: bool = False,
    wg_up: bool = True,
) -> Seen:
    """What `site` would answer, with handshakes `ages[peer]` seconds old (None: never)."""
    me = plan.site(site)
    ages = ages if ages is not None else {p.name: 10 for p in me.peers if p.kind == "site"}
    dump = [f"{me.interface}\t{HIDDEN}\t{KEYS[site]}\t{me.listen_port}\toff"]
    for n, peer in enumerate(me.peers, 1):
        age = ages.get(peer.name)
        last = 0 if age is None else CLOCK - age
        endpoint = f"198.18.0.{9 + n}:51820" if peer.dial else "(none)"
        ips = ",".join(str(p) for p in peer.allowed_ips)
        dump.append(
            f"{me.interface}\t{peer.public_key}\t(none)\t{endpoint}\t{ips}\t{last}\t{n * 1000}\t"
            f"{n * 2000}\toff"
        )
    flags = "POINTOPOINT,NOARP,UP,LOWER_UP" if wg_up else "POINTOPOINT,NOARP"
    lan = me.lan[0]
    return read_sections(
        site,
        _sections(
            clock=(f"{CLOCK}\n", 0),
            wg=("\n".join(dump) + "\n", 0),
            routes4=(
                "default via 198.18.0.1 dev wan proto static\n"
                f"{lan} dev br-lan proto kernel scope link src {lan.network_address + 1}\n",
                0,
            ),
            routes6=("", 0),
            links=(f"6: {me.interface}: <{flags}> mtu 1420 qdisc noqueue state UNKNOWN\n", 0),
            tailscale=(PREFS, 0) if tailscale else ("", 127),
            ts_status=(TS_STATUS, 0) if tailscale else ("", 127),
        ),
    )


# --- reading routers ------------------------------------------------------------------------------


def test_pairs_say_which_relay_carries_a_pair(three: Plan) -> None:
    assert pairs(three) == [("A", "B", None), ("A", "C", None), ("B", "C", "A")]


def test_a_router_is_read_into_values(seed: Plan) -> None:
    seen = _seen(seed, "A", tailscale=True)
    assert seen.clock == CLOCK
    assert seen.lan_address(seed.site("A").lan) == "192.168.3.1"
    iface = seen.wg.interface("wg0")
    assert iface is not None and len(iface.peers) == 2
    assert seen.links[0].up
    # The captured `tailscale status --json` (1.32.3): running, its own address, from Self.
    assert seen.tailnet.installed and seen.tailnet.running
    assert seen.tailnet.ip == "100.82.81.70"


@pytest.mark.parametrize(
    ("prefs", "status", "state", "ip"),
    [
        (("", 127), ("", 127), None, None),  # not installed
        ((PREFS, 0), ("{not json", 0), None, None),
        ((PREFS, 0), ('{"BackendState": "Stopped", "TailscaleIPs": []}', 0), "Stopped", None),
        # Only an address goes into another router's shell.
        (
            (PREFS, 0),
            ('{"BackendState": "Running", "TailscaleIPs": ["1.2.3.4; reboot"]}', 0),
            "Running",
            None,
        ),
        (
            (PREFS, 0),
            ('{"BackendState": "Running", "TailscaleIPs": ["fd7a::1", "100.64.0.9"]}', 0),
            "Running",
            "100.64.0.9",
        ),
    ],
)
def test_tailscale_state_and_address(
    prefs: tuple[str, int], status: tuple[str, int], state: str | None, ip: str | None
) -> None:
    sections = _sections(tailscale=prefs, ts_status=status)
    found = parse_tailnet(sections["tailscale"], sections["ts_status"])
    assert found.installed is (prefs[1] != 127)
    assert (found.state, found.ip) == (state, ip)


def test_garbled_output_names_the_command(seed: Plan) -> None:
    good = _seen(seed, "A")
    assert good.wg.names == ("wg0",)
    with pytest.raises(FactsError, match=r"A: `ip -o link show`"):
        read_sections(
            "A",
            _sections(
                clock=("1\n", 0),
                wg=("", 0),
                routes4=("", 0),
                routes6=("", 0),
                links=("garbage\n", 0),
                tailscale=("", 127),
            ),
        )


def test_pings_are_parsed_from_iputils_and_busybox() -> None:
    section = ScriptSection(
        "sw_rtt",
        0,
        f"rtt B wireguard {IPUTILS}\nrtt B lan {BUSYBOX}\nrtt C wireguard no reply\nnoise\n",
        "",
    )
    assert parse_pings(section) == {
        ("B", "wireguard"): 0.048,
        ("B", "lan"): 8.125,
        ("C", "wireguard"): None,
    }


def test_each_pair_is_pinged_from_one_side_over_every_path(seed: Plan) -> None:
    seen = {s: _seen(seed, s, tailscale=True) for s in ("A", "B")}
    # Indexes 0 + 1 are odd: B measures the pair.
    assert ping_sections(seed, "A", seen) == []
    [(name, body)] = ping_sections(seed, "B", seen)
    assert name == "sw_rtt"
    lines = body.splitlines()
    assert "m 'A wireguard' 192.168.5.1 &" in lines
    assert "m 'A lan' -I 192.168.7.1 192.168.3.1 &" in lines
    assert "m 'A tailnet' 100.82.81.70 &" in lines
    assert lines[-2:] == ["wait", "return 0"]
    # A site without Tailscale: no tailnet ping; A unread: only the overlay address is known.
    plain = {"A": _seen(seed, "A"), "B": seen["B"]}
    assert not any("tailnet" in line for line in ping_sections(seed, "B", plain)[0][1].split("\n"))
    [(_, alone)] = ping_sections(seed, "B", {"B": seen["B"]})
    assert "m 'A wireguard' 192.168.5.1 &" in alone and " lan'" not in alone


def test_the_prober_falls_back_to_the_site_that_was_read(three: Plan) -> None:
    seen = {s: _seen(three, s) for s in ("A", "B", "C")}
    # (A, C): indexes 0 + 2 are even, so A measures; without A, C does.
    assert "m 'C wireguard'" in ping_sections(three, "A", seen)[0][1]
    del seen["A"]
    assert "m 'A wireguard'" in ping_sections(three, "C", seen)[0][1]


# --- the model and its table ----------------------------------------------------------------------


# Average round trip in ms by measuring site, then (peer, path); None: no reply.
Pings = Mapping[str, Mapping[tuple[str, str], float | None]]


def _status(plan: Plan, seen: dict[str, Seen], pings: Pings) -> NetworkStatus:
    return build_status(plan, seen, pings, {}, float(CLOCK), 1.25)


def test_a_healthy_seed_network(seed: Plan) -> None:
    seen = {s: _seen(seed, s, tailscale=True) for s in ("A", "B")}
    pings = {"B": {("A", "wireguard"): 8.1, ("A", "lan"): 8.4, ("A", "tailnet"): 15.2}}
    status = _status(seed, seen, pings)
    assert status.healthy
    [link] = status.links
    assert (link.a, link.b, link.relay, link.health) == ("A", "B", None, Health.UP)
    assert link.handshake_age == 10
    assert link.endpoint == "198.18.0.10:51820"  # where B (the dialer) sends
    assert (link.bytes_ab, link.bytes_ba) == (2000, 1000)  # A's counters for its first peer
    assert link.measured_from == "B"
    assert link_cells(link) == (
        "A – B",
        "direct",
        "10 s ago",
        "198.18.0.10:51820",
        "2.0 KiB",
        "1000 B",
        "8.10 ms",
        "8.40 ms",
        "15.20 ms",
    )
    a, b = status.sites
    assert site_cells(a) == (
        "A",
        "192.168.3.0/24",
        "192.168.5.1",
        "wg0 up",
        "Running 100.82.81.70",
        "off",
        "",
    )
    assert b.interface_up and b.tailnet is not None and b.tailnet.running


@pytest.mark.parametrize(
    ("age", "health", "shown"),
    [
        (None, Health.DOWN, "never"),
        (RECENT + 1, Health.STALE, "3 m 1 s ago"),
        (5, Health.UP, "5 s ago"),
    ],
)
def test_handshake_age_decides_health(
    seed: Plan, age: int | None, health: Health, shown: str
) -> None:
    seen = {s: _seen(seed, s, ages={"A": age, "B": age}) for s in ("A", "B")}
    [link] = _status(seed, seen, {}).links
    assert link.health is health and link_cells(link)[2] == shown
    assert link.rtt_ms == {}  # nothing measured: no cell says otherwise
    assert link_cells(link)[6:] == ("", "", "")


def test_a_relayed_pair_is_as_healthy_as_its_worst_hop(three: Plan) -> None:
    seen = {
        "A": _seen(three, "A", ages={"B": 20, "C": RECENT + 60}),
        "B": _seen(three, "B", ages={"A": 20}),
        "C": _seen(three, "C", ages={"A": RECENT + 60}),
    }
    pings = {"C": {("B", "wireguard"): None}}  # indexes 1 + 2 are odd: C measures
    status = _status(three, seen, pings)
    bc = status.link("B", "C")
    assert bc is not None
    assert (bc.relay, bc.health, bc.handshake_age) == ("A", Health.STALE, RECENT + 60)
    assert bc.endpoint is None and bc.bytes_ab is None
    assert link_cells(bc)[1:4] == ("via A", "4 m 0 s ago", "")
    assert link_cells(bc)[6] == "no reply"
    assert not status.healthy


def test_an_unreadable_site_is_unknown_not_down(three: Plan) -> None:
    seen = {s: _seen(three, s) for s in ("A", "B")}
    status = build_status(three, seen, {}, {"C": "C (root@c): no answer"}, float(CLOCK), 1.0)
    ab, ac = status.links[:2]
    assert ab.health is Health.UP and ac.health is Health.UP  # A saw a handshake from C
    bc = status.link("B", "C")
    assert bc is not None and bc.health is Health.UP
    c = status.site("C")
    assert c is not None and not c.reachable
    assert site_cells(c) == (
        "C",
        "192.168.3.0/24",
        "10.9.0.3",
        "?",
        "?",
        "",
        "C (root@c): no answer",
    )
    nobody = build_status(three, {}, {}, {}, float(CLOCK), 1.0)
    assert {x.health for x in nobody.links} == {Health.UNKNOWN}
    assert link_cells(nobody.links[0])[2] == "?"


def test_an_interface_down(seed: Plan) -> None:
    status = _status(seed, {"A": _seen(seed, "A", wg_up=False), "B": _seen(seed, "B")}, {})
    assert site_cells(status.sites[0])[3] == "wg0 down"


@pytest.mark.parametrize(
    ("count", "shown"),
    [(None, ""), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_bytes_for_people(count: int | None, shown: str) -> None:
    assert format_bytes(count) == shown


# --- JSON -----------------------------------------------------------------------------------------


def test_json_round_trips_and_is_versioned(three: Plan) -> None:
    seen = {s: _seen(three, s) for s in ("A", "B")}
    status = build_status(three, seen, {"B": {("A", "wireguard"): 1.5}}, {"C": "gone"}, 1.5, 2.0)
    data = status_json(status)
    assert data["version"] == 1 and data["healthy"] is False
    text = json.dumps(data)
    assert status_from_json(text, "x") == status
    links = json.loads(text)["links"]
    assert links[0]["rtt_ms"] == {"wireguard": 1.5} and links[0]["health"] == "up"
    with pytest.raises(InputError, match="status version 9"):
        status_from_json(json.dumps({**data, "version": 9}), "x")
    with pytest.raises(InputError, match="not a sitewire status file"):
        status_from_json("[]", "x")
    assert status_path(Path("/n/network.lock")) == Path("/n/network.status.json")


# --- graph ----------------------------------------------------------------------------------------


def test_the_graph_draws_sites_direct_links_and_relayed_paths(three: Plan) -> None:
    seen = {
        "A": _seen(three, "A", ages={"B": 5, "C": None}),
        "B": _seen(three, "B", ages={"A": 5}),
        "C": _seen(three, "C", ages={"A": None}),
    }
    pings: Pings = {
        "B": {("A", "wireguard"): 8.1, ("A", "lan"): 8.3},
        "A": {("C", "wireguard"): None},
    }
    dot = network_graph(three, _status(three, seen, pings))
    for site, lan in (("A", "192.168.1.0/24"), ("B", "192.168.2.0/24"), ("C", "192.168.3.0/24")):
        assert f"\t{site} [label=<" in dot and lan in dot
    edges = [line.strip() for line in dot.splitlines() if " -- " in line]
    ab = next(e for e in edges if e.startswith("A -- B"))
    assert f'color="{COLOURS[Health.UP]}"' in ab and "wg 8.1 ms" in ab and "lan 8.3 ms" in ab
    ac = next(e for e in edges if e.startswith("A -- C") and "dashed" not in e)
    assert f'color="{COLOURS[Health.DOWN]}"' in ac and "wg no reply" in ac
    # B–C goes through the relay A: two dashed halves, B to A and A to C, red (A–C is down).
    relayed = [e for e in edges if "style=dashed" in e]
    assert [e.split(" [")[0] for e in relayed] == ["B -- A", "A -- C"]
    assert all(f'color="{COLOURS[Health.DOWN]}"' in e for e in relayed)
    assert "B–C" in relayed[0]


def test_the_graph_without_a_status_is_grey(seed: Plan) -> None:
    dot = network_graph(seed, None)
    assert "no status yet" in dot
    [edge] = [line for line in dot.splitlines() if " -- " in line]
    assert f'color="{COLOURS[Health.UNKNOWN]}"' in edge


def test_graph_format_comes_from_the_file_name() -> None:
    assert graph_format("net.SVG") == "svg" and graph_format("a.b.png") == "png"
    with pytest.raises(InputError, match=r"\.svg, \.png"):
        graph_format("net.jpeg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (scripts/bootstrap)")
def test_graph_command_draws_from_a_saved_status(
    seed: Plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "network.toml"
    shutil.copy(SEED, spec)
    seen = {s: _seen(seed, s) for s in ("A", "B")}
    status = _status(seed, seen, {"B": {("A", "wireguard"): 8.1}})
    status_path(spec.with_suffix(".lock")).write_text(json.dumps(status_json(status)))
    assert run(["graph", str(spec), "-o", str(tmp_path / "net.svg")]) == 0
    assert (
        "<svg" in (tmp_path / "net.svg").read_text()
        and "wg 8.1 ms" in (tmp_path / "net.svg").read_text()
    )
    assert run(["graph", str(spec), "-o", str(tmp_path / "net.png")]) == 0
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert render_graph("graph { A }", "dot") == b"graph { A }"
    assert run(["graph", str(spec), "-o", str(tmp_path / "net.gif")]) == 3
    assert "end the file name" in capsys.readouterr().err
