"""UCI config text: the typed model, the grammar uci reads (files, batches) and what it writes."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sitewire.errors import UciError

Value = str | tuple[str, ...]

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_")
# C isspace() in the "C" locale; str.isspace() would also accept Unicode spaces.
_SPACE = frozenset(" \t\n\v\f\r")
# cli.c quotes a list item in `uci get` output only when it holds one of these.
_QUOTED_BY_GET = frozenset(" \t\r\n")
_KEYWORDS = {
    "p": "package",
    "package": "package",
    "c": "config",
    "config": "config",
    "o": "option",
    "option": "option",
    "l": "list",
    "list": "list",
}
# uci writes section types unquoted, so these would not read back as written.
_TYPE_UNSAFE = frozenset("'\"#;\\")
_MAX_BATCH_WORDS = 4


@dataclass
class Section:
    type: str
    name: str | None = None
    options: dict[str, Value] = field(default_factory=dict)


@dataclass
class Package:
    name: str
    sections: list[Section] = field(default_factory=list)

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def sections_of_type(self, section_type: str) -> list[Section]:
        return [s for s in self.sections if s.type == section_type]


class UciParseError(UciError):
    """Text uci itself would refuse; carries uci's own reason and position."""

    def __init__(self, reason: str, *, where: str, line: int, byte: int, detail: str = "") -> None:
        message = f"{reason} '{detail}'" if detail else reason
        super().__init__(message, where=f"{where}: line {line}", fix=_FIXES.get(reason))
        self.reason = reason
        self.line = line
        self.byte = byte

    @property
    def uci_message(self) -> str:
        return f"Parse error ({self.reason}) at line {self.line}, byte {self.byte}"


_FIXES = {
    "invalid command": "start each line with config, option, list or package, or make it a comment",
    "invalid character in name field": "names may only use A-Z, a-z, 0-9 and _",
}


def is_name(text: str) -> bool:
    return bool(text) and all(c in _NAME_CHARS for c in text)


def is_package_name(text: str) -> bool:
    return bool(text) and all(c in _NAME_CHARS or c == "-" for c in text)


def is_type(text: str) -> bool:
    return bool(text) and all(33 <= ord(c) <= 126 for c in text)


def is_text(text: str) -> bool:
    return all(ord(c) >= 32 or c in "\t\n\r" for c in text)


def quote(value: str) -> str:
    """Single-quote a value the way uci export/show do, safe for a batch line or a shell."""
    return "'" + value.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Address:
    """`package[.section[.option]][=value]`, the argument of uci get/set/delete and friends."""

    package: str
    section: str | None = None
    option: str | None = None
    value: str | None = None

    @property
    def extended(self) -> bool:
        """The section is a lookup such as `@zone[1]` rather than a name."""
        return self.section is not None and not is_name(self.section)

    def __str__(self) -> str:
        path = ".".join(p for p in (self.package, self.section, self.option) if p is not None)
        return path if self.value is None else f"{path}={self.value}"


def parse_address(text: str) -> Address | None:
    """Split an address as uci_parse_ptr does; None where uci answers "Parse error"."""
    path, has_value, value = text.partition("=")
    parts = path.split(".")
    if len(parts) > 3 or not is_package_name(parts[0]) or not is_text(value):
        return None
    option = parts[2] if len(parts) == 3 else None
    if option is not None and not is_name(option):
        return None
    section = parts[1] if len(parts) > 1 else None
    return Address(parts[0], section, option, value if has_value else None)


def parse_section_ref(ref: str) -> tuple[str | None, int] | None:
    """`@type[index]` (type optional, index may count from the end); None if uci refuses it."""
    match = re.fullmatch(r"@([^\[]*)\[([^\]]*)\]", ref)
    if match is None:
        return None
    section_type, index = match.groups()
    if section_type and not is_type(section_type):
        return None
    if index and re.fullmatch(r"[ \t\n\v\f\r]*[+-]?\d+", index) is None:
        return None
    return section_type or None, int(index or "0")


def anonymous_name(position: int, section_type: str) -> str:
    """uci's cfgXXYYYY name: allocation position in the package, then djb hash of the type."""
    digest = 5381
    for byte in section_type.encode():
        digest = (digest * 33 + byte) & 0xFFFFFFFF
    return f"cfg{position:02x}{digest & 0xFFFF:04x}"


def format_value(value: Value, delimiter: str = " ", *, quoted: bool) -> str:
    """A value as `uci show` (quoted) or `uci get` prints it; get quotes only items with spaces."""
    if isinstance(value, str):
        return quote(value) if quoted else value
    return delimiter.join(quote(i) if quoted or _QUOTED_BY_GET & set(i) else i for i in value)


def parse_uci(text: str, package: str) -> Package:
    """Read /etc/config/<package> as strict uci does; `package` lines are checked, not obeyed."""
    if not is_package_name(package):
        raise UciError(f"invalid package name '{package}'", fix="use A-Z, a-z, 0-9, _ and -")
    parser = _FileParser(Package(package))
    reader = _Reader(text, package)
    while reader.start_line():
        parser.parse_line(reader)
    return parser.package


