"""`sitewire status` and `graph` on real lab routers: the seed with Tailscale, and ten sites."""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sitewire.cli.main import run
from sitewire.diagnose.status import RECENT, status_path
from sitewire.lab.host import lab_down, router_argv
from sitewire.lab.state import LabState, load_state
from tests.conftest import SEED
from tests.lab.applying import apply_lab, write_spec
from tests.lab.conftest import unique_name

pytestmark = pytest.mark.lab

TEN = Path(__file__).resolve().parents[2] / "examples" / "ten.toml"
SVG = "{http://www.w3.org/2000/svg}"


Up = Callable[..., tuple[Path, LabState]]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Up]:
    """lab(spec text, *flags): `sitewire lab up` as a person runs it; down again at the end."""
    names: list[str] = []

    def up(text: str, *flags: str) -> tuple[Path, LabState]:
        spec = write_spec(tmp_path / f"{len(names)}.toml", text)
        name = unique_name()
        names.append(name)
        assert run(["lab", "up", str(spec), "--name", name, *flags]) == 0
        return spec, load_state(name)

    try:
        yield up
    finally:
        for name in names:
            lab_down(name, missing_ok=True)


def _open_tailnet(state: LabState) -> None:
    """Ping over the tailnet from both routers at once until both answer.

    The lab's Tailscale has no disco pings: after apply reloads the firewalls, a router drops the
    other's tailnet packets until it has sent some itself (a stateful UDP pinhole; its keepalive
    reopens it within 25 s). Real tailscaled punches that hole from both ends at once; so do we.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pings = [
            subprocess.Popen(
                router_argv(state, site, ["ping", "-c", "1", "-W", "1", address]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for site, address in (("A", "100.64.0.2"), ("B", "100.64.0.1"))
        ]
        if [p.wait() for p in pings] == [0, 0]:
            return
    pytest.fail("the lab tailnet did not answer within 30 s")


def _status(
    capsys: pytest.CaptureFixture[str], spec: Path, name: str
) -> tuple[int, dict[str, Any], float]:
    capsys.readouterr()
    started = time.monotonic()
    code = run(["status", str(spec), "--lab", "--lab-name", name, "--json"])
    seconds = time.monotonic() - started
    return code, json.loads(capsys.readouterr().out), seconds


def test_status_and_graph_of_the_applied_seed_with_tailscale(
    lab: Up, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec, state = lab(SEED.read_text())  # both routers on the lab tailnet, as the spec says
    outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    _open_tailnet(state)

    code, status, _ = _status(capsys, spec, state.name)
    assert code == 0, status
    assert status["healthy"]
    [link] = status["links"]
    assert (link["a"], link["b"], link["relay"], link["health"]) == ("A", "B", None, "up")
    assert 0 <= link["handshake_age"] <= RECENT
    assert link["endpoint"] and link["bytes_ab"] > 0 and link["bytes_ba"] > 0
    rtt = link["rtt_ms"]
    # WireGuard router to router, LAN to LAN, and over the tailnet to the same router.
    assert {k: isinstance(v, float) for k, v in rtt.items()} == {
        "wireguard": True,
        "lan": True,
        "tailnet": True,
    }, rtt
    for site in status["sites"]:
        assert site["reachable"] and site["interface_up"]
        assert site["tailnet"]["state"] == "Running" and site["tailnet"]["ip"].startswith("100.64.")
        assert site["tailnet"]["accept_routes"] is False  # apply turned them off
    saved = status_path(state.dir / "network.lock")
    assert json.loads(saved.read_text())["links"] == status["links"]

    # The table a person sees.
    assert run(["status", str(spec), "--lab", "--lab-name", state.name]) == 0
    table = capsys.readouterr().out
    assert "A – B" in table and "direct" in table and "Running 100.64.0.1" in table

    svg, png = tmp_path / "net.svg", tmp_path / "net.png"
    assert run(["graph", str(spec), "--lab", "--lab-name", state.name, "-o", str(svg)]) == 0
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert {"A", "B", "A--B"} <= titles
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "192.168.3.0/24" in texts and "tailnet" in texts
    assert run(["graph", str(spec), "--lab", "--lab-name", state.name, "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_status_of_ten_sites_takes_seconds(lab: Up, capsys: pytest.CaptureFixture[str]) -> None:
    spec, state = lab(TEN.read_text(), "--configured")
    code, status, seconds = _status(capsys, spec, state.name)
    print(f"status of 10 sites: {status['seconds']} s gathering, {seconds:.2f} s in all")
    assert len(status["links"]) == 45
    relayed = [x for x in status["links"] if x["relay"]]
    assert relayed and all(x["rtt_ms"].get("wireguard") is not None for x in relayed)
    if code != 0:  # a dialer's first handshake may still be on its way: one more reading
        code, status, seconds = _status(capsys, spec, state.name)
    assert code == 0, [x for x in status["links"] if x["health"] != "up"]
    assert status["seconds"] < 6, status["seconds"]
