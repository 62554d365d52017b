"""The uci data model: packages, sections and values, the names uci accepts, addresses into them."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from sitewire.errors import UciError

Value = str | tuple[str, ...]

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_")
# uci writes section types unquoted, so these would not read back as written.
_TYPE_UNSAFE = frozenset("'\"#;\\")


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

    def index(self, section: Section) -> int:
        """The section's position among the sections of its type (uci's `@type[index]`)."""
        return next(i for i, s in enumerate(self.sections_of_type(section.type)) if s is section)

    def ref(self, section: Section) -> str:
        """How `uci` names the section: its name, or `@type[index]` if it is anonymous."""
        return section.name or f"@{section.type}[{self.index(section)}]"


def words(value: Value | None) -> list[str]:
    """A list option's items, or an option's space-separated words (fw4 reads both alike)."""
    if value is None:
        return []
    return list(value) if isinstance(value, tuple) else value.split()


def is_name(text: str) -> bool:
    return bool(text) and all(c in _NAME_CHARS for c in text)


def is_package_name(text: str) -> bool:
    return bool(text) and all(c in _NAME_CHARS or c == "-" for c in text)


def is_type(text: str) -> bool:
    return bool(text) and all(33 <= ord(c) <= 126 for c in text)


def is_text(text: str) -> bool:
    return all(ord(c) >= 32 or c in "\t\n\r" for c in text)


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
