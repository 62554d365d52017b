"""deploy.live and apply's pure parts: the commands that make a change live; judging a site."""

from __future__ import annotations

import ipaddress
import re

import pytest

from sitewire.deploy.changes import placeholder_key
from sitewire.deploy.diff import Change
from sitewire.deploy.live import (
    Step,
    file_diff,
    live_peer_script,
    peer_differs,
    tailscale_differs,
    tailscale_restore,
)
from sitewire.deploy.problems import Kind, Problem
from sitewire.deploy.verify import Evidence, judge, parse_evidence, verify_script
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.lans import lan_host
from sitewire.diagnose.parse import (
    HIDDEN,
    ScriptSection,
    WgInterface,
    parse_tailscale_prefs,
    parse_wg_dump,
)
from sitewire.driver import Held
from sitewire.driver.linux import DRIVER as LINUX
from sitewire.driver.openwrt import DRIVER as OPENWRT
from sitewire.keys import generate_private_key, public_key
from sitewire.plan import Plan, plan_network
from sitewire.plan.model import SitePlan
from sitewire.render.model import Rendered, RenderedFile
from sitewire.spec.model import Platform, Spec
from tests.unit.test_diagnose_parse import openwrt_sections

KEYS = {name: public_key(generate_private_key()) for name in ("A", "B", "phone")}


def openwrt_steps(
    site: SitePlan,
    facts: DeviceFacts,
    changes: list[Change],
    *,
    handler_fresh: bool,
    cron_missing: bool,
) -> list[Step]:
    """The OpenWrt driver's live steps (it reads nothing of the rendered files)."""
    held = Held(facts, {}, cron_missing)
    nothing = Rendered(site.name, ())
    return OPENWRT.live_steps(site, held, nothing, changes, handler_fresh=handler_fresh, env="")


def linux_steps(
    site: SitePlan, facts: DeviceFacts, before: dict[str, str | None], after: dict[str, str]
) -> list[Step]:
    """The Linux driver's live steps from the files before and as pushed."""
    rendered = Rendered(
        site.name,
        tuple(RenderedFile(p.rsplit("/", 1)[1], t, device_path=p) for p, t in after.items()),
    )
    return LINUX.live_steps(
        site, Held(facts, before, False), rendered, [], handler_fresh=False, env=""
    )


def peer_script(site: SitePlan, live: WgInterface, *, routes: bool = False) -> str | None:
    return live_peer_script(site, live, OPENWRT.psk_read, routes=routes)


@pytest.fixture
def plan(seed_spec: Spec) -> Plan:
    return plan_network(seed_spec, None, KEYS)


def _dump(plan: Plan, site: str, *, drop: str | None = None, psk: bool = True) -> str:
    """A live `wg show all dump` matching the plan for `site` (keys hidden as the router does)."""
    me = plan.site(site)
    lines = [f"wg0\t{HIDDEN}\t{KEYS[site]}\t{me.listen_port}\toff"]
    for peer in me.peers:
        if peer.name == drop:
            continue
        ips = ",".join(str(p) for p in peer.allowed_ips)
        keep = str(peer.dial.keepalive) if peer.dial else "off"
        shared = HIDDEN if psk and peer.preshared else "(none)"
        endpoint = "198.18.0.10:51820" if peer.dial else "(none)"
        lines.append(
            f"wg0\t{peer.public_key}\t{shared}\t{endpoint}\t{ips}\t1795570490\t1\t2\t{keep}"
        )
    return "\n".join(lines) + "\n"


def _facts(plan: Plan, site: str, dump: str | None, handler: str = "") -> DeviceFacts:
    override = {
        "uci_changes": ("", 0),
        "wg": (dump or "", 0),
        "handler": (f"file /lib/netifd/proto/wireguard.sh\n{handler}", 0),
        "routes4": (
            "default via 198.18.0.1 dev wan proto static\n"
            f"{plan.site(site).lan[0]} dev br-lan proto kernel scope link "
            f"src {plan.site(site).lan[0].network_address + 1}\n",
            0,
        ),
    }
    return facts_from_sections(site, Platform.OPENWRT, openwrt_sections(**override))


