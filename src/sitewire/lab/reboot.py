"""`lab reboot SITE`: a power cut and a boot of one lab router.

The cut: every process in the router's namespaces is killed (SIGTERM, then SIGKILL), its /tmp
and /run become empty tmpfs, and the kernel forgets what a running system set up: addresses,
routes, policy rules, nftables, neighbours, conntrack, forwarding, and every link the router's
programs made (bridges, tunnels). What survives is what survives a real power cut: the files
under /etc, /usr and /root (the router's flash), its ports, and the lab's own wiring outside the
router: the management address (the console cable) and a firewalled site's upstream table.
Then the boot: `python -m sitewire.lab.boot` inside the router runs what init runs (its module
docstring), a Linux router first getting the addresses its machine's network config gives it
(netifd gives an OpenWrt router its own), and dropbear starts again as `lab up` started it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass

from sitewire.lab import router as routers
from sitewire.lab.layout import MGMT, WAN, RouterLayout
from sitewire.lab.netns import (
    LabError,
    in_netns,
    in_router,
    ip,
    kill_pids,
    netns_path,
    ns_id,
    pids_in,
    router_env,
    run,
    sysctl,
)
from sitewire.lab.state import LabState
from sitewire.lab.wiring import UPSTREAM_TABLE, add_address, configure_ports, nft

# The kernel's defaults in a namespace nobody configured yet.
FORWARDING_OFF = (
    "net.ipv4.ip_forward=0",
    "net.ipv6.conf.all.forwarding=0",
    "net.ipv6.conf.default.forwarding=0",
)
BOOT_TIMEOUT = 180.0


@dataclass(frozen=True)
class Reboot:
    site: str
    killed: int  # processes the power cut ended
    seconds: float  # from the cut until SSH answers again


def lab_reboot(state: LabState, site: str) -> Reboot:
    router = state.layout.router(site)
    started = time.monotonic()
    killed = power_off(state, router)
    boot(state, router)
    routers.start_dropbear(state, router)
    return Reboot(site, killed, time.monotonic() - started)


def power_off(state: LabState, router: RouterLayout) -> int:
    """Everything a power cut takes; return how many processes it ended."""
    ids = [i for i in (ns_id(state.mnt(router.site)), ns_id(netns_path(router.netns))) if i]
    killed: set[int] = set()
    for _ in range(5):  # a dying process may have forked
        pids = pids_in(ids)
        if not pids:
            break
        killed.update(pids)
        kill_pids(pids)
    else:
        raise LabError("processes keep appearing in the router", where=f"lab reboot {router.site}")
    routers.reap_detached()
    routers.ram_disks(router.site, state.mnt(router.site), again=True)
    forget_network(router)
    return len(killed)


def ports(router: RouterLayout) -> set[str]:
    """The router's links that are hardware: they are still there after the power comes back."""
    return {"lo", WAN, MGMT, *(lan.device for lan in router.lans)}


def forget_network(router: RouterLayout) -> None:
    ns = router.netns
    links = json.loads(run(ns, ["ip", "-n", ns, "-j", "link", "show"]).stdout or "[]")
    kept = ports(router)
    for link in links:
        name = str(link.get("ifname", ""))
        if name not in kept:
            ip(ns, "link", "delete", "dev", name)
        elif name != "lo":
            ip(ns, "link", "set", "dev", name, "down")
            ip(ns, "address", "flush", "dev", name)
            ip(ns, "link", "set", "dev", name, "up")
    for family in ("-4", "-6"):
        for table in _tables(ns, family):
            ip(ns, family, "route", "flush", "table", table)
        ip(ns, family, "rule", "flush")
        ip(ns, family, "rule", "add", "priority", "32766", "lookup", "main")
    ip(ns, "-4", "rule", "add", "priority", "32767", "lookup", "default")
    ip(ns, "neigh", "flush", "all")
    _forget_nftables(router)
    if shutil.which("conntrack"):
        for family in ("ipv4", "ipv6"):
            run(ns, in_netns(ns, ["conntrack", "-F", "-f", family]), check=False)
    sysctl(ns, *FORWARDING_OFF)
    add_address(ns, MGMT, router.mgmt)


def _tables(ns: str, family: str) -> list[str]:
    """Every routing table holding a route, but the kernel's own local table."""
    out = run(ns, ["ip", "-n", ns, family, "-j", "route", "show", "table", "all"]).stdout
    tables = {str(r.get("table", "main")) for r in json.loads(out or "[]")}
    return sorted(tables - {"local"}) or ["main"]


def _forget_nftables(router: RouterLayout) -> None:
    ns = router.netns
    listed = run(ns, in_netns(ns, ["nft", "list", "tables"])).stdout
    for line in listed.splitlines():
        words = line.split()  # "table inet fw4"
        if len(words) == 3 and not (router.firewalled and words[2] == UPSTREAM_TABLE):
            nft(ns, f"delete table {words[1]} {words[2]}\n")


def boot(state: LabState, router: RouterLayout) -> None:
    if router.platform != "openwrt":
        configure_ports(state.layout, router)
    argv = [sys.executable, "-m", "sitewire.lab.boot", router.platform]
    full = in_router(state.mnt(router.site), router.netns, argv)
    run(router.site, full, env=router_env(), timeout=BOOT_TIMEOUT)
