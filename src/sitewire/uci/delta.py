"""Staged changes: the deltas uci records, and the package a uci process holds once they replay."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum

from sitewire.uci.model import (
    Address,
    Package,
    Section,
    add_list_item,
    anonymous_name,
    is_name,
    is_type,
    parse_address,
    parse_section_ref,
    set_option,
)
from sitewire.uci.text import quote


class Err(IntEnum):
    """libuci's error numbers; `uci add` exits with them."""

    INVAL = 2
    NOTFOUND = 3
    PARSE = 5


MESSAGES = {
    Err.INVAL: "Invalid argument",
    Err.NOTFOUND: "Entry not found",
    Err.PARSE: "Parse error",
}


class Fail(Exception):
    def __init__(self, code: Err, detail: str = "") -> None:
        super().__init__(MESSAGES[code] + detail)
        self.code = code
        self.detail = detail


class _Op(Enum):
    """A staged change, valued by the prefix uci writes for it in its delta file."""

    CHANGE = ""
    REMOVE = "-"
    RENAME = "@"
    ADD = "+"
    REORDER = "^"
    LIST_ADD = "|"
    LIST_DEL = "~"


@dataclass(frozen=True)
class Delta:
    op: _Op
    section: str
    option: str | None = None
    value: str | None = None

    def change_line(self, package: str) -> str:
        """The line `uci changes` prints for this delta (cli.c uci_show_changes)."""
        path = f"{package}.{self.section}" + ("" if self.option is None else f".{self.option}")
        if self.op is _Op.REMOVE:
            return f"-{path}\n"
        op = {_Op.LIST_ADD: "+=", _Op.LIST_DEL: "-="}.get(self.op, "=")
        return f"{path}{op}{quote(self.value or '')}\n"


@dataclass(eq=False)
class _Entry:
    name: str
    section: Section


@dataclass(frozen=True)
class Target:
    address: Address
    entry: _Entry | None

    @property
    def complete(self) -> bool:
        if self.address.section is None:
            return True
        if self.entry is None:
            return False
        return self.address.option is None or self.address.option in self.entry.section.options


def scan_int(text: str) -> int | None:
    """sscanf(text, "%d"): the leading integer, or None when there is none."""
    match = re.match(r"[ \t\n\v\f\r]*([+-]?\d+)", text)
    return int(match.group(1)) if match else None


def _position(text: str) -> int:
    """strtoul() squeezed into the C int that uci_reorder_section takes."""
    number = scan_int(text) or 0
    return (number + 2**31) % 2**32 - 2**31