def _peer_change(section: str = "sw_peer_phone") -> Change:
    return Change("network", section, "peer phone", "allowed_ips", ("10.0.0.1/32",), None)


def test_a_site_running_the_plan_needs_nothing(plan: Plan) -> None:
    facts = _facts(plan, "A", _dump(plan, "A"))
    steps = openwrt_steps(plan.site("A"), facts, [], handler_fresh=False, cron_missing=False)
    assert steps == []
    assert peer_script(plan.site("A"), facts.wg.interfaces[0]) is None


def test_new_interface_is_brought_up_and_a_fresh_handler_needs_netifd_restarted(
    plan: Plan,
) -> None:
    facts = _facts(plan, "B", None)
    site = plan.site("B")
    [up] = [
        s.command for s in openwrt_steps(site, facts, [], handler_fresh=False, cron_missing=False)
    ]
    assert up == "ifup wg0"
    steps = openwrt_steps(site, facts, [], handler_fresh=True, cron_missing=True)
    assert steps[0].command == "/etc/init.d/network restart"
    assert "wireguard_watchdog" in steps[-1].command and "cron enable" in steps[-1].command


def test_interface_option_change_recreates_but_peer_change_does_not(plan: Plan) -> None:
    facts = _facts(plan, "A", _dump(plan, "A", drop="phone"))
    site = plan.site("A")
    mtu = Change("network", "wg0", "interface wg0", "mtu", "1420", "1412")
    assert [
        s.command
        for s in openwrt_steps(site, facts, [mtu], handler_fresh=False, cron_missing=False)
    ] == ["ifup wg0"]

    steps = openwrt_steps(site, facts, [_peer_change()], handler_fresh=False, cron_missing=False)
    [step] = steps
    assert "ifup" not in step.command and "restart" not in step.command
    phone = site.peer("phone")
    assert f"wg set wg0 peer {phone.public_key}" in step.command
    assert "ip -4 route replace 192.168.5.3/32 dev wg0" in step.command
    # The preshared key goes from uci through a pipe into wg, never into the text or a file.
    assert "sw_k=$(uci -q get network.sw_peer_phone.preshared_key) || sw_k=" in step.command
    pipe = f'echo "$sw_k" | wg set wg0 peer {phone.public_key} preshared-key /proc/self/fd/0 '
    assert pipe in step.command
    assert "/tmp" not in step.command
    # B's peer is live and as planned: left alone.
    key_b = site.peer("B").public_key
    assert key_b is not None and key_b not in step.command


def test_the_renew_handler_takes_peer_changes_itself(plan: Plan) -> None:
    facts = _facts(plan, "A", _dump(plan, "A", drop="phone"), handler="syncconf\nrenew\n")
    steps = openwrt_steps(
        plan.site("A"), facts, [_peer_change()], handler_fresh=False, cron_missing=False
    )
    assert [s.command for s in steps] == ["ubus call network.interface.wg0 renew"]


def test_a_peer_in_uci_but_not_live_is_noticed_without_a_uci_change(plan: Plan) -> None:
    # 24.10's `network reload` ignored the peer: nothing differs in UCI, the device lacks it.
    facts = _facts(plan, "A", _dump(plan, "A", drop="B"))
    [step] = openwrt_steps(plan.site("A"), facts, [], handler_fresh=False, cron_missing=False)
    assert f"peer {KEYS['B']}" in step.command


def test_unplanned_live_peers_are_removed_with_their_routes(plan: Plan) -> None:
    stranger = public_key(generate_private_key())
    dump = _dump(plan, "A") + (f"wg0\t{stranger}\t(none)\t(none)\t10.9.9.0/24\t0\t0\t0\toff\n")
    facts = _facts(plan, "A", dump)
    script = peer_script(plan.site("A"), facts.wg.interfaces[0])
    assert script is not None
    assert f"wg set wg0 peer {stranger} remove" in script
    assert "ip -4 route del 10.9.9.0/24 dev wg0" in script


