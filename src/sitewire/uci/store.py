"""The `uci` command over in-memory configs: committed files, staged deltas, what each prints."""

from __future__ import annotations

from dataclasses import dataclass

from sitewire.errors import UciError
from sitewire.uci.delta import (
    MESSAGES,
    Action,
    Delta,
    Err,
    Fail,
    Live,
    Target,
    parses,
    scan_int,
)
from sitewire.uci.model import Address, Package, Section, Value, is_package_name, parse_address
from sitewire.uci.text import (
    UciParseError,
    format_uci,
    format_value,
    iter_batch,
    parse_uci,
    serialize_uci,
)

_SPACE = " \t\n\v\f\r"
# cli.c uci_usage() as a router prints it (argv[0] "uci", the default directories compiled in).
_USAGE = """\
Usage: uci [<options>] <command> [<arguments>]

Commands:
\tbatch
\texport     [<config>]
\timport     [<config>]
\tchanges    [<config>]
\tcommit     [<config>]
\tadd        <config> <section-type>
\tadd_list   <config>.<section>.<option>=<string>
\tdel_list   <config>.<section>.<option>=<string>
\tshow       [<config>[.<section>[.<option>]]]
\tget        <config>.<section>[.<option>]
\tset        <config>.<section>[.<option>]=<value>
\tdelete     <config>[.<section>[[.<option>][=<id>]]]
\trename     <config>.<section>[.<option>]=<name>
\trevert     <config>[.<section>[.<option>]]
\treorder    <config>.<section>=<position>

Options:
\t-c <path>  set the search path for config files (default: /etc/config)
\t-C <path>  set the search path for config override files (default: /var/run/uci)
\t-d <str>   set the delimiter for list values in uci show
\t-f <file>  use <file> as input instead of stdin
\t-m         when importing, merge data into an existing package
\t-n         name unnamed sections on export (default)
\t-N         don't name unnamed sections
\t-p <path>  add a search path for config change files
\t-P <path>  add a search path for config change files and use as default
\t-t <path>  set save path for config change files
\t-q         quiet mode (don't print error messages)
\t-s         force strict mode (stop on parser errors, default)
\t-S         disable strict mode
\t-X         do not use extended syntax on 'show'

"""


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str
    rc: int


def _address(text: str) -> Address:
    address = parse_address(text)
    if address is None:
        raise Fail(Err.PARSE)
    return address


def _not_an_index(text: str) -> bool:
    """cli.c refuses `delete x=<value>` when sscanf %d matches nothing (blank text is EOF)."""
    return scan_int(text) is None and bool(text.strip(_SPACE))


_EDITS: dict[str, Action] = {
    "set": Live.set,
    "delete": Live.delete,
    "rename": Live.rename,
    "reorder": Live.reorder,
    "add_list": Live.add_list,
    "del_list": Live.del_list,
}
_ALIASES = {"del": "delete", "ren": "rename"}
_SECTION_COMMANDS = {"get", "revert", *_EDITS}
_PACKAGE_COMMANDS = {"show", "changes", "export", "commit"}
_FLAGS = set("qXnNs")
# These name directories or change how files are parsed; the store has neither to change.
_UNMODELLED = set("cCfmpPSt")


