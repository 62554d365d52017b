"""SSH to routers: the only module importing asyncssh; its errors become one-line messages."""

from __future__ import annotations

from pathlib import Path

import asyncssh

from sitewire.deploy.remote import (
    ConnectionLost,
    Credentials,
    RemoteError,
    RemoteResult,
    Shell,
    Target,
)

__all__ = ["ConnectionLost", "Credentials", "RemoteError", "RemoteResult", "Session", "Target"]


class Session(Shell):
    """One SSH connection to one device; every command it runs is logged as `[#] site: cmd`."""

    def __init__(self, target: Target, conn: asyncssh.SSHClientConnection) -> None:
        self.target = target
        self._conn = conn

    async def execute(self, command: str, stdin: str | None) -> RemoteResult:
        try:
            done = await self._conn.run(command, input=stdin, check=False)
        except (OSError, asyncssh.Error) as exc:
            raise ConnectionLost(f"connection lost: {exc}", where=str(self.target)) from exc
        rc = done.exit_status if done.exit_status is not None else 255
        return RemoteResult(rc, _text(done.stdout), _text(done.stderr))

    def abort(self) -> None:
        """Drop the connection at once, without waiting on a path that may be dead."""
        self._conn.abort()

    async def close(self) -> None:
        self._conn.close()
        await self._conn.wait_closed()


def _known(known_hosts: Path, target: Target) -> bool:
    try:
        matched = asyncssh.match_known_hosts(
            str(known_hosts), target.host, target.host, target.port
        )
    except (OSError, ValueError):
        return False
    host_keys, ca_keys = matched[0], matched[1]
    return bool(host_keys or ca_keys)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def _options(target: Target, creds: Credentials, timeout: float) -> dict[str, object]:
    options: dict[str, object] = {
        "username": target.user,
        "port": target.port,
        "connect_timeout": timeout,
        "config": () if creds.use_user_config else None,
        # A router is not trusted with the person's agent, whatever ~/.ssh/config says.
        "agent_forwarding": False,
    }
    if creds.client_keys is not None:
        options["client_keys"] = [str(k) for k in creds.client_keys]
        options["agent_path"] = None
    if creds.known_hosts is not None:
        options["known_hosts"] = str(creds.known_hosts)
    return options


def client_options(
    target: Target, creds: Credentials, timeout: float = 10.0
) -> asyncssh.SSHClientConnectionOptions:
    """What asyncssh will use for `target`, ~/.ssh/config read as it reads it; refused when
    that leaves no host keys to check (`UserKnownHostsFile none`): sitewire never connects to
    a router it cannot tell from an impostor."""
    kwargs = _options(target, creds, timeout)
    options = asyncssh.SSHClientConnectionOptions(host=target.host, **kwargs)
    if options.known_hosts is None:
        raise RemoteError(
            "your ssh config turns off host keys for this host (UserKnownHostsFile none), "
            "and sitewire never connects without checking them",
            where=f"{target.name} ({target})",
            fix="remove UserKnownHostsFile none for this host from ~/.ssh/config",
        )
    return options


async def connect(target: Target, creds: Credentials, timeout: float = 10.0) -> Session:
    """Open a connection with strict host-key checking; failures name the fix."""
    client_options(target, creds, timeout)
    options = _options(target, creds, timeout)
    if creds.known_hosts is not None and not _known(creds.known_hosts, target):
        # asyncssh would only report a lost connection; say what is wrong and the fix.
        raise RemoteError(
            "host key not in known_hosts",
            where=f"{target.name} ({target})",
            fix=f"run: ssh-keyscan -p {target.port} {target.host} >> {creds.known_hosts}",
        )
    try:
        conn = await asyncssh.connect(target.host, **options)
    except asyncssh.HostKeyNotVerifiable:
        # Known but different (when the precheck found an entry), or not known at all.
        file = str(creds.known_hosts) if creds.known_hosts is not None else "~/.ssh/known_hosts"
        host = f"[{target.host}]:{target.port}" if target.port != 22 else target.host
        if creds.known_hosts is not None and _known(creds.known_hosts, target):
            raise RemoteError(
                f"host key differs from the one in {file} (reinstalled router, or not the "
                "router you think)",
                where=f"{target.name} ({target})",
                fix=f"if you trust the new key: ssh-keygen -R '{host}' -f {file}, then "
                f"ssh-keyscan -p {target.port} {target.host} >> {file}",
            ) from None
        raise RemoteError(
            f"host key not trusted: missing from {file}, or changed",
            where=f"{target.name} ({target})",
            fix=f"check it, then: ssh-keygen -R '{host}' -f {file}; "
            f"ssh-keyscan -p {target.port} {target.host} >> {file}",
        ) from None
    except asyncssh.PermissionDenied:
        raise RemoteError(
            "permission denied (publickey)",
            where=f"{target.name} ({target})",
            fix="add your public key to the router's /etc/dropbear/authorized_keys",
        ) from None
    except TimeoutError:
        raise RemoteError(
            f"no answer within {timeout:.0f} s",
            where=f"{target.name} ({target})",
            fix="check the address in the spec's ssh = and that the device is up",
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise RemoteError(f"cannot connect: {exc}", where=f"{target.name} ({target})") from exc
    return Session(target, conn)