def test_peer_differences(plan: Plan) -> None:
    b = plan.site("B").peer("A")  # B dials A by name
    live = parse_wg_dump(_dump(plan, "B")).interfaces[0].peer(KEYS["A"])
    assert b.dial is not None and b.dial.endpoint.kind == "name"
    assert not peer_differs(b, live)  # a resolved name is not a difference
    assert live is not None
    assert peer_differs(b, None)
    no_psk = parse_wg_dump(_dump(plan, "B", psk=False)).interfaces[0].peer(KEYS["A"])
    assert peer_differs(b, no_psk)


def test_tailscale_prefs_compared_and_restored() -> None:
    prefs = parse_tailscale_prefs(
        '{"RouteAll": true, "AdvertiseRoutes": ["192.168.3.0/24", "0.0.0.0/0", "::/0"], '
        '"WantRunning": true, "NetfilterMode": 2}'
    )
    from sitewire.plan.model import TailscalePlan

    net = ipaddress.ip_network("192.168.3.0/24")
    same = TailscalePlan(True, (net,), True, (), 5200)
    assert not tailscale_differs(same, prefs)
    assert tailscale_differs(TailscalePlan(False, (net,), True, (), 5200), prefs)
    assert tailscale_differs(TailscalePlan(True, (net,), False, (), 5200), prefs)
    assert tailscale_restore(prefs) == (
        "tailscale set --accept-routes=true --advertise-routes=192.168.3.0/24 "
        "--advertise-exit-node=true"
    )


def test_verification_script_and_judgement(plan: Plan) -> None:
    facts = {n: _facts(plan, n, _dump(plan, n)) for n in ("A", "B")}
    script = verify_script(plan, "B", facts, 10)
    assert f"awk -v k={KEYS['A']}" in script
    assert "reach 192.168.5.1 &&" in script
    # A LAN host's packet: not from the router's own address (the kernel refuses that with iif).
    assert "ip route get 192.168.3.1 from 192.168.7.254 iif br-lan" in script
    assert "reach -I 192.168.7.1 192.168.3.1 &&" in script

    good = parse_evidence(
        "hs A ok\nping overlay A ok\nping lan A ok\n"
        "route A 192.168.3.1 from 192.168.7.254 dev wg0\n"
    )
    assert judge(plan, "B", good, {"A"}) == []
    trapped = parse_evidence(
        "hs A ok\nping overlay A ok\nping lan A ok\n"
        "route A 192.168.3.1 from 192.168.7.254 dev tailscale0 table 52\n"
    )
    [problem] = judge(plan, "B", trapped, {"A"})
    assert problem.kind is Kind.VERIFY and "tailscale0 table 52" in problem.text
    cut = parse_evidence("hs A none\nping overlay A fail\n")
    assert judge(plan, "B", cut, {"A"}) == [
        Problem(Kind.VERIFY, "cannot reach A across the tunnel")
    ]
    no_lan = parse_evidence("hs A ok\nping overlay A ok\nping lan A fail\n")
    assert [p.text for p in judge(plan, "B", no_lan, {"A"})] == [
        "cannot reach the LAN of A from its own LAN address"
    ]
    assert judge(plan, "B", cut, set()) == []  # nobody to judge by: not B's fault
    [unreached] = judge(plan, "B", Evidence(), {"A"})
    assert unreached.kind is Kind.UNREACHABLE
    assert unreached.text.startswith("no new SSH connection")


def test_lan_host_is_never_the_router() -> None:
    lan = ipaddress.ip_network("192.168.3.0/24")
    assert lan_host(lan, "192.168.3.1") == "192.168.3.254"
    assert lan_host(lan, "192.168.3.254") == "192.168.3.253"


def test_placeholders_are_well_formed_and_distinct() -> None:
    a, b = placeholder_key("A"), placeholder_key("B")
    assert a != b and len(a) == 44 and a.endswith("=")