class UciStore:
    """Committed packages plus staged changes, with the CLI's semantics."""

    def __init__(self, packages: dict[str, Package]) -> None:
        self._files: dict[str, str] = {}
        self._deltas: dict[str, list[Delta]] = {}
        for name, package in packages.items():
            self.put_file(name, serialize_uci(package))

    @classmethod
    def from_texts(cls, texts: dict[str, str]) -> UciStore:
        """Start from file contents as they are, comments and tabs included."""
        store = cls({})
        for name, text in texts.items():
            store.put_file(name, text)
        return store

    def put_file(self, name: str, text: str) -> None:
        """Write /etc/config/<name> directly, dropping its staged changes."""
        if not is_package_name(name):
            raise UciError(f"invalid package name '{name}'", fix="use A-Z, a-z, 0-9, _ and -")
        self._files[name] = text
        self._deltas[name] = []

    def names(self) -> list[str]:
        return sorted(self._files)

    def run(self, argv: list[str], stdin: str = "") -> CommandResult:
        """One CLI command without the leading 'uci' word."""
        cli = _Cli(self)
        rc = cli.main(argv, stdin)
        return CommandResult("".join(cli.out), "".join(cli.err), rc)

    def batch(self, text: str) -> CommandResult:
        return self.run(["batch"], stdin=text)

    def committed_text(self, package: str) -> str:
        """What /etc/config/<package> holds, byte for byte."""
        if package not in self._files:
            raise UciError(f"no package '{package}'", fix="create it with put_file first")
        return self._files[package]

    def committed(self, package: str) -> Package:
        return parse_uci(self.committed_text(package), package)

    def staged(self, package: str) -> Package:
        """Committed plus pending changes: what `uci show` sees."""
        try:
            return self._load(package).package()
        except Fail as fail:
            raise UciError(str(fail), where=f"uci {package}") from fail

    def _load(self, name: str) -> Live:
        if not is_package_name(name):
            raise Fail(Err.INVAL)
        if name not in self._files:
            raise Fail(Err.NOTFOUND)
        try:
            live = Live(parse_uci(self._files[name], name))
        except UciParseError as err:
            raise Fail(Err.PARSE, f" ({err.reason}) at line {err.line}, byte {err.byte}") from err
        for delta in self._deltas[name]:
            live.replay(delta)
        live.recording = True
        return live

    def _save(self, live: Live) -> None:
        self._deltas[live.name].extend(live.recorded)

    def _commit(self, name: str) -> None:
        live = self._load(name)
        # uci_file_commit rewrites nothing, and keeps the deltas, unless one of them applied.
        if live.applied:
            self._files[name] = format_uci(live.package(), header=False)
            self._deltas[name] = []

    def _revert(self, name: str, section: str | None, option: str | None) -> None:
        def reverted(delta: Delta) -> bool:
            return section in (None, delta.section) and option in (None, delta.option)

        self._deltas[name] = [d for d in self._deltas[name] if not reverted(d)]

    def _changes(self, name: str) -> str:
        # uci changes lists what read back from the delta file, whether or not it then applied.
        return "".join(d.change_line(name) for d in self._deltas[name] if parses(name, d))


