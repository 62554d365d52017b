"""The cases scripts/record-uci-captures runs through the real uci: input files and commands.

Edit here, then re-record (README.md); tests/unit/test_uci_captures.py checks that every case
below has a recording made from exactly these inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Stock files as routers ship them: tabs, unquoted values, comments.
FIREWALL = (REPO / "src/sitewire/lab/openwrt/data/firewall.24.10").read_text()
NETWORK = (REPO / "tests/captures/openwrt/network.stock-lan-wan.uci").read_text()
# A real file with a real mistake in it (uci refuses to load it).
BROKEN = (REPO / "tests/captures/openwrt/network.systemcrash-guide.verbatim.uci").read_text()
# What `sitewire render examples/seed.toml` writes for site A and B, keys replaced by fakes.
SEED_A = (HERE / "inputs/seed-A.uci-batch").read_text()
SEED_B = (HERE / "inputs/seed-B.uci-batch").read_text()
SEED_A_RETIRED = (HERE / "inputs/seed-A-phone-retired.uci-batch").read_text()

# A small file in the form `uci commit` writes.
SMALL = """
config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.3.1'
\toption netmask '255.255.255.0'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'lan1'
\tlist ports 'lan2'
\tlist ports 'lan2'

config interface 'wan'
\toption device 'wan'
\toption proto 'dhcp'

