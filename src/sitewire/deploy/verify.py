"""Pure parts of verifying a site after the change: the script it runs, and the judgement.

The script carries other routers' facts (their LAN addresses and devices): each goes in
shell-quoted, so what one router said is only ever an argument on another (issue 9).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from sitewire.deploy.problems import Kind, Problem
from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.lans import lan_address, lan_host
from sitewire.plan import Plan


def verify_script(
    plan: Plan,
    name: str,
    facts: Mapping[str, DeviceFacts | None],
    timeout: float,
    first: str | None = None,
) -> str:
    """`first`: run before the probes (live.fresh_start_script)."""
    q = shlex.quote
    site = plan.site(name)
    iface = q(site.interface)
    lines = [
        "now() { cut -d. -f1 /proc/uptime; }",
        f"end=$(( $(now) + {int(timeout)} ))",
        # Any reply before the deadline counts: a path through a relay may need a second try.
        'reach() { while :; do ping -c 1 -W 1 "$@" >/dev/null 2>&1 && return 0; '
        '[ "$(now)" -ge "$end" ] && return 1; done; }',
    ]
    if first is not None:
        lines.append(first)
    for peer in site.peers:
        if peer.kind != "site" or peer.public_key is None:
            continue
        other = plan.site(peer.name)
        target = q(str(other.addresses[0].ip))
        key = q(peer.public_key)
        lines += [
            "while :; do",
            f"  t=$(wg show {iface} latest-handshakes | awk -v k={key} '$1 == k {{ print $2 }}')",
            f'  if [ -n "$t" ] && [ "$t" != 0 ]; then echo "hs {peer.name} ok"; break; fi',
            f'  if [ "$(now)" -ge "$end" ]; then echo "hs {peer.name} none"; break; fi',
            f"  ping -c 1 -W 1 {target} >/dev/null 2>&1 || sleep 1",
            "done",
        ]
    local = next((a for p in site.lan if (a := lan_address(facts.get(name), p))), None)
    for other_name in plan.site_names:
        if other_name == name:
            continue
        other = plan.site(other_name)
        target = q(str(other.addresses[0].ip))
        lines.append(
            f"reach {target} && echo 'ping overlay {other_name} ok' "
            f"|| echo 'ping overlay {other_name} fail'"
        )
        remote = next((a for p in other.lan if (a := lan_address(facts.get(other_name), p))), None)
        if local is None or remote is None:
            continue
        src, dev = local
        dst = q(str(remote[0]))
        host = lan_host(next(p for p in site.lan if src in p), src)
        lines.append(
            f"reach -I {q(str(src))} {dst} && echo 'ping lan {other_name} ok' "
            f"|| echo 'ping lan {other_name} fail'"
        )
        lines.append(
            f'echo "route {other_name} '
            f'$(ip route get {dst} from {q(host)} iif {q(dev)} 2>&1 | head -n 1)"'
        )
    return "\n".join(lines) + "\n"


@dataclass
class Evidence:
    reached: bool = False  # the new SSH connection worked
    failed: Problem | None = None  # reached, but could not be verified (e.g. already reverted)
    handshakes: dict[str, bool] = field(default_factory=dict)
    overlay: dict[str, bool] = field(default_factory=dict)
    lan: dict[str, bool] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)


def parse_evidence(stdout: str) -> Evidence:
    ev = Evidence(reached=True)
    for line in stdout.splitlines():
        words = line.split()
        match words:
            case ["hs", peer, state]:
                ev.handshakes[peer] = state == "ok"
            case ["ping", "overlay", peer, state]:
                ev.overlay[peer] = state == "ok"
            case ["ping", "lan", peer, state]:
                ev.lan[peer] = state == "ok"
            case ["route", peer, *rest]:
                ev.routes[peer] = " ".join(rest)
    return ev


def judge(plan: Plan, name: str, ev: Evidence, healthy: set[str]) -> list[Problem]:
    """What is wrong with `name`, from its own evidence; empty = confirm it."""
    if not ev.reached:
        return [Problem(Kind.UNREACHABLE, "no new SSH connection after the change (locked out?)")]
    if ev.failed is not None:
        return [ev.failed]
    iface = plan.site(name).interface
    out: list[Problem] = []
    for peer, dev in ev.routes.items():
        if f" dev {iface}" not in f" {dev} ":
            out.append(
                Problem(Kind.VERIFY, f"a LAN host's packet to {peer} would not use {iface}: {dev}")
            )
    # Every site that passed its own checks must answer, on its overlay address and its LAN
    # address: a site that cannot say the same of itself is not a fair judge of others.
    others = [o for o in plan.site_names if o != name and o in healthy]
    lost = [o for o in others if ev.overlay.get(o) is False]
    if lost:
        out.append(Problem(Kind.VERIFY, f"cannot reach {', '.join(lost)} across the tunnel"))
    lan = [o for o in others if o not in lost and ev.lan.get(o) is False]
    if lan:
        out.append(
            Problem(
                Kind.VERIFY, f"cannot reach the LAN of {', '.join(lan)} from its own LAN address"
            )
        )
    return out


def evidence_lines(ev: Evidence) -> list[str]:
    out = [f"handshake with {p}: {'yes' if ok else 'none'}" for p, ok in ev.handshakes.items()]
    out += [f"ping {p} overlay: {'ok' if ok else 'FAILED'}" for p, ok in ev.overlay.items()]
    out += [
        f"ping {p} LAN from LAN address: {'ok' if ok else 'FAILED'}" for p, ok in ev.lan.items()
    ]
    return out
