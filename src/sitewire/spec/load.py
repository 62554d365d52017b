"""Reading network.toml: the only place the spec touches the disk."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sitewire.errors import InputError, SpecError
from sitewire.spec.model import Spec
from sitewire.strict import loads_toml

M = TypeVar("M", bound=BaseModel)

_TOML_POSITION = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def key_path(loc: Sequence[int | str]) -> str:
    """('sites', 'B', 'lan', 0) -> 'sites.B.lan[0]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_spec(path: Path) -> Spec:
    data = read_toml(path)
    return parse_model(Spec, data, str(path), SpecError)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            "no such file", where=str(path), fix="create one with 'sitewire init'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", where=str(path)) from exc
    try:
        return loads_toml(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match:
            where = f"{path}: line {match['line']}, column {match['col']}"
            raise SpecError(match["msg"].lower(), where=where, fix="fix the TOML syntax") from None
        raise SpecError(str(exc), where=str(path), fix="fix the TOML syntax") from None


def parse_model(model: type[M], data: Any, source: str, error: type[InputError]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = first["loc"][:-1] if first["type"] == "extra_forbidden" else first["loc"]
        raise error(_describe(first), where=_where(source, loc), fix=_fix(first)) from None


def _where(source: str, loc: Sequence[int | str]) -> str:
    path = key_path(loc)
    return f"{source}: {path}" if path else source


def _describe(err: Any) -> str:
    kind = err["type"]
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "extra_forbidden":
        return f"unknown key {err['loc'][-1]!r}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("enum", "literal_error"):
        return f"{err['input']!r} is not one of {err['ctx']['expected']}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{err['input']!r}: {err['msg'].lower()}"
    return f"{err['input']!r}: {err['msg']}"


def _fix(err: Any) -> str | None:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "check the spelling; 'sitewire schema' lists every key"
    if kind == "missing":
        return f"add {err['loc'][-1]} = …"
    return None
