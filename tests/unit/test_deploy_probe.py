"""SSH target parsing and the lab's reachability matrix."""

from __future__ import annotations

import pytest

from sitewire.deploy.ssh import RemoteError, Target
from sitewire.lab.probe import Outcome, Probe, matrix


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("root@192.168.3.1", "root", "192.168.3.1", 22),
        ("admin@router.example.net:2222", "admin", "router.example.net", 2222),
        ("[2001:db8::1]:22", "root", "2001:db8::1", 22),
        ("10.0.0.1", "root", "10.0.0.1", 22),
    ],
)
def test_target_parse(text: str, user: str, host: str, port: int) -> None:
    target = Target.parse("A", text)
    assert (target.user, target.host, target.port) == (user, host, port)


def test_target_parse_refuses_garbage() -> None:
    with pytest.raises(RemoteError, match=r"A: 'a@b@c:x' is not user@host\[:port\]"):
        Target.parse("A", "a@b@c:x")


def test_matrix_marks_failures_only_where_the_plan_requires_reach() -> None:
    def probe(src: str, dst: str, must: bool) -> Probe:
        return Probe(src, "ns", dst, "10.0.0.1", must)

    text = matrix(
        [
            Outcome(probe("A host", "B host", True), True),
            Outcome(probe("B host", "A host", True), False),
            Outcome(probe("B host", "C host", False), False),
        ]
    )
    header, row_a, row_b = text.splitlines()
    assert header.split() == ["B", "host", "A", "host", "C", "host"]
    assert row_a.split() == ["A", "host", "ok", "-", "-"]
    assert row_b.split() == ["B", "host", "-", "FAIL", "no"]
