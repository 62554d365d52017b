"""What a device has installed: `opkg list-installed` and `apk list --installed`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sitewire.diagnose.parse.base import UnexpectedOutput


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class InstalledPackages:
    packages: tuple[InstalledPackage, ...] = ()

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.packages)

    def __len__(self) -> int:
        return len(self.packages)

    def version(self, name: str) -> str | None:
        return next((p.version for p in self.packages if p.name == name), None)


def parse_opkg_installed(text: str) -> InstalledPackages:
    """`opkg list-installed`: `name - version` per line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, rest = line.partition(" - ")
        if not sep or not name.strip():
            raise UnexpectedOutput(f"line {number}: {line.strip()!r} is not 'name - version'")
        found.append(InstalledPackage(name.strip(), rest.split(" - ")[0].strip()))
    return InstalledPackages(tuple(found))


# apk joins name and version with '-'; the version is the shortest tail that reads as one.
_APK_ENTRY = re.compile(r"(?P<name>\S+?)-(?P<version>\d[^-\s]*(?:-r\d+)?)")


def parse_apk_installed(text: str) -> InstalledPackages:
    """`apk list --installed`: `name-version arch {origin} (license) [installed]` per line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _APK_ENTRY.fullmatch(line.split()[0])
        if match is None:
            raise UnexpectedOutput(f"line {number}: {line.split()[0]!r} is not name-version")
        found.append(InstalledPackage(match["name"], match["version"]))
    return InstalledPackages(tuple(found))
