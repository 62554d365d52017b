"""What a connection to a device is, without the SSH library: targets, results, their errors.

Pure, so the modules that build commands and read answers (safety, the drivers, the fake
transport of the tests) import nothing of asyncssh; `sitewire.deploy.ssh` is the one edge.
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sitewire.errors import SitewireError

log = logging.getLogger("sitewire.remote")

_TARGET = re.compile(r"(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]+\]|[^:@]+)(?::(?P<port>\d+))?")


class RemoteError(SitewireError):
    """A device could not be reached, or refused us."""


class ConnectionLost(RemoteError):
    """The connection broke, or the device stopped answering, while a command ran: what the
    command did is unknown (a restart may have cut the session it ran over)."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # the site, for messages
    host: str
    port: int = 22
    user: str = "root"

    @classmethod
    def parse(cls, name: str, text: str) -> Target:
        match = _TARGET.fullmatch(text)
        if match is None:
            raise RemoteError(f"{text!r} is not user@host[:port]", where=name)
        host = match["host"].strip("[]")
        return cls(name, host, int(match["port"] or 22), match["user"] or "root")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port != 22 else "")


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate: None fields mean the user's own ssh setup (~/.ssh, agent)."""

    client_keys: tuple[Path, ...] | None = None
    known_hosts: Path | None = None
    use_user_config: bool = True


@dataclass(frozen=True, slots=True)
class RemoteResult:
    rc: int
    stdout: str
    stderr: str


class Shell(ABC):
    """What every connection does on top of `run`: scripts on stdin, checked commands, files."""

    target: Target

    async def run(
        self, command: str, stdin: str | None = None, *, shown: str | None = None
    ) -> RemoteResult:
        """Run a POSIX sh command, logged as `[#] site: command`. Input is never logged
        (unless `shown`, a script without secrets); commands must not contain secrets."""
        text = shown if shown is not None else command + (" <<(input)" if stdin else "")
        log.info("[#] %s: %s", self.target.name, text)
        return await self.execute(command, stdin)

    @abstractmethod
    async def execute(self, command: str, stdin: str | None) -> RemoteResult:
        """The transport's part of `run`: send it, return its status and output."""

    async def script(self, text: str, input: str | None = None) -> RemoteResult:
        """Run a shell script sent on stdin, not on the command line: dropbear refuses a command
        over ~9000 bytes, and a hub's scripts grow with its peers. Parsed whole before it runs
        (one compound command), with /dev/null as its stdin, so no command in it can eat the
        rest of the script. `input` (which may hold secrets, and is never logged) becomes the
        script's own stdin, a here-document inside what is sent."""
        if input is None:
            body = "{\n" + text.rstrip("\n") + "\n} </dev/null\n"
            return await self.run("sh -s", body, shown=f"sh -s <<'EOF'\n{body}EOF")
        end = f"SITEWIRE_{secrets.token_hex(8)}"
        if not input.endswith("\n") or f"\n{end}\n" in f"\n{input}":
            raise ValueError("script input must end with a newline and not hold its delimiter")
        head = "{\n{\n" + text.rstrip("\n") + f"\n}} <<'{end}'\n"
        tail = f"{end}\n}} </dev/null\n"
        return await self.run(
            "sh -s", head + input + tail, shown=f"sh -s <<'EOF'\n{head}(input){tail}EOF"
        )

    async def check(self, command: str, stdin: str | None = None) -> str:
        result = await self.run(command, stdin)
        if result.rc != 0:
            detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.rc}"]
            raise RemoteError(
                f"{command.split()[0]} failed: {detail[0]}", where=f"{self.target.name}"
            )
        return result.stdout

    async def put(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Write a file the way BusyBox allows (dropbear has no sftp): cat into a temp, then mv."""
        text = content if isinstance(content, str) else content.decode()
        quoted = shlex.quote(path)
        tmp = shlex.quote(f"{path}.sitewire-tmp")
        await self.check(
            f"mkdir -p $(dirname {quoted}) && umask 077 && cat > {tmp} && "
            f"chmod {mode:o} {tmp} && mv -f {tmp} {quoted}",
            text,
        )

    @abstractmethod
    def abort(self) -> None:
        """Drop the connection at once, without waiting on a path that may be dead."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Shell:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
