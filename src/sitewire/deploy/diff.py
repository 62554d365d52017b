"""What an apply would change on an OpenWrt router, as lines a person can read. Pure.

The rendered batch is run against the device's current `network` and `firewall` in the uci
model, and the committed results are compared section by section, so the diff shows exactly
what the real `uci batch` will leave behind. Secret values are never shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitewire.errors import SitewireError
from sitewire.render.openwrt import OWNED_PREFIX, SECRET_OPTIONS
from sitewire.uci import Package, Section, UciStore, Value

PACKAGES = ("network", "firewall")


@dataclass(frozen=True, slots=True)
class Change:
    package: str
    section: str
    label: str
    option: str | None  # None: the whole section appears or goes
    before: Value | None
    after: Value | None

    def line(self) -> str:
        if self.option is None:
            return f"{self.label}: {'added' if self.after is not None else 'removed'}"
        return f"{self.label}: {self.option}: {self._show(self.before)} => {self._show(self.after)}"

    def _show(self, value: Value | None) -> str:
        if value is None:
            return "[none]"
        if self.option in SECRET_OPTIONS:
            return "(secret)"
        return f"[{', '.join(value)}]" if isinstance(value, tuple) else value


def planned_changes(current: Mapping[str, Package], batch: str) -> list[Change]:
    """Run `batch` on a copy of `current` and list what differs afterwards."""
    store = UciStore({name: current[name] for name in PACKAGES if name in current})
    result = store.batch(batch)
    if result.stderr.strip():
        # The device would print the same and still exit 0: refuse before touching it.
        raise SitewireError(f"the uci batch would fail: {result.stderr.strip().splitlines()[0]}")
    changes: list[Change] = []
    for name in PACKAGES:
        before = current.get(name, Package(name, []))
        changes += _package_changes(name, before, store.committed(name))
    return changes


def _package_changes(package: str, before: Package, after: Package) -> list[Change]:
    old = {s.name: s for s in before.sections if s.name}
    new = {s.name: s for s in after.sections if s.name}
    out: list[Change] = []
    for name in [*new, *(n for n in old if n not in new)]:
        label = _label(package, name, new.get(name) or old[name])
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            kinds = (a.type if a else None, b.type if b else None)
            out.append(Change(package, name, label, None, *kinds))
            if b is None:
                continue
        was = a.options if a is not None else {}
        for option in dict.fromkeys([*b.options, *was]):
            if was.get(option) != b.options.get(option):
                out.append(
                    Change(package, name, label, option, was.get(option), b.options.get(option))
                )
    return out


def _label(package: str, name: str, section: Section) -> str:
    if section.type == "interface":
        return f"interface {name}"
    if name.startswith(f"{OWNED_PREFIX}peer_"):
        return f"peer {name.removeprefix(f'{OWNED_PREFIX}peer_')}"
    if section.type == "forwarding":
        return f"forwarding {section.options.get('src')}→{section.options.get('dest')}"
    if name == f"{OWNED_PREFIX}zone":
        return f"zone {section.options.get('name')}"
    if section.type == "rule" and package == "firewall":
        return f"rule {section.options.get('name', name)}"
    if section.type in ("rule", "rule6"):
        return f"pin {section.options.get('dest')}"
    return f"{package}.{name}"


def describe(site: str, changes: list[Change]) -> list[str]:
    if not changes:
        return [f"{site}: no changes"]
    return [f"{site}: {change.line()}" for change in changes]
