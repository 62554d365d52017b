"""Lab fixtures: real namespaces as root, each lab removed again even when its test fails."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator

import pytest

from sitewire.lab.host import lab_down, lab_up
from sitewire.lab.state import LabState, lab_names, owner_alive
from sitewire.plan import plan_network
from sitewire.spec.model import Spec
from tests.conftest import SEED, spec_from

TOOLS = ("ip", "nsenter", "unshare", "nft", "busybox", "dropbear", "dropbearkey", "wireguard-go")

LINUX_SPEC = """
[network]
name = "pair"
overlay = "192.168.5.0/24"

[sites.A]
platform = "linux"
lan = ["192.168.3.0/24", "fd00:3::/64"]
endpoint = "a.example.net"

[sites.B]
platform = "linux"
lan = ["192.168.7.0/24", "fd00:7::/64"]
"""

MakeLab = Callable[..., LabState]


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    return f"lab tests need {', '.join(missing)} (run scripts/bootstrap)" if missing else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is not None:
        reason = _unavailable()
        if reason:
            pytest.skip(reason)


TEST_LAB = re.compile(r"t[0-9a-f]{8}")


def unique_name() -> str:
    return "t" + secrets.token_hex(4)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Take down labs a killed test run left behind (test names only; a person's labs stay,
    and so do the labs of a test run still going, which may run beside this one)."""
    if _unavailable() is not None:
        return
    for name in lab_names():
        if TEST_LAB.fullmatch(name) and not owner_alive(name):
            with contextlib.suppress(Exception):  # a half-gone lab must not stop the run
                lab_down(name, missing_ok=True)


@pytest.fixture
def make_lab() -> Iterator[MakeLab]:
    """make_lab(spec, release=..., name=...) -> LabState; every lab it made is taken down."""
    names: list[str] = []

    def make(spec: Spec, release: str = "24.10", name: str | None = None) -> LabState:
        lab_name = name or unique_name()
        names.append(lab_name)
        return lab_up(plan_network(spec), lab_name, release)

    try:
        yield make
    finally:
        failures = []
        for lab_name in names:
            try:
                lab_down(lab_name, missing_ok=True)
            except Exception as exc:  # take down the others before reporting
                failures.append(exc)
        if failures:
            raise failures[0]


@pytest.fixture
def seed_lab(make_lab: MakeLab) -> LabState:
    return make_lab(spec_from(SEED.read_text()))


@pytest.fixture
def linux_lab(make_lab: MakeLab) -> LabState:
    return make_lab(spec_from(LINUX_SPEC))
