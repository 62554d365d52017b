"""What the switch's scripts answer: their last `ok`/`fail` line, the status, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass

from sitewire import strict
from sitewire.deploy.remote import RemoteResult
from sitewire.deploy.safety.model import (
    BASE,
    CommitInProgress,
    Outcome,
    PendingCommit,
    SafetyError,
    SwitchStatus,
)

_OUTCOMES = frozenset(o.value for o in Outcome)


@dataclass(frozen=True, slots=True)
class Answer:
    """The last `ok ...` or `fail <code> ...` line of a script's output, split in words."""

    ok: bool
    words: tuple[str, ...]


def parse_answer(stdout: str) -> Answer | None:
    for line in reversed(stdout.splitlines()):
        words = tuple(line.split())
        if words and words[0] in ("ok", "fail"):
            return Answer(words[0] == "ok", words[1:])
    return None


def parse_status(stdout: str) -> SwitchStatus:
    pending: PendingCommit | None = None
    stale: str | None = None
    commits: dict[str, Outcome] = {}
    for line in stdout.splitlines():
        words = line.split()
        match words:
            case ["lock", "pending", token, left]:
                pending = PendingCommit(token, strict.digits(left))
            case ["lock", "stale", token]:
                stale = None if token == "-" else token
            case ["commit", token, state] if state in _OUTCOMES:
                commits[token] = Outcome(state)
    return SwitchStatus(pending, stale, commits)


# Each refusal's message and fix; {text} is the rest of the answer, {quoted} its words quoted.
_MESSAGES = {
    "uci-changes": (
        "uncommitted uci changes in {quoted}",
        "look at them with 'uci changes' on the router, then 'uci commit' or 'uci revert'",
    ),
    "uci": ("'uci changes' failed: {text}", "check the router's uci and /etc/config"),
    "space": (
        "cannot back up {text}: no space or no write access in {base}",
        "free space in the router's /tmp; check with: df -h /tmp",
    ),
    "flash": (
        "cannot keep the backup for a restart in {text} (no space, or no write access), so"
        " nothing was changed",
        "free space on the router's flash (check with: df -h /etc), then run apply again",
    ),
    "unsafe": (
        "{text} is not a directory only this user can write (a symlink, another owner, or"
        " writable by others), so nothing was changed",
        "look with 'ls -ld {text}' on the router; if nothing of yours is in it, remove it"
        " and run apply again",
    ),
    "notfile": ("'{text}' is a directory, not a file", "report this as a sitewire bug"),
    "exists": ("commit {text} already exists", "run again (a new token is drawn)"),
    "launch": (
        "the revert timer did not start ({text})",
        "the router needs start-stop-daemon (BusyBox) or setsid (util-linux)",
    ),
    "lost": (
        "commit {text} does not hold the lock (backup first, or a stale lock was taken)",
        "run apply again",
    ),
    "unknown": (
        "no commit {text} on the router",
        "run 'sitewire status'; a router restarted inside the revert window boots its old"
        " configuration",
    ),
    "reverted": (
        "commit {text} was already reverted by the router's timer",
        "the router is back in its old state; run apply again",
    ),
    "reverting": (
        "commit {text} is being reverted by the router's timer",
        "wait for the revert to finish, then run apply again",
    ),
    "confirmed": (
        "commit {text} is already confirmed",
        "apply the previous spec to undo it",
    ),
    "unarmed": (
        "commit {text} was never armed, so nothing was changed",
        "run apply again; it clears the stale lock",
    ),
}


def error_for(answer: Answer | None, result: RemoteResult, site: str, step: str) -> SafetyError:
    """The one-line error for a refused or failed step; `answer` None means nonsense came back."""
    if answer is None:
        detail = result.stderr.strip() or result.stdout.strip() or f"exit {result.rc}"
        return SafetyError(
            f"unexpected answer to {step}: {detail.splitlines()[-1]!r}",
            where=site,
            fix=f"check that the router has a POSIX sh with cp, mkdir, readlink; see {BASE}/*/log",
        )
    code, rest = (answer.words[0], answer.words[1:]) if answer.words else ("", ())
    if code == "busy":
        token = rest[0] if rest else "?"
        left = rest[1] if len(rest) > 1 else "-"
        what = rest[2] if len(rest) > 2 else ""
        if what == "revert":
            state = "being reverted"
        elif strict.digits(left) is not None:
            state = f"reverts in {left} s"
        else:
            state = "being armed"
        return CommitInProgress(
            f"another apply is in progress (commit {token}, {state})",
            where=site,
            fix="wait for it to finish, or end it with: sitewire confirm / sitewire rollback",
            token=token,
        )
    text = " ".join(rest)
    if code not in _MESSAGES:
        return SafetyError(f"{step} failed: {code} {text}".strip(), where=site, fix="see the log")
    message, fix = _MESSAGES[code]
    quoted = ", ".join(repr(p) for p in rest)
    return SafetyError(
        message.format(text=text, quoted=quoted, base=BASE), where=site, fix=fix.format(text=text)
    )
