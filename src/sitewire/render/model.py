"""What rendering produces for one device: files and the commands that follow them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sitewire.errors import InputError


class Secrets(Protocol):
    """Where private and preshared keys come from when a render must contain them."""

    def private_key(self, name: str) -> str | None: ...

    def preshared_key(self, a: str, b: str) -> str | None: ...


class NoSecrets:
    """The default: keys are born on the devices at apply time and never reach the controller."""

    def private_key(self, name: str) -> str | None:
        return None

    def preshared_key(self, a: str, b: str) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class RenderedFile:
    path: str  # relative to the device's output directory
    content: str | bytes
    secret: bool = False  # holds a private or preshared key: written 0600, never displayed
    device_path: str | None = None  # where apply puts it on the device, if anywhere

    @property
    def mode(self) -> int:
        return 0o600 if self.secret else 0o644


@dataclass(frozen=True, slots=True)
class Rendered:
    device: str
    files: tuple[RenderedFile, ...]
    commands: tuple[str, ...] = ()  # POSIX sh run on the device after the files are in place
    notes: tuple[str, ...] = field(default=())

    def file(self, path: str) -> RenderedFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def text(self, path: str) -> str:
        content = self.file(path).content
        return content if isinstance(content, str) else content.decode()


def require_key(key: str | None, what: str, where: str, fix: str) -> str:
    if key is None:
        raise InputError(f"{what} is not known yet", where=where, fix=fix)
    return key
