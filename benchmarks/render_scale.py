"""Plan + render N-site networks with sitewire and, on the same N, wg-meshconf; print a table.

Each tool runs as its own CLI in a child process, so wall time includes start-up and peak memory
is the child's own maximum resident set (wait4's ru_maxrss). Full meshes give every site an
endpoint (wg-meshconf's only shape); hub-and-spoke gives only the hub one, so every spoke-to-spoke
path is relayed.

What a person runs comes first: the default settings (a preshared key for every pair, which
wg-meshconf does not make) with `--local-keys`, written to the ordinary disk (the temporary
directory's file system), beside wg-meshconf on the same disk in the same run. Then the same
without preshared keys (wg-meshconf's own output), and the OpenWrt renderer. Last, the largest
mesh again on tmpfs (/dev/shm), where the numbers are the tools' and not the disk's.

Usage: python benchmarks/render_scale.py [--sizes 50,200,500,1000] [--no-meshconf]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sitewire.keys import generate_private_key

BIN = Path(sys.executable).parent


@dataclass
class Run:
    tool: str
    shape: str
    sites: int
    seconds: float
    peak_mb: float
    output_mb: float
    where: str = "tmpfs"


def spec_toml(n: int, shape: str, platform_name: str, psk: bool) -> str:
    lines = [
        "[network]",
        'name = "bench"',
        'overlay = "172.16.0.0/16"',
        f"preshared_keys = {'true' if psk else 'false'}",
    ]
    for i in range(n):
        lines += [
            f"[sites.s{i:04d}]",
            f'platform = "{platform_name}"',
            f'lan = ["10.{i // 256}.{i % 256}.0/24"]',
        ]
        if shape == "mesh" or i == 0:
            lines.append(f'endpoint = "198.18.{i // 254}.{i % 254 + 1}"')
    return "\n".join(lines) + "\n"


def meshconf_csv(n: int, path: Path) -> None:
    from wg_meshconf.database_manager import KEY_TYPE  # its own column list

    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(KEY_TYPE))
        writer.writeheader()
        for i in range(n):
            writer.writerow(
                {
                    "Name": f"s{i:04d}",
                    "Address": f"172.16.{i // 256}.{i % 256 + 1}/32",
                    "Endpoint": f"198.18.{i // 254}.{i % 254 + 1}",
                    "AllowedIPs": f"10.{i // 256}.{i % 256}.0/24",
                    "ListenPort": "51820",
                    "PrivateKey": generate_private_key(),
                }
            )


def measure(argv: list[str], out: Path) -> tuple[float, float, float]:
    # Each run starts with the disk idle: what earlier runs wrote is on it. Outputs are kept
    # until the end (ext4 skips recently freed inodes when it allocates, which made a run
    # right after a deletion pay for the deletion).
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"failed: {' '.join(argv)}\n{proc.stderr.read().decode() if proc.stderr else ''}"
        )
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return seconds, usage.ru_maxrss / 1024, size / 1e6


def run_sitewire(work: Path, n: int, shape: str, platform_name: str, psk: bool) -> Run:
    case = work / f"sw-{shape}-{platform_name}-{n}-{psk}"
    case.mkdir()
    spec = case / "network.toml"
    spec.write_text(spec_toml(n, shape, platform_name, psk))
    out = case / "out"
    argv = [str(BIN / "sitewire"), "render", str(spec), "--local-keys", str(case / "keys.json"),
            "--out", str(out)]  # fmt: skip
    seconds, peak, size = measure(argv, out)
    label = f"sitewire ({platform_name}{', psk' if psk else ''})"
    return Run(label, shape, n, seconds, peak, size)


def run_meshconf(work: Path, n: int) -> Run:
    case = work / f"mc-{n}"
    case.mkdir()
    db = case / "database.csv"
    meshconf_csv(n, db)
    out = case / "out"
    seconds, peak, size = measure(
        [str(BIN / "wg-meshconf"), "-d", str(db), "genconfig", "-o", str(out)], out
    )
    return Run("wg-meshconf", "mesh", n, seconds, peak, size)


def _print(run: Run, mc: Run | None) -> None:
    ratio = f"{mc.seconds / run.seconds:5.1f}x" if mc and run.shape == "mesh" else ""
    per_mb = run.seconds / run.output_mb * 1000 if run.output_mb else 0.0
    print(
        f"{run.tool:<26} {run.shape:<6} {run.sites:>5} {run.where:<6} {run.seconds:>8.2f} "
        f"{run.peak_mb:>8.1f} {run.output_mb:>8.1f} {per_mb:>7.1f} {ratio:>6}",
        flush=True,
    )


def _tmpfs() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def _batch(work: Path, n: int, where: str, meshconf: bool, full: bool) -> list[Run]:
    mc = run_meshconf(work, n) if meshconf else None
    batch = [
        run_sitewire(work, n, "mesh", "linux", psk=True),  # the defaults
        run_sitewire(work, n, "mesh", "linux", psk=False),
    ]
    if full:
        batch += [
            run_sitewire(work, n, "mesh", "openwrt", psk=True),
            run_sitewire(work, n, "hub", "openwrt", psk=True),
        ]
    rows = ([mc] if mc else []) + batch
    for run in rows:
        run.where = where
        _print(run, mc)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="50,200,500,1000")
    parser.add_argument("--no-meshconf", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    head = f"{'tool':<26} {'shape':<6} {'sites':>5} {'where':<6} {'seconds':>8} {'peak MB':>8}"
    print(f"{head} {'out MB':>8} {'ms/MB':>7} {'vs mc':>6}")
    rows: list[Run] = []
    meshconf = not args.no_meshconf
    with tempfile.TemporaryDirectory(prefix="sitewire-bench-") as tmp:
        for n in sizes:
            rows += _batch(Path(tmp), n, "disk", meshconf, full=True)
    fast = _tmpfs()
    if fast:
        with tempfile.TemporaryDirectory(prefix="sitewire-bench-", dir=fast) as tmp:
            rows += _batch(Path(tmp), max(sizes), "tmpfs", meshconf, full=False)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
