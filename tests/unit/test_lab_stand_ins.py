"""The lab layer's two pure stand-ins: jsonfilter's expressions and the tailscaled rule watch."""

from __future__ import annotations

import json

import pytest

from sitewire.lab.openwrt import jsonfilter
from sitewire.lab.tailnet import watch

DUMP = {
    "interface": [
        {"interface": "lan", "up": True, "proto": "static"},
        {"interface": "wg0", "up": True, "proto": "wireguard"},
        {"interface": "wg1", "up": False, "proto": "wireguard"},
        {"interface": "wg2", "up": True, "proto": "wireguard", "data": {"zone": "vpn"}},
    ]
}
WATCHDOG = 'wg_ifaces=@.interface[@.up=true && @.proto="wireguard"].interface'


def test_the_watchdogs_query_finds_the_wireguard_interfaces_that_are_up() -> None:
    assert jsonfilter.evaluate(DUMP, WATCHDOG) == ("wg_ifaces", ["wg0", "wg2"])


def test_paths_filters_and_indexes() -> None:
    assert jsonfilter.evaluate(DUMP, "@.interface[3].data.zone") == (None, ["vpn"])
    assert jsonfilter.evaluate(DUMP, "@.interface[-1].interface") == (None, ["wg2"])
    assert jsonfilter.evaluate(DUMP, "@.interface[@.up=false].interface") == (None, ["wg1"])
    either = "@.interface[@.proto='static' || @.up=false].interface"
    assert jsonfilter.evaluate(DUMP, either) == (None, ["lan", "wg1"])
    assert jsonfilter.evaluate(DUMP, "@.interface[*].up")[1] == ["true", "true", "false", "true"]
    assert jsonfilter.evaluate({"data": {}}, "ZONE=@.data.zone") == ("ZONE", [])


def test_output_and_exit_status_as_jsonfilter_gives_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(json.dumps(DUMP)))
    assert jsonfilter.main(["-e", WATCHDOG]) == 0
    assert capsys.readouterr().out == "export wg_ifaces='wg0 wg2'; \n"
    assert jsonfilter.main(["-s", '{"data": {}}', "-e", "ZONE=@.data.zone"]) == 1
    assert capsys.readouterr().out == ""
    assert jsonfilter.main(["-s", "{", "-e", "@"]) == 1
    assert jsonfilter.main(["-s", "{}", "-e", "@.a[@.b=]"]) == 1


def test_the_watch_restores_only_tailscaleds_rules() -> None:
    assert watch.ours("Deleted 5270:\tfrom all lookup 52")
    assert watch.ours("Deleted 1310:\tfrom all lookup 52")  # the range used beside mwan3
    assert not watch.ours("Deleted 5100:\tfrom all to 192.168.7.0/24 lookup main")
    assert not watch.ours("5270:\tfrom all lookup 52")  # added, not deleted
