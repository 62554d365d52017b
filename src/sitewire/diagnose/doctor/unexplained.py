"""A planned path that fails while every hop doctor traced passes: said so, with the pings that
failed, the hops, the last one known good, what doctor saw but cannot weigh, and where it does
not look (doctor.paths runs it after every other finding)."""

from __future__ import annotations

from collections.abc import Sequence

from sitewire import strict
from sitewire.diagnose.doctor.model import Finding, Live
from sitewire.diagnose.doctor.trace import Path
from sitewire.diagnose.lans import lan_address
from sitewire.strict import IPNetwork

DOES_NOT_READ = (
    "tc qdiscs and filters (tc filter show dev {iface} ingress), iptables-legacy rules, "
    "the hosts' own firewalls, anything between the routers"
)


def which(live: Live, path: Path) -> str:
    """` (prefix)` where the destination has more than one LAN prefix: which one fails."""
    return f" ({path.prefix})" if len(live.plan.site(path.dest).lan) > 1 else ""


def _failed(live: Live, path: Path) -> list[str]:
    """What the probes saw fail on this path (empty: it works, or nothing was tried): the
    pair's overlay ping, and the LAN pings that went to the path's prefix."""
    probes, dest, prefix = live.probes[path.source], path.dest, path.prefix
    mine = next(
        (
            str(a[0])
            for p in live.plan.site(path.source).lan
            if p.version == prefix.version and (a := lan_address(live.facts.get(path.source), p))
        ),
        "?",
    )
    theirs = lan_address(live.facts.get(dest), prefix)
    out = []
    if probes.small.get(dest) is False:
        out.append(f"$ ping {live.plan.site(dest).addresses[0].ip}   → no reply (overlay)")
    if probes.ping_lan.get((dest, prefix)) is False:
        out.append(f"$ ping -I {mine} {theirs[0] if theirs else '?'}   → no reply")
    host = probes.ping_host.get(dest)
    if (
        host is not None
        and not host[1]
        and strict.address(host[0]) in prefix
        and live.probes[dest].ping_local.get(host[0])
    ):
        out.append(f"$ ping -I {mine} {host[0]}   → no reply ({dest} itself reaches it)")
    return out


def _suspects(live: Live, path: Path) -> list[str]:
    """What doctor saw on the path but cannot weigh: rules whose match it could not read,
    and netdev ingress chains on the devices the packet crosses."""
    out = []
    for hop in path.hops:
        if hop.verdict is not None:
            ruleset = live.probes[hop.site].ruleset
            out += [
                f"{hop.site}: cannot tell: {ruleset.line(r)}"
                for r in hop.verdict.uncertain
                if ruleset
            ]
    for site in path.sites:
        ruleset = live.probes[site].ruleset
        if ruleset is None:
            out.append(f"{site}: nft did not answer (the ruleset was not read)")
            continue
        for chain in ruleset.chains.values():
            if chain.family == "netdev" and chain.hook == "ingress":
                on = chain.device or "a device"
                out.append(f"{site}: netdev ingress chain {chain.where()} on {on} (not walked)")
    return out


def unexplained(live: Live, traced: Sequence[Path], found: Sequence[Finding]) -> list[Finding]:
    # an error may explain the failure; a warning (works now, breaks at the next boot) cannot
    named = {f.site for f in found if f.kind != "warning"}
    failing: dict[tuple[str, str], Path] = {}  # one finding a pair, traced on its first
    prefixes: dict[tuple[str, str], list[IPNetwork]] = {}  # failing prefix; and every one
    for p in traced:
        if _failed(live, p):
            failing.setdefault((p.source, p.dest), p)
            prefixes.setdefault((p.source, p.dest), []).append(p.prefix)
    out = []
    for (source, dest), path in failing.items():
        if named & set(path.sites) or dest in named:
            continue
        both = (dest, source) in failing
        order = list(live.plan.site_names)
        if both and order.index(dest) < order.index(source):
            continue
        known = [h for h in path.hops if h.ok]
        last = known[-1].line() if known else "(none)"
        # the prefixes, unless every one of the destination's fails
        seen = prefixes[source, dest]
        whole = set(seen) == set(live.plan.site(dest).lan)
        said = "" if whole else f" ({', '.join(map(str, seen))})"
        iface = live.plan.site(dest).interface
        out.append(
            Finding(
                "path-unexplained",
                source,
                f"LAN traffic from {source} to {dest}{said} fails"
                + (" (and back)" if both else "")
                + ", and nothing doctor reads explains it",
                (
                    *_failed(live, path),
                    "traced:",
                    *(h.line() for h in path.hops),
                    f"last hop known good: {last}",
                    *_suspects(live, path),
                ),
                "doctor does not read " + DOES_NOT_READ.format(iface=iface) + "; look there on "
                f"{' and '.join(path.sites)}, then run sitewire doctor again",
            )
        )
    return out
