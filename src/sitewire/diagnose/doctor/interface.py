"""Check 0: the WireGuard interface does not run at all, and why (netifd knows)."""

from __future__ import annotations

from sitewire.diagnose.doctor.model import APPLY, Finding, Live
from sitewire.diagnose.facts import DeviceFacts, PackageManager
from sitewire.diagnose.parse import Handler
from sitewire.driver import driver_for
from sitewire.plan.model import SitePlan


def check_interface_running(live: Live, site: SitePlan) -> list[Finding]:
    """0. The WireGuard interface does not run at all; every other check would see symptoms.

    On OpenWrt netifd says why: proto `none` with NO_DEVICE when it had no WireGuard handler at
    its start (wireguard-tools missing, or installed after netifd started: it loads handlers
    only then), else the handler's own failure. On Linux the device is simply not there."""
    facts = live.facts[site.name]
    iface = site.interface
    driver = driver_for(site.platform)
    start, *others = (command.format(iface=iface) for command in driver.start_interface)
    if driver.runs_netifd:
        return _netifd_not_running(facts, site, start, driver.restart_network or start)
    if facts.wg.interface(iface) is not None:
        return []
    return [
        Finding(
            "interface-not-running",
            site.name,
            f"{iface} does not exist: WireGuard is not running here",
            ("$ wg show all dump", f"(no {iface})"),
            f"{start}   (or: {'; or: '.join([*others, APPLY])})",
        )
    ]


def _netifd_not_running(
    facts: DeviceFacts, site: SitePlan, start: str, restart: str
) -> list[Finding]:
    """netifd's state of the interface, as a finding when it does not run."""
    iface = site.interface
    running = facts.wg.interface(iface) is not None
    state = (facts.netifd or {}).get(iface)
    if state is None:
        if running or facts.netifd is None:
            return []
        return [
            Finding(
                "interface-not-running",
                site.name,
                f"netifd knows no interface {iface}: the configuration is not there",
                (f"$ ubus call network.interface.{iface} status", "(no such interface)"),
                APPLY,
            )
        ]
    if state.up:
        return []
    status = f"proto {state.proto or '?'}" + "".join(f", {code}" for code in state.errors)
    evidence = [f"$ ubus call network.interface.{iface} status", f'"up": false ({status})']
    if state.proto == "none" and facts.handler is Handler.ABSENT:
        install = "apk add" if facts.package_manager is PackageManager.APK else "opkg install"
        problem = (
            f"{iface} does not run: wireguard-tools is not installed, so netifd has no handler"
        )
        fix = f"{install} wireguard-tools && {restart}   (or: {APPLY})"
    elif state.proto == "none":
        problem = (
            f"{iface} does not run: netifd had no WireGuard handler when it started "
            "(it loads handlers only then)"
        )
        evidence += ["$ ls /lib/netifd/proto/wireguard.*", f"(installed: {facts.handler})"]
        fix = restart
    else:
        problem = f"{iface} is down in netifd ({status}): its setup failed"
        fix = f"{start}; then logread | grep -i wireguard to see why"
    return [Finding("interface-not-running", site.name, problem, tuple(evidence), fix)]
