"""What works now and breaks at the next reboot or cron run: warnings, not errors.

A boot script or cron job that turns Tailscale's accepted routes back on or changes the
WireGuard interface; the interface or a service that does not start at boot; a peer changed
live (`wg set`) and not saved, which the next ifup or reboot undoes. The probe (state.BOOT)
reads what runs at boot and from cron; a line is shown with anything key-like hidden.
"""

from __future__ import annotations

import re
import shlex

from sitewire.diagnose.doctor.model import APPLY, Finding, Live, dump_line
from sitewire.diagnose.parse.boot import BootLine
from sitewire.driver import driver_for
from sitewire.plan.model import SitePlan
from sitewire.render.openwrt import peer_section
from sitewire.strict import IPNetwork


def check_boot(live: Live, site: SitePlan) -> list[Finding]:
    boot = live.probes[site.name].boot
    out = _interface_off(live, site)
    if boot is None:
        return out
    for line in boot.lines:
        finding = _line(site, line)
        if finding is not None:
            out.append(finding)
    for name, on in sorted(boot.services.items()):
        if not on:
            out.append(_service(site, name))
    state = boot.units.get(site.interface)
    if state is not None and state not in ("enabled", "enabled-runtime", "static", "alias"):
        unit = f"wg-quick@{site.interface}"
        out.append(
            Finding(
                "boot-not-started",
                site.name,
                f"{unit} is {state}: {site.interface} runs now but does not start at boot",
                (f"$ systemctl is-enabled {unit}", state),
                f"systemctl enable {unit}   (or: {APPLY})",
                kind="warning",
            )
        )
    return out


def _line(site: SitePlan, line: BootLine) -> Finding | None:
    text = line.text
    where = f"{line.path} line {line.number}"
    evidence = (f"$ grep -n . {line.path}", f"{line.number}:{text}")
    fix = f"sed -i '{line.number}d' {shlex.quote(line.path)}   (remove that line)"
    if re.search(r"tailscale\s+(up|set)", text):
        turns_on = re.search(r"--accept-routes(?!=false)(?!=0)", text) is not None
        wanted = site.tailscale is not None and site.tailscale.accept_routes
        if not turns_on or wanted:
            return None
        return Finding(
            "boot-accepts-routes",
            site.name,
            f"{where} turns Tailscale's accepted routes back on: after the next run the "
            "remote LANs route into tailscale0, not WireGuard",
            evidence,
            fix,
            kind="warning",
        )
    if not re.search(rf"(^|[\s/'\"]){re.escape(site.interface)}(\s|$|['\"])", text):
        return None
    return Finding(
        "boot-changes-wireguard",
        site.name,
        f"{where} changes {site.interface} at boot or from cron: it undoes what sitewire set",
        evidence,
        fix,
        kind="warning",
    )


def _service(site: SitePlan, name: str) -> Finding:
    what = {
        "network": f"the network, and {site.interface} with it, does not come up at boot",
        "firewall": "firewall4 does not load at boot: no zones, no forwardings, the WAN open",
    }[name]
    return Finding(
        "boot-service-off",
        site.name,
        f"/etc/init.d/{name} is disabled: {what}",
        (f"$ /etc/init.d/{name} enabled", "(exit 1: disabled)"),
        f"/etc/init.d/{name} enable",
        kind="warning",
    )


def _interface_off(live: Live, site: SitePlan) -> list[Finding]:
    """OpenWrt: the interface runs now but netifd will not bring it up at boot."""
    facts = live.facts[site.name]
    section = facts.network.section(site.interface) if facts.network is not None else None
    if section is None or facts.wg.interface(site.interface) is None:
        return []
    for option, off in (("auto", "0"), ("disabled", "1")):
        value = section.options.get(option)
        if value == off:
            return [
                Finding(
                    "boot-not-started",
                    site.name,
                    f"{site.interface} runs now but does not start at boot ({option} '{value}')",
                    (f"$ uci get network.{site.interface}.{option}", str(value)),
                    f"uci delete network.{site.interface}.{option} && uci commit network",
                    kind="warning",
                )
            ]
    return []


def unsaved_live(
    live: Live, site: SitePlan, name: str, key: str, saved: set[IPNetwork | str]
) -> Finding | None:
    """A peer whose running AllowedIPs differ from the saved ones while the saved ones are the
    plan's: changed live (`wg set`), and the next ifup or reboot puts the saved ones back."""
    planned = set(site.peer(name).allowed_ips)
    if saved != planned:
        return None
    iface = live.facts[site.name].wg.interface(site.interface)
    running = iface.peer(key) if iface is not None else None
    if running is None:
        return None  # not running under the saved key: a wrong key, or not applied
    ips = " ".join(sorted(str(p) for p in saved))
    return Finding(
        "unsaved-live-change",
        site.name,
        f"peer {name} runs with AllowedIPs other than the saved (and planned) ones: a live "
        "change (wg set) that the next ifup or reboot undoes",
        (
            f"$ uci get network.{peer_section(name)}.allowed_ips",
            ips,
            "$ wg show all dump",
            dump_line(site.interface, running),
        ),
        f"{driver_for(site.platform).start_interface[0].format(iface=site.interface)}   "
        "(puts back the saved ones; or save the change, then add it to the spec and "
        f"run {APPLY})",
        kind="warning",
    )
