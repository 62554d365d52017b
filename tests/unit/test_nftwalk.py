"""A packet walked through a loaded nftables ruleset (sitewire.diagnose.nftwalk).

The fw4 ruleset is one recorded from the lab's 24.10 router A after `sitewire apply`
(`nft -j list ruleset` and `nft -a list ruleset`, tests/captures/lab); the others are small
rulesets written here the way `nft -j` prints them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sitewire import strict
from sitewire.diagnose.nftwalk import Packet, walk
from sitewire.diagnose.parse import UnexpectedOutput
from sitewire.diagnose.parse.nft import Ruleset, parse_nft_json

CAPTURES = Path(__file__).resolve().parent.parent / "captures" / "lab"
a = strict.address


@pytest.fixture(scope="module")
def fw4() -> Ruleset:
    return parse_nft_json(
        (CAPTURES / "nft-fw4-24.10-A.json").read_text(),
        (CAPTURES / "nft-fw4-24.10-A.txt").read_text(),
    )


def _lan_to_b(**changes: object) -> Packet:
    fields: dict[str, object] = {
        "family": 4,
        "saddr": a("192.168.3.254"),
        "daddr": a("192.168.7.254"),
        "proto": "icmp",
        "iif": "br-lan",
        "oif": "wg0",
    }
    fields.update(changes)
    return Packet(**fields)  # type: ignore[arg-type]


def test_fw4_forwards_lan_to_the_tunnel_and_back(fw4: Ruleset) -> None:
    assert walk(fw4, _lan_to_b(), "forward").action == "accept"
    back = _lan_to_b(saddr=a("192.168.7.254"), daddr=a("192.168.3.254"), iif="wg0", oif="br-lan")
    assert walk(fw4, back, "forward").action == "accept"


def test_fw4_rejects_wan_to_lan_at_its_catch_all_and_shows_the_jumps(fw4: Ruleset) -> None:
    verdict = walk(fw4, _lan_to_b(iif="wan", oif="br-lan"), "forward")
    assert verdict.action == "reject"
    assert verdict.rule is not None
    assert fw4.line(verdict.rule) == 'reject comment "!fw4: Reject any other traffic"'
    # forward_wan and reject_to_wan (oifname "wan" only) let it through to forward's last rule
    assert [fw4.line(r) for r in verdict.trail] == ["jump handle_reject"]
    assert verdict.uncertain == ()


def test_fw4_input_accepts_the_listen_port_only(fw4: Ruleset) -> None:
    hello = Packet(6, a("fd53::11"), a("fd53::10"), "udp", iif="wan", dport=51820)
    assert walk(fw4, hello, "input").action == "accept"
    other = Packet(6, a("fd53::11"), a("fd53::10"), "udp", iif="wan", dport=51821)
    assert walk(fw4, other, "input").dropped
    # the same port from the LAN zone is accepted by the lan input policy
    assert (
        walk(
            fw4,
            Packet(4, a("192.168.3.9"), a("192.168.3.1"), "udp", iif="br-lan", dport=9),
            "input",
        ).action
        == "accept"
    )


def test_fw4_masquerades_ipv4_to_the_wan_not_to_the_tunnel(fw4: Ruleset) -> None:
    out = walk(fw4, _lan_to_b(oif="wan", daddr=a("198.51.100.1")), "postrouting")
    assert [kind for kind, _ in out.nat] == ["masquerade"]
    assert walk(fw4, _lan_to_b(), "postrouting").nat == ()
    v6 = Packet(6, a("fd00::1"), a("2001:db8::1"), "tcp", iif="br-lan", oif="wan", dport=443)
    assert walk(fw4, v6, "postrouting").nat == ()  # `meta nfproto ipv4 masquerade`


def _ruleset(*rules: list[object], prio: int = -10, sets: tuple[object, ...] = ()) -> Ruleset:
    items: list[object] = [
        {"table": {"family": "inet", "name": "mine"}},
        {
            "chain": {
                "family": "inet",
                "table": "mine",
                "name": "block",
                "type": "filter",
                "hook": "forward",
                "prio": prio,
                "policy": "accept",
            }
        },
        *sets,
    ]
    for handle, expr in enumerate(rules, start=2):
        items.append(
            {
                "rule": {
                    "family": "inet",
                    "table": "mine",
                    "chain": "block",
                    "handle": handle,
                    "expr": expr,
                }
            }
        )
    return parse_nft_json(json.dumps({"nftables": items}))


_DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
_DROP: dict[str, object] = {"drop": None}


def test_a_drop_in_a_table_of_its_own_drops_what_it_matches_and_nothing_else() -> None:
    ruleset = _ruleset(
        [
            {
                "match": {
                    "op": "==",
                    "left": _DADDR,
                    "right": {"prefix": {"addr": "192.168.7.0", "len": 24}},
                }
            },
            _DROP,
        ]
    )
    verdict = walk(ruleset, _lan_to_b(), "forward")
    assert verdict.action == "drop" and verdict.rule is not None and verdict.rule.handle == 2
    assert walk(ruleset, _lan_to_b(daddr=a("192.168.8.1")), "forward").action == "accept"
    # an IPv6 packet has no ip header: `ip daddr` does not match it
    v6 = _lan_to_b(family=6, saddr=a("fd00::1"), daddr=a("fd00::2"))
    assert walk(ruleset, v6, "forward").action == "accept"


def test_a_named_set_and_a_negated_interface_match() -> None:
    blocked = {
        "set": {
            "family": "inet",
            "table": "mine",
            "name": "bad",
            "type": "ipv4_addr",
            "elem": ["192.168.7.254"],
        }
    }
    not_lan = {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br-*"}}
    ruleset = _ruleset(
        [not_lan, _DROP],
        [{"match": {"op": "==", "left": _DADDR, "right": "@bad"}}, _DROP],
        sets=(blocked,),
    )
    assert walk(ruleset, _lan_to_b(), "forward").rule.handle == 3  # type: ignore[union-attr]
    assert walk(ruleset, _lan_to_b(iif="wg0"), "forward").rule.handle == 2  # type: ignore[union-attr]
    assert walk(ruleset, _lan_to_b(daddr=a("192.168.7.9")), "forward").action == "accept"


def test_a_match_it_cannot_read_is_uncertain_never_a_certain_drop() -> None:
    fib = {
        "match": {
            "op": "==",
            "left": {"fib": {"result": "oif", "flags": ["daddr"]}},
            "right": False,
        }
    }
    ruleset = _ruleset([fib, _DROP])
    verdict = walk(ruleset, _lan_to_b(), "forward")
    assert verdict.action == "accept"
    assert [r.handle for r in verdict.uncertain] == [2]


def test_base_chains_run_in_priority_order_and_accept_ends_only_its_own() -> None:
    accept_first = _ruleset([{"accept": None}], prio=-10)
    chains = dict(accept_first.chains)
    rules = dict(accept_first.rules)
    later = ("inet", "mine", "late")
    chains[later] = type(chains[("inet", "mine", "block")])(
        "inet", "mine", "late", hook="forward", priority=5, policy="drop"
    )
    merged = Ruleset(chains, rules)
    verdict = walk(merged, _lan_to_b(), "forward")
    assert verdict.action == "drop" and verdict.chain is not None and verdict.chain.name == "late"


def test_output_that_is_not_nft_json_is_refused() -> None:
    with pytest.raises(UnexpectedOutput):
        parse_nft_json('{"tables": []}')
    with pytest.raises(UnexpectedOutput):
        parse_nft_json("table inet fw4 {")


# --- what the walk cannot read is "cannot tell", never a certain verdict ---------------------


def test_an_iptables_nft_xt_match_before_a_drop_is_uncertain() -> None:
    xt = {"xt": {"type": "match", "name": "conntrack"}}
    verdict = walk(_ruleset([xt, _DROP]), _lan_to_b(), "forward")
    assert verdict.action == "accept" and [r.handle for r in verdict.uncertain] == [2]


def test_a_verdict_map_on_a_key_it_cannot_read_is_uncertain() -> None:
    vmap = {
        "vmap": {
            "key": {"meta": {"key": "cpu"}},
            "data": {"set": [[0, {"accept": None}]]},
        }
    }
    drop_policy = _ruleset([vmap])
    chains = {
        k: type(c)(c.family, c.table, c.name, c.hook, c.priority, "drop")
        for k, c in drop_policy.chains.items()
    }
    verdict = walk(Ruleset(chains, drop_policy.rules), _lan_to_b(), "forward")
    assert verdict.dropped and [r.handle for r in verdict.uncertain] == [2]


def test_nat_from_a_rule_it_cannot_read_is_not_recorded() -> None:
    fib = {"match": {"op": "==", "left": {"fib": {"result": "type"}}, "right": "local"}}
    verdict = walk(_ruleset([fib, {"masquerade": None}]), _lan_to_b(), "forward")
    assert verdict.nat == () and len(verdict.uncertain) == 1


def test_limit_rate_over_and_queue_are_uncertain_a_plain_limit_passes() -> None:
    over = {"limit": {"rate": 10, "per": "second", "inv": True}}
    assert walk(_ruleset([over, _DROP]), _lan_to_b(), "forward").action == "accept"
    plain = {"limit": {"rate": 10, "per": "second"}}
    assert walk(_ruleset([plain, _DROP]), _lan_to_b(), "forward").action == "drop"
    queued = walk(_ruleset([{"queue": {"num": 0}}]), _lan_to_b(), "forward")
    assert queued.action == "accept" and len(queued.uncertain) == 1


def test_ipv6_icmp_is_spelled_as_nft_prints_it() -> None:
    proto = {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "ipv6-icmp"}}
    v6 = _lan_to_b(family=6, saddr=a("fd00::1"), daddr=a("fd00::2"))
    assert walk(_ruleset([proto, _DROP]), v6, "forward").action == "drop"
    assert walk(_ruleset([proto, _DROP]), _lan_to_b(), "forward").action == "accept"


def test_a_dormant_table_runs_nothing() -> None:
    ruleset = _ruleset([_DROP])
    data = {
        "nftables": [
            {"table": {"family": "inet", "name": "mine", "flags": ["dormant"]}},
            *(
                {
                    "chain": {
                        "family": "inet",
                        "table": "mine",
                        "name": c.name,
                        "hook": c.hook,
                        "prio": c.priority,
                        "policy": "drop",
                        "type": "filter",
                    }
                }
                for c in ruleset.chains.values()
            ),
        ]
    }
    assert walk(parse_nft_json(json.dumps(data)), _lan_to_b(), "forward").action == "accept"