def test_file_diff_hides_keys() -> None:
    before = "[Interface]\nPrivateKey = (hidden)\nMTU = 1420\n"
    assert file_diff("B", "/k", before, before.replace("(hidden)", "c2VjcmV0")) == []
    after = "[Interface]\nPrivateKey = c2VjcmV0\nMTU = 1412\n"
    lines = file_diff("B", "/etc/wireguard/wg0.conf", before, after)
    assert "c2VjcmV0" not in "\n".join(lines)
    assert "B: /etc/wireguard/wg0.conf: + MTU = 1412" in lines
    assert file_diff("B", "/x", None, "a\nb\n") == ["B: /x: added (2 lines)"]
    assert file_diff("B", "/x", "same", "same") == []


def test_linux_interface_change_restarts_peer_change_does_not(plan: Plan) -> None:
    facts = _facts(plan, "A", _dump(plan, "A", drop="phone"))
    site = plan.site("A")
    conf = "/etc/wireguard/wg0.conf"
    head = "# sitewire: network 'home', site A (linux). Generated.\n[Interface]\nMTU = 1420\n"
    peer = "[Peer]\nPublicKey = x\n"
    restart = linux_steps(
        site, facts, {conf: head + peer}, {conf: head.replace("1420", "1412") + peer}
    )
    assert any("wg-quick up wg0" in s.command for s in restart)
    live = linux_steps(site, facts, {conf: head + peer}, {conf: head + peer + peer})
    assert not any("wg-quick" in s.command for s in live)
    assert any("wg set wg0 peer" in s.command for s in live)


def test_a_pin_behind_a_moved_lookup_52_rule_is_refused(seed_spec: Spec) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight
    from tests.conftest import SEED, spec_from

    text = SEED.read_text().replace(
        "exit_node = true }", "exit_node = true, accept_routes = true }"
    )
    plan = plan_network(spec_from(text), None, KEYS)
    site = plan.site("A")
    assert site.tailscale is not None and site.tailscale.pins
    rules = "0:\tfrom all lookup local\n1370:\tfrom all lookup 52\n32766:\tfrom all lookup main\n"
    sections = openwrt_sections(uci_changes=("", 0), rules4=(rules, 0))
    facts = facts_from_sections("A", Platform.OPENWRT, sections)
    with pytest.raises(ApplyError, match="priority 1370") as caught:
        preflight(OPENWRT, site, facts)
    assert "sites.A.tailscale.pin_priority" in str(caught.value)
    # Where tailscaled's rule sits at its usual 5270, the default pin (5100) is fine.
    facts = facts_from_sections("A", Platform.OPENWRT, openwrt_sections(uci_changes=("", 0)))
    preflight(OPENWRT, site, facts)


def test_a_wrong_key_peer_is_replaced_without_losing_its_routes(plan: Plan) -> None:
    # A holds a wrong key for B: the planned B is added, the stranger removed, and the routes
    # B carries stay (deleting the stranger's routes would delete B's).
    stranger = public_key(generate_private_key())
    dump = _dump(plan, "A", drop="B")
    b = plan.site("A").peer("B")
    ips = ",".join(str(p) for p in b.allowed_ips)
    dump += f"wg0\t{stranger}\t{HIDDEN}\t(none)\t{ips}\t0\t0\t0\toff\n"
    facts = _facts(plan, "A", dump)
    script = peer_script(plan.site("A"), facts.wg.interfaces[0], routes=True)
    assert script is not None
    assert f"wg set wg0 peer {stranger} remove" in script
    assert f"wg set wg0 peer {KEYS['B']}" in script
    assert "route del" not in script
    assert script.index("remove") < script.index(f"peer {KEYS['B']}")
    assert "ip -4 route replace 192.168.7.0/24 dev wg0" in script


def test_a_route_allowed_ips_change_restores_the_routes(plan: Plan) -> None:
    facts = _facts(plan, "B", _dump(plan, "B"))
    change = Change("network", "sw_peer_A", "peer A", "route_allowed_ips", "0", "1")
    [step] = openwrt_steps(plan.site("B"), facts, [change], handler_fresh=False, cron_missing=False)
    assert "wg set" not in step.command  # the peer itself runs as planned
    assert "ip -4 route replace 192.168.3.0/24 dev wg0" in step.command


