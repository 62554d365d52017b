"""The `proto wireguard` handler, in its two released flavours (reference §1.3, §1.4).

classic (23.05/24.10): every setup deletes and re-creates the device and hands `wg setconf` a
temporary file; there is no renew. syncconf (25.12): the device is created only when missing,
`wg syncconf` reads the configuration from stdin and renew re-runs setup in place. The device is
the kernel module when there is one, else a wireguard-go process; deleting the link ends it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sitewire.lab.openwrt import netstate as ns
from sitewire.lab.openwrt.env import RouterError, lab_path, log, run
from sitewire.lab.openwrt.netconf import (
    Interface,
    interface_addresses,
    option,
    peer_routes,
    peers,
    wg_config,
)
from sitewire.lab.openwrt.uci_cli import run_uci
from sitewire.render.uci import Package

HANDLER = "/lib/netifd/proto/wireguard.sh"
MTU_SETTLE = 1.0  # seconds to keep re-asserting the MTU on a new wireguard-go device
UAPI_DIR = "/var/run/wireguard"  # wireguard-go's, never under SITEWIRE_LAB_ROOT
SOCKET_GRACE = 3.0
WG = "/usr/bin/wg"
# Finds the netifd interface (other than this one) whose device carries a route to an address.
OwnerLookup = Callable[[str, str], str | None]


def scan_handler() -> str | None:
    """What netifd finds in /lib/netifd/proto at start: no handler, classic or syncconf."""
    try:
        text = lab_path(HANDLER).read_text(encoding="utf-8")
    except OSError:
        return None
    return "syncconf" if "syncconf" in text else "classic"


def wg(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    binary = lab_path(WG)
    if not binary.exists():
        raise RouterError("wg is not installed", where=WG, fix="install wireguard-tools")
    return run([str(binary), *args], stdin=stdin, check=check, secret=True)


def setup(
    st: ns.IfState, iface: Interface, package: Package, flavour: str, owner: OwnerLookup
) -> Interface:
    """Bring the interface up; returns the section as finally used (a key may be generated)."""
    iface = _ensure_key(iface)
    name = iface.name
    if flavour == "classic" and ns.link_exists(name):
        _delete_link(name)
    if not ns.link_exists(name):
        _create(name)
    try:
        _configure(name, wg_config(iface.section, peers(package, name), flavour), flavour)
    except RouterError:
        # wireguard.sh: proto_setup_failed, and netifd's teardown deletes the link.
        teardown(st, name)
        raise
    run([ns.IP, "link", "set", "dev", name, "up"])
    mtu = option(iface.section, "mtu")
    if mtu:
        _set_mtu(name, mtu)
    st.mark_up(name)
    _sync_addresses(st, iface)
    _sync_routes(st, iface, package)
    if option(iface.section, "nohostroute") != "1":
        _host_routes(st, iface, owner)
    return iface


def _set_mtu(name: str, mtu: str) -> None:
    """`ip link set mtu`, held: a freshly started wireguard-go may still apply its own default
    (1420) a moment later, which a real kernel device never does."""
    deadline = time.monotonic() + MTU_SETTLE
    good = 0
    while good < 2 and time.monotonic() < deadline:
        shown = run([ns.IP, "-o", "link", "show", "dev", name], check=False).stdout
        if f" mtu {mtu} " in shown:
            good += 1
        else:
            good = 0
            run([ns.IP, "link", "set", "mtu", mtu, "dev", name])
        time.sleep(0.2)


def renew(
    st: ns.IfState, iface: Interface, package: Package, flavour: str, owner: OwnerLookup
) -> None:
    """25.12's renew_handler re-runs setup without teardown; the classic handler has none."""
    if flavour != "syncconf" or not st.up:
        return
    setup(st, iface, package, flavour, owner)


def teardown(st: ns.IfState, name: str) -> None:
    """`ip link del`: the device, its addresses and routes, and the wireguard-go process go."""
    for spec in st.host_routes:
        ns.del_route(spec)
    if ns.link_exists(name):
        _delete_link(name)
    st.up = False
    st.addresses = []
    st.routes = []
    st.host_routes = []
    st.depends_on = []


def _delete_link(name: str) -> None:
    """`ip link del`, then wait for that wireguard-go to let go of its UAPI socket: a new one
    for the same name refuses to start while the old socket still answers."""
    run([ns.IP, "link", "del", "dev", name], check=False)
    socket = Path(UAPI_DIR) / f"{name}.sock"
    deadline = time.monotonic() + SOCKET_GRACE
    while socket.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _create(name: str) -> None:
    # The kernel module where the machine has one, as on a real router; else wireguard-go.
    kernel = subprocess.run(
        [ns.IP, "link", "add", "dev", name, "type", "wireguard"],
        capture_output=True,
        check=False,
    )
    if kernel.returncode == 0:
        log(f"[#] ip link add dev {name} type wireguard")
        return
    binary = shutil.which("wireguard-go") or "/usr/bin/wireguard-go"
    log(f"[#] {binary} {name}")
    with lab_path("/var/run/lab-openwrt.log").open("a") as out:
        # wireguard-go daemonizes: the command returns once the device and its socket exist.
        rc = subprocess.run(
            [binary, name],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={k: v for k, v in os.environ.items() if k != "LOG_LEVEL"},
            check=False,
        ).returncode
    if rc != 0:
        raise RouterError(f"wireguard-go {name} exited {rc}", where=name)


