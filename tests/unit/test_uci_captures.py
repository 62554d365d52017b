"""The uci model against real uci: each recorded case (tests/captures/uci) replayed in UciStore."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sitewire.uci import UciStore

CAPTURES = Path(__file__).resolve().parent.parent / "captures" / "uci"
CASES = sorted(p.name for p in CAPTURES.iterdir() if (p / "exit_status").is_file())
# Where the model knowingly differs from real uci; strict, so a fix shows up as a failure.
KNOWN_DIFFERENCES = {
    "rename_onto_existing_option": (
        "uci_rename does not check for a clash, so real uci then holds two options of one name;"
        " Section.options is a dict and keeps one (sitewire never renames options)"
    ),
}


def _text(path: Path) -> str:
    # Bytes as recorded: read_text() would turn a batch's CRLF into LF.
    return path.read_bytes().decode()


def _files(directory: Path) -> dict[str, str]:
    return {p.name: _text(p) for p in sorted(directory.iterdir())}


def _argv(case: Path) -> list[str]:
    return _text(case / "argv").split("\n")[:-1]


def _definitions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("uci_capture_cases", CAPTURES / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _params() -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[name]))
        if name in KNOWN_DIFFERENCES
        else name
        for name in CASES
    ]


@pytest.mark.parametrize("name", _params())
def test_model_does_what_real_uci_did(name: str) -> None:
    case = CAPTURES / name
    store = UciStore.from_texts(_files(case / "before"))
    batch = case / "batch"
    result = store.run(_argv(case), _text(batch) if batch.exists() else "")
    assert result.stdout == _text(case / "stdout")
    assert result.stderr == _text(case / "stderr")
    assert result.rc == int(_text(case / "exit_status"))
    assert {n: store.committed_text(n) for n in store.names()} == _files(case / "after")
    assert store.run(["changes"]).stdout == _text(case / "changes")


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 40
    assert set(KNOWN_DIFFERENCES) <= set(CASES)


def test_recordings_are_of_the_defined_cases() -> None:
    """Re-record (tests/captures/uci/README.md) after changing cases.py."""
    defined = _definitions().CASES
    assert sorted(c.name for c in defined) == CASES
    for definition in defined:
        case = CAPTURES / definition.name
        if definition.after_of is None:
            assert _files(case / "before") == definition.before, definition.name
        else:
            assert _files(case / "before") == _files(CAPTURES / definition.after_of / "after")
        assert _argv(case) == list(definition.argv), definition.name
        batch = case / "batch"
        assert (_text(batch) if batch.exists() else None) == definition.batch, definition.name