# --- issue 12: refusals before any change ------------------------------------------------------


def test_a_foreign_wireguard_interface_on_the_planned_port_is_refused(plan: Plan) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight

    site = plan.site("A")
    foreign = f"wg9\t{HIDDEN}\t{KEYS['B']}\t{site.listen_port}\toff\n"
    facts = _facts(plan, "A", foreign)
    with pytest.raises(ApplyError, match=r"wg9.*already listens on udp/51820") as caught:
        preflight(OPENWRT, site, facts)
    assert caught.value.where == "A" and "sites.A" in (caught.value.fix or "")
    # The planned interface itself on that port is what sitewire manages: no refusal.
    preflight(OPENWRT, site, _facts(plan, "A", _dump(plan, "A")))


def test_a_foreign_uci_wireguard_interface_on_the_planned_port_is_refused(plan: Plan) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight

    site = plan.site("A")
    network = (
        "package network\n\nconfig interface 'lan'\n\toption proto 'static'\n\n"
        "config interface 'vpn'\n\toption proto 'wireguard'\n\toption listen_port '51820'\n"
    )
    facts = facts_from_sections(
        "A",
        Platform.OPENWRT,
        openwrt_sections(uci_changes=("", 0), uci_network=(network, 0), wg=("", 0)),
    )
    with pytest.raises(ApplyError, match=r"'vpn'.*udp/51820"):
        preflight(OPENWRT, site, facts)


def test_the_planned_interface_name_held_by_another_kind_of_interface_is_refused(
    plan: Plan,
) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight

    site = plan.site("A")
    network = (
        "package network\n\nconfig interface 'wg0'\n\toption proto 'static'\n"
        "\toption ipaddr '10.9.9.1'\n"
    )
    facts = facts_from_sections(
        "A",
        Platform.OPENWRT,
        openwrt_sections(uci_changes=("", 0), uci_network=(network, 0), wg=("", 0)),
    )
    with pytest.raises(ApplyError, match=r"network\.wg0 is a 'static' interface") as caught:
        preflight(OPENWRT, site, facts)
    assert "interface" in (caught.value.fix or "")
    # On Linux: a link of that name that WireGuard does not list.
    links = (
        "5: wg0: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state UP\\    "
        "link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n"
    )
    linux = facts_from_sections(
        "A",
        Platform.LINUX,
        openwrt_sections(
            openwrt_release=("", 1),
            commands=("wg /usr/bin/wg\napt-get /usr/bin/apt-get\n", 0),
            wg=("", 0),
            links=(links, 0),
        ),
    )
    with pytest.raises(ApplyError, match=r"wg0 exists and is not a WireGuard interface"):
        preflight(LINUX, site, linux)


def test_a_foreign_peer_is_kept_a_removed_site_s_peer_is_not(plan: Plan) -> None:
    from sitewire.deploy.changes import foreign_peers

    stranger, removed = (public_key(generate_private_key()) for _ in range(2))
    dump = _dump(plan, "A")
    dump += f"wg0\t{stranger}\t(none)\t(none)\t10.99.0.2/32\t0\t0\t0\toff\n"
    dump += f"wg0\t{removed}\t(none)\t(none)\t192.168.5.9/32,192.168.9.0/24\t0\t0\t0\toff\n"
    facts = _facts(plan, "A", dump)
    site = plan.site("A")
    # A node the lock remembers and the spec no longer has: its peer goes.
    assert foreign_peers(plan, site, facts, frozenset({removed})) == {stranger}
    assert foreign_peers(plan, site, facts) == {stranger, removed}
    script = live_peer_script(
        site, facts.wg.interfaces[0], OPENWRT.psk_read, keep=frozenset({stranger})
    )
    assert script is not None
    assert f"peer {removed} remove" in script and stranger not in script


