"""How long the lab takes as the network grows: `lab up --configured`, `lab test`, `lab down`.

Networks of N sites: every fourth site has an endpoint (a listener), the rest dial out and reach
each other through relays; one site in five is a Linux router, the rest OpenWrt. Run as root.

Usage: python benchmarks/lab_scale.py [--sizes 2,5,10,20]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SITEWIRE = str(Path(sys.executable).parent / "sitewire")


def spec_toml(n: int) -> str:
    lines = ["[network]", f'name = "bench{n}"', 'overlay = "10.99.0.0/24"']
    for i in range(n):
        lines += [
            f"[sites.s{i:02d}]",
            f'platform = "{"linux" if i % 5 == 4 else "openwrt"}"',
            f'lan = ["10.{i + 1}.0.0/24"]',
        ]
        if i % 4 == 0:
            lines.append(f'endpoint = "s{i:02d}.example.net"')
    return "\n".join(lines) + "\n"


def timed(*argv: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([SITEWIRE, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sitewire {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="2,5,10,20")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'sites':>5} {'up --configured s':>18} {'test s':>7} {'probes':>7} {'down s':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="sitewire-labbench-") as tmp:
            spec = Path(tmp) / "network.toml"
            spec.write_text(spec_toml(n))
            name = f"bench{n}"
            try:
                up, _ = timed("lab", "up", str(spec), "--name", name, "--configured")
                test, out = timed("lab", "test", "--name", name)
            finally:
                down, _ = timed("lab", "down", "--name", name)
            probes = next(line for line in out.splitlines() if "reachable" in line).split()[0]
            print(f"{n:>5} {up:>18.1f} {test:>7.1f} {probes:>7} {down:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