"""


@dataclass(frozen=True)
class Case:
    """One uci invocation: `argv` after the word `uci`, `batch` on its stdin (if any)."""

    name: str
    about: str
    before: dict[str, str] = field(default_factory=dict)
    batch: str | None = None
    argv: tuple[str, ...] = ("batch",)
    # Start from the files another (earlier) case left behind, instead of `before`.
    after_of: str | None = None


def lines(*commands: str) -> str:
    return "".join(f"{command}\n" for command in commands)


N = {"network": NETWORK}
S = {"network": SMALL}
F = {"firewall": FIREWALL}
NF = {"network": NETWORK, "firewall": FIREWALL}

CASES = [
    # set
    Case(
        "set_new_section",
        "set a new named section and options in it, then commit",
        N,
        lines("set network.wg0=interface", "set network.wg0.proto='wireguard'", "commit network"),
    ),
    Case(
        "set_option_overwrite",
        "overwrite options with longer, shorter and same-length values: where do they land",
        N,
        lines(
            "set network.lan.ipaddr='192.168.30.1'",
            "set network.wan.proto=static",
            "set network.lan.ip6assign='64'",
            "set network.loopback.device=l",
            "commit network",
        ),
    ),
    Case(
        "set_same_value_keeps_file",
        "setting what is already there records nothing, so commit leaves the stock file alone",
        F,
        lines(
            "set firewall.@defaults[0].input=REJECT",
            "set firewall.@zone[0]=zone",
            "changes",
            "commit firewall",
        ),
    ),
    Case(
        "set_empty_option",
        "set x.y.z='' deletes an option that exists and does nothing when it does not",
        N,
        lines("set network.lan.ip6assign=''", "set network.lan.nope=''", "commit network"),
    ),
    Case(
        "set_empty_section",
        "set x.y='' deletes a section that exists and does nothing when it does not",
        N,
        lines(
            "set network.wan6=''",
            "set network.nope=''",
            "set network.@device[0]=''",
            "commit network",
        ),
    ),
    Case(
        "set_empty_then_recreate",
        "sitewire's replace: set x='' then set x=type starts the section over, last in the file",
        N,
        lines(
            "set network.lan=''",
            "set network.lan=interface",
            "set network.lan.proto='static'",
            "commit network",
        ),
    ),
    Case(
        "set_section_type_named",
        "change a named section's type, same length and another length",
        N,
        lines("set network.wan=iface", "set network.globals=global", "commit network"),
    ),
    Case(
        "set_section_type_anonymous",
        "change an anonymous section's type, same length and another length",
        F,
        lines(
            "set firewall.@zone[0]=ZONE",
            "set firewall.@forwarding[0]=forward",
            "commit firewall",
        ),
    ),
    Case(
        "set_list_becomes_option",
        "set on a list replaces the whole list with a plain option, in the list's place",
        F,
        lines("set firewall.@zone[1].network='wan'", "commit firewall"),
    ),
    Case(
        "set_by_generated_name",
        "an anonymous section addressed by the cfg name uci gives it",
        F,
        lines(
            "set firewall.cfg03dc81.masq=0",
            "show firewall.cfg03dc81.masq",
            "get firewall.cfg02dc81",
            "commit firewall",
        ),
    ),
    Case(
        "set_quoted_address",
        "quotes around the address or part of it join into one word",
        S,
        lines(
            "set 'network.lan.mtu=1400'",
            'set "network.lan".metric=10',
            "set network.lan.'ip6assign'=60",
            "commit network",
        ),
    ),
    Case(
        "set_missing_section",
        "set an option of a section that does not exist",
        N,
        argv=("set", "network.nope.proto=static"),
    ),
    Case(
        "set_bad_section_name",
        "a section name with a dash",
        N,
        argv=("set", "network.bad-name=interface"),
    ),
    Case(
        "set_bad_option_name",
        "an option name with a dash",
        N,
        argv=("set", "network.lan.bad-opt=1"),
    ),
    Case(
        "set_missing_package",
        "set in a package that has no file",
        N,
        argv=("set", "nopkg.x=thing"),
    ),
    Case(
        "set_bad_section_type",
        "section types may not hold spaces; odd punctuation is fine",
        S,
        lines(
            "set network.x='two words'",
            "set network.y='wire$guard'",
            "set network.z=",
            "commit network",
        ),
    ),
    # add
    Case(
        "add_anonymous",
        "uci add prints the new section's generated name and leaves it staged",
        F,
        argv=("add", "firewall", "rule"),
    ),
    Case(
        "add_then_configure",
        "add a rule, fill it in through @rule[-1], commit, show it",
        F,
        lines(
            "add firewall rule",
            "set firewall.@rule[-1].name='Allow-WireGuard'",
            "set firewall.@rule[-1].src='wan'",
            "set firewall.@rule[-1].proto='udp'",
            "set firewall.@rule[-1].dest_port='51820'",
            "commit firewall",
            "show firewall.@rule[-1]",
        ),
    ),
    Case(
        "add_several",
        "names of several added sections of two types, before and after a commit",
        S,
        lines(
            "add network interface",
            "add network route",
            "add network interface",
            "commit network",
            "add network route",
            "commit network",
            "show network",
        ),
    ),
    Case(
        "add_missing_package",
        "uci add in a package that has no file",
        N,
        argv=("add", "nopkg", "rule"),
    ),
    Case(
        "add_bad_type",
        "uci add with a type uci would not write",
        N,
        argv=("add", "network", "two words"),
    ),
    # lists
    Case(
        "add_list",
        "add_list to an existing list, to a new list, twice the same item",
        S,
        lines(
            "add_list network.@device[0].ports='lan3'",
            "add_list network.lan.dns='1.1.1.1'",
            "add_list network.lan.dns='9.9.9.9'",
            "add_list network.lan.dns='1.1.1.1'",
            "commit network",
        ),
    ),
    Case(
        "add_list_on_option",
        "add_list on a plain option turns it into a list, the old value first",
        S,
        lines("add_list network.lan.ipaddr='10.0.0.1/24'", "commit network"),
    ),
    Case(
        "add_list_empty_item",
        "add_list of an empty string adds an empty item",
        S,
        lines("add_list network.lan.dns=''", "add_list network.lan.dns=x", "commit network"),
    ),
    Case(
        "add_list_missing_section",
        "add_list in a section that does not exist",
        S,
        argv=("add_list", "network.nope.dns=1.1.1.1"),
    ),
    Case(
        "del_list",
        "del_list of a present item (every copy), an absent item, a plain option, a missing option",
        S,
        lines(
            "del_list network.@device[0].ports='lan2'",
            "del_list network.@device[0].ports='lan9'",
            "del_list network.lan.proto='static'",
            "del_list network.lan.nope='x'",
            "changes network",
            "commit network",
        ),
    ),
    Case(
        "del_list_last_item",
        "del_list of every item leaves an empty list, which commit does not write",
        S,
        lines(
            "del_list network.@device[0].ports='lan1'",
            "del_list network.@device[0].ports='lan2'",
            "show network.@device[0]",
            "commit network",
        ),
    ),
    # delete
    Case(
        "delete_option_and_section",
        "delete an option and a whole section",
        N,
        lines("delete network.lan.ip6assign", "delete network.wan6", "commit network"),
    ),
    Case(
        "delete_list_item_by_index",
        "delete x.y.list=N removes the Nth item; an index past the end does nothing",
        S,
        lines(
            "delete network.@device[0].ports=1",
            "delete network.@device[0].ports=7",
            "changes network",
            "commit network",
        ),
    ),
    Case(
        "delete_odd",
        "delete of missing things, a non-number index, an index on a plain option",
        S,
        lines(
            "delete network.lan.nope",
            "delete network.nope",
            "delete network.lan.ipaddr=abc",
            "delete network.lan.proto=1",
            "commit network",
        ),
    ),
    Case(
        "delete_anonymous_shifts_indexes",
        "after deleting @zone[0], @zone[0] is the next zone",
        F,
        lines(
            "delete firewall.@zone[0]",
            "set firewall.@zone[0].masq=0",
            "add firewall rule",
            "delete firewall.@rule[-1]",
            "changes firewall",
            "commit firewall",
        ),
    ),
    Case(
        "delete_package",
        "delete of a whole package is refused",
        N,
        argv=("delete", "network"),
    ),
    # rename
    Case(
        "rename_section_and_option",
        "rename a named section and an option",
        N,
        lines(
            "rename network.wan6=wan_6",
            "rename network.lan.ip6assign=ip6_assign",
            "commit network",
        ),
    ),
    Case(
        "rename_anonymous",
        "renaming an anonymous section names it",
        F,
        lines(
            "rename firewall.@zone[0]=lan_zone",
            "rename firewall.@zone[-1]=wan_zone",
            "commit firewall",
            "show firewall.@zone[0]",
        ),
    ),
    Case(
        "rename_onto_existing_option",
        "rename an option to the name of another option in the section",
        S,
        lines("rename network.lan.proto=device", "show network.lan", "commit network"),
    ),
    Case(
        "rename_bad_name",
        "rename to a name uci could not read back",
        S,
        lines("rename network.lan=bad-name", "show network.lan", "commit network"),
    ),
    # reorder
    Case(
        "reorder",
        "move a section to the front, one past the end, and to where it already is",
        N,
        lines(
            "reorder network.wan6=0",
            "reorder network.@device[0]=99",
            "reorder network.wan6=0",
            "changes network",
            "commit network",
        ),
    ),
    Case(
        "reorder_odd_positions",
        "negative, non-numeric and space-led positions",
        N,
        lines(
            "reorder network.wan=-1",
            "reorder network.lan=abc",
            "reorder network.loopback= 2",
            "reorder 'network.loopback= 2'",
            "reorder network.wan6=+3",
            "changes network",
            "commit network",
        ),
    ),
    Case(
        "reorder_missing",
        "reorder a section that does not exist",
        N,
        argv=("reorder", "network.nope=1"),
    ),
    # revert
    Case(
        "revert_section",
        "revert one section's staged changes, keep the others",
        N,
        lines(
            "set network.lan.ipaddr=10.0.0.1",
            "set network.wan.proto=static",
            "revert network.lan",
            "changes network",
            "commit network",
        ),
    ),
    Case(
        "revert_option_and_package",
        "revert one option, then the whole package",
        NF,
        lines(
            "set network.lan.ipaddr=10.0.0.1",
            "set network.lan.netmask=255.0.0.0",
            "set firewall.@zone[0].mtu_fix=1",
            "revert network.lan.ipaddr",
            "changes",
            "revert network",
            "changes",
            "commit",
        ),
    ),
    Case(
        "revert_anonymous_and_missing",
        "revert through an @ reference, and revert of what was never changed",
        F,
        lines(
            "set firewall.@zone[0].mtu_fix=1",
            "set firewall.@zone[1].masq=0",
            "revert firewall.@zone[0]",
            "revert firewall.nope",
            "revert firewall.@zone[1].nope",
            "changes",
        ),
    ),
    Case(
        "rename_missing",
        "rename of a section that does not exist",
        N,
        argv=("rename", "network.nope=other"),
    ),
    # anonymous section references
    Case(
        "anonymous_refs",
        "@type[n], @type[-n] and @[n] on the stock firewall",
        F,
        lines(
            "get firewall.@zone[0].name",
            "get firewall.@zone[-1].name",
            "get firewall.@rule[2].name",
            "get firewall.@[0]",
            "get firewall.@[-1]",
            "get firewall.@zone[1].network",
            "get firewall.@rule[-1]",
        ),
    ),
    Case(
        "anonymous_refs_out_of_range",
        "an index past either end finds nothing",
        F,
        lines(
            "get firewall.@zone[2].name",
            "get firewall.@zone[-3]",
            "set firewall.@zone[5].name=x",
            "delete firewall.@zone[9]",
            "set firewall.@nope[0].name=x",
            "changes",
        ),
    ),
    Case(
        "anonymous_refs_malformed",
        "@ references uci cannot read",
        F,
        lines(
            "get firewall.@zone[x]",
            "get firewall.@zone",
            "get firewall.@zone[0]x",
            "get firewall.@zone[]",
            "get firewall.@zone[+1].name",
        ),
    ),
    # quoting
    Case(
        "quoting",
        "single and double quotes, embedded quotes, spaces, backslashes, '\\'' joins",
        S,
        lines(
            "set network.lan.a='two words'",
            'set network.lan.b="double quoted"',
            r'set network.lan.c="say \"hi\""',
            r"set network.lan.d='it'\''s'",
            r"set network.lan.e=back\\slash",
            r"set network.lan.f='back\slash'",
            r'set network.lan.g="back\\slash"',
            """set network.lan.h=bare'single'"double"bare""",
            r"set network.lan.i=esc\ aped",
            "commit network",
            "show network.lan",
            "get network.lan.d",
        ),
    ),
    Case(
        "quoting_escapes",
        "backslash escapes in double quotes, none in single quotes, a real tab, UTF-8",
        S,
        lines(
            r'set network.lan.a="a\tb"',
            r"set network.lan.b='a\tb'",
            "set network.lan.c='a\tb'",
            "set network.lan.d='Büro'",
            'set network.lan.e="it\'s"',
            "commit network",
            "show network.lan",
        ),
    ),
    Case(
        "staged_newline_value",
        "a value with a newline left staged: what uci changes makes of it",
        S,
        "set network.lan.note='line one\nline two'\nchanges\nget network.lan.note\n",
    ),
    Case(
        "quoting_newline_in_value",
        "a quoted value spanning two batch lines keeps the newline",
        S,
        "set network.lan.note='line one\nline two'\nget network.lan.note\ncommit network\n"
        "show network.lan.note\n",
    ),
    Case(
        "quoting_backslash_newline",
        "a backslash at the end of a line joins the next one",
        S,
        'set network.lan.x=abc\\\ndef\nset network.lan.y="ghi\\\njkl"\ncommit network\n',
    ),
    Case(
        "quoting_unterminated",
        "an unterminated quote is a parse error that ends the batch",
        S,
        lines("set network.lan.mtu=1400", "set network.lan.a='open", "set network.lan.b=x"),
    ),
    Case(
        "quoting_semicolon",
        "a semicolon in a batch line",
        S,
        lines(
            "set network.lan.a=x;y",
            "set network.lan.b='x;y'",
            "set network.lan.c='x';y",
            "commit network",
            "show network.lan",
        ),
    ),
    Case(
        "comments_and_blank_lines",
        "comments, blank lines, indentation and trailing comments in a batch",
        S,
        lines(
            "# a comment",
            "",
            "   ",
            "\tset network.lan.mtu=1400   # trailing comment",
            "#set network.lan.x=1",
            "set network.lan.y='# not a comment'",
            "set network.lan.z=a#b",
            "commit network",
        ),
    ),
    Case(
        "batch_crlf",
        "a batch with CRLF line ends",
        S,
        "set network.lan.mtu=1400\r\nset network.lan.proto='dhcp'\r\ncommit network\r\n",
    ),
    Case(
        "batch_without_final_newline",
        "the last line has no newline",
        S,
        "set network.lan.mtu=1400\ncommit network",
    ),
    Case(
        "uppercase_commands",
        "command words are case-insensitive",
        S,
        lines("SET network.lan.mtu=1400", "Add_List network.lan.dns=1.1.1.1", "Commit network"),
    ),
    # errors
    Case(
        "batch_unknown_command",
        "an unknown command, and batch inside a batch, go on to the next line",
        S,
        lines("frobnicate network", "set network.lan.mtu=1400", "batch", "commit network"),
    ),
    Case(
        "argv_unknown_command",
        "an unknown command outside a batch prints the usage",
        S,
        argv=("frobnicate", "network"),
    ),
    Case(
        "batch_errors_in_a_row",
        "several failing lines in one batch: the exact stderr of each",
        S,
        lines(
            "get network.nope",
            "get network.lan.nope",
            "set network.nope.x=1",
            "set network.lan.bad-x=1",
            "set nopkg.a=b",
            "set network.bad-x=1",
            "",
            "set network.lan.bad-y=1",
            "set network.lan.mtu=1400",
            "commit network",
        ),
    ),
    Case(
        "batch_parse_error_lines",
        "a parse error's line number in a batch: counted from the last package load",
        S,
        lines(
            "# one",
            "set network.lan.bad-x=1",
            "# three",
            "set network.lan.bad-y=1",
            "get network.lan.proto",
            "set network.lan.bad-z=1",
        ),
    ),
    Case(
        "batch_too_many_arguments",
        "a fourth word is too many; three words are an unknown command",
        S,
        lines(
            "set network.lan.mtu=1 extra",
            "set a b c d e",
            "add network interface extra",
            "set network.lan.mtu=1400",
            "commit network",
        ),
    ),
    Case(
        "batch_exit",
        "exit ends the batch; what follows is not run",
        S,
        lines(
            "set network.lan.mtu=1400",
            "commit network",
            "EXIT",
            "set network.wan.proto=static",
            "commit network",
        ),
    ),
    Case(
        "get_with_value",
        "get with =value fails without a word",
        S,
        argv=("get", "network.lan.proto=x"),
    ),
    Case(
        "quiet",
        "-q silences errors but not the exit status",
        S,
        argv=("-q", "get", "network.nope"),
    ),
    Case(
        "quiet_batch",
        "-q batch: no error text at all",
        S,
        lines("get network.nope", "frobnicate", "set network.lan.mtu=1400", "commit network"),
        argv=("-q", "batch"),
    ),
    Case(
        "usage",
        "uci with no command prints the usage and exits 0",
        S,
        argv=(),
    ),
    Case(
        "option_without_case",
        "-L is in uci's option string but has no case: the usage, exit 0",
        S,
        argv=("-L", "show"),
    ),
    Case(
        "missing_package_commands",
        "show, export, commit and changes of a package that has no file",
        S,
        lines("show nopkg", "export nopkg", "commit nopkg", "changes nopkg", "show network.lan.x"),
    ),
    Case(
        "help",
        "uci help",
        S,
        argv=("help",),
    ),
    Case(
        "broken_file_show",
        "a file uci cannot parse fails every command that loads it",
        {"network": BROKEN},
        argv=("show", "network"),
    ),
    Case(
        "broken_file_batch",
        "a broken file in a batch, then a parse error of the batch's own",
        {"network": BROKEN, "firewall": FIREWALL},
        lines(
            "set network.lan.mtu=1400",
            "set firewall.@zone[0].mtu_fix=1",
            "set firewall.@zone[0].bad-x=1",
            "commit firewall",
            "changes",
        ),
    ),
    Case(
        "file_duplicates",
        "a file naming an option twice, a list after an option, a section twice",
        {
            "network": lines(
                "config interface 'lan'",
                "\toption proto 'static'",
                "\toption ipaddr '10.0.0.1'",
                "\toption proto 'dhcp'",
                "\toption dns '1.1.1.1'",
                "\tlist dns '9.9.9.9'",
                "\tlist ports 'a'",
                "\toption mtu '1400'",
                "\toption ports 'b'",
                "",
                "config interface 'wan'",
                "\toption proto 'dhcp'",
                "",
                "config interface 'lan'",
                "\toption metric '10'",
                "\toption proto 'pppoe'",
            )
        },
        lines("export network", "set network.wan.mtu=1500", "commit network"),
    ),
    # commit or not
    Case(
        "staged_without_commit",
        "every kind of change, never committed: the files stay, uci changes lists them",
        N,
        lines(
            "set network.lan.ipaddr=10.0.0.1",
            "add_list network.lan.dns=1.1.1.1",
            "delete network.wan6",
            "rename network.wan=wan4",
            "reorder network.wan4=0",
            "add network device",
            "del_list network.lan.dns=1.1.1.1",
            "delete network.@device[0].ports=0",
            "set network.lan.description='it'\\''s'",
            "changes network",
            "show network",
        ),
    ),
    Case(
        "commit_then_more",
        "changes after a commit stay staged",
        S,
        lines(
            "set network.lan.ipaddr=10.0.0.1",
            "commit network",
            "set network.lan.mtu=1400",
            "changes",
        ),
    ),
    Case(
        "commit_unchanged",
        "commit with nothing staged leaves the stock file byte for byte",
        F,
        argv=("commit", "firewall"),
    ),
    Case(
        "commit_all",
        "commit without a package commits every package",
        NF,
        lines(
            "set network.lan.mtu=1400",
            "set firewall.@defaults[0].flow_offloading=1",
            "commit",
        ),
    ),
    Case(
        "multiple_packages",
        "changes in two packages, one committed",
        NF,
        lines(
            "set network.lan.mtu=1400",
            "set firewall.@zone[1].masq=0",
            "add_list firewall.@zone[0].network=wg0",
            "commit firewall",
            "changes",
        ),
    ),
    # show, export, get
    Case("export_package", "uci export of the stock firewall", F, argv=("export", "firewall")),
    Case(
        "export_named",
        "-n names anonymous sections on export",
        F,
        argv=("-n", "export", "firewall"),
    ),
    Case("export_all", "uci export of every package", NF, argv=("export",)),
    Case("show_package", "uci show of the stock firewall", F, argv=("show", "firewall")),
    Case(
        "show_no_ext",
        "-X shows anonymous sections by name",
        F,
        argv=("-X", "show", "firewall"),
    ),
    Case("show_all", "uci show of every package", NF, argv=("show",)),
    Case(
        "show_delimiter",
        "-d sets the list delimiter of show",
        S,
        argv=("-d", ",", "show", "network.@device[0]"),
    ),
    Case(
        "get_delimiter",
        "-d sets the list delimiter of get",
        S,
        argv=("-d", ",", "get", "network.@device[0].ports"),
    ),
    Case(
        "get_values",
        "get of a section type, an option, a list, a list item with spaces, missing things",
        S,
        lines(
            "add_list network.lan.dns='1.1.1.1'",
            "add_list network.lan.dns='a b'",
            "get network.lan",
            "get network.lan.proto",
            "get network.@device[0].ports",
            "get network.lan.dns",
            "get network.lan.nope",
            "get network.nope",
            "get nopkg.lan",
            "show network.lan.dns",
            "show network.nope",
        ),
    ),
    # what sitewire itself sends
    Case(
        "sitewire_seed_a_first",
        "site A of examples/seed.toml onto a factory network and the stock firewall",
        NF,
        SEED_A,
    ),
    Case(
        "sitewire_seed_b_first",
        "site B of examples/seed.toml (it dials A) onto a factory network and stock firewall",
        {"network": NETWORK.replace("192.168.3.1", "192.168.7.1"), "firewall": FIREWALL},
        SEED_B,
    ),
    Case(
        "sitewire_seed_a_again",
        "the same batch for A a second time: nothing may change",
        batch=SEED_A,
        after_of="sitewire_seed_a_first",
    ),
    Case(
        "sitewire_seed_a_retired",
        "A again after the phone was removed from the spec: its peer section goes",
        batch=SEED_A_RETIRED,
        after_of="sitewire_seed_a_first",
    ),
]
