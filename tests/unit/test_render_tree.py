"""write_tree: a large network is rendered by several processes into one directory, the same
files as one process writes; a failure anywhere leaves the old output untouched."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from sitewire import pipeline
from sitewire.errors import InputError, SitewireError
from sitewire.pipeline import make_plan, open_workspace, write_tree
from sitewire.plan import Plan

SITES = 2 * pipeline.SITES_PER_WORKER + 10


def _spec(tmp_path: Path) -> Path:
    lines = ["[network]", 'name = "big"', 'overlay = "172.16.0.0/16"']
    for i in range(SITES):
        lines += [
            f"[sites.s{i:04d}]",
            'platform = "linux"',
            f'lan = ["10.{i // 250}.{i % 250}.0/24"]',
        ]
        if i % 10 == 0:
            lines.append(f'endpoint = "198.18.{i // 250}.{i % 250 + 1}"')
    spec = tmp_path / "network.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def planned(tmp_path: Path) -> tuple[Plan, pipeline.Workspace]:
    ws = open_workspace(_spec(tmp_path), keys_path=tmp_path / "keys.json")
    return make_plan(ws), ws


def test_several_processes_write_exactly_what_one_writes(
    tmp_path: Path, planned: tuple[Plan, pipeline.Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, ws = planned
    forks: list[Sequence[str]] = []
    fork = pipeline._fork_sites

    def counted(staging: Path, plan: Plan, secrets: object, names: Sequence[str]) -> object:
        forks.append(names)
        return fork(staging, plan, ws.secrets, names)

    monkeypatch.setattr(pipeline, "_cores", lambda: 1)
    one = write_tree(tmp_path / "one", plan, ws.secrets)
    monkeypatch.setattr(pipeline, "_cores", lambda: 4)
    monkeypatch.setattr(pipeline, "_fork_sites", counted)
    many = write_tree(tmp_path / "many", plan, ws.secrets)
    assert len(forks) == 1 and len(forks[0]) == SITES // 2  # 210 sites: two processes
    assert [p.relative_to(tmp_path / "many") for p in many] == [
        p.relative_to(tmp_path / "one") for p in one
    ]
    assert _tree(tmp_path / "many") == _tree(tmp_path / "one")
    assert len(_tree(tmp_path / "one")) > 4 * SITES


class _FailsFor:
    """The workspace's keys, but rendering one site fails as a missing key would."""

    def __init__(self, inner: object, site: str) -> None:
        self._inner, self._site = inner, site

    def private_key(self, name: str) -> str | None:
        if name == self._site:
            raise InputError("its key is gone", where=f"sites.{name}", fix="restore it")
        return self._inner.private_key(name)  # type: ignore[attr-defined,no-any-return]

    def preshared_key(self, a: str, b: str) -> str | None:
        return self._inner.preshared_key(a, b)  # type: ignore[attr-defined,no-any-return]

    def preshared_keys_with(self, site: str, peers: Sequence[str]) -> list[str | None]:
        return self._inner.preshared_keys_with(site, peers)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("site", ["s0000", "s0201"], ids=["in this process", "in the other"])
def test_a_failure_in_any_process_is_raised_here_and_nothing_changes(
    tmp_path: Path, planned: tuple[Plan, pipeline.Workspace], site: str
) -> None:
    plan, ws = planned
    out = tmp_path / "out"
    write_tree(out, plan, ws.secrets)
    before = _tree(out)
    with pytest.raises(InputError, match="its key is gone") as err:
        write_tree(out, plan, _FailsFor(ws.secrets, site))
    assert err.value.where == f"sites.{site}" and err.value.fix == "restore it"
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network.toml", "out"]  # no staging left
    with pytest.raises(ChildProcessError):  # the other process is gone, not left running
        os.waitpid(-1, os.WNOHANG)


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("a bug with a lock in it")
        self.held = lambda: None  # a lambda does not pickle


class _BugFor(_FailsFor):
    def private_key(self, name: str) -> str | None:
        if name == self._site:
            raise _Unpicklable()
        return self._inner.private_key(name)  # type: ignore[attr-defined,no-any-return]


def test_an_error_that_cannot_cross_from_the_other_process_keeps_its_words(
    tmp_path: Path, planned: tuple[Plan, pipeline.Workspace]
) -> None:
    plan, ws = planned
    with pytest.raises(
        SitewireError, match="internal error: _Unpicklable: a bug with a lock in it"
    ):
        write_tree(tmp_path / "out", plan, _BugFor(ws.secrets, "s0201"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
