"""A fake transport for deploy's orchestration: devices that replay recorded router output.

Each `FakeDevice` answers the fact-gathering script with recorded sections (the lab's
captures, or real UCI files framed as the collector frames them), keeps the little state the
revert switch's answers depend on (which commit holds the lock), and records every command it
is sent, in order, with the session it came on. Faults are injected per device: a refusal at
arm, a dropped session at a chosen step, a verification that finds the Tailscale trap.

This is for the ORDER and DECISIONS of deploy (listeners first, release, rollback, resume);
what the commands do on a real router is the lab's business (tests/lab).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sitewire.deploy.remote import ConnectionLost, Credentials, RemoteResult, Shell, Target
from sitewire.diagnose.parse import ScriptSection
from sitewire.keys import generate_private_key, public_key

_SAFETY = re.compile(r"sh -s -- sitewire-(\w+)(?: ([0-9a-f]+))?$")
_SECTION_CALL = re.compile(r"^section (\w+)$", re.MULTILINE)
_HEREDOC = re.compile(
    r"\{\n(?P<script>.*)\n\} <<'(?P<end>SITEWIRE_[0-9a-f]+)'\n(?P<input>.*)(?P=end)", re.DOTALL
)
_GUARD_TOKEN = re.compile(r"!= pending-([0-9a-f]+) \]")


@dataclass(frozen=True, slots=True)
class Sent:
    site: str
    session: int  # 1 for the first connection to the device, 2 for the next, ...
    kind: str  # facts, safety:<verb>, key, psk, install, probe, guard, push, step, verify, put
    command: str  # the command without the revert guard; scripts without their braces
    stdin: str | None = None  # what went on its stdin (a uci batch, a key)


Fault = Callable[[Sent], RemoteResult | None]


def frame(sections: Mapping[str, ScriptSection]) -> str:
    """Sections as the collector's script prints them."""
    return "".join(
        f"@@sitewire begin {s.name}\n{s.stdout}\n@@sitewire stderr {s.name}\n"
        f"{s.stderr}\n@@sitewire end {s.name} {s.rc}\n"
        for s in sections.values()
    )


