"""Linux hosts joined by hand with wg-quick files, then `sitewire apply` (issue 12): the files
are taken over with the keys the hosts run, the device kept, no packet lost.

The hand-made network is made as a person makes it: the real wg-meshconf 2.5.1 keeps the
database and writes each host's wg-quick file; the person adds a preshared key to both files by
hand (wg-meshconf has none), copies them to /etc/wireguard/wg0.conf and runs `wg-quick up wg0`
(wireguard-go: the lab has no WireGuard module). Then either `sitewire adopt` reads what they
made (the hosts' files, or the database), or the person writes their own network.toml.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitewire.cli.main import run
from sitewire.lab.host import host_exec, router_exec
from sitewire.lab.state import LabState
from tests.conftest import spec_from
from tests.lab import applying
from tests.lab.applying import apply_lab, router, write_spec
from tests.lab.conftest import LINUX_SPEC, MakeLab
from tests.lab.test_doctor_faults2 import Seed, doctor

A_HOST, B_HOST = "192.168.3.100", "192.168.7.100"
MESHCONF = Path(sys.executable).parent / "wg-meshconf"
USERSPACE = "export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go; "
SITES = ("A", "B")


def _meshconf(db: Path, *args: str) -> None:
    subprocess.run(
        [str(MESHCONF), "-d", str(db), *args], check=True, capture_output=True, timeout=60
    )


def hand_made(state: LabState, tmp_path: Path, *, psk: bool) -> Path:
    """wg-meshconf's files on both hosts, up; returns the database."""
    db = tmp_path / "database.csv"
    _meshconf(db, "addpeer", "A", "--address", "192.168.5.1/24", "--endpoint", "a.example.net",
              "--allowedips", "192.168.3.0/24", "--listenport", "51820",
              "--persistentkeepalive", "25")  # fmt: skip
    _meshconf(db, "addpeer", "B", "--address", "192.168.5.2/24", "--allowedips", "192.168.7.0/24",
              "--listenport", "51820")  # fmt: skip
    _meshconf(db, "genconfig", "-o", str(tmp_path / "out"))
    shared = router(state, "A", "wg", "genpsk").strip()
    for site in SITES:
        text = (tmp_path / "out" / f"{site}.conf").read_text()
        if psk:  # by hand, after each [Peer]'s PublicKey line
            text = "".join(
                line + (f"PresharedKey = {shared}\n" if line.startswith("PublicKey") else "")
                for line in text.splitlines(keepends=True)
            )
        put = "umask 077; mkdir -p /etc/wireguard; cat > /etc/wireguard/wg0.conf"
        done = router_exec(state, site, ["sh", "-c", f"{put} && {USERSPACE}wg-quick up wg0"], text)
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while not _lan_to_lan(state):
        assert time.monotonic() < deadline, "the hand-made network does not carry LAN to LAN"
    return db


def _lan_to_lan(state: LabState) -> bool:
    argv = ["ping", "-c", "3", "-i", "0.3", "-W", "2", B_HOST]
    return host_exec(state, "A", argv).returncode == 0


def _secrets(state: LabState) -> dict[str, str]:
    """A digest of each host's running private and preshared keys (never the keys)."""
    out = {}
    for site in SITES:
        held = router(
            state, site, "sh", "-c", "wg show wg0 private-key; wg show wg0 preshared-keys"
        )
        out[site] = hashlib.sha256(held.encode()).hexdigest()
    return out


def _ifindex(state: LabState, site: str) -> str:
    return router(state, site, "ip", "-o", "link", "show", "dev", "wg0").split(":", 1)[0]


def _taken_over(state: LabState, spec: Path) -> None:
    """apply: 0 pings lost both ways, the keys and the device kept; doctor clean; the files
    read the keys at the next `wg-quick up`; a second apply changes nothing."""
    secrets = _secrets(state)
    devices = {s: _ifindex(state, s) for s in SITES}
    with (
        applying.Pinger(state, "A", B_HOST) as a_to_b,
        applying.Pinger(state, "B", A_HOST) as b_to_a,
    ):
        outcome, ui = apply_lab(state, spec)
    assert outcome.ok, ui.text
    for name, ping in (("A->B", a_to_b), ("B->A", b_to_a)):
        assert ping.sent > 20 and ping.lost == 0, (name, ping.sent, ping.lost, ui.text)
    for site in SITES:
        line = f"{site}: hand-made /etc/wireguard/wg0.conf taken over: its key kept in"
        assert any(x.startswith(line) for x in ui.lines), ui.text
        assert not any("re-created" in x or "is new" in x for x in ui.lines), ui.text
    assert _secrets(state) == secrets
    assert {s: _ifindex(state, s) for s in SITES} == devices
    assert doctor(Seed(state, spec, ())) == []
    again, ui2 = apply_lab(state, spec)
    assert again.ok and "nothing to change" in ui2.lines, ui2.text
    # The file is sitewire's now, and brings the same keys back at the next start.
    done = router_exec(state, "B", ["sh", "-c", f"{USERSPACE}wg-quick down wg0; wg-quick up wg0"])
    assert done.returncode == 0, done.stderr
    assert _secrets(state) == secrets
    deadline = time.monotonic() + 30
    while not _lan_to_lan(state):
        assert time.monotonic() < deadline, "B's restarted wg0 does not carry LAN to LAN"


@pytest.mark.lab
@pytest.mark.parametrize("source", ["files", "database"])
def test_a_wg_meshconf_network_is_adopted_and_taken_over_without_a_packet_lost(
    make_lab: MakeLab, tmp_path: Path, source: str
) -> None:
    state = make_lab(spec_from(LINUX_SPEC))
    # The database knows no preshared key: adopted from it, the network has none.
    db = hand_made(state, tmp_path, psk=source == "files")
    if source == "files":  # the files as the hosts hold them
        given = []
        for site in SITES:
            (tmp_path / site).mkdir()
            path = tmp_path / site / "wg0.conf"
            path.write_text(router(state, site, "cat", "/etc/wireguard/wg0.conf"))
            given.append(f"--wg-quick={site}={path}")
    else:
        given = ["--wg-meshconf", str(db)]
    out = tmp_path / "adopted" / "network.toml"
    out.parent.mkdir()
    assert run(["adopt", *given, "--name", "pair", "-o", str(out)]) == 0
    assert ("preshared_keys = false" in out.read_text()) == (source == "database")
    (state.dir / "network.lock").write_bytes(out.with_suffix(".lock").read_bytes())
    _taken_over(state, out)


@pytest.mark.lab
def test_a_hand_made_network_is_taken_over_by_a_spec_the_person_wrote(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """Their own network.toml routes the IPv6 LANs too: a live peer change, no re-creation."""
    spec = write_spec(tmp_path / "network.toml", LINUX_SPEC)
    state = make_lab(spec_from(LINUX_SPEC))
    hand_made(state, tmp_path, psk=True)
    _taken_over(state, spec)
    v6 = host_exec(state, "A", ["ping", "-6", "-c", "2", "-W", "2", "fd00:7::100"])
    assert v6.returncode == 0, v6.stdout
