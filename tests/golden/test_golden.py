"""Rendered output for fixed networks and keys, byte for byte. Re-record: make golden."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sitewire.cli.show import plan_json, plan_text
from sitewire.pipeline import make_plan, open_workspace, render_all

HERE = Path(__file__).parent
UPDATE = os.environ.get("SITEWIRE_UPDATE_GOLDEN") == "1"


def _outputs(name: str, tmp: Path) -> dict[str, bytes]:
    spec = tmp / "network.toml"
    shutil.copy(HERE / "networks" / f"{name}.toml", spec)
    keys = tmp / "keys.json"
    shutil.copy(HERE / "networks" / f"{name}.keys.json", keys)
    keys.chmod(0o600)
    ws = open_workspace(spec, keys_path=keys)
    plan = make_plan(ws)
    assert not ws.keys_changed, "the fixed key file must already hold every key"
    files = {
        "plan.txt": plan_text(plan).encode(),
        "plan.json": json.dumps(plan_json(plan), indent=2).encode(),
    }
    for subdir, rendered in render_all(plan, ws.secrets):
        for f in rendered.files:
            content = f.content.encode() if isinstance(f.content, str) else f.content
            files[f"{subdir}/{f.path}"] = content
    return files


@pytest.mark.parametrize("name", ["seed", "five"])
def test_rendered_output_matches_golden(name: str, tmp_path: Path) -> None:
    expected_dir = HERE / "expected" / name
    actual = _outputs(name, tmp_path)
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, content in actual.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_bytes(content)
    recorded = {
        str(p.relative_to(expected_dir)): p.read_bytes()
        for p in expected_dir.rglob("*")
        if p.is_file()
    }
    assert sorted(actual) == sorted(recorded), "a file appeared or vanished (make golden)"
    for rel, content in actual.items():
        assert content == recorded[rel], f"{name}/{rel} differs from the golden file (make golden)"