class _Cli:
    """One uci invocation: its options, the command, and what it printed."""

    def __init__(self, store: UciStore) -> None:
        self.store = store
        self.out: list[str] = []
        self.err: list[str] = []
        self.quiet = False
        self.show_ext = True
        self.export_names = False
        self.delimiter = " "
        self.batch_line: int | None = None
        self.loaded_at = 0
        self.error_info = ""

    def main(self, argv: list[str], stdin: str) -> int:
        args = self._options(argv)
        if not args:
            self.err.append(_USAGE)
            return 0
        rc = self.command(args, stdin)
        if rc == 255:
            self.err.append(_USAGE)
        return rc

    def _options(self, argv: list[str]) -> list[str] | None:
        """musl getopt: options come first and the first other word ends them."""
        args = list(argv)
        while args and args[0].startswith("-") and len(args[0]) > 1:
            word = args.pop(0)
            if word == "--":
                break
            if word == "-d" and args:
                self.delimiter = args.pop(0)
                continue
            if not self._flags(word[1:]):
                return None
        return args

    def _flags(self, letters: str) -> bool:
        for letter in letters:
            if letter in _UNMODELLED:
                raise UciError(f"uci option -{letter} is not modelled", where="UciStore.run")
            if letter not in _FLAGS:
                return False
            self.quiet |= letter == "q"
            self.show_ext &= letter != "X"
            self.export_names = (self.export_names or letter == "n") and letter != "N"
        return True

    def command(self, args: list[str], stdin: str) -> int:
        name = _ALIASES.get(args[0].lower(), args[0].lower())
        if name == "batch" and self.batch_line is None:
            return self._batch(stdin)
        if name in _SECTION_COMMANDS:
            return self._section_command(name, args[1]) if len(args) == 2 else 255
        if name in _PACKAGE_COMMANDS:
            return self._package_commands(name, args[1:]) if len(args) <= 2 else 255
        if name == "add":
            return self._add(args[1], args[2]) if len(args) == 3 else 255
        if name == "help":
            self.err.append(_USAGE)
            return 0
        if name == "import":
            raise UciError("uci import is not modelled", where="UciStore.run")
        return 255

    def _batch(self, text: str) -> int:
        """`uci batch`: errors go to stderr and the exit status stays 0."""
        self.batch_line = 0
        for line, item in iter_batch(text):
            self.batch_line = line
            if isinstance(item, UciParseError):
                where = f" ({item.reason}) at line {self._line()}, byte {item.byte}"
                self._perror(Fail(Err.PARSE, where))
                break
            if isinstance(item, UciError):
                self._error("Too many arguments\n")
                continue
            if item[0].lower() == "exit":
                break
            if self.command(item, "") == 255:
                self._error("Unknown command\n")
        return 0

    def _resolve(self, arg: str) -> tuple[Address, Live, Target] | int:
        """The address, its loaded package and what it points at, or the exit code of a failure."""
        try:
            address = _address(arg)
            live = self._load(address.package)
            return address, live, live.target(address)
        except Fail as fail:
            return self._perror(fail)

    def _section_command(self, name: str, arg: str) -> int:
        resolved = self._resolve(arg)
        if isinstance(resolved, int):
            return resolved
        address, live, target = resolved
        if address.value is not None and name in ("get", "revert"):
            return 1
        if name == "get":
            return self._get(target)
        if name == "revert":
            section = target.entry.name if target.entry else address.section
            self.store._revert(address.package, section, address.option)
            return 0
        if name == "delete" and address.value and _not_an_index(address.value):
            return 1
        try:
            _EDITS[name](live, target)
        except Fail as fail:
            return self._perror(fail)
        self.store._save(live)
        return 0

    def _get(self, target: Target) -> int:
        if not target.complete:
            return self._perror(Fail(Err.NOTFOUND))
        entry, option = target.entry, target.address.option
        if entry is not None and option is None:
            self.out.append(f"{entry.section.type}\n")
        elif entry is not None and option is not None:
            value = entry.section.options[option]
            self.out.append(format_value(value, self.delimiter, quoted=False) + "\n")
        return 0

    def _add(self, package: str, section_type: str) -> int:
        try:
            live = self._load(package)
        except Fail as fail:
            self._perror(fail)
            return int(fail.code)
        name = live.add(section_type)
        self.store._save(live)
        self.out.append(f"{name}\n")
        return 0

    def _package_commands(self, name: str, args: list[str]) -> int:
        if args:
            return self._package_command(name, args[0])
        for package in self.store.names():
            self._package_command(name, package)
        return 0

    def _package_command(self, name: str, arg: str) -> int:
        resolved = self._resolve(arg)
        if isinstance(resolved, int):
            return resolved
        _, live, target = resolved
        if name == "changes":
            self.out.append(self.store._changes(live.name))
        elif name == "commit":
            self.store._commit(live.name)
        elif name == "export":
            self.out.append(format_uci(live.package(with_names=self.export_names), header=True))
        else:
            return self._show(live, target)
        return 0

    def _show(self, live: Live, target: Target) -> int:
        if not target.complete:
            return self._perror(Fail(Err.NOTFOUND))
        entry, option = target.entry, target.address.option
        if entry is None:
            self.out.extend(self._show_package(live))
        elif option is None:
            self.out.extend(_show_section(live.name, entry.name, entry.section, self.delimiter))
        else:
            value = entry.section.options[option]
            self.out.append(_show_option(live.name, entry.name, option, value, self.delimiter))
        return 0

    def _show_package(self, live: Live) -> list[str]:
        seen: dict[str, int] = {}
        lines: list[str] = []
        for entry in live.entries:
            section = entry.section
            index = seen.get(section.type, 0)
            seen[section.type] = index + 1
            anonymous = self.show_ext and section.name is None
            ref = f"@{section.type}[{index}]" if anonymous else entry.name
            lines.extend(_show_section(live.name, ref, section, self.delimiter))
        return lines

    def _load(self, name: str) -> Live:
        if self.batch_line is not None and name in self.store._files:
            # Reading a file replaces libuci's parse context, and with it the batch's line count.
            self.loaded_at = self.batch_line
        return self.store._load(name)

    def _line(self) -> int:
        """The line libuci's batch parse context is at: counted since a file was last read."""
        return (self.batch_line or 0) - self.loaded_at

    def _perror(self, fail: Fail) -> int:
        if self.quiet:
            return 1
        if fail.code is Err.PARSE and (fail.detail or self.batch_line is not None):
            # A parse error names the parse context's position; a batch always has one.
            self.error_info = fail.detail or f" (unknown) at line {self._line()}, byte 0"
        # uci_perror keeps this text in a static buffer and appends the newline to it, so each
        # later error of the same process ends in one more blank line (uci 66127cd).
        self.error_info += "\n"
        self.err.append(f"uci: {MESSAGES[fail.code]}{self.error_info}")
        return 1

    def _error(self, text: str) -> None:
        if not self.quiet:
            self.err.append(text)


def _show_section(package: str, ref: str, section: Section, delimiter: str) -> list[str]:
    options = section.options.items()
    return [f"{package}.{ref}={section.type}\n"] + [
        _show_option(package, ref, option, value, delimiter) for option, value in options
    ]


def _show_option(package: str, ref: str, option: str, value: Value, delimiter: str) -> str:
    return f"{package}.{ref}.{option}={format_value(value, delimiter, quoted=True)}\n"