@dataclass
class FakeDevice:
    name: str
    sections: Mapping[str, ScriptSection]  # what the fact script's sections print
    route_dev: str = "wg0"  # the device `ip route get` names for another site's LAN
    faults: list[Fault] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    lock: str | None = None
    commits: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # kind -> seconds each takes
    pubkey: str | None = None
    sessions: int = 0

    def answer(self, session: int, command: str, stdin: str | None) -> RemoteResult:
        sent = self._classify(session, command, stdin)
        self.sent.append(sent)
        for fault in self.faults:
            injected = fault(sent)
            if injected is not None:
                return injected
        return self._respond(sent, command, stdin)

    def _classify(self, session: int, command: str, stdin: str | None) -> Sent:
        text = command
        if command == "sh -s" and stdin is not None:
            text = stdin.removeprefix("{\n").removesuffix("\n} </dev/null\n")
            # A script with its own input (Shell.script's here-document): the input is its stdin.
            if found := _HEREDOC.fullmatch(text):
                text, stdin = found["script"], found["input"]
        text = re.sub(r"^if \[ \"\$\(readlink .*?fi\n", "", text, flags=re.DOTALL)
        if "@@sitewire begin" in text:
            kind = "facts"
        elif match := _SAFETY.search(command):
            kind = f"safety:{match[1]}"
        elif "wg genkey" in text:
            kind = "key"
        elif "wg genpsk" in text or "sha256sum" in text or "read -r psk" in text:
            kind = "psk"
        elif "opkg install" in text or "apk add" in text or "apt-get install" in text:
            kind = "install"
        elif "get_proto_handlers" in text:
            kind = "probe"
        elif "ping overlay" in text:
            kind = "verify"
        elif text == "true":
            kind = "guard"  # the revert timer's check before a write that has no guard of its own
        elif text.startswith("uci batch"):
            kind = "push"
        elif "cat > " in text and "sitewire-tmp" in text:
            kind = "put"
        else:
            kind = "step"
        return Sent(self.name, session, kind, text, stdin)

    def _respond(self, sent: Sent, command: str, stdin: str | None) -> RemoteResult:
        guard = _GUARD_TOKEN.search(command if stdin is None or command != "sh -s" else stdin)
        if guard is not None and (self.lock != guard[1] or self.commits.get(guard[1]) != "pending"):
            return RemoteResult(97, "", f"commit {guard[1]}: no longer pending\n")
        match sent.kind:
            case "facts":
                return RemoteResult(0, self._facts(sent.command), "")
            case kind if kind.startswith("safety:"):
                return self._safety(kind.removeprefix("safety:"), command)
            case "key":
                # A key is made when there is none, or always by the replacing script (rotate),
                # which has no "unless one is held" test.
                replacing = "if [ -z " not in sent.command and "[ -s " not in sent.command
                if self.pubkey is None or replacing:
                    self.pubkey = public_key(generate_private_key())
                return RemoteResult(0, self.pubkey + "\n", "")
            case "psk":
                if "wg genpsk" in sent.command:
                    return RemoteResult(0, public_key(generate_private_key()) + "\n", "")
                return RemoteResult(1 if "sha256sum" in sent.command else 0, "", "")
            case "probe":
                return RemoteResult(0, '{ "wireguard": { } }\n', "")
            case "verify":
                return RemoteResult(0, self._evidence(sent.command), "")
        return RemoteResult(0, "", "")

    def _facts(self, script: str) -> str:
        names = _SECTION_CALL.findall(script)
        out = {}
        for name in names:
            if name in self.sections:
                out[name] = self.sections[name]
            elif name == "sw_pubkey":
                out[name] = ScriptSection(name, 0, self.pubkey or "", "")
            elif name.startswith("sw_file"):
                out[name] = ScriptSection(name, 3, "", "")
            elif name.startswith("sw_"):  # sw_psk, sw_cron: nothing held yet
                out[name] = ScriptSection(name, 0, "", "")
            else:  # not recorded: as a router without the command answers
                out[name] = ScriptSection(name, 127, "", f"sh: {name}: not found")
        return frame(out)

    def _safety(self, verb: str, command: str) -> RemoteResult:
        token = command.split()[-1]
        if verb == "status":
            lock = f"lock pending {self.lock} 250" if self.lock else "lock none"
            commits = "".join(f"commit {t} {s}\n" for t, s in self.commits.items())
            return RemoteResult(0, f"{lock}\n{commits}ok status\n", "")
        if verb == "arm":
            if self.lock is not None:
                return RemoteResult(3, f"fail busy {self.lock} 200 -\n", "")
            self.lock, self.commits[token] = token, "pending"
            return RemoteResult(0, f"ok backup {token} 3\nok armed {token} 300\n", "")
        if verb in ("confirm", "rollback"):
            done = "confirmed" if verb == "confirm" else "reverted"
            held = self.commits.get(token)
            if held == done:  # idempotent, as the device's own scripts are
                return RemoteResult(0, f"ok {done} {token}\n", "")
            if held not in ("pending", "abandoned"):  # an abandoned one's timer is relaunched
                return RemoteResult(3, f"fail {held or 'unknown'} {token}\n", "")
            self.commits[token] = done
            self.lock = None
            return RemoteResult(0, f"ok {done} {token}\n", "")
        raise AssertionError(f"unknown safety verb {verb}")

    def _evidence(self, script: str) -> str:
        lines = [f"hs {p} ok" for p in re.findall(r'echo "hs (\S+) ok"', script)]
        for peer in re.findall(r"echo 'ping overlay (\S+) ok'", script):
            lines.append(f"ping overlay {peer} ok")
        for peer in re.findall(r"echo 'ping lan (\S+) ok'", script):
            lines.append(f"ping lan {peer} ok")
        for peer in re.findall(r'echo "route (\S+) ', script):
            lines.append(f"route {peer} 192.0.2.1 from 192.0.2.254 dev {self.route_dev} uid 0")
        return "\n".join(lines) + "\n"

    def commands(self, kind: str | None = None) -> list[str]:
        return [s.command for s in self.sent if kind is None or s.kind == kind]


class FakeSession(Shell):
    def __init__(
        self, device: FakeDevice, target: Target, number: int, journal: list[Sent]
    ) -> None:
        self.device = device
        self.journal = journal
        self.target = target
        self.number = number
        self.dead = False

    async def execute(self, command: str, stdin: str | None) -> RemoteResult:
        if self.dead:
            raise ConnectionLost(
                "connection lost: the fake session was cut", where=self.target.name
            )
        result = self.device.answer(self.number, command, stdin)
        sent = self.device.sent[-1]
        if sent.kind in self.device.delays:  # a slow device: the journal has it when it ends
            await asyncio.sleep(self.device.delays[sent.kind])
        self.journal.append(sent)
        if result.rc == 255 and result.stderr == "cut":
            self.dead = True
            raise ConnectionLost("connection lost: cut mid-step", where=self.target.name)
        return result

    def abort(self) -> None:
        self.dead = True

    async def close(self) -> None:
        self.dead = True


CUT = RemoteResult(255, "", "cut")  # a fault returning this drops the session mid-command


@dataclass
class FakeNetwork:
    devices: dict[str, FakeDevice]
    journal: list[Sent] = field(default_factory=list)  # every command, across devices, in order
    unreachable: set[str] = field(default_factory=set)  # sites whose next dials fail

    async def dial(self, target: Target, creds: Credentials, timeout: float = 10.0) -> Shell:
        if target.name in self.unreachable:
            raise ConnectionLost("no answer (fake)", where=target.name)
        device = self.devices[target.name]
        device.sessions += 1
        return FakeSession(device, target, device.sessions, self.journal)

    def order(self, kind: str) -> list[str]:
        """Which sites got a command of `kind`, in the order they got it (across devices)."""
        return [s.site for s in self.journal if s.kind == kind]
