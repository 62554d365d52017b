"""Shared helpers: specs from TOML text, deterministic keys for golden output."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from sitewire.errors import SpecError
from sitewire.spec.load import parse_model
from sitewire.spec.model import Spec

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed.toml"
FIXTURES = Path(__file__).resolve().parent / "captures" / "openwrt"  # copied from shared/fixtures


def spec_from(text: str) -> Spec:
    data = tomllib.loads(textwrap.dedent(text))
    return parse_model(Spec, data, "network.toml", SpecError)


@pytest.fixture
def seed_spec() -> Spec:
    return spec_from(SEED.read_text())
