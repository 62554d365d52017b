"""Issue 9: the person's ~/.ssh/config may not turn off what sitewire's safety rests on.

A config that says `UserKnownHostsFile none` leaves asyncssh with no host keys
to check, and every router would be trusted on first sight; `ForwardAgent yes` would hand each
router the person's agent. Both are refused or overridden before any packet is sent: the
targets below are never contacted (port 9 on loopback, and the refusal comes first).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sitewire.deploy import ssh
from sitewire.deploy.ssh import Credentials, RemoteError, Target


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".ssh").mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _config(home: Path, text: str) -> None:
    path = home / ".ssh" / "config"
    path.write_text(text)
    path.chmod(0o600)


def test_a_config_without_known_hosts_is_refused(home: Path) -> None:
    _config(home, "Host router-a\n  UserKnownHostsFile none\n")
    with pytest.raises(RemoteError, match="host keys") as caught:
        asyncio.run(ssh.connect(Target("A", "router-a", 9), Credentials(), 1))
    assert caught.value.fix is not None and "UserKnownHostsFile" in caught.value.fix
    assert "\n" not in str(caught.value)


def test_agent_forwarding_is_off_whatever_the_config_says(home: Path) -> None:
    _config(home, "Host *\n  ForwardAgent yes\n")
    options = ssh.client_options(Target("A", "192.0.2.1", 9), Credentials(), 1)
    assert options.agent_forward_path is None


def test_a_plain_config_keeps_host_key_checking(home: Path) -> None:
    _config(home, "Host router-a\n  User admin\n")
    options = ssh.client_options(Target("A", "router-a", 9), Credentials(), 1)
    assert options.known_hosts != None  # noqa: E711 (() and [] mean the default file)
