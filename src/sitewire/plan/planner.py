"""plan_network: spec + lock (+ known public keys) -> Plan. Pure: no I/O, no randomness."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sitewire.errors import LockError, PlanError
from sitewire.plan.addressing import Wish, allocate
from sitewire.plan.model import ClientPlan, Link, SitePlan
from sitewire.plan.topology import Node, Topology
from sitewire.plan.validate import check_spec
from sitewire.spec.lock import Lock, LockEntry
from sitewire.spec.model import Platform, Spec, Tunnel
from sitewire.strict import IPAddress, IPNetwork

_RECENT = 64


@dataclass(frozen=True)
class Plan:
    """Every decision for the network; site plans are built on demand (see Topology)."""

    topology: Topology
    lock: Lock
    notes: tuple[str, ...]
    # The last site plans asked for by name: doctor and apply ask for the same few many times;
    # a render of a thousand sites, each once, keeps no more than these in memory.
    _recent: OrderedDict[str, SitePlan] = field(
        default_factory=OrderedDict, init=False, compare=False, repr=False
    )

    @property
    def name(self) -> str:
        return self.topology.spec.network.name

    @property
    def overlays(self) -> tuple[IPNetwork, ...]:
        net = self.topology.spec.network
        return tuple(n for n in (net.overlay, net.overlay6) if n is not None)

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(self.topology.spec.sites)

    @property
    def client_names(self) -> tuple[str, ...]:
        return tuple(self.topology.spec.clients)

    def site(self, name: str) -> SitePlan:
        recent = self._recent
        found = recent.get(name)
        if found is None:
            found = recent[name] = self.topology.site_plan(name)
            if len(recent) > _RECENT:
                recent.popitem(last=False)
        else:
            recent.move_to_end(name)
        return found

    def sites(self) -> Iterator[SitePlan]:
        return (self.topology.site_plan(name) for name in self.topology.spec.sites)

    def client(self, name: str) -> ClientPlan:
        return self.topology.client_plan(name)

    def clients(self) -> Iterator[ClientPlan]:
        return (self.topology.client_plan(name) for name in self.topology.spec.clients)

    def links(self) -> Iterator[Link]:
        return self.topology.links()

    def path(self, a: str, b: str) -> tuple[str, ...]:
        return self.topology.path(a, b)


def plan_network(
    spec: Spec,
    lock: Lock | None = None,
    public_keys: Mapping[str, str] | None = None,
    *,
    source: str = "network.toml",
    lock_source: str = "network.lock",
) -> Plan:
    """Decide everything. `public_keys` are keys known from elsewhere (the --local-keys file)."""
    check_spec(spec, source)
    lock = lock or Lock(network=spec.network.name)
    known = dict(public_keys or {})
    addresses, notes = _allocate_all(spec, lock, source)
    nodes = {}
    entries: dict[str, dict[str, LockEntry]] = {"sites": {}, "clients": {}}
    for group, names in (("sites", spec.sites), ("clients", spec.clients)):
        for name in names:
            key = _public_key(spec, lock, known, group, name, lock_source)
            addrs = tuple(addresses[family][name] for family in (4, 6) if name in addresses[family])
            nodes[name] = Node(name, addrs, key)
            entries[group][name] = LockEntry(
                address=addresses[4].get(name), address6=addresses[6].get(name), public_key=key
            )
    topology = Topology(spec, nodes, source)
    notes += _caveats(spec)
    # A retired node keeps its public key (never a secret): its peer, wherever it still runs,
    # is then told from one someone added by hand, and removed (issue 12).
    retired = {
        name: LockEntry(address=entry.address, address6=entry.address6, public_key=entry.public_key)
        for group in (lock.sites, lock.clients, lock.retired)
        for name, entry in group.items()
        if name not in nodes
    }
    new_lock = Lock(
        network=spec.network.name,
        sites=entries["sites"],
        clients=entries["clients"],
        retired=dict(sorted(retired.items())),
    )
    notes += [
        f"{name}: no longer in the spec; retired (its peer sections are removed, its address "
        "stays reserved)"
        for name in sorted(retired)
        if name not in lock.retired
    ]
    return Plan(topology, new_lock, tuple(notes))


def _caveats(spec: Spec) -> list[str]:
    """Things that will work only partly, said at plan time rather than discovered later."""
    out = []
    if spec.network.overlay6 is not None:
        for name, client in spec.clients.items():
            via = spec.sites[client.via]
            if client.tunnel is Tunnel.FULL and via.platform is Platform.OPENWRT:
                out.append(
                    f"{name}: full tunnel via {client.via}: its IPv6 traffic leaves the WAN "
                    "un-NATed (OpenWrt's wan zone masquerades IPv4 only; set masq6 there)"
                )
    return out


def _allocate_all(
    spec: Spec, lock: Lock, source: str
) -> tuple[dict[int, dict[str, IPAddress]], list[str]]:
    result: dict[int, dict[str, IPAddress]] = {4: {}, 6: {}}
    notes: list[str] = []
    nodes = [("sites", n, s.address, s.address6) for n, s in spec.sites.items()]
    nodes += [("clients", n, c.address, c.address6) for n, c in spec.clients.items()]
    for family, key, overlay in (
        (4, "overlay", spec.network.overlay),
        (6, "overlay6", spec.network.overlay6),
    ):
        field = "address" if family == 4 else "address6"
        if overlay is None:
            for group, name, a4, a6 in nodes:
                if (a4 if family == 4 else a6) is not None:
                    raise PlanError(
                        f"an IPv{family} overlay address is set but network.{key} is not",
                        where=f"{source}: {group}.{name}.{field}",
                        fix=f"set network.{key}, or remove the address",
                    )
            continue
        wishes = [
            Wish(
                name,
                f"{group}.{name}.{field}",
                a4 if family == 4 else a6,
                getattr(lock.entry(name), field),
            )
            for group, name, a4, a6 in nodes
        ]
        retired = {
            address: name
            for group in (lock.sites, lock.clients, lock.retired)
            for name, entry in group.items()
            if name not in spec.sites and name not in spec.clients
            if (address := getattr(entry, field)) is not None
        }
        allocated, moved = allocate(overlay, wishes, source, key, retired)
        result[family] = allocated
        notes.extend(moved)
    return result, notes


def _public_key(
    spec: Spec, lock: Lock, known: dict[str, str], group: str, name: str, lock_source: str
) -> str | None:
    locked = lock.entry(name).public_key
    if group == "clients" and spec.clients[name].public_key is not None:
        return spec.clients[name].public_key
    mine = known.get(name)
    if mine is not None and locked is not None and mine != locked:
        raise LockError(
            "public key differs from the one derived from the --local-keys file",
            where=f"{lock_source}: {group}.{name}.public_key",
            fix="the device's key was learned at apply; render without --local-keys, or delete "
            "that public_key from network.lock to switch to the local key",
        )
    return mine or locked