def serialize_uci(package: Package) -> str:
    """The exact bytes `uci commit` writes for this package."""
    check_package(package)
    return format_uci(package, header=False)


def export_uci(package: Package) -> str:
    """What `uci export <package>` prints."""
    check_package(package)
    return format_uci(package, header=True)


def format_uci(package: Package, *, header: bool) -> str:
    """uci_export_package without checks: whatever uci holds, written as uci writes it."""
    head = f"package {_escape(package.name)}\n" if header else ""
    return head + "".join(_format_section(s) for s in package.sections) + "\n"


def _format_section(section: Section) -> str:
    name = "" if section.name is None else f" {quote(section.name)}"
    lines = [f"\nconfig {_escape(section.type)}{name}\n"]
    for option, value in section.options.items():
        if isinstance(value, str):
            lines.append(f"\toption {_escape(option)} {quote(value)}\n")
        else:
            lines.extend(f"\tlist {_escape(option)} {quote(item)}\n" for item in value)
    return "".join(lines)


def _escape(text: str) -> str:
    return text.replace("'", "'\\''")


def check_package(package: Package) -> None:
    """Refuse a package uci could not hold or would not read back unchanged."""
    seen: set[str] = set()
    for section in package.sections:
        where = f"{package.name}.{section.name or '@' + section.type}"
        if not is_type(section.type) or _TYPE_UNSAFE & set(section.type):
            raise UciError(f"invalid section type '{section.type}'", where=where)
        if section.name is not None:
            _check_name(section.name, where, "section name")
            if section.name in seen:
                raise UciError(f"duplicate section '{section.name}'", where=where)
            seen.add(section.name)
        for option, value in section.options.items():
            _check_option(option, value, f"{where}.{option}")


def _check_option(option: str, value: Value, where: str) -> None:
    _check_name(option, where, "option name")
    if value == "":
        raise UciError("empty option value", where=where, fix="uci drops empty options; omit it")
    items = (value,) if isinstance(value, str) else value
    if any("\0" in item for item in items):
        raise UciError("NUL byte in value", where=where)


def _check_name(name: str, where: str, what: str) -> None:
    if not is_name(name):
        raise UciError(f"invalid {what} '{name}'", where=where, fix="use only A-Z, a-z, 0-9 and _")


def set_option(section: Section, option: str, value: str) -> bool:
    """uci_set on an option: an equal string is left alone, anything else replaced where it is."""
    if section.options.get(option) == value:
        return False
    section.options[option] = value
    return True


def add_list_item(section: Section, option: str, value: str) -> None:
    """uci_add_list: a plain option becomes a list where it stands, a list grows in place."""
    current = section.options.get(option)
    if isinstance(current, tuple):
        section.options[option] = (*current, value)
        return
    section.options[option] = (value,) if current is None else (current, value)


def parse_batch(text: str) -> list[list[str]]:
    """Split `uci batch` input into argument lists; UciError where uci would print an error."""
    commands = []
    for _, item in iter_batch(text):
        if isinstance(item, UciError):
            raise item
        commands.append(item)
    return commands


def iter_batch(text: str) -> Iterator[tuple[int, list[str] | UciError]]:
    """Each batch command with its line: uci_parse_argument reads one line per command."""
    reader = _Reader(text, "batch")
    while reader.start_line():
        try:
            argv = _batch_command(reader)
        except UciParseError as err:
            yield reader.line, err
            return
        if argv:
            yield reader.line, argv


def _batch_command(reader: _Reader) -> list[str] | UciError:
    argv: list[str] = []
    while len(argv) < _MAX_BATCH_WORDS:
        arg = _next_arg(reader)
        if not arg:
            return argv
        argv.append(arg)
    # cli.c stops at the fourth word without looking further: four words are already too many.
    return UciError("too many arguments", where=f"batch: line {reader.line}")


class _Reader:
    """The line buffer uci's parser walks, refilled one fgets() line at a time."""

    def __init__(self, text: str, where: str) -> None:
        parts = text.split("\n")
        self._lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        self._next = 0
        self.where = where
        self.line = 0
        self.buf = ""
        self.pos = 0

    @property
    def char(self) -> str:
        return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def peek(self, ahead: int) -> str:
        at = self.pos + ahead
        return self.buf[at] if at < len(self.buf) else ""

    def start_line(self) -> bool:
        self.pos = 0
        return self.fill(0)

    def fill(self, offset: int) -> bool:
        self.buf = self.buf[:offset]
        if self._next >= len(self._lines):
            return False
        text = self._lines[self._next]
        self._next += 1
        self.buf += text
        if text.endswith("\n"):
            self.line += 1
        return True

    def truncate(self) -> None:
        self.buf = self.buf[: self.pos]

    def skip_space(self) -> None:
        while self.char and self.char in _SPACE:
            self.pos += 1

    def error(self, reason: str, detail: str = "") -> UciParseError:
        return UciParseError(reason, where=self.where, line=self.line, byte=self.pos, detail=detail)


