"""UCI text and the uci CLI model: real files parse, writes match commit, batches act as in uci."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewire.errors import UciError
from sitewire.uci import (
    Address,
    CommandResult,
    Package,
    Section,
    UciParseError,
    UciStore,
    Value,
    anonymous_name,
    export_uci,
    parse_address,
    parse_batch,
    parse_section_ref,
    parse_uci,
    quote,
    serialize_uci,
)
from tests.conftest import FIXTURES


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def options_of(text: str) -> dict[str, Value]:
    """The options of the one section in a small config snippet."""
    package = parse_uci(text, "test")
    assert len(package.sections) == 1
    return package.sections[0].options


def site_a() -> UciStore:
    return UciStore.from_texts({"network": fixture("network.site-a.composed.uci")})


# --- real files --------------------------------------------------------------------------------


def zone(package: Package, name: str) -> Section:
    return next(s for s in package.sections_of_type("zone") if s.options["name"] == name)


def rule(package: Package, name: str) -> Section:
    return next(s for s in package.sections_of_type("rule") if s.options["name"] == name)


@pytest.mark.parametrize(
    ("file", "wan_forward", "rules"),
    [("firewall.stock-23.05-24.10.uci", "REJECT", 9), ("firewall.stock-25.12.uci", "DROP", 9)],
)
def test_stock_firewall(file: str, wan_forward: str, rules: int) -> None:
    firewall = parse_uci(fixture(file), "firewall")

    assert [s.type for s in firewall.sections[:4]] == ["defaults", "zone", "zone", "forwarding"]
    assert all(s.name is None for s in firewall.sections)
    assert firewall.sections[0].options == {
        "syn_flood": "1",
        "input": "REJECT",
        "output": "ACCEPT",
        "forward": "REJECT",
    }
    assert zone(firewall, "lan").options["network"] == ("lan",)
    assert zone(firewall, "wan").options["network"] == ("wan", "wan6")
    assert zone(firewall, "wan").options["forward"] == wan_forward
    assert zone(firewall, "wan").options["mtu_fix"] == "1"
    assert firewall.sections_of_type("forwarding")[0].options == {"src": "lan", "dest": "wan"}
    mld = rule(firewall, "Allow-MLD")
    assert mld.options["icmp_type"] == ("130/0", "131/0", "132/0", "143/0")
    assert mld.options["src_ip"] == "fe80::/10"
    assert len(firewall.sections_of_type("rule")) == rules


def test_stock_25_12_icmpv6_rules() -> None:
    firewall = parse_uci(fixture("firewall.stock-25.12.uci"), "firewall")

    forward = rule(firewall, "Allow-ICMPv6-Forward")
    assert forward.options["dest"] == "*"
    assert forward.options["limit"] == "1000/sec"
    assert forward.options["icmp_type"][:2] == ("echo-request", "echo-reply")
    assert len(rule(firewall, "Allow-ICMPv6-Input").options["icmp_type"]) == 11


def test_site_a_network() -> None:
    network = parse_uci(fixture("network.site-a.composed.uci"), "network")

    assert [s.name for s in network.sections] == [
        "loopback",
        "globals",
        None,
        "lan",
        "wan",
        "wan6",
        "wg0",
        "site_b",
        None,
        None,
        None,
    ]
    site_b = network.section("site_b")
    assert site_b is not None
    assert site_b.type == "wireguard_wg0"
    assert site_b.options["allowed_ips"] == ("10.99.0.2/32", "192.168.20.0/24")
    assert site_b.options["description"] == "site-b (Branch office)"
    assert site_b.options["endpoint_host"] == "siteb.example.net"
    peers = network.sections_of_type("wireguard_wg0")
    assert [p.name for p in peers] == ["site_b", None]
    assert peers[1].options["allowed_ips"] == ("10.99.0.3/32", "192.168.30.0/24")
    assert network.sections[2].options["ports"] == ("lan1", "lan2", "lan3")
    assert network.section("nope") is None


@pytest.mark.parametrize(
    ("file", "package", "section", "option", "value"),
    [
        ("network.luci-issue-2232.verbatim.uci", "network", "wg0", "addresses", ("10.0.1.1/32",)),
        ("network.luci-issue-2232.verbatim.uci", "network", "wgguest", "listen_port", "51821"),
        ("network.netjsonconfig.verbatim.uci", "network", "wgpeer", "persistent_keepalive", "60"),
        (
            "network.netjsonconfig.verbatim.uci",
            "network",
            "wgvxlan",
            "addresses",
            ("10.0.0.5/32/32",),
        ),
        ("etc-config-tailscale.23.05.uci", "tailscale", "settings", "port", "41641"),
        ("etc-config-tailscale.24.10-25.12.uci", "tailscale", "settings", "fw_mode", "nftables"),
    ],
)
def test_named_values_in_real_files(
    file: str, package: str, section: str, option: str, value: Value
) -> None:
    found = parse_uci(fixture(file), package).section(section)
    assert found is not None
    assert found.options[option] == value


def test_luci_issue_2232_anonymous_peers() -> None:
    network = parse_uci(fixture("network.luci-issue-2232.verbatim.uci"), "network")

    assert [(s.type, s.name) for s in network.sections] == [
        ("wireguard_wg0", None),
        ("interface", "wg0"),
        ("interface", "wgguest"),
        ("wireguard_wgguest", None),
    ]
    assert network.sections[0].options["allowed_ips"] == ("0.0.0.0/0", "::0/0")


def test_tailscale_23_05_has_no_fw_mode() -> None:
    settings = parse_uci(fixture("etc-config-tailscale.23.05.uci"), "tailscale").section("settings")
    assert settings is not None
    assert list(settings.options) == ["log_stderr", "log_stdout", "port", "state_file"]


def test_blog_style_additions() -> None:
    firewall = parse_uci(
        fixture("firewall.blog-style-wireguard-additions.composed.uci"), "firewall"
    )

    assert [s.type for s in firewall.sections] == ["zone"] + ["forwarding"] * 3 + ["rule"]
    assert firewall.sections[0].options["network"] == ("wg0",)
    assert firewall.sections[4].options["dest_port"] == "51820"


@pytest.mark.parametrize(
    ("file", "line"),
    [
        ("firewall.wireguard-zone.systemcrash.verbatim.uci", 6),
        ("network.systemcrash-guide.verbatim.uci", 10),
    ],
)
def test_excerpts_are_rejected_with_their_line(file: str, line: int) -> None:
    with pytest.raises(UciParseError) as caught:
        parse_uci(fixture(file), "network")

    assert caught.value.reason == "invalid command"
    assert caught.value.line == line
    assert caught.value.uci_message == f"Parse error (invalid command) at line {line}, byte 0"
    assert f"line {line}" in str(caught.value)


ACCEPTED = [
    "firewall.stock-23.05-24.10.uci",
    "firewall.stock-25.12.uci",
    "firewall.blog-style-wireguard-additions.composed.uci",
    "network.site-a.composed.uci",
    "network.luci-issue-2232.verbatim.uci",
    "network.netjsonconfig.verbatim.uci",
    "etc-config-tailscale.23.05.uci",
    "etc-config-tailscale.24.10-25.12.uci",
]


@pytest.mark.parametrize("file", ACCEPTED)
def test_real_files_survive_a_commit(file: str) -> None:
    package = parse_uci(fixture(file), "pkg")
    assert parse_uci(serialize_uci(package), "pkg") == package


def test_site_a_is_already_in_commit_form() -> None:
    text = fixture("network.site-a.composed.uci")
    body = text[text.index("\nconfig") :]
    assert serialize_uci(parse_uci(text, "network")) == body + "\n"


def test_stock_firewall_is_rewritten_export_style() -> None:
    written = serialize_uci(parse_uci(fixture("firewall.stock-25.12.uci"), "firewall"))

    assert written.startswith(
        "\nconfig defaults\n"
        "\toption syn_flood '1'\n"
        "\toption input 'REJECT'\n"
        "\toption output 'ACCEPT'\n"
        "\toption forward 'REJECT'\n"
        "\n"
        "config zone\n"
    )
    assert (
        "\nconfig zone\n"
        "\toption name 'wan'\n"
        "\tlist network 'wan'\n"
        "\tlist network 'wan6'\n"
        "\toption input 'REJECT'\n"
        "\toption output 'ACCEPT'\n"
        "\toption forward 'DROP'\n"
        "\toption masq '1'\n"
        "\toption mtu_fix '1'\n"
        "\n"
    ) in written
    assert written.endswith("\toption target 'ACCEPT'\n\n")
    assert "#" not in written


def test_export_has_the_package_header() -> None:
    package = Package("network", [Section("interface", "lan", {"proto": "static"})])
    assert (
        export_uci(package)
        == "package network\n\nconfig interface 'lan'\n\toption proto 'static'\n\n"
    )
    assert serialize_uci(Package("empty")) == "\n"


# --- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("'it'\\''s'", "it's"),
        ('"dq \\"inner\\" back\\\\slash \\n"', 'dq "inner" back\\slash n'),
        ("abc#comment", "abc"),
        ("abc # comment", "abc"),
        ("'a#b'", "a#b"),
        ('"a;b c"', "a;b c"),
        ("a\\ b", "a b"),
        ("a\\#b", "a#b"),
        ("'x'\"y\"z", "xyz"),
        ("ab\\\ncd", "abcd"),
        ("'two\nlines'", "two\nlines"),
        ('"joined \\\nline"', "joined line"),
        ("'back\\slash'", "back\\slash"),
    ],
)
def test_value_quoting(written: str, value: str) -> None:
    assert options_of(f"config t 'n'\n\toption o {written}\n") == {"o": value}
    assert parse_batch(f"set p.n.o={written}\n") == [["set", f"p.n.o={value}"]]


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("c t\n o a 1\n l b x\n l b y\n", {"a": "1", "b": ("x", "y")}),
        ("config t\n\toption a ''\n", {}),
        ("config t\n\toption a 1\n\toption a ''\n", {"a": "1"}),
        ("config t\n\toption a 1\n\toption b 2\n\toption a 3\n", {"b": "2", "a": "3"}),
        ("config t\n\toption a 1\n\tlist a 2\n", {"a": ("1", "2")}),
        ("config t\n\tlist a 1\n\toption a 2\n", {"a": "2"}),
        ("config t\n\tlist a ''\n", {"a": ("",)}),
        ("config t 'n'\n\toption a 1\nconfig t 'n'\n\toption b 2\n", {"a": "1", "b": "2"}),
        ("package test\nconfig t\n\toption a 1 # trailing\n", {"a": "1"}),
        ("config t n ; option a 1 ; option b 2\n", {"a": "1", "b": "2"}),
        # The unquoted word's terminator overwrites the ';', so uci never sees option b.
        ("config t\n\toption a 1;option b 2\n", {"a": "1"}),
    ],
)
def test_file_grammar(text: str, options: dict[str, Value]) -> None:
    assert options_of(text) == options


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("...\nconfig t\n", "invalid command", 1),
        ("config t\n\tvalue x y\n", "invalid command", 2),
        ("config\n", "invalid command", 1),
        ("option a b\n", "option/list command found before the first section", 1),
        ("config t 'bad-name'\n", "invalid character in name field", 1),
        ("config 'a b'\n", "invalid character in type field", 1),
        ("config t n extra\n", "too many arguments", 1),
        # With no name, the ';' is read as the (empty) name and 'option' is one word too many.
        ("config t ; option a 1\n", "too many arguments", 1),
        ("config t\n\toption\tx-y 1\n", "invalid character in name field", 2),
        ("config t\n\toption a 'open\n", "EOF with unterminated '", 2),
        ('config t\n\toption a "open\n', 'EOF with unterminated "', 2),
        ("config t\n\tlist ''\n", "insufficient arguments", 2),
        (
            "config t 'n'\nconfig u 'n'\n",
            "section of different type overwrites prior section with same name",
            2,
        ),
        ("package bad.name\n", "invalid character in name field", 1),
    ],
)
def test_file_grammar_errors(text: str, reason: str, line: int) -> None:
    with pytest.raises(UciParseError) as caught:
        parse_uci(text, "test")
    assert (caught.value.reason, caught.value.line) == (reason, line)


@pytest.mark.parametrize(
    ("text", "commands"),
    [
        ("set a.b=c\n\n  # comment\nget a.b\n", [["set", "a.b=c"], ["get", "a.b"]]),
        ("set a.b.c='x' # trailing\n", [["set", "a.b.c=x"]]),
        ("set a.b.c=1; set a.b.d=2\n", [["set", "a.b.c=1"]]),
        ("set a.b.c='1'; set a.b.d=2\n", [["set", "a.b.c=1"]]),
        ("add  network\trule\n", [["add", "network", "rule"]]),
        ("exit\nset a.b=c\n", [["exit"], ["set", "a.b=c"]]),
    ],
)
def test_batch_splitting(text: str, commands: list[list[str]]) -> None:
    assert parse_batch(text) == commands


def test_batch_refuses_four_words_and_open_quotes() -> None:
    with pytest.raises(UciError, match="too many arguments"):
        parse_batch("set a b c\n")
    with pytest.raises(UciParseError, match="EOF with unterminated"):
        parse_batch("set a.b.c='open\n")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("network", Address("network")),
        ("network.lan", Address("network", "lan")),
        ("network.lan.proto=static", Address("network", "lan", "proto", "static")),
        ("network.lan.dns=a=b", Address("network", "lan", "dns", "a=b")),
        ("network.@wireguard_wg0[-1].x=", Address("network", "@wireguard_wg0[-1]", "x", "")),
        ("my-pkg.s", Address("my-pkg", "s")),
        ("network.lan.proto.x", None),
        ("network.lan.bad-opt=1", None),
        ("network.lan.=1", None),
        ("net.work.lan.x", None),
        ("network.lan.x=bell\a", None),
    ],
)
def test_addresses(text: str, address: Address | None) -> None:
    assert parse_address(text) == address
    if address is not None:
        assert str(address) == text


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("@zone[1]", ("zone", 1)),
        ("@zone[-1]", ("zone", -1)),
        ("@[0]", (None, 0)),
        ("@zone[]", ("zone", 0)),
        ("zone[1]", None),
        ("@zone[x]", None),
        ("@zone[1]x", None),
        ("@zo ne[1]", None),
    ],
)
def test_section_refs(ref: str, parsed: tuple[str | None, int] | None) -> None:
    assert parse_section_ref(ref) == parsed


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("plain", "'plain'"), ("it's", "'it'\\''s'"), ("", "''"), ("''", "''\\'''\\'''")],
)
def test_quote(value: str, quoted: str) -> None:
    assert quote(value) == quoted


@pytest.mark.parametrize(
    ("package", "message"),
    [
        (Package("p", [Section("t", "bad-name")]), "invalid section name 'bad-name'"),
        (Package("p", [Section("a#b")]), "invalid section type 'a#b'"),
        (Package("p", [Section("t", "x"), Section("t", "x")]), "duplicate section 'x'"),
        (Package("p", [Section("t", options={"o": ""})]), "empty option value"),
        (Package("p", [Section("t", options={"o-x": "1"})]), "invalid option name 'o-x'"),
    ],
)
def test_serialize_refuses_what_uci_cannot_hold(package: Package, message: str) -> None:
    with pytest.raises(UciError, match=message):
        serialize_uci(package)


# --- properties --------------------------------------------------------------------------------

NAME = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=8)
# A named section called like an anonymous one's internal name would alias it, in uci too.
SECTION_NAME = NAME.filter(lambda n: not n.startswith("cfg"))
TEXT = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x24F, exclude_characters="\x7f")
    | st.sampled_from("'\"#;\\ \t\n"),
    max_size=12,
)
VALUE: st.SearchStrategy[Value] = st.one_of(
    TEXT.filter(bool), st.lists(TEXT, min_size=1, max_size=3).map(tuple)
)
OPTIONS = st.dictionaries(NAME, VALUE, max_size=4)


@st.composite
def packages(draw: st.DrawFn) -> Package:
    names = draw(st.lists(SECTION_NAME, unique=True, max_size=4))
    named = [Section(draw(NAME), name, draw(OPTIONS)) for name in names]
    anonymous = draw(st.lists(st.builds(Section, NAME, st.none(), OPTIONS), max_size=4))
    return Package("test", list(draw(st.permutations(named + anonymous))))


def batch_building(package: Package) -> str:
    lines = []
    for section in package.sections:
        if section.name is None:
            lines.append(f"add {package.name} {section.type}")
            ref = f"@{section.type}[-1]"
        else:
            lines.append(f"set {package.name}.{section.name}={section.type}")
            ref = section.name
        for option, value in section.options.items():
            path = f"{package.name}.{ref}.{option}"
            if isinstance(value, str):
                lines.append(f"set {path}={quote(value)}")
            else:
                lines.extend(f"add_list {path}={quote(item)}" for item in value)
    return "\n".join(lines) + "\n"


@given(packages())
def test_serialized_packages_parse_back(package: Package) -> None:
    assert parse_uci(serialize_uci(package), "test") == package


@settings(max_examples=60, deadline=None)
@given(packages())
def test_a_quoted_batch_rebuilds_the_package(package: Package) -> None:
    store = UciStore({"test": Package("test")})

    result = store.batch(batch_building(package))
    assert (result.stderr, result.rc) == ("", 0)
    store.run(["commit", "test"])

    assert store.committed("test") == package
    assert store.committed_text("test") == serialize_uci(package)


@given(TEXT)
def test_quote_survives_the_batch_parser(value: str) -> None:
    assert parse_batch(f"set p.s.o={quote(value)}\n") == [["set", f"p.s.o={value}"]]


# --- the uci command ---------------------------------------------------------------------------


def test_anonymous_names_match_real_devices() -> None:
    assert anonymous_name(3, "device") == "cfg030f15"
    assert anonymous_name(2, "zone") == "cfg02dc81"
    assert anonymous_name(9, "wireguard_wg0") == "cfg0996fc"


def test_changes_are_staged_until_commit() -> None:
    store = site_a()

    assert store.run(["set", "network.wg0.mtu=1380"]).rc == 0
    assert store.run(["get", "network.wg0.mtu"]).stdout == "1380\n"
    assert store.committed("network").section("wg0") == parse_uci(
        fixture("network.site-a.composed.uci"), "network"
    ).section("wg0")
    assert store.run(["changes"]).stdout == "network.wg0.mtu='1380'\n"

    assert store.run(["commit", "network"]).rc == 0
    wg0 = store.committed("network").section("wg0")
    assert wg0 is not None
    assert wg0.options["mtu"] == "1380"
    assert store.run(["changes", "network"]).stdout == ""


def test_revert_drops_staged_changes() -> None:
    store = site_a()
    store.batch("set network.wg0.mtu=1380\nset network.lan.proto=dhcp\n")

    store.run(["revert", "network.wg0"])
    assert store.run(["changes"]).stdout == "network.lan.proto='dhcp'\n"
    store.run(["revert", "network"])
    assert store.staged("network") == store.committed("network")


def test_batch_keeps_going_and_exits_zero() -> None:
    store = site_a()
    result = store.batch(
        "set network.bad-name=interface\n"
        "frobnicate network\n"
        "set network.wg0.mtu=1380\n"
        "delete network.nope\n"
        "get network.wg0.mtu\n"
        "exit\n"
        "set network.wg0.mtu=9000\n"
    )

    assert result.rc == 0
    assert result.stdout == "1380\n"
    # uci_perror appends its newline to a static buffer: each later error gets one more.
    assert result.stderr == "uci: Invalid argument\nUnknown command\nuci: Entry not found\n\n"


def test_single_commands_report_failure() -> None:
    store = site_a()

    assert store.run(["set", "network.nope.proto=static"]) == _failed("uci: Invalid argument\n")
    assert store.run(["get", "network.wg0.nope"]) == _failed("uci: Entry not found\n")
    assert store.run(["delete", "network.nope"]) == _failed("uci: Entry not found\n")
    assert store.run(["set", "network.wg0.x-y=1"]) == _failed("uci: Parse error\n")
    assert store.run(["get", "nope.wg0"]) == _failed("uci: Entry not found\n")
    assert store.run(["-q", "get", "network.wg0.nope"]) == _failed("")
    assert store.run(["add", "nope", "rule"]).rc == 3


def _failed(stderr: str) -> CommandResult:
    return CommandResult("", stderr, 1)


def test_set_empty_deletes_or_does_nothing() -> None:
    store = site_a()

    assert store.run(["set", "network.wg0.mtu="]).rc == 0
    assert store.run(["set", "network.wg0.never_there="]).rc == 0
    assert store.run(["set", "network.ghost="]).rc == 0
    assert store.run(["set", "network.site_b="]).rc == 0
    assert store.run(["changes"]).stdout == "-network.wg0.mtu\n-network.site_b\n"
    assert store.run(["set", "network.ghost.proto="]).stderr == "uci: Invalid argument\n"


def test_set_on_a_list_replaces_it_with_an_option() -> None:
    store = site_a()
    store.run(["set", "network.site_b.allowed_ips=10.99.0.2/32"])

    shown = store.run(["show", "network.site_b.allowed_ips"]).stdout
    assert shown == "network.site_b.allowed_ips='10.99.0.2/32'\n"
    site_b = store.staged("network").section("site_b")
    assert site_b is not None
    # uci_set allocates the new option right after the old one: it keeps its place.
    before = site_a().staged("network").section("site_b")
    assert before is not None and list(site_b.options) == list(before.options)


def test_add_list_and_del_list() -> None:
    store = site_a()
    store.batch(
        "add_list network.wg0.mtu=9000\n"
        "add_list network.site_b.allowed_ips=10.0.0.0/8\n"
        "del_list network.site_b.allowed_ips=10.99.0.2/32\n"
        "del_list network.wg0.proto=wireguard\n"
    )
    staged = store.staged("network")

    assert staged.sections[6].options["mtu"] == ("1420", "9000")
    assert staged.sections[7].options["allowed_ips"] == ("192.168.20.0/24", "10.0.0.0/8")
    assert store.run(["changes"]).stdout == (
        "network.wg0.mtu+='9000'\n"
        "network.site_b.allowed_ips+='10.0.0.0/8'\n"
        "network.site_b.allowed_ips-='10.99.0.2/32'\n"
    )


def test_setting_the_same_value_records_nothing() -> None:
    store = site_a()
    store.batch("set network.wg0.mtu=1420\nset network.wg0.mtu='1420'\n")
    assert store.run(["changes"]).stdout == ""


def test_add_prints_the_new_name() -> None:
    store = site_a()

    assert store.run(["add", "network", "wireguard_wg0"]).stdout == "cfg0c96fc\n"
    assert store.batch("add network rule\nadd network rule\n").stdout == "cfg0d92bd\ncfg0e92bd\n"
    assert store.run(["changes"]).stdout == (
        "network.cfg0c96fc='wireguard_wg0'\nnetwork.cfg0d92bd='rule'\nnetwork.cfg0e92bd='rule'\n"
    )
    store.run(["set", "network.@rule[-1].priority=1"])
    store.run(["commit"])
    last = store.committed("network").sections[-1]
    assert (last.type, last.name, last.options) == ("rule", None, {"priority": "1"})


def test_anonymous_names_follow_position_after_commit() -> None:
    store = site_a()
    peer = ["-X", "show", "network.@wireguard_wg0[1].public_key"]
    before = "network.cfg0996fc.public_key='b3qFkJumsbzH0t3o8/4JFB8qNUBLVmFsd4KNmKOuucQ='\n"
    assert store.run(peer).stdout == before

    store.run(["delete", "network.loopback"])
    assert store.run(peer).stdout == before
    store.run(["commit", "network"])
    assert store.run(peer).stdout == before.replace("cfg0996fc", "cfg0896fc")


def test_type_indexes_count_named_sections_and_shift() -> None:
    store = site_a()
    key = "network.@wireguard_wg0[0].public_key"

    assert store.run(["get", key]).stdout == "JTA7RlFcZ3J9iJOeqbS/ytXg6/YBDBciLThDTllkb3o=\n"
    store.run(["delete", "network.site_b"])
    assert store.run(["get", key]).stdout == "b3qFkJumsbzH0t3o8/4JFB8qNUBLVmFsd4KNmKOuucQ=\n"
    assert store.run(["get", "network.@wireguard_wg0[-1].public_key"]) == store.run(["get", key])
    assert store.run(["get", "network.@wireguard_wg0[1]"]).stderr == "uci: Entry not found\n"
    assert store.run(["get", "network.@wireguard_wg0[x]"]).stderr == "uci: Invalid argument\n"


def test_show_format() -> None:
    store = UciStore.from_texts({"network": fixture("network.site-a.composed.uci")})
    shown = store.run(["show", "network"]).stdout.splitlines()

    assert shown[:3] == [
        "network.loopback=interface",
        "network.loopback.device='lo'",
        "network.loopback.proto='static'",
    ]
    assert "network.@device[0]=device" in shown
    assert "network.@device[0].ports='lan1' 'lan2' 'lan3'" in shown
    assert "network.@wireguard_wg0[1].allowed_ips='10.99.0.3/32' '192.168.30.0/24'" in shown
    assert "network.site_b.allowed_ips='10.99.0.2/32' '192.168.20.0/24'" in shown
    assert "network.@rule[1].dest='192.168.30.0/24'" in shown
    assert store.run(["show", "network.@device[0]"]).stdout.startswith("network.cfg030f15=device\n")
    assert store.run(["show", "network.nope"]).stderr == "uci: Entry not found\n"


def test_get_format() -> None:
    store = site_a()
    store.batch(
        "add_list network.lan.dns='a b'\nadd_list network.lan.dns=c\nset network.lan.x=\"it's\"\n"
    )

    assert store.run(["get", "network.lan"]).stdout == "interface\n"
    assert store.run(["get", "network.lan.dns"]).stdout == "'a b' c\n"
    assert store.run(["get", "network.lan.x"]).stdout == "it's\n"
    assert store.run(["show", "network.lan.x"]).stdout == "network.lan.x='it'\\''s'\n"
    assert store.run(["-d", ",", "get", "network.@device[0].ports"]).stdout == "lan1,lan2,lan3\n"


def test_delete_then_recreate_moves_the_section_last() -> None:
    store = site_a()
    store.batch(
        "set network.lan=''\n"
        "set network.lan=interface\n"
        "set network.lan.device=br-lan\n"
        "set network.lan.proto=static\n"
    )
    store.run(["commit", "network"])

    network = store.committed("network")
    assert network.sections[-1] == Section(
        "interface", "lan", {"device": "br-lan", "proto": "static"}
    )
    assert [s.name for s in network.sections].count("lan") == 1


def test_delete_list_item_by_index() -> None:
    store = site_a()
    store.run(["delete", "network.@device[0].ports=1"])
    assert store.run(["get", "network.@device[0].ports"]).stdout == "lan1 lan3\n"
    assert store.run(["delete", "network.@device[0].ports=x"]) == _failed("")


def test_rename_and_reorder() -> None:
    store = site_a()
    store.batch(
        "rename network.site_b=branch\nreorder network.branch=0\nrename network.wg0.mtu=mtu_x\n"
    )
    store.run(["commit"])

    network = store.committed("network")
    assert network.sections[0].name == "branch"
    wg0 = network.section("wg0")
    assert wg0 is not None
    assert list(wg0.options)[-1] == "mtu_x"
    assert store.batch("rename network.lan=bad-name\n").rc == 0
    assert store.staged("network").section("lan") is not None  # an invalid name never replays


def test_same_batch_twice_leaves_the_same_file() -> None:
    store = UciStore.from_texts({"network": fixture("network.site-a.composed.uci")})
    batch = (
        "set network.wg0=interface\n"
        "set network.wg0.proto=wireguard\n"
        "set network.wg0.listen_port=51821\n"
        "set network.wg0.addresses=''\n"
        "add_list network.wg0.addresses=10.99.0.1/24\n"
        "set network.site_c=wireguard_wg0\n"
        "set network.site_c.public_key='b3qFkJumsbzH0t3o8/4JFB8qNUBLVmFsd4KNmKOuucQ='\n"
    )
    store.batch(batch)
    store.run(["commit", "network"])
    first = store.committed_text("network")

    again = store.batch(batch)
    # Clearing a list to refill it is recorded even when nothing ends up different; setting
    # a section's type to the type it has is not (list.c uci_set compares it).
    assert store.run(["changes"]).stdout == (
        "-network.wg0.addresses\nnetwork.wg0.addresses+='10.99.0.1/24'\n"
    )
    store.run(["commit", "network"])
    assert (again.stderr, store.committed_text("network")) == ("", first)


def test_commit_rewrites_only_a_changed_file() -> None:
    stock = fixture("firewall.stock-25.12.uci")
    store = UciStore.from_texts({"firewall": stock})

    store.run(["commit", "firewall"])
    assert store.committed_text("firewall") == stock
    store.run(["set", "firewall.@zone[1].forward=REJECT"])
    store.run(["commit", "firewall"])
    assert store.committed_text("firewall").startswith(
        "\nconfig defaults\n\toption syn_flood '1'\n"
    )


def test_a_broken_file_fails_every_command() -> None:
    store = UciStore.from_texts({"network": fixture("network.systemcrash-guide.verbatim.uci")})

    result = store.run(["show", "network"])
    assert result == _failed("uci: Parse error (invalid command) at line 10, byte 0\n")
    with pytest.raises(UciError):
        store.staged("network")


def test_export_and_usage() -> None:
    store = UciStore({"test": Package("test", [Section("t"), Section("t", "n", {"o": "v"})])})

    assert (
        store.run(["export", "test"]).stdout
        == "package test\n\nconfig t\n\nconfig t 'n'\n\toption o 'v'\n\n"
    )
    assert store.run(["-n", "export", "test"]).stdout.startswith("package test\n\nconfig t 'cfg01")
    assert store.run(["get"]).rc == 255
    assert store.batch("get\n").stderr == "Unknown command\n"
    assert store.batch("set a b c\nbatch\n").stderr == "Too many arguments\nUnknown command\n"
    assert store.batch("set test.n.o='open\n").stderr.startswith(
        "uci: Parse error (EOF with unterminated ') at line 1"
    )
