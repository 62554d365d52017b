"""How long `sitewire apply` takes on lab routers, and how many pings a change costs.

For each OpenWrt release, on labs it builds (`lab up`, factory state) and always takes down:

(a) the apply from factory of the seed network and of an N-site network (lab_scale's generator:
    every fourth site has an endpoint, the rest reach each other through relays, one in five is
    Linux), for each size given, with each site's own time (its commands from reading it to
    confirming it, its keys' one write included) — sites run in parallel, each at its own pace,
    so the total should follow the slowest site, not the sum;
(b) a second apply with nothing to change;
(c) packets lost while LAN hosts of two existing sites (s01, s02: relayed through s00) ping each
    other every 10 ms, both ways: adding site N (the lab was built with N + 1 routers) and a
    peer-only change (network.keepalive 25 -> 30, every dialled peer of every site).

The applies run in-process, as `sitewire apply --lab --yes` runs them (the CLI adds its start-up,
measured once). Every run must confirm every site and pass the lab's probes, or the run stops.

Usage: python benchmarks/apply_scale.py [--releases 24.10,25.12] [--sites 10,20]   (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from lab_scale import spec_toml  # noqa: E402
from tests.lab.applying import Pinger, unreachable  # noqa: E402

from sitewire.cli.apply import lab_reach  # noqa: E402
from sitewire.cli.report import lines_for  # noqa: E402
from sitewire.deploy.apply import apply_network  # noqa: E402
from sitewire.deploy.events import Event  # noqa: E402
from sitewire.deploy.run import Options, Outcome, Result  # noqa: E402
from sitewire.lab.state import LabState, lab_names, load_state  # noqa: E402
from sitewire.pipeline import open_workspace  # noqa: E402

SITEWIRE = str(Path(sys.executable).parent / "sitewire")
SEED = ROOT / "examples" / "seed.toml"


@dataclass
class TimedUi:
    """The apply's Ui: every line with the seconds since the apply began; answers yes."""

    start: float = field(default_factory=time.perf_counter)
    lines: list[tuple[float, str]] = field(default_factory=list)

    def event(self, event: Event) -> None:
        for line in lines_for(event):
            self.lines.append((time.perf_counter() - self.start, line))

    def ask(self, question: str) -> bool:
        return True

    def last(self, marker: str, default: float) -> float:
        return max((t for t, line in self.lines if marker in line), default=default)

    def phases(self, total: float) -> dict[str, float]:
        """Where the time went, from when lines appeared (a step's line precedes the step)."""
        armed = min((t for t, line in self.lines if ": backed up;" in line), default=total)
        # Keys (private and preshared) are written in prepare; then each site goes on at its
        # own pace, so "configure" is until the last step began anywhere.
        shared = self.last("preshared key made in memory", armed)
        keys = max(self.last("private key made on the device;", armed), shared)
        steps = self.last("[#]", keys)
        return {
            "read+diff+arm": armed,
            "packages+keys": keys - armed,
            "configure": max(steps - keys, 0.0),
            "verify+confirm": total - max(steps, keys),
        }


@dataclass
class Applied:
    seconds: float
    outcome: Outcome
    ui: TimedUi

    @property
    def per_site(self) -> dict[str, float]:
        return {n: r.seconds for n, r in self.outcome.sites.items()}

    @property
    def slowest(self) -> tuple[str, float]:
        return max(self.per_site.items(), key=lambda item: item[1])


