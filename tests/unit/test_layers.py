"""The layering docs/architecture.md describes, checked: purity, the driver lookup, sizes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sitewire"

PURE = [
    "sitewire.spec.model",
    "sitewire.plan",
    "sitewire.uci",
    "sitewire.render",
    "sitewire.render.takeover",
    "sitewire.adopt.derive",
    "sitewire.adopt.wgquick",
    "sitewire.driver",
    "sitewire.driver.openwrt",
    "sitewire.driver.linux",
    "sitewire.deploy.safety",
    "sitewire.deploy.live",
    "sitewire.deploy.verify",
    "sitewire.deploy.remote",
    "sitewire.deploy.runner",
    "sitewire.deploy.events",
    "sitewire.diagnose.parse",
    "sitewire.diagnose.facts",
    "sitewire.diagnose.status",
    "sitewire.diagnose.doctor",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_nothing_of_the_ssh_edge(module: str) -> None:
    # A fresh interpreter: this one has loaded asyncssh long ago.
    probe = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m == 'asyncssh' or m == 'sitewire.deploy.ssh')\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"importing {module} loads {done.stdout.strip()}"


_PLATFORM = re.compile(r"Platform\.(OPENWRT|LINUX)")


def test_platforms_are_named_only_through_the_driver_lookup() -> None:
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for area in ("deploy", "diagnose", "render")
        for path in sorted((SRC / area).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _PLATFORM.search(line) and "driver_for" not in line
    ]
    assert found == []


def _sizes() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > 450:
            out.append(f"{path.relative_to(SRC)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    out.append(f"{path.relative_to(SRC)}: {node.name}() {length} lines")
    return out


def test_no_module_over_450_lines_and_no_function_over_60() -> None:
    assert _sizes() == []