def _next_arg(reader: _Reader) -> str:
    reader.skip_space()
    if reader.char == ";":
        reader.pos += 1
        return ""
    return _parse_str(reader)


def _parse_str(reader: _Reader) -> str:
    start = reader.pos
    out: list[str] = []
    ended_by_semicolon = False
    while True:
        c = reader.char
        if c in ("'", '"'):
            reader.pos += 1
            out.append(_quoted(reader, c))
        elif c == "#":
            reader.truncate()
            break
        elif c == "":
            break
        elif c == ";":
            ended_by_semicolon = True
            break
        elif c != "\\" or _backslash(reader):
            out.append(reader.char)
            reader.pos += 1
        if not reader.char or reader.char in _SPACE:
            break
    word = "".join(out)
    if reader.char and not ended_by_semicolon:
        reader.pos += 1
    elif ended_by_semicolon and reader.pos - start == len(word):
        # uci copies an unquoted word in place, so its terminating NUL lands on the ';'
        # and the rest of the line is never seen.
        reader.truncate()
    return word


def _quoted(reader: _Reader, quote_char: str) -> str:
    out: list[str] = []
    while True:
        c = reader.char
        if c == quote_char:
            reader.pos += 1
            return "".join(out)
        if c == "":
            if not reader.fill(reader.pos):
                raise reader.error(f"EOF with unterminated {quote_char}")
            continue
        if c == "\\" and quote_char == '"' and not _backslash(reader):
            continue
        out.append(reader.char)
        reader.pos += 1


def _backslash(reader: _Reader) -> bool:
    """Skip a backslash; False when it joined the next line instead of escaping a character."""
    reader.pos += 1
    c = reader.char
    if c in ("", "\n") or (c == "\r" and reader.peek(1) == "\n" and not reader.peek(2)):
        reader.fill(reader.pos)
        return False
    return True


class _FileParser:
    """uci_parse_line and the commands it dispatches, building one package."""

    def __init__(self, package: Package) -> None:
        self.package = package
        self.section: Section | None = None

    def parse_line(self, reader: _Reader) -> None:
        reader.skip_space()
        while True:
            word, end = _keyword(reader)
            if not word or word.startswith("#"):
                return
            keyword = _KEYWORDS.get(word)
            if keyword is None:
                raise reader.error("invalid command", word.strip())
            if keyword in ("option", "list") and self.section is None:
                raise reader.error("option/list command found before the first section")
            if end >= len(reader.buf):
                raise reader.error(f"{'option' if keyword == 'list' else keyword} without name")
            reader.pos = end + 1
            self._dispatch(keyword, reader)

    def _dispatch(self, keyword: str, reader: _Reader) -> None:
        if keyword == "package":
            _required(reader, is_package_name, "invalid character in name field")
            _assert_eol(reader)
        elif keyword == "config":
            self._config(reader)
        else:
            self._option(reader, as_list=keyword == "list")

    def _config(self, reader: _Reader) -> None:
        section_type = _required(reader, is_type, "invalid character in type field")
        name = _next_arg(reader)
        if name and not is_name(name):
            raise reader.error("invalid character in name field", name)
        _assert_eol(reader)
        existing = self.package.section(name) if name else None
        if existing is not None and existing.type != section_type:
            raise reader.error("section of different type overwrites prior section with same name")
        if existing is None:
            existing = Section(section_type, name or None)
            self.package.sections.append(existing)
        self.section = existing

    def _option(self, reader: _Reader, *, as_list: bool) -> None:
        assert self.section is not None
        name = _required(reader, is_name, "invalid character in name field")
        value = _next_arg(reader)
        _assert_eol(reader)
        if as_list:
            add_list_item(self.section, name, value)
        elif value:
            # While a file loads, uci_set sees an incomplete lookup, so '' never deletes.
            set_option(self.section, name, value)


def _keyword(reader: _Reader) -> tuple[str, int]:
    """The next word as strtok(" \t") sees it: a newline is part of a word, not a separator."""
    buf = reader.buf
    start = reader.pos
    while start < len(buf) and buf[start] in " \t":
        start += 1
    end = start
    while end < len(buf) and buf[end] not in " \t":
        end += 1
    return buf[start:end], end


def _required(reader: _Reader, valid: Callable[[str], bool], reason: str) -> str:
    arg = _next_arg(reader)
    if not arg:
        raise reader.error("insufficient arguments")
    if not valid(arg):
        raise reader.error(reason, arg)
    return arg


def _assert_eol(reader: _Reader) -> None:
    reader.skip_space()
    extra = _next_arg(reader)
    if extra:
        raise reader.error("too many arguments", extra)
