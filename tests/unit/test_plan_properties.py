"""Properties of every plan of a random valid network: disjoint AllowedIPs, exactly one path."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sitewire.errors import SpecError
from sitewire.plan import Plan, plan_network
from sitewire.spec.load import parse_model
from sitewire.spec.model import Spec
from sitewire.strict import IPAddress


@st.composite
def networks(draw: st.DrawFn) -> Spec:
    n = draw(st.integers(min_value=1, max_value=7))
    names = [f"s{i}" for i in range(n)]
    has_endpoint = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if n > 1 and not any(has_endpoint):
        has_endpoint[draw(st.integers(0, n - 1))] = True
    relays = [name for name, e in zip(names, has_endpoint, strict=True) if e]
    sites: dict[str, Any] = {}
    block = 0
    for i, name in enumerate(names):
        lans = []
        for _ in range(draw(st.integers(0, 2))):
            block += 1
            length = draw(st.integers(16, 28))
            lans.append(str(ipaddress.ip_network(f"10.{block}.0.0/{length}", strict=False)))
        if draw(st.booleans()):
            block += 1
            lans.append(f"fd00:{block:x}::/64")
        site: dict[str, Any] = {
            "lan": lans,
            "platform": draw(st.sampled_from(["openwrt", "linux"])),
        }
        wan = draw(st.sampled_from(["", "", "pppoe", "1420", "1500"]))
        if wan == "pppoe":
            site["pppoe"] = True
        elif wan:
            site["wan_mtu"] = int(wan)
        if has_endpoint[i]:
            site["endpoint"] = draw(
                st.sampled_from(
                    [f"{name}.example.net", f"198.51.100.{i + 1}", f"2001:db8::{i + 1}"]
                )
            )
            site["can_relay"] = True
        elif bool(relays) and draw(st.booleans()):
            site["relay"] = draw(st.sampled_from(relays))
        sites[name] = site
    clients = {
        f"c{j}": {
            "via": draw(st.sampled_from(relays)),
            "tunnel": draw(st.sampled_from(["split", "full"])),
        }
        for j in range(draw(st.integers(0, 3) if relays else st.just(0)))
    }
    network: dict[str, Any] = {"name": "prop", "overlay": "192.168.5.0/24"}
    if draw(st.booleans()):
        network["overlay6"] = "fd42:5::/64"
    data = {"network": network, "sites": sites, "clients": clients}
    return parse_model(Spec, data, "network.toml", SpecError)


def _sample_addresses(plan: Plan, name: str) -> list[IPAddress]:
    """One address inside each prefix a site owns: its overlay addresses and a host per LAN."""
    site = plan.site(name)
    out: list[IPAddress] = [a.ip for a in site.addresses]
    out += [net[1] if net.num_addresses > 1 else net[0] for net in site.lan]
    return out


def _owns(plan: Plan, name: str, dst: IPAddress) -> bool:
    site = plan.site(name)
    return any(dst == a.ip for a in site.addresses) or any(dst in net for net in site.lan)


def _walk(plan: Plan, start: str, dst: IPAddress) -> tuple[str, ...]:
    """Follow WireGuard's cryptokey routing hop by hop, as the packets would."""
    hops = [start]
    here = start
    for _ in range(len(plan.site_names) + 1):
        if _owns(plan, here, dst):
            return tuple(hops)
        claimants = [p for p in plan.site(here).peers if any(dst in n for n in p.allowed_ips)]
        assert len(claimants) == 1, f"{here}: {len(claimants)} peers claim {dst}"
        here = claimants[0].name
        hops.append(here)
    raise AssertionError(f"routing loop from {start} to {dst}: {hops}")


@settings(max_examples=150, deadline=None)
@given(networks())
def test_allowed_ips_are_disjoint_on_every_interface(spec: Spec) -> None:
    plan = plan_network(spec)
    for site in plan.sites():
        claimed = [(net, peer.name) for peer in site.peers for net in peer.allowed_ips]
        claimed += [(ipaddress.ip_network(a.ip), "self") for a in site.addresses]
        claimed += [(net, "self") for net in site.lan]
        for i, (a, who_a) in enumerate(claimed):
            for b, who_b in claimed[i + 1 :]:
                assert not a.overlaps(b), f"{site.name}: {who_a} {a} overlaps {who_b} {b}"


@settings(max_examples=150, deadline=None)
@given(networks())
def test_every_site_pair_has_exactly_one_symmetric_path(spec: Spec) -> None:
    plan = plan_network(spec)
    for src in plan.site_names:
        for dst in plan.site_names:
            if src == dst:
                continue
            expected = plan.path(src, dst)
            assert expected == tuple(reversed(plan.path(dst, src)))
            assert len(expected) <= 3
            for address in _sample_addresses(plan, dst):
                assert _walk(plan, src, address) == expected


@settings(max_examples=100, deadline=None)
@given(networks())
def test_peerings_are_mutual_and_only_endpoints_are_dialled(spec: Spec) -> None:
    plan = plan_network(spec)
    for site in plan.sites():
        for peer in site.peers:
            if peer.kind == "client":
                assert plan.client(peer.name).via == site.name
                continue
            other = plan.site(peer.name)
            assert site.name in {p.name for p in other.peers}
            assert (peer.dial is not None) == (other.endpoint is not None)
            if peer.dial is None:
                assert site.endpoint is not None  # someone must be able to start the handshake


@settings(max_examples=150, deadline=None)
@given(networks())
def test_a_listeners_shortcut_plans_what_the_site_by_site_passes_plan(spec: Spec) -> None:
    topology = plan_network(spec).topology
    for name in spec.sites:
        fast = topology._listener(name)
        if fast is None:
            continue
        peers = topology._site_peers(name)
        topology._prove_disjoint(name, peers)
        watchdog = any(p.dial and p.dial.endpoint.kind == "name" for p in peers)
        assert fast == (peers, topology._mtu(name, peers), watchdog)
        assert all(a is b for a, b in zip(fast[0], peers, strict=True) if a.kind == "site")
