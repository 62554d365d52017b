"""doctor's check 0: the WireGuard interface does not run, and netifd says why (issue 10).

The netifd dumps are shaped as the real netifd (ea01ed4 / cbb83a1) prints them in the lab: an
interface whose proto had no handler at netifd's start is `"proto": "none"` with the error
NO_DEVICE, and the wg device does not exist.
"""

from __future__ import annotations

import json

import pytest

from sitewire.diagnose.doctor import diagnose
from sitewire.diagnose.facts import FactsError
from sitewire.diagnose.parse import UnexpectedOutput, parse_netifd_dump
from tests.unit.test_doctor import facts, seed_live, seed_plan, wg_dump


def _dump(**wg0: object) -> str:
    interfaces = [
        {"interface": "lan", "up": True, "proto": "static"},
        {"interface": "wg0", "up": True, "proto": "wireguard", **wg0},
    ]
    return json.dumps({"interface": interfaces}, indent="\t")


NO_HANDLER = {
    "up": False,
    "proto": "none",
    "errors": [{"subsystem": "interface", "code": "NO_DEVICE"}],
}


def _without_wg0(site: str) -> str:
    plan = seed_plan()
    return "".join(
        line + "\n" for line in wg_dump(plan, site).splitlines() if not line.startswith("wg0")
    )


def test_netifds_dump_is_read_strictly() -> None:
    seen = parse_netifd_dump(_dump(**NO_HANDLER))
    assert seen["wg0"].up is False and seen["wg0"].proto == "none"
    assert seen["wg0"].errors == ("NO_DEVICE",)
    assert seen["lan"].up is True and seen["lan"].errors == ()
    for odd in (
        '{"interface": 1}',
        '{"interface": [{"interface": "a;b", "up": true}]}',
        '{"interface": [{"interface": "a", "up": "yes"}]}',
        '{"interface": [{"interface": "a", "up": true, "errors": [{"code": "$(x)"}]}]}',
    ):
        with pytest.raises(UnexpectedOutput):
            parse_netifd_dump(odd)


def test_a_handler_loaded_after_netifd_started_is_the_one_finding() -> None:
    plan = seed_plan()
    broken = facts(plan, "A", netifd=(_dump(**NO_HANDLER), 0), wg=(_without_wg0("A"), 0))
    findings = diagnose(seed_live(plan, {"A": broken}))
    assert [(f.check, f.site) for f in findings] == [("interface-not-running", "A")]
    finding = findings[0]
    assert "netifd had no WireGuard handler when it started" in finding.problem
    assert '"up": false (proto none, NO_DEVICE)' in finding.evidence
    assert finding.fix == "/etc/init.d/network restart"


def test_without_wireguard_tools_the_fix_installs_them_first() -> None:
    plan = seed_plan()
    broken = facts(
        plan,
        "B",
        netifd=(_dump(**NO_HANDLER), 0),
        wg=(_without_wg0("B"), 0),
        handler=("", 0),
    )
    (finding,) = diagnose(seed_live(plan, {"B": broken}))
    assert "wireguard-tools is not installed" in finding.problem
    assert finding.fix.startswith("opkg install wireguard-tools && /etc/init.d/network restart")


def test_a_lingering_device_netifd_has_down_is_not_a_missing_route() -> None:
    """The device is still there (its handler could not tear it down), netifd has it down and
    its routes gone: the cause is the interface, not route_allowed_ips."""
    plan = seed_plan()
    broken = facts(
        plan, "A", netifd=(_dump(**NO_HANDLER), 0), routes4=("default via 198.18.0.1 dev wan\n", 0)
    )
    assert [f.check for f in diagnose(seed_live(plan, {"A": broken}))] == ["interface-not-running"]


def test_a_failed_setup_names_netifds_error() -> None:
    plan = seed_plan()
    failed = {"up": False, "proto": "wireguard", "errors": [{"code": "SETUP_FAILED"}]}
    broken = facts(plan, "A", netifd=(_dump(**failed), 0), wg=(_without_wg0("A"), 0))
    (finding,) = diagnose(seed_live(plan, {"A": broken}))
    assert "setup failed" in finding.problem and "SETUP_FAILED" in finding.problem
    assert finding.fix.startswith("ifup wg0")


def test_up_in_netifd_and_running_is_no_finding() -> None:
    plan = seed_plan()
    healthy = facts(plan, "A", netifd=(_dump(), 0))
    assert diagnose(seed_live(plan, {"A": healthy})) == []


def test_a_garbled_dump_is_a_facts_error_not_a_traceback() -> None:
    with pytest.raises(FactsError):
        facts(seed_plan(), "A", netifd=('{"interface": "x"}', 0))