class Live:
    """One package as a uci process holds it: the file's sections, then the replayed deltas."""

    def __init__(self, package: Package) -> None:
        self.name = package.name
        self.entries: list[_Entry] = []
        self.allocated = 0
        self.applied = 0
        self.recorded: list[Delta] = []
        self.recording = False
        for section in package.sections:
            self._append(section)

    def package(self, *, with_names: bool = False) -> Package:
        if not with_names:
            return Package(self.name, [e.section for e in self.entries])
        return Package(
            self.name, [Section(e.section.type, e.name, e.section.options) for e in self.entries]
        )

    def find(self, name: str) -> _Entry | None:
        return next((e for e in self.entries if e.name == name), None)

    def target(self, address: Address) -> Target:
        if address.section is None:
            return Target(address, None)
        if not address.extended:
            return Target(address, self.find(address.section))
        ref = parse_section_ref(address.section)
        if ref is None:
            raise Fail(Err.INVAL)
        section_type, index = ref
        matches = [e for e in self.entries if section_type in (None, e.section.type)]
        if index < 0:
            index += len(matches)
        return Target(address, matches[index] if 0 <= index < len(matches) else None)

    def set(self, target: Target) -> None:
        address, entry = target.address, target.entry
        if (
            address.value is None
            or address.section is None
            or (entry is None and address.option is not None)
        ):
            raise Fail(Err.INVAL)
        if address.option is None and address.value and not is_type(address.value):
            raise Fail(Err.INVAL)
        if not address.value:
            # An empty value deletes what exists and quietly does nothing otherwise.
            if target.complete:
                self.delete(target)
        elif entry is None:
            self._append(Section(address.value, address.section))
            self._record(_Op.CHANGE, address.section, None, address.value)
        elif address.option is None:
            self._retype(entry, address.value)
        elif set_option(entry.section, address.option, address.value):
            self._record(_Op.CHANGE, entry.name, address.option, address.value)

    def _retype(self, entry: _Entry, section_type: str) -> None:
        if entry.section.type == section_type:
            return
        if len(entry.section.type) != len(section_type):
            # uci_set reallocates the section under the name it is known by: no longer anonymous.
            entry.section.name = entry.name
        entry.section.type = section_type
        self._record(_Op.CHANGE, entry.name, None, section_type)

    def delete(self, target: Target) -> None:
        entry, option, index = target.entry, target.address.option, target.address.value
        if not target.complete:
            raise Fail(Err.NOTFOUND)
        if entry is None:
            raise Fail(Err.INVAL)
        if option is None:
            self.entries = [e for e in self.entries if e is not entry]
            self._record(_Op.REMOVE, entry.name)
        elif index and isinstance(entry.section.options[option], tuple):
            self._delete_item(entry, option, index)
        else:
            del entry.section.options[option]
            self._record(_Op.REMOVE, entry.name, option)

    def _delete_item(self, entry: _Entry, option: str, index_text: str) -> None:
        items = entry.section.options[option]
        index = scan_int(index_text)
        if index is None or not 0 <= index < len(items):
            return
        entry.section.options[option] = (*items[:index], *items[index + 1 :])
        self._record(_Op.REMOVE, entry.name, option, index_text)

    def add_list(self, target: Target) -> None:
        entry, option, value = target.entry, target.address.option, target.address.value
        if entry is None or option is None or value is None:
            raise Fail(Err.INVAL)
        add_list_item(entry.section, option, value)
        self._record(_Op.LIST_ADD, entry.name, option, value)

    def del_list(self, target: Target) -> None:
        entry, option, value = target.entry, target.address.option, target.address.value
        if entry is None or value is None:
            raise Fail(Err.INVAL)
        items = entry.section.options.get(option) if option else None
        if option is None or not isinstance(items, tuple):
            return
        entry.section.options[option] = tuple(i for i in items if i != value)
        self._record(_Op.LIST_DEL, entry.name, option, value)

    def rename(self, target: Target) -> None:
        entry, option, value = target.entry, target.address.option, target.address.value
        if not target.complete:
            raise Fail(Err.NOTFOUND)
        if entry is None or value is None:
            raise Fail(Err.INVAL)
        self._record(_Op.RENAME, entry.name, option, value)
        if option is None:
            entry.name = value
            entry.section.name = value
            return
        options = entry.section.options
        entry.section.options = {
            (value if k == option else k): v
            for k, v in options.items()
            if k == option or k != value
        }

    def reorder(self, target: Target) -> None:
        entry, value = target.entry, target.address.value
        if entry is None or value is None:
            raise Fail(Err.NOTFOUND)
        position = _position(value)
        old = self.entries.index(entry)
        self.entries.remove(entry)
        new = max(0, min(position, len(self.entries)))
        self.entries.insert(new, entry)
        # uci_reorder_section records the move only when the section's neighbour changed.
        if new != old:
            self._record(_Op.REORDER, entry.name, None, str(position))

    def add(self, section_type: str) -> str:
        entry = self._append(Section(section_type))
        self._record(_Op.ADD, entry.name, None, section_type)
        return entry.name

    def replay(self, delta: Delta) -> None:
        """Apply one staged change as uci_parse_delta_line does when a package loads."""
        try:
            self._replay(delta)
        except Fail:
            return
        self.applied += 1

    def _replay(self, delta: Delta) -> None:
        if not parses(self.name, delta):
            raise Fail(Err.INVAL)
        address = Address(self.name, delta.section, delta.option, delta.value)
        _REPLAY[delta.op](self, self.target(address))
        if delta.op is _Op.ADD and delta.option is None:
            self._mark_anonymous(delta.section)

    def _mark_anonymous(self, name: str) -> None:
        entry = self.find(name)
        if entry is not None:
            entry.section.name = None

    def _append(self, section: Section) -> _Entry:
        self.allocated += 1
        entry = _Entry(section.name or anonymous_name(self.allocated, section.type), section)
        self.entries.append(entry)
        return entry

    def _record(
        self, op: _Op, section: str, option: str | None = None, value: str | None = None
    ) -> None:
        if self.recording:
            self.recorded.append(Delta(op, section, option, value))


def parses(package: str, delta: Delta) -> bool:
    """uci re-reads every delta line with uci_parse_ptr, so what would not read back is lost."""
    address = Address(package, delta.section, delta.option, delta.value)
    return not address.extended and _replayable(delta) and parse_address(str(address)) == address


def _replayable(delta: Delta) -> bool:
    """The shape checks of uci_parse_delta_tuple."""
    if delta.op is _Op.REORDER:
        return delta.option is None and delta.value is not None
    if delta.op is _Op.RENAME:
        return is_name(delta.value or "")
    return delta.option is not None or delta.op not in (_Op.LIST_ADD, _Op.LIST_DEL)


Action = Callable[[Live, Target], None]
_REPLAY: dict[_Op, Action] = {
    _Op.CHANGE: Live.set,
    _Op.ADD: Live.set,
    _Op.REMOVE: Live.delete,
    _Op.RENAME: Live.rename,
    _Op.REORDER: Live.reorder,
    _Op.LIST_ADD: Live.add_list,
    _Op.LIST_DEL: Live.del_list,
}