def test_the_planned_name_held_by_an_interface_without_proto_says_so(plan: Plan) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight

    network = "package network\n\nconfig interface 'wg0'\n\toption device 'eth9'\n"
    facts = facts_from_sections(
        "A",
        Platform.OPENWRT,
        openwrt_sections(uci_changes=("", 0), uci_network=(network, 0), wg=("", 0)),
    )
    with pytest.raises(ApplyError, match=r"network\.wg0 is an interface without a proto"):
        preflight(OPENWRT, plan.site("A"), facts)


@pytest.mark.parametrize(
    ("space", "refused"),
    [
        ("/etc 12\n/tmp 60244\n", "only 12 KiB free in /etc (the flash overlay)"),
        ("/etc 7424\n/tmp 100\n", "only 100 KiB free in /tmp; a change needs"),
        ("/etc 7424\n/tmp 60244\n", None),
        ("", None),  # df did not answer: nothing known, nothing refused
    ],
)
def test_a_router_without_room_for_the_change_is_refused_before_arming(
    space: str, refused: str | None
) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight
    from tests.conftest import SEED, spec_from

    plan = plan_network(spec_from(SEED.read_text()), None, KEYS)
    sections = openwrt_sections(uci_changes=("", 0), space=(space, 0))
    facts = facts_from_sections("A", Platform.OPENWRT, sections)
    if refused is None:
        preflight(OPENWRT, plan.site("A"), facts)
        return
    with pytest.raises(ApplyError, match=re.escape(refused)) as caught:
        preflight(OPENWRT, plan.site("A"), facts)
    assert "df -h" in str(caught.value.fix)


@pytest.mark.parametrize(
    ("cron", "refused"),
    [
        (("", 0), True),  # no daemon in /proc
        (("cron\n", 0), False),  # Debian's
        (("crond\ncrond\n", 0), False),  # BusyBox's (or cronie), twice
        (None, False),  # an older sitewire's facts: not known, not refused
    ],
)
def test_a_linux_host_without_a_cron_daemon_is_refused_when_a_name_is_dialled(
    cron: tuple[str, int] | None, refused: bool
) -> None:
    from sitewire.deploy.problems import ApplyError
    from sitewire.deploy.read import preflight
    from tests.conftest import SEED, spec_from

    linux = LINUX
    spec = SEED.read_text().replace('platform = "openwrt"', 'platform = "linux"')
    plan = plan_network(spec_from(spec), None, KEYS)
    sections = openwrt_sections(openwrt_release=("", 1))
    if cron is not None:
        sections["cron"] = ScriptSection("cron", cron[1], cron[0], "")
    facts = facts_from_sections("B", Platform.LINUX, sections)
    assert plan.site("B").watchdog and not plan.site("A").watchdog
    preflight(linux, plan.site("A"), facts)  # A dials no name: no job, no daemon needed
    if not refused:
        preflight(linux, plan.site("B"), facts)
        return
    with pytest.raises(
        ApplyError, match=r"no cron daemon that reads /etc/cron\.d runs here"
    ) as caught:
        preflight(linux, plan.site("B"), facts)
    assert "A's DNS endpoint" in str(caught.value)
    assert "apt-get install cron" in str(caught.value.fix)


def test_a_dialer_starts_afresh_only_with_a_peer_that_never_shook_hands_or_was_re_created(
    plan: Plan,
) -> None:
    from sitewire.deploy.live import fresh_start_script

    b = plan.site("B")  # B dials A
    never = fresh_start_script(b, OPENWRT.psk_read)
    assert never is not None
    first, *_ = never.splitlines()
    assert "latest-handshakes" in first and 'if [ "$t" = 0 ]; then' in never
    assert " remove" in never and "persistent-keepalive 25" in never
    again = fresh_start_script(b, OPENWRT.psk_read, {"A"})  # A's interface was re-created
    assert again is not None and again.startswith("if :; then") and "latest-handshakes" not in again
    assert fresh_start_script(plan.site("A"), OPENWRT.psk_read) is None  # A dials nobody