def sitewire(*argv: str) -> str:
    done = subprocess.run([SITEWIRE, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sitewire {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def lab_up(spec: Path, name: str, release: str) -> LabState:
    """`sitewire lab up`, after taking down a lab of that name a killed run left behind."""
    if name in lab_names():
        sitewire("lab", "down", "--name", name)
    sitewire("lab", "up", str(spec), "--name", name, "--openwrt", release)
    return load_state(name)


def apply(state: LabState, spec_path: Path, *, expect: set[Result]) -> Applied:
    """`sitewire apply SPEC --lab --yes` in-process; stops the benchmark unless all went well."""
    ws0 = open_workspace(spec_path)
    where = lab_reach(state, ws0.spec.sites)
    ws = open_workspace(spec_path, where.lock_path, where.keys_path)
    ui = TimedUi()
    outcome = asyncio.run(
        apply_network(ws, where.targets, where.creds, Options(yes=True, env=where.env), ui)
    )
    seconds = time.perf_counter() - ui.start
    results = {r.result for r in outcome.sites.values()}
    if not outcome.ok or not results <= expect:
        text = "\n".join(line for _, line in ui.lines)
        raise SystemExit(f"apply {spec_path.name} on lab {state.name}: {results}\n{text}")
    sites = set(ws.spec.sites)  # the lab may hold a router the spec does not have (yet)
    lost = [
        p
        for p in unreachable(state, spec_path)
        if {p.split()[0], p.split("-> ")[1].split()[0]} <= sites
    ]
    if lost:
        raise SystemExit(f"lab {state.name} after {spec_path.name}: unreachable {lost}")
    return Applied(seconds, outcome, ui)


def lossy_apply(state: LabState, spec_path: Path, a: str, b: str) -> tuple[Applied, str]:
    """Apply while a's and b's LAN hosts ping each other every 10 ms: (apply, lost / sent)."""
    host = {s: str(state.layout.router(s).lans[0].host[0].ip) for s in (a, b)}
    start = time.perf_counter()
    with Pinger(state, a, host[b]) as a_to_b, Pinger(state, b, host[a]) as b_to_a:
        time.sleep(1.0)  # the pingers are running (and their first replies back) before the apply
        done = apply(state, spec_path, expect={Result.CONFIRMED, Result.UNCHANGED})
        time.sleep(1.0)  # and a loss right at the end counts
    rate = (a_to_b.sent + b_to_a.sent) / 2 / (time.perf_counter() - start)
    lost, sent = a_to_b.lost + b_to_a.lost, a_to_b.sent + b_to_a.sent
    return done, f"{lost} / {sent} ({rate:.0f}/s each way)"


def load() -> str:
    """The 1-minute load average: other work on the machine shows in the numbers."""
    return f"{os.getloadavg()[0]:.1f}"


@dataclass
class Row:
    release: str
    network: str
    sites: int
    run: str
    seconds: float
    slowest: str = ""
    slowest_seconds: float = 0.0
    sum_sites: float | None = None
    lost: str = ""
    load: str = ""


def fresh(applied: Applied, release: str, network: str, loadavg: str) -> Row:
    name, seconds = applied.slowest
    return Row(
        release,
        network,
        len(applied.outcome.sites),
        "from factory",
        applied.seconds,
        f"{seconds:.1f} ({name})",
        seconds,
        sum(applied.per_site.values()),
        load=loadavg,
    )


def bench_release(
    release: str, sizes: list[int], tmp: Path, rows: list[Row], notes: list[str]
) -> None:
    tag = release.replace(".", "")
    # The seed: two OpenWrt routers, a phone, Tailscale.
    seed = tmp / "seed.toml"
    seed.write_text(SEED.read_text())
    name = f"apseed{tag}"
    state = lab_up(seed, name, release)
    try:
        first = apply(state, seed, expect={Result.CONFIRMED})
        rows.append(fresh(first, release, "seed", load()))
        notes.append(f"{release} seed phases: {_phases(first)}")
        again = apply(state, seed, expect={Result.UNCHANGED})
        rows.append(Row(release, "seed", 2, "again, no change", again.seconds, load=load()))
    finally:
        sitewire("lab", "down", "--name", name)
    for n in sizes:
        bench_network(release, n, tmp, rows, notes)


def bench_network(release: str, n: int, tmp: Path, rows: list[Row], notes: list[str]) -> None:
    """N sites on a lab of N + 1 routers: from factory, again, then the last one joins in (c)."""
    tag = release.replace(".", "")
    base, grown, keepalive = tmp / f"n{n}.toml", tmp / f"n{n + 1}.toml", tmp / "keepalive.toml"
    more = spec_toml(n + 1).replace(f'"bench{n + 1}"', f'"bench{n}"', 1)  # the same network
    base.write_text(spec_toml(n))
    grown.write_text(more)
    keepalive.write_text(more.replace("[network]\n", "[network]\nkeepalive = 30\n", 1))
    name = f"apn{n}{tag}"
    state = lab_up(grown, name, release)
    try:
        first = apply(state, base, expect={Result.CONFIRMED})
        rows.append(fresh(first, release, f"{n} sites", load()))
        notes.append(f"{release} {n} sites phases: {_phases(first)}")
        notes.append(
            f"{release} {n} sites per site: "
            + ", ".join(f"{s} {t:.1f}" for s, t in sorted(first.per_site.items()))
        )
        again = apply(state, base, expect={Result.UNCHANGED})
        rows.append(Row(release, f"{n} sites", n, "again, no change", again.seconds, load=load()))
        for label, spec in ((f"add site s{n:02d}", grown), ("keepalive 25 -> 30", keepalive)):
            done, lost = lossy_apply(state, spec, "s01", "s02")
            changed = sum(r.result is Result.CONFIRMED for r in done.outcome.sites.values())
            notes.append(f"{release} {label}: {_phases(done)}; steps: {_steps(done)}")
            rows.append(
                Row(
                    release,
                    f"{n} sites",
                    changed,
                    label,
                    done.seconds,
                    lost=lost,
                    load=load(),
                )
            )
    finally:
        sitewire("lab", "down", "--name", name)


def _phases(applied: Applied) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in applied.ui.phases(applied.seconds).items())


def _steps(applied: Applied) -> str:
    """How the change was made live: each step's reason, counted over the sites."""
    reasons = Counter(
        line.rsplit("(", 1)[-1].rstrip(")")
        for _, line in applied.ui.lines
        if "[#]" in line and line.endswith(")")
    )
    return "; ".join(f"{n}x {why}" for why, n in reasons.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--releases", default="24.10,25.12")
    parser.add_argument("--sites", default="10,20", help="network sizes, comma-separated")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    start = time.perf_counter()
    subprocess.run([SITEWIRE, "apply", "--help"], capture_output=True, check=True)
    cli = time.perf_counter() - start
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load {load()}; CLI start-up {cli:.2f} s (not in the numbers below)"
    )
    rows: list[Row] = []
    notes: list[str] = []
    for release in args.releases.split(","):
        with tempfile.TemporaryDirectory(prefix="sitewire-applybench-") as tmp:
            sizes = [int(n) for n in args.sites.split(",")]
            bench_release(release, sizes, Path(tmp), rows, notes)
    print()
    print(
        "| OpenWrt | network | sites changed | apply | seconds | slowest site (s) "
        "| total / slowest | sum of sites (s) | pings lost / sent | load |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        total = f"{r.sum_sites:.1f}" if r.sum_sites is not None else ""
        ratio = f"{r.seconds / r.slowest_seconds:.2f}x" if r.slowest_seconds else ""
        print(
            f"| {r.release} | {r.network} | {r.sites} | {r.run} | {r.seconds:.1f} | {r.slowest} "
            f"| {ratio} | {total} | {r.lost} | {r.load} |"
        )
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
