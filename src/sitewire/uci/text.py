"""UCI config text: the grammar uci reads (config files, batch input) and the bytes it writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sitewire.errors import UciError
from sitewire.uci.model import (
    Package,
    Section,
    Value,
    add_list_item,
    check_package,
    is_name,
    is_package_name,
    is_type,
    set_option,
)

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
_MAX_BATCH_WORDS = 4


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


def quote(value: str) -> str:
    """Single-quote a value the way uci export/show do, safe for a batch line or a shell."""
    return "'" + value.replace("'", "'\\''") + "'"


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
