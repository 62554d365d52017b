"""What a device says it is: /etc/openwrt_release and /etc/os-release."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from sitewire.diagnose.parse.base import UnexpectedOutput, parse_number


@dataclass(frozen=True, slots=True)
class OpenWrtRelease:
    release: str  # 24.10.0, 25.12.1, SNAPSHOT
    revision: str
    target: str
    arch: str
    description: str

    @property
    def series(self) -> str:
        """24.10 for 24.10.2; SNAPSHOT stays SNAPSHOT."""
        parts = self.release.split(".")
        numbered = len(parts) >= 2 and parse_number(parts[0]) is not None
        return ".".join(parts[:2]) if numbered else self.release


@dataclass(frozen=True, slots=True)
class OsRelease:
    id: str
    version_id: str
    name: str
    pretty_name: str
    id_like: tuple[str, ...] = ()


def parse_openwrt_release(text: str) -> OpenWrtRelease:
    """/etc/openwrt_release: shell assignments `DISTRIB_RELEASE='24.10.0'`."""
    values = _assignments(text)
    if "DISTRIB_RELEASE" not in values:
        raise UnexpectedOutput("no DISTRIB_RELEASE")
    return OpenWrtRelease(
        release=values["DISTRIB_RELEASE"],
        revision=values.get("DISTRIB_REVISION", ""),
        target=values.get("DISTRIB_TARGET", ""),
        arch=values.get("DISTRIB_ARCH", ""),
        description=values.get("DISTRIB_DESCRIPTION", ""),
    )


def parse_os_release(text: str) -> OsRelease:
    """/etc/os-release (os-release(5))."""
    values = _assignments(text)
    if "ID" not in values and "NAME" not in values:
        raise UnexpectedOutput("neither ID nor NAME")
    return OsRelease(
        id=values.get("ID", "linux"),
        version_id=values.get("VERSION_ID", ""),
        name=values.get("NAME", "Linux"),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", "Linux")),
        id_like=tuple(values.get("ID_LIKE", "").split()),
    )


def _assignments(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#") or not key.isidentifier():
            continue
        try:
            values[key] = " ".join(shlex.split(raw))
        except ValueError:
            values[key] = raw.strip("'\"")
    return values
