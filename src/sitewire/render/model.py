"""What rendering produces for one device: files and the commands that follow them."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from sitewire.plan import Plan
    from sitewire.plan.model import PeerPlan

from sitewire.errors import InputError


class Secrets(Protocol):
    """Where private and preshared keys come from when a render must contain them."""

    def private_key(self, name: str) -> str | None: ...

    def preshared_key(self, a: str, b: str) -> str | None: ...

    def preshared_keys_with(self, site: str, peers: Sequence[str]) -> list[str | None]:
        """preshared_key(site, peer) for each of `peers`, in order (a renderer's hot path)."""
        ...


class NoSecrets:
    """The default: keys are born on the devices at apply time and never reach the controller."""

    def private_key(self, name: str) -> str | None:
        return None

    def preshared_key(self, a: str, b: str) -> str | None:
        return None

    def preshared_keys_with(self, site: str, peers: Sequence[str]) -> list[str | None]:
        return [None] * len(peers)


@dataclass(frozen=True, slots=True)
class RenderedFile:
    path: str  # relative to the device's output directory
    content: str | bytes
    secret: bool = False  # holds a private or preshared key: written 0600, never displayed
    device_path: str | None = None  # where apply puts it on the device, if anywhere
    executable: bool = False

    @property
    def mode(self) -> int:
        if self.secret:
            return 0o600
        return 0o755 if self.executable else 0o644


STAGING = "/tmp/sitewire"  # where rendered files wait on a device before they are used


def commands_script(device: str, commands: tuple[str, ...], how: str) -> RenderedFile:
    """The commands as a script a person can run by hand: `ssh root@router sh < commands.sh`."""
    head = f"#!/bin/sh\n# sitewire: {device}. Generated. {how}\nset -e\n"
    return RenderedFile("commands.sh", head + "".join(f"{c}\n" for c in commands))


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


def peer_public_key(peer: PeerPlan) -> str:
    return require_key(
        peer.public_key,
        f"the public key of {peer.name}",
        f"{'sites' if peer.kind == 'site' else 'clients'}.{peer.name}",
        "run 'sitewire apply' to create keys on the devices, or render with --local-keys FILE",
    )


def require_key(key: str | None, what: str, where: str, fix: str) -> str:
    if key is None:
        raise InputError(f"{what} is not known yet", where=where, fix=fix)
    return key


# Stands in for a per-pair secret inside a memoized block; substituted for each site.
SECRET_SLOT = "\x00secret\x00"


# Peer texts per live plan, by id; an entry goes when its plan does. Kept here, not on the
# plan: a Plan is a frozen value, and rendering must not change it. A variant's texts are
# whole (`get`) or cut around their secret (`around_secret`, variant + ("cut",)).
_Memo = dict[tuple[str, ...], dict[int, tuple["PeerPlan", Any]]]
_MEMOS: dict[int, _Memo] = {}


def _memo(plan: Plan) -> _Memo:
    key = id(plan)
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = {}
        weakref.finalize(plan, _MEMOS.pop, key, None)
    return memo


class PeerTexts:
    """Rendered text of peers shared between sites (see Topology.is_shared), made once.

    A mesh of N sites has N distinct peer blocks but N*(N-1) peer entries; rendering each block
    once keeps rendering linear in the output. Entries are keyed by identity and keep the peer
    alive, so an id cannot be reused. One instance per plan and rendering variant.
    """

    def __init__(self, plan: Plan, variant: tuple[str, ...]) -> None:
        self._shared = plan.topology.is_shared
        memo = _memo(plan)
        self._texts = memo.setdefault(variant, {})
        self._cut = memo.setdefault((*variant, "cut"), {})

    def get(self, peer: PeerPlan, make: Callable[[PeerPlan], str]) -> str:
        hit = self._texts.get(id(peer))
        if hit is not None and hit[0] is peer:
            return cast(str, hit[1])
        text = make(peer)
        if self._shared(peer):
            self._texts[id(peer)] = (peer, text)
        return text

    def around_secret(self, peer: PeerPlan, make: Callable[[PeerPlan], str]) -> tuple[str, str]:
        """The text before and after its one SECRET_SLOT (memoized as `get`)."""
        hit = self._cut.get(id(peer))
        if hit is not None and hit[0] is peer:
            return cast(tuple[str, str], hit[1])
        before, _, after = make(peer).partition(SECRET_SLOT)
        if self._shared(peer):
            self._cut[id(peer)] = (peer, (before, after))
        return before, after
