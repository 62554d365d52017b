"""What doctor reports (a Finding) and what its checks read (Live), with the lookups they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import WgPeer
from sitewire.diagnose.probes import Probes
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan
from sitewire.uci import Section

APPLY = "sitewire apply"
# firewall4 reads `enabled` as a boolean (fw4.uc parse_bool): these mean off; anything else,
# or no option, is its default, on.
FW4_OFF = ("0", "off", "false", "no")


def fw4_enabled(section: Section) -> bool:
    return section.options.get("enabled", "1") not in FW4_OFF


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # stable id, e.g. "tailscale-captures-route"
    site: str
    problem: str  # one line: what is wrong
    evidence: tuple[str, ...]  # "$ command" followed by the line(s) that show it
    fix: str  # the command to run, or `sitewire apply`
    # "error": broken now; "warning": works now, breaks at the next reboot or cron run
    kind: str = "error"

    def text(self) -> str:
        head = "warning: " if self.kind == "warning" else ""
        lines = [f"{self.site}: {head}{self.problem}"]
        lines += [f"    {line}" for line in self.evidence]
        lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        return {
            "check": self.check,
            "kind": self.kind,
            "site": self.site,
            "problem": self.problem,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Live:
    """Everything the checks read: the plan, and per site its facts and probes."""

    plan: Plan
    facts: Mapping[str, DeviceFacts]
    probes: Mapping[str, Probes]


def dump_line(iface: str, peer: WgPeer) -> str:
    endpoint = str(peer.endpoint) if peer.endpoint else "(none)"
    ips = ",".join(str(p) for p in peer.allowed_ips) or "(none)"
    keep = str(peer.keepalive) if peer.keepalive else "off"
    last = str(peer.latest_handshake or 0)
    return f"{iface}\t{peer.public_key}\t{endpoint}\t{ips}\t{last}\t{keep}"


def live_peer(live: Live, site: SitePlan, name: str) -> WgPeer | None:
    """This site's running peer for `name`, matched by the key `name` really has."""
    iface = live.facts[site.name].wg.interface(site.interface)
    if iface is None:
        return None
    other = live.facts.get(name)
    key = actual_key(live, name) if other is not None else None
    key = key or site.peer(name).public_key
    return iface.peer(key or "")


def actual_key(live: Live, site: str) -> str | None:
    facts = live.facts.get(site)
    if facts is None:
        return None
    iface = facts.wg.interface(live.plan.site(site).interface)
    return iface.public_key if iface is not None else None
