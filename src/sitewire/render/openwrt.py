"""OpenWrt: `network` and `firewall` sections as an idempotent `uci batch`; packages; commands."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping

from sitewire.plan import Plan
from sitewire.plan.model import WATCHDOG_CRON, PeerPlan, SitePlan
from sitewire.render.model import (
    SECRET_SLOT,
    STAGING,
    PeerTexts,
    Rendered,
    RenderedFile,
    Secrets,
    commands_script,
    peer_public_key,
)
from sitewire.render.quote import uci_comment, uci_value
from sitewire.uci import Package, quote

OWNED_PREFIX = "sw_"  # every section sitewire owns, except the interface (its name is the netdev)

# Every option wireguard.sh reads (reference §1.1/§1.2). Each render sets or clears all of them,
# so a re-render converges on the plan whatever an earlier one or a person left behind. Lists
# come last: clearing and re-adding a list moves it to the end of its section, so with lists
# already last a second run writes a byte-identical file.
INTERFACE_OPTIONS = (
    "proto", "private_key", "listen_port", "mtu", "fwmark", "nohostroute", "tunlink",
    "addresses", "ip6prefix", "zone",
)  # fmt: skip
PEER_OPTIONS = (
    "description", "public_key", "preshared_key", "route_allowed_ips", "endpoint_host",
    "endpoint_port", "persistent_keepalive", "disabled", "allowed_ips",
)  # fmt: skip
LIST_OPTIONS = frozenset({"addresses", "ip6prefix", "allowed_ips", "network"})
SECRET_OPTIONS = frozenset({"private_key", "preshared_key"})

Options = Mapping[str, str | tuple[str, ...] | None]


def peer_section(peer: str) -> str:
    return f"{OWNED_PREFIX}peer_{peer}"


def render_openwrt(
    plan: Plan,
    site: SitePlan,
    secrets: Secrets,
    current: Mapping[str, Package] | None = None,
    *,
    device_mtu: int | None = None,
) -> Rendered:
    """Render one OpenWrt site. `current` (the device's packages) lets stale sections be removed;
    `device_mtu` is the running interface's MTU, which an unset `mtu` already means."""
    batch = _Batch()
    batch.comment(f"sitewire: network '{plan.name}', site {site.name} (openwrt). Generated.")
    batch.comment(f"Used by commands.sh from {STAGING}/uci-batch; commits network and firewall")
    _network(
        plan,
        batch,
        site,
        secrets,
        current or {},
        _mtu(site, current or {}, device_mtu),
        _port(site, current or {}),
    )
    _firewall(batch, site, current or {})
    _drop_retired(batch, plan, site)
    _drop_stale(batch, site, current or {})
    batch.line("commit network")
    batch.line("commit firewall")
    commands = openwrt_commands(site)
    files = (
        RenderedFile(
            "uci-batch", batch.text(), secret=batch.has_secret, device_path=f"{STAGING}/uci-batch"
        ),
        RenderedFile("packages", "".join(f"{p}\n" for p in site.packages())),
        commands_script(
            site.name, commands, f"Put uci-batch at {STAGING}/uci-batch first (first setup)."
        ),
    )
    return Rendered(site.name, files, commands)


def openwrt_commands(site: SitePlan) -> tuple[str, ...]:
    """Everything after the files are in place, as a first setup needs it, in order."""
    packages = " ".join(site.packages())
    batch, errors = f"{STAGING}/uci-batch", f"{STAGING}/uci-batch.err"
    out = [
        "if command -v apk >/dev/null 2>&1; then apk update && apk add "
        f"{packages}; else opkg update && opkg install {packages}; fi",
        # uci batch exits 0 even when a line fails (reference §1.6): its stderr is the verdict.
        f"uci batch < {batch} 2> {errors}; rm -f {batch}; "
        f"if [ -s {errors} ]; then cat {errors} >&2; exit 1; fi",
        # The wireguard proto handler loads only when netifd starts (reference §1.5).
        "/etc/init.d/network restart",
        "/etc/init.d/firewall reload",
    ]
    if site.tailscale is not None:
        out.append(shlex.join(site.tailscale.command()))
    if site.watchdog:
        # OpenWrt's cron init script refuses to start while /etc/crontabs is empty (reference §4).
        line = shlex.quote(WATCHDOG_CRON)
        out.append(
            f"grep -qxF {line} /etc/crontabs/root 2>/dev/null || echo {line} >> /etc/crontabs/root"
        )
        out.append("/etc/init.d/cron enable")
        out.append("/etc/init.d/cron restart")
    return tuple(out)


def _mtu(site: SitePlan, current: Mapping[str, Package], device_mtu: int | None) -> str | None:
    """The planned MTU, or None (left unset) where unset already means it: setting an option to
    its effective value would re-create the interface for nothing (issue 12)."""
    network = current.get("network")
    section = network.section(site.interface) if network is not None else None
    if section is not None and "mtu" not in section.options and device_mtu == site.mtu:
        return None
    return str(site.mtu)


def _zone_option(site: SitePlan, current: Mapping[str, Package]) -> str | None:
    """netifd's `option zone` puts the interface in that zone too (fw4 reads it over ubus):
    cleared, one zone per interface, unless it already names sitewire's."""
    network = current.get("network")
    section = network.section(site.interface) if network is not None else None
    named = section.options.get("zone") if section is not None else None
    return site.firewall.zone if named == site.firewall.zone else None


def _port(site: SitePlan, current: Mapping[str, Package]) -> str | None:
    """The listen port, or None (left unset: a random port) for a site nobody dials whose
    interface has none: setting it would re-create the interface for nothing (issue 12)."""
    network = current.get("network")
    section = network.section(site.interface) if network is not None else None
    if section is not None and "listen_port" not in section.options and site.endpoint is None:
        return None
    return str(site.listen_port)


def _network(
    plan: Plan,
    batch: _Batch,
    site: SitePlan,
    secrets: Secrets,
    current: Mapping[str, Package],
    mtu: str | None,
    port: str | None,
) -> None:
    private = secrets.private_key(site.name)
    batch.comment(f"interface {site.interface}: {site.role}, MTU {site.mtu} ({site.mtu_reason})")
    if private is None:
        batch.comment("private_key: generated on the router at apply; left as it is here")
    batch.merge(
        "network",
        site.interface,
        "interface",
        INTERFACE_OPTIONS,
        {
            "proto": "wireguard",
            "private_key": private,
            "listen_port": port,
            "addresses": tuple(str(a) for a in site.addresses),
            "mtu": mtu,
            "zone": _zone_option(site, current),
        },
        keep_secrets=private is None,
    )
    if site.peers:
        batch.comment(
            "allowed_ips hold one /32 (/128) per overlay address, not the overlay prefix: "
            "WireGuard gives a prefix to the last peer claiming it, so a third site would "
            "silently take it from the second"
        )
    # A shared peer's text varies only with the interface name and whether a key is in it.
    texts = {psk: PeerTexts(plan, ("openwrt", site.interface, str(psk))) for psk in (False, True)}
    for peer in site.peers:
        _peer(texts, batch, site, peer, secrets)
    if site.tailscale is not None:
        for prefix in site.tailscale.pins:
            batch.comment(f"keep {prefix} in the main table, ahead of Tailscale's table 52")
            batch.replace(
                "network",
                _pin_section(str(prefix)),
                "rule6" if prefix.version == 6 else "rule",
                {
                    "dest": str(prefix),
                    "lookup": "main",
                    "priority": str(site.tailscale.pin_priority),
                },
            )


def _peer(
    texts: dict[bool, PeerTexts], batch: _Batch, site: SitePlan, peer: PeerPlan, secrets: Secrets
) -> None:
    psk = secrets.preshared_key(site.name, peer.name) if peer.preshared else None
    if psk is None:
        # No key here: a preshared peer's key was born on the device, so leave it alone.
        batch.extend(texts[False].get(peer, lambda p: _peer_block(site, p, None, p.preshared)))
    else:
        text = texts[True].get(peer, lambda p: _peer_block(site, p, psk, False))
        batch.extend(text.replace(SECRET_SLOT, psk))
        batch.has_secret = True
    batch.touched["network"].add(peer_section(peer.name))


def _peer_block(site: SitePlan, peer: PeerPlan, psk: str | None, keep: bool) -> str:
    key = peer_public_key(peer)
    via = f", also carries {', '.join(peer.reached_through)}" if peer.reached_through else ""
    dial = peer.dial
    block = _Batch()
    block.comment(f"peer {peer.name} ({peer.kind}{'; we dial it' if dial else ''}{via})")
    block.merge(
        "network",
        peer_section(peer.name),
        f"wireguard_{site.interface}",
        PEER_OPTIONS,
        {
            "description": f"sitewire: {peer.kind} {peer.name}",
            "public_key": key,
            "preshared_key": SECRET_SLOT if psk is not None else None,
            "allowed_ips": tuple(str(p) for p in peer.allowed_ips),
            "route_allowed_ips": "1",
            "endpoint_host": dial.endpoint.host if dial else None,
            "endpoint_port": str(dial.endpoint.port) if dial else None,
            "persistent_keepalive": str(dial.keepalive) if dial else None,
        },
        keep_secrets=keep,
    )
    return block.text()


def rule_name(iface: str) -> str:
    """The `name` of the WAN rule that opens the interface's port."""
    return f"Allow-sitewire-{iface}"


def _masq(current: Mapping[str, Package]) -> str | None:
    """'0', or None (left unset) for a zone that has none: fw4 reads unset as off, and a
    taken-over zone must not change for nothing (issue 12)."""
    firewall = current.get("firewall")
    zone = firewall.section(f"{OWNED_PREFIX}zone") if firewall is not None else None
    return None if zone is not None and "masq" not in zone.options else "0"


def _firewall(batch: _Batch, site: SitePlan, current: Mapping[str, Package]) -> None:
    fw = site.firewall
    batch.comment(f"firewall zone '{fw.zone}' for {fw.interface}; masquerading stays off")
    batch.replace(
        "firewall",
        f"{OWNED_PREFIX}zone",
        "zone",
        {
            "name": fw.zone,
            "input": "ACCEPT",
            "output": "ACCEPT",
            "forward": "ACCEPT",
            "masq": _masq(current),
            "mtu_fix": "1",
            "network": (fw.interface,),
        },
    )
    for src, dest in fw.forwardings:
        batch.replace(
            "firewall", f"{OWNED_PREFIX}fwd_{src}_{dest}", "forwarding", {"src": src, "dest": dest}
        )
    rule = f"{OWNED_PREFIX}allow_{fw.interface}"
    if fw.open_port is None:
        batch.comment("nobody dials this site: no WAN rule")
        batch.line(f"set firewall.{rule}=''")
        return
    batch.replace(
        "firewall",
        rule,
        "rule",
        {
            "name": rule_name(fw.interface),
            "src": "wan",
            "proto": "udp",
            "dest_port": str(fw.open_port),
            "target": "ACCEPT",
        },
    )


def _drop_stale(batch: _Batch, site: SitePlan, current: Mapping[str, Package]) -> None:
    for package in ("network", "firewall"):
        existing = current.get(package)
        if existing is None:
            continue
        for section in existing.sections:
            name = section.name
            if name and name.startswith(OWNED_PREFIX) and name not in batch.touched[package]:
                batch.comment(f"no longer planned: {package}.{name}")
                batch.line(f"set {package}.{name}=''")


def _drop_retired(batch: _Batch, plan: Plan, site: SitePlan) -> None:
    # A node removed from the spec must lose its way in everywhere (a lost phone is revoked),
    # whether or not this router is known to hold its section: `set x=''` is a no-op if absent.
    for name in plan.lock.retired:
        section = peer_section(name)
        if section not in batch.touched["network"]:
            batch.comment(f"retired from the spec: {name}")
            batch.line(f"set network.{section}=''")


def _pin_section(prefix: str) -> str:
    return OWNED_PREFIX + "pin_" + "".join(c if c.isalnum() else "_" for c in prefix)


def _value(value: str) -> str:
    """A value for the batch; the secret slot (NULs, a key replaces it later) goes in as it is."""
    return quote(value) if value == SECRET_SLOT else uci_value(value)


class _Batch:
    """Accumulates uci batch lines; knows which sections it wrote and whether a secret is in it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.touched: dict[str, set[str]] = {"network": set(), "firewall": set()}
        self.has_secret = False

    def line(self, text: str) -> None:
        self.lines.append(text)

    def extend(self, text: str) -> None:
        """Append lines rendered elsewhere (a memoized peer block)."""
        self.lines.append(text.removesuffix("\n"))

    def comment(self, text: str) -> None:
        self.lines.append(uci_comment(text))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def replace(self, package: str, section: str, kind: str, options: Options) -> None:
        """Delete the section if present, then write it whole: exactly these options remain."""
        self.line(f"set {package}.{section}=''")
        self._write(package, section, kind, options.keys(), options, fresh=True)

    def merge(
        self,
        package: str,
        section: str,
        kind: str,
        known: Iterable[str],
        options: Options,
        keep_secrets: bool,
    ) -> None:
        """Set or clear every known option, so secrets born on the device can be left alone."""
        names = [o for o in known if not (keep_secrets and o in SECRET_OPTIONS)]
        self._write(package, section, kind, names, options, fresh=False)

    def _write(
        self,
        package: str,
        section: str,
        kind: str,
        names: Iterable[str],
        options: Options,
        fresh: bool,
    ) -> None:
        self.touched[package].add(section)
        self.line(f"set {package}.{section}={kind}")
        for name in names:
            value = options.get(name)
            path = f"{package}.{section}.{name}"
            if name in SECRET_OPTIONS and value is not None:
                self.has_secret = True
            if fresh and value is None:
                continue
            if name in LIST_OPTIONS:
                if not fresh:
                    # Clearing first makes add_list converge instead of growing on every run.
                    self.line(f"set {path}=''")
                for item in value or ():
                    self.line(f"add_list {path}={_value(item)}")
            elif value is None:
                self.line(f"set {path}=''")
            else:
                assert isinstance(value, str)
                self.line(f"set {path}={_value(value)}")
