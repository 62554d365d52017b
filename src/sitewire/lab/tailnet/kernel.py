"""Policy rules, table 52 and tailscale0's addresses in the router's network namespace, via `ip`."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from sitewire.lab.tailnet.base import INTERFACE, MTU, Prefix, TailnetError
from sitewire.lab.tailnet.routing import TABLE, Rule

FAMILIES = (("-4", 4), ("-6", 6))


def _ip_binary() -> str:
    # A shell started by dropbear may lack /usr/sbin in PATH.
    return shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin") or "ip"


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([_ip_binary(), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise TailnetError(
            f"ip {' '.join(args)}: {proc.stderr.strip() or f'exit {proc.returncode}'}"
        )
    return proc


def ip_json(*args: str) -> list[dict[str, Any]]:
    """`ip -j ...` parsed; a table or device that does not exist shows as nothing."""
    proc = run_ip("-j", *args, check=False)
    if proc.returncode != 0:
        if "does not exist" in proc.stderr:
            return []
        raise TailnetError(f"ip -j {' '.join(args)}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout or "[]")
    return [entry for entry in data if isinstance(entry, dict)]


def ipv4_rules() -> list[dict[str, Any]]:
    return ip_json("-4", "rule", "show")


def ensure_rules(rules: Sequence[Rule]) -> None:
    """Add each rule once per family; a rule already there is left alone (idempotent)."""
    for family, _ in FAMILIES:
        shown = ip_json(family, "rule", "show")
        for rule in rules:
            if not any(rule.matches(entry) for entry in shown):
                run_ip(family, "rule", "add", *rule.ip_args())


def remove_rules(rules: Sequence[Rule]) -> None:
    for family, _ in FAMILIES:
        shown = ip_json(family, "rule", "show")
        for rule in rules:
            for _ in range(sum(rule.matches(entry) for entry in shown)):
                run_ip(family, "rule", "del", *rule.ip_args())


def _route_prefix(entry: dict[str, Any], version: int) -> Prefix | None:
    dst = str(entry.get("dst", ""))
    if dst == "default":
        return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
    try:
        return ipaddress.ip_network(dst)
    except ValueError:
        return None


def sync_table(routes: Sequence[Prefix], throws: Sequence[Prefix] = ()) -> None:
    """Make table 52 hold exactly `routes`, each `dev tailscale0`, and a `throw` route for each
    of `throws`, touching only what differs."""
    for family, version in FAMILIES:
        wanted = {r for r in routes if r.version == version}
        thrown = {r for r in throws if r.version == version}
        present: set[Prefix] = set()
        for entry in ip_json(family, "route", "show", "table", str(TABLE)):
            prefix = _route_prefix(entry, version)
            kind = str(entry.get("type", "unicast"))
            if (prefix in wanted and entry.get("dev") == INTERFACE and kind == "unicast") or (
                prefix in thrown and kind == "throw"
            ):
                present.add(prefix)
                continue
            typed = [kind] if "type" in entry else []
            run_ip(family, "route", "del", *typed, str(entry.get("dst")), "table", str(TABLE))
        for route in sorted(wanted - present, key=str):
            # Scope global, as tailscaled's netlink call leaves it: `ip route show table 52`
            # then prints `100.100.100.100 dev tailscale0` without `scope link`.
            table = ["table", str(TABLE), "scope", "global"]
            run_ip(family, "route", "replace", str(route), "dev", INTERFACE, *table)
        for route in sorted(thrown - present, key=str):
            run_ip(family, "route", "replace", "throw", str(route), "table", str(TABLE))


def local_prefixes() -> tuple[Prefix, ...]:
    """The subnets of the node's own interfaces (not tailscale0, loopback or link-local)."""
    out: list[Prefix] = []
    for link in ip_json("addr", "show"):
        if link.get("ifname") in (INTERFACE, "lo"):
            continue
        for info in link.get("addr_info", []):
            if info.get("scope") == "global":
                local = f"{info['local']}/{info['prefixlen']}"
                out.append(ipaddress.ip_network(local, strict=False))
    return tuple(dict.fromkeys(out))


def flush_table() -> None:
    for family, _ in FAMILIES:
        run_ip(family, "route", "flush", "table", str(TABLE), check=False)


def link_exists() -> bool:
    return bool(ip_json("link", "show", "dev", INTERFACE))


def delete_link() -> None:
    run_ip("link", "del", "dev", INTERFACE, check=False)


def configure_link(addresses: Sequence[Prefix]) -> None:
    """MTU 1280, exactly the tailnet addresses (link-local left to the kernel), link up."""
    run_ip("link", "set", "dev", INTERFACE, "mtu", str(MTU))
    shown = ip_json("addr", "show", "dev", INTERFACE)
    present: set[Prefix] = set()
    for info in shown[0].get("addr_info", []) if shown else []:
        prefix = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
        if prefix in addresses and info.get("prefixlen") == prefix.max_prefixlen:
            present.add(prefix)
        elif info.get("scope") != "link":
            run_ip("addr", "del", f"{info['local']}/{info['prefixlen']}", "dev", INTERFACE)
    for address in addresses:
        if address not in present:
            nodad = ["nodad"] if address.version == 6 else []
            run_ip("addr", "add", str(address), "dev", INTERFACE, *nodad)
    run_ip("link", "set", "dev", INTERFACE, "up")
