"""How long `sitewire status` and `sitewire doctor` take on a healthy network as it grows.

For the seed network and N-site networks (lab_scale's generator: every fourth site has an
endpoint, the rest reach each other through relays, one in five is Linux), on labs it builds
and always takes down: `lab up --configured` (or, with --apply, `lab up` from factory and the
apply in-process as apply_scale runs it). It reads the network with `status` until every pair
is up (the dialers' first handshakes), then runs `sitewire status --json` and
`sitewire doctor --json` as a person does, each a CLI in its own process, --runs times each:
the median wall time, the median of the gathering time each reports in its JSON (reading
every site and its probes, without the CLI's start-up and the planning), and the median CPU
time the whole machine spent during a run (the lab's routers share its cores).

Every status run must read every site and find every pair up, every doctor run must read every
site and find nothing, or the run stops.

Usage: python benchmarks/diagnose_scale.py [--networks seed,10,20] [--runs 3] [--apply]  (as root)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from lab_scale import spec_toml  # noqa: E402

from sitewire.lab.state import lab_names  # noqa: E402

SITEWIRE = str(Path(sys.executable).parent / "sitewire")
SEED = ROOT / "examples" / "seed.toml"
SETTLE = 60.0  # seconds status may take to see every pair's first handshake after the lab is up


def sitewire(*argv: str) -> str:
    done = subprocess.run([SITEWIRE, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sitewire {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def busy() -> float:
    """CPU seconds the whole machine has spent (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    wall: float
    cpu: float  # the machine's, during the run
    code: int
    out: dict[str, Any]


def timed_json(*argv: str) -> Run:
    """`sitewire ARGV --json` in its own process, timed."""
    cpu, start = busy(), time.perf_counter()
    done = subprocess.run([SITEWIRE, *argv, "--json"], capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, busy() - cpu
    try:
        return Run(seconds, cpu, done.returncode, json.loads(done.stdout))
    except ValueError:
        raise SystemExit(
            f"sitewire {' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        ) from None


def load() -> str:
    """The 1-minute load average: other work on the machine shows in the numbers."""
    return f"{os.getloadavg()[0]:.1f}"


def status_problems(code: int, status: dict[str, Any]) -> list[str]:
    """Why a status is not all green: a site unread or its interface down, a pair not up."""
    out = [
        f"site {s['name']}: {s['error'] or 'unreadable or interface down'}"
        for s in status["sites"]
        if not (s["reachable"] and s["interface_up"]) or s["error"]
    ]
    out += [f"{x['a']} - {x['b']}: {x['health']}" for x in status["links"] if x["health"] != "up"]
    if code != 0 and not out:
        out.append(f"exit {code}")
    return out


def no_reply(status: dict[str, Any]) -> int:
    """Round trips measured without an answer (not part of a pair's health)."""
    return sum(v is None for x in status["links"] for v in x["rtt_ms"].values())


def doctor_problems(code: int, found: dict[str, Any], sites: int) -> list[str]:
    out = [f"{f['check']} on {f['site']}: {f['problem']}" for f in found["findings"]]
    if len(found["sites"]) != sites:
        out.append(f"read {len(found['sites'])} of {sites} sites")
    if code != 0 and not out:
        out.append(f"exit {code}")
    return out


@dataclass
class Row:
    network: str
    sites: int
    pairs: int
    relayed: int
    status_wall: list[float] = field(default_factory=list)
    status_gather: list[float] = field(default_factory=list)
    status_cpu: list[float] = field(default_factory=list)
    doctor_wall: list[float] = field(default_factory=list)
    doctor_gather: list[float] = field(default_factory=list)
    doctor_cpu: list[float] = field(default_factory=list)
    no_reply: int = 0


def configure(spec: Path, name: str, use_apply: bool) -> float:
    """A lab of SPEC, configured; the seconds it took. A lab of that name a killed run left
    behind is taken down first."""
    if name in lab_names():
        sitewire("lab", "down", "--name", name)
    start = time.perf_counter()
    if use_apply:
        from apply_scale import apply, lab_up

        from sitewire.deploy.run import Result

        apply(lab_up(spec, name, "24.10"), spec, expect={Result.CONFIRMED})
    else:
        sitewire("lab", "up", str(spec), "--name", name, "--configured")
    return time.perf_counter() - start


def settle(spec: Path, name: str) -> dict[str, Any]:
    """Status again and again until it is all green (first handshakes); the last status."""
    deadline = time.monotonic() + SETTLE
    while True:
        run = timed_json("status", str(spec), "--lab", "--lab-name", name)
        problems = status_problems(run.code, run.out)
        if not problems:
            return run.out
        if time.monotonic() > deadline:
            raise SystemExit(f"lab {name} not all green after {SETTLE:.0f} s: {problems}")
        time.sleep(2)


def bench(label: str, spec: Path, name: str, runs: int, use_apply: bool) -> tuple[Row, str]:
    up = configure(spec, name, use_apply)
    try:
        status = settle(spec, name)
        sites = len(status["sites"])
        row = Row(
            label,
            sites,
            len(status["links"]),
            sum(x["relay"] is not None for x in status["links"]),
        )
        where = ("--lab", "--lab-name", name)
        for _ in range(runs):
            run = timed_json("status", str(spec), *where)
            problems = status_problems(run.code, run.out)
            if problems:
                raise SystemExit(f"status of {label}: {problems}")
            row.status_wall.append(run.wall)
            row.status_gather.append(run.out["seconds"])
            row.status_cpu.append(run.cpu)
            row.no_reply += no_reply(run.out)
        for _ in range(runs):
            run = timed_json("doctor", str(spec), *where)
            problems = doctor_problems(run.code, run.out, sites)
            if problems:
                raise SystemExit(f"doctor on {label}: {problems}")
            row.doctor_wall.append(run.wall)
            row.doctor_gather.append(run.out["seconds"])
            row.doctor_cpu.append(run.cpu)
    finally:
        sitewire("lab", "down", "--name", name)
    how = "lab up, apply" if use_apply else "lab up --configured"
    note = (
        f"{label}: {how} {up:.1f} s; status runs "
        + _runs(row.status_wall, row.status_gather, row.status_cpu)
        + "; doctor runs "
        + _runs(row.doctor_wall, row.doctor_gather, row.doctor_cpu)
        + f"; round trips without a reply: {row.no_reply}"
    )
    return row, note


def _runs(wall: list[float], gathering: list[float], cpu: list[float]) -> str:
    """Each run: wall seconds (gathering, CPU seconds)."""
    runs = zip(wall, gathering, cpu, strict=True)
    return " ".join(f"{w:.2f} ({g:.2f}, {c:.1f} CPU)" for w, g, c in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--networks", default="seed,10,20", help="seed and/or site counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--apply", action="store_true", help="configure by apply from factory (slower)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    start = time.perf_counter()
    subprocess.run([SITEWIRE, "status", "--help"], capture_output=True, check=True)
    cli = time.perf_counter() - start
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load {load()}; CLI start-up {cli:.2f} s (in the wall times below)"
    )
    rows: list[Row] = []
    notes: list[str] = []
    for network in args.networks.split(","):
        with tempfile.TemporaryDirectory(prefix="sitewire-diagbench-") as tmp:
            spec = Path(tmp) / "network.toml"
            if network == "seed":
                spec.write_text(SEED.read_text())
                label, name = "seed", "dgseed"
            else:
                spec.write_text(spec_toml(int(network)))
                label, name = f"{network} sites", f"dg{network}"
            row, note = bench(label, spec, name, args.runs, args.apply)
            rows.append(row)
            notes.append(note)
            print(f"- {note}", flush=True)
    median = statistics.median
    print()
    print(
        "| network | sites | pairs (relayed) | status (s) | gathering (s) | CPU (s) "
        "| doctor (s) | gathering (s) | CPU (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.network} | {r.sites} | {r.pairs} ({r.relayed}) "
            f"| {median(r.status_wall):.2f} | {median(r.status_gather):.2f} "
            f"| {median(r.status_cpu):.1f} | {median(r.doctor_wall):.2f} "
            f"| {median(r.doctor_gather):.2f} | {median(r.doctor_cpu):.1f} |"
        )


if __name__ == "__main__":
    main()