def _configure(name: str, config: str, flavour: str) -> None:
    if flavour == "syncconf":
        if not _sync_like_the_kernel(name, config):
            wg("syncconf", name, "/dev/stdin", stdin=config)
        return
    folder = lab_path("/tmp/wireguard")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(config)
    try:
        wg("setconf", name, str(path))
    finally:
        path.unlink(missing_ok=True)


ZERO_KEY = "A" * 43 + "="


def _sync_like_the_kernel(name: str, config: str) -> bool:
    """`wg syncconf` on a wireguard-go device, with the kernel module's outcome; False when the
    plain command already has it (a kernel device, or a port that really changes).

    syncconf always sends the ListenPort. The kernel ignores an unchanged port (netlink.c
    `set_port`); wireguard-go closes and re-opens its UDP socket, and packets arriving meanwhile
    are lost, which a router never does. So, for an unchanged port: the peers syncconf would
    remove go with `wg set ... remove`, the rest as `wg addconf` without the port, each peer
    with the preshared key and keepalive syncconf would clear (zero key, off) made explicit.
    """
    if not (Path(UAPI_DIR) / f"{name}.sock").exists():
        return False
    port = next((v for k, _, v in _lines(config) if k == "ListenPort"), None)
    if port is None or port != wg("show", name, "listen-port").stdout.strip():
        return False
    sections: list[list[str]] = []
    for key, line, _ in _lines(config):
        if line.startswith("["):
            sections.append([line])
        elif key != "ListenPort" and sections:
            sections[-1].append(line)
    keys = []
    for section in sections:
        present = {line.split("=", 1)[0].strip() for line in section[1:]}
        if section[0] == "[Interface]":
            section += [] if "FwMark" in present else ["FwMark=off"]
            continue
        keys += [line.split("=", 1)[1].strip() for line in section if line.startswith("PublicKey")]
        section += [] if "PresharedKey" in present else [f"PresharedKey={ZERO_KEY}"]
        section += [] if "PersistentKeepalive" in present else ["PersistentKeepalive=off"]
    log(f"[#] (lab) wg syncconf {name}: ListenPort unchanged, not re-bound (as the kernel does)")
    gone = [k for k in wg("show", name, "peers").stdout.split() if k not in keys]
    if gone:
        wg("set", name, *[w for k in gone for w in ("peer", k, "remove")])
    wg("addconf", name, "/dev/stdin", stdin="\n".join("\n".join(s) for s in sections) + "\n")
    return True


def _lines(config: str) -> list[tuple[str, str, str]]:
    """(key, line, value) for each non-empty line of a wg config."""
    out = []
    for raw in config.splitlines():
        line = raw.strip()
        if line:
            key, _, value = line.partition("=")
            out.append((key.strip(), line, value.strip()))
    return out


def _ensure_key(iface: Interface) -> Interface:
    """ensure_key_is_generated: a missing key is made, set and the network package committed."""
    key = option(iface.section, "private_key")
    if key and key != "generate":
        return iface
    key = wg("genkey").stdout.strip()
    # This commits every staged change to network too, as the real handler does (§1.6).
    run_uci(["-q", "set", f"network.{iface.name}.private_key={key}"])
    run_uci(["-q", "commit", "network"])
    iface.section.options["private_key"] = key
    return iface


def _sync_addresses(st: ns.IfState, iface: Interface) -> None:
    wanted = interface_addresses(iface.section)
    for address in [a for a in st.addresses if a not in wanted]:
        ns.del_address(address, iface.name)
        st.addresses.remove(address)
    for address in wanted:
        ns.add_address(st, address, iface.name)


def _sync_routes(st: ns.IfState, iface: Interface, package: Package) -> None:
    wanted = []
    for prefix in peer_routes(peers(package, iface.name)):
        version = ipaddress.ip_network(prefix).version
        wanted.append(ns.route_spec(prefix, iface.name, iface.metric, iface.table(version)))
    for spec in [r for r in st.routes if r not in wanted]:
        ns.del_route(spec)
        st.routes.remove(spec)
    for spec in wanted:
        ns.add_route(st, spec)


def _host_routes(st: ns.IfState, iface: Interface, owner: OwnerLookup) -> None:
    """proto_add_host_dependency: a host route to each endpoint, copied from the WAN's route."""
    tunlink = option(iface.section, "tunlink")
    for address in _endpoint_addresses(iface.name):
        route = _route_to(address)
        if route is None:
            continue
        device, via = route
        holder = owner(device, iface.name)
        if holder is None or (tunlink and holder != tunlink):
            continue
        spec = ns.route_spec(address, device, "", "", via)
        run([ns.IP, ns.family(address), "route", "replace", *spec], check=False)
        st.host_routes.append(spec)
        if holder not in st.depends_on:
            st.depends_on.append(holder)


def _endpoint_addresses(name: str) -> list[str]:
    out = []
    for line in wg("show", name, "endpoints", check=False).stdout.splitlines():
        _, _, text = line.partition("\t")
        host = text.rpartition(":")[0].strip("[]")
        if host:
            out.append(host)
    return out


def _route_to(address: str) -> tuple[str, str] | None:
    words = run([ns.IP, "route", "get", address], check=False).stdout.split()
    if "dev" not in words or words[:1] in (["local"], ["unreachable"]):
        return None
    device = words[words.index("dev") + 1]
    via = words[words.index("via") + 1] if "via" in words else ""
    return device, via
