"""Tailscale prefs as `tailscale debug prefs` prints them, and what `set` and `up` flags do to them.

Semantics follow tailscale/tailscale cmd/tailscale/cli/{set,up}.go: `set` changes only the
flags it names; `up` with flags describes the complete desired state and refuses to revert a
non-default pref through an unmentioned flag's default unless `--reset` is given.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from sitewire.lab.tailnet.base import Prefix, TailnetError, parse_prefix

DEFAULT_CONTROL_URL = "https://controlplane.tailscale.com"
EXIT_ROUTES: tuple[Prefix, ...] = (
    ipaddress.IPv4Network("0.0.0.0/0"),
    ipaddress.IPv6Network("::/0"),
)

FlagValue = bool | str


class NetfilterMode(IntEnum):
    """types/preftype/netfiltermode.go: stored as a number, spelled as a word on the CLI."""

    OFF = 0
    NODIVERT = 1
    ON = 2

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Prefs:
    control_url: str = ""
    route_all: bool = False
    exit_node_id: str = ""
    exit_node_ip: str = ""
    exit_node_allow_lan_access: bool = False
    corp_dns: bool = True
    run_ssh: bool = False
    want_running: bool = False
    logged_out: bool = False
    shields_up: bool = False
    advertise_tags: tuple[str, ...] = ()
    hostname: str = ""
    advertise_routes: tuple[Prefix, ...] = ()
    no_snat: bool = False
    no_stateful_filtering: bool = True
    netfilter_mode: NetfilterMode = NetfilterMode.ON

    @property
    def subnet_routes(self) -> tuple[Prefix, ...]:
        return tuple(r for r in self.advertise_routes if r not in EXIT_ROUTES)

    @property
    def advertises_exit_node(self) -> bool:
        return all(r in self.advertise_routes for r in EXIT_ROUTES)


class FlagError(TailnetError):
    """The command line itself is wrong (Go's flag package wording); exits 2."""


@dataclass(frozen=True)
class FlagSpec:
    name: str
    is_bool: bool
    up_default: FlagValue


# Flags that carry no pref (up.go preflessFlag); accepted so lab scripts can pass them.
_PREFLESS = (
    FlagSpec("auth-key", False, ""),
    FlagSpec("force-reauth", True, False),
    FlagSpec("json", True, False),
    FlagSpec("qr", True, False),
    FlagSpec("reset", True, False),
    FlagSpec("timeout", False, "0s"),
)
PREFLESS_NAMES = frozenset(f.name for f in _PREFLESS)

SET_FLAGS = (
    FlagSpec("accept-dns", True, True),
    FlagSpec("accept-routes", True, False),
    FlagSpec("advertise-exit-node", True, False),
    FlagSpec("advertise-routes", False, ""),
    FlagSpec("exit-node", False, ""),
    FlagSpec("exit-node-allow-lan-access", True, False),
    FlagSpec("hostname", False, ""),
    FlagSpec("shields-up", True, False),
    FlagSpec("ssh", True, False),
)
UP_FLAGS = (
    *SET_FLAGS,
    FlagSpec("advertise-tags", False, ""),
    FlagSpec("login-server", False, DEFAULT_CONTROL_URL),
    FlagSpec("netfilter-mode", False, "on"),
    FlagSpec("snat-subnet-routes", True, True),
    FlagSpec("stateful-filtering", True, False),
    *_PREFLESS,
)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_flags(
    specs: Sequence[FlagSpec], argv: Sequence[str]
) -> tuple[dict[str, FlagValue], list[str]]:
    """Go `flag` syntax: -x or --x, bools take only `=value`, parsing stops at the first operand."""
    by_name = {s.name: s for s in specs}
    values: dict[str, FlagValue] = {}
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        name, has_value, text = arg.lstrip("-").partition("=")
        if not name or arg.startswith("---"):
            raise FlagError(f"bad flag syntax: {arg}")
        spec = by_name.get(name)
        if spec is None:
            raise FlagError(f"flag provided but not defined: -{name}")
        if spec.is_bool:
            values[name] = _parse_bool(name, text) if has_value else True
        elif has_value:
            values[name] = text
        elif rest:
            values[name] = rest.pop(0)
        else:
            raise FlagError(f"flag needs an argument: -{name}")
    return values, rest


def _parse_bool(name: str, text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FlagError(f'invalid boolean value "{text}" for -{name}: parse error')


def calc_advertise_routes(text: str, exit_node: bool) -> tuple[Prefix, ...]:
    """net/netutil CalcAdvertiseRoutes: masked prefixes, both default routes or neither, sorted."""
    routes = {parse_prefix(part) for part in text.split(",")} if text else set()
    has4, has6 = (r in routes for r in EXIT_ROUTES)
    if has4 != has6:
        have, need = EXIT_ROUTES if has4 else reversed(EXIT_ROUTES)
        family = "IPv6" if has4 else "IPv4"
        raise TailnetError(
            f"{have} advertised without its {family} counterpart, please also advertise {need}"
        )
    if exit_node:
        routes.update(EXIT_ROUTES)
    return tuple(sorted(routes, key=lambda r: (r.prefixlen, r.version, r.network_address.packed)))


def flags_of(prefs: Prefs) -> dict[str, FlagValue]:
    """up.go prefsToFlags: the flag values that would keep `prefs` exactly as they are."""
    return {
        "accept-dns": prefs.corp_dns,
        "accept-routes": prefs.route_all,
        "advertise-exit-node": prefs.advertises_exit_node,
        "advertise-routes": ",".join(str(r) for r in prefs.subnet_routes),
        "advertise-tags": ",".join(prefs.advertise_tags),
        "exit-node": prefs.exit_node_ip,
        "exit-node-allow-lan-access": prefs.exit_node_allow_lan_access,
        "hostname": prefs.hostname,
        "login-server": prefs.control_url,
        "netfilter-mode": prefs.netfilter_mode.word,
        "shields-up": prefs.shields_up,
        "snat-subnet-routes": not prefs.no_snat,
        "ssh": prefs.run_ssh,
        "stateful-filtering": not prefs.no_stateful_filtering,
    }


def with_flags(prefs: Prefs, values: Mapping[str, FlagValue]) -> Prefs:
    """Prefs with every pref-carrying flag in `values` applied; the others untouched."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name in _SIMPLE:
            field_name, convert = _SIMPLE[name]
            changes[field_name] = convert(value)
    if "advertise-routes" in values or "advertise-exit-node" in values:
        # Newer set.go keeps the subnet routes when only --advertise-exit-node is named (and
        # the exit routes when only --advertise-routes is); `up` names both through defaults.
        current = flags_of(prefs)
        text = values.get("advertise-routes", current["advertise-routes"])
        exit_node = values.get("advertise-exit-node", current["advertise-exit-node"])
        changes["advertise_routes"] = calc_advertise_routes(str(text), bool(exit_node))
    if "exit-node" in values:
        changes.update(exit_node_ip=_exit_node(values["exit-node"]), exit_node_id="")
    return replace(prefs, **changes)


def _exit_node(value: FlagValue) -> str:
    """--exit-node: a peer's tailnet address, or "" for none (the stand-in has no MagicDNS
    names; the real CLI also takes a node's name)."""
    text = str(value or "")
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise TailnetError(
            f"--exit-node={text}: the lab stand-in takes an exit node's tailnet address "
            "(100.64.0.N), not a name"
        ) from None


def _netfilter_mode(value: FlagValue) -> NetfilterMode:
    for mode in NetfilterMode:
        if mode.word == value:
            return mode
    raise TailnetError(f'invalid value --netfilter-mode="{value}"')


def _tags(value: FlagValue) -> tuple[str, ...]:
    tags = tuple(str(value).split(",")) if value else ()
    for tag in tags:
        if not tag.startswith("tag:") or len(tag) == len("tag:"):
            raise TailnetError(f"tag: {tag!r}: tags must start with 'tag:' and name something")
    return tags


_SIMPLE: dict[str, tuple[str, Any]] = {
    "accept-dns": ("corp_dns", bool),
    "accept-routes": ("route_all", bool),
    "advertise-tags": ("advertise_tags", _tags),
    "exit-node-allow-lan-access": ("exit_node_allow_lan_access", bool),
    "hostname": ("hostname", str),
    "login-server": ("control_url", str),
    "netfilter-mode": ("netfilter_mode", _netfilter_mode),
    "shields-up": ("shields_up", bool),
    "snat-subnet-routes": ("no_snat", lambda v: not v),
    "ssh": ("run_ssh", bool),
    "stateful-filtering": ("no_stateful_filtering", lambda v: not v),
}


def apply_set(prefs: Prefs, given: Mapping[str, FlagValue]) -> Prefs:
    return with_flags(prefs, given)


def apply_up(prefs: Prefs, given: Mapping[str, FlagValue]) -> Prefs:
    """`tailscale up [flags]`: bare means start; with flags, the complete set of settings."""
    if not given:
        return replace(prefs, want_running=True)
    pref_flags = {s.name: s.up_default for s in UP_FLAGS if s.name not in PREFLESS_NAMES}
    wanted = with_flags(prefs, {**pref_flags, **given})
    if wanted.exit_node_allow_lan_access and not wanted.exit_node_ip:
        raise TailnetError("--exit-node-allow-lan-access can only be used with --exit-node")
    if not given.get("reset"):
        check_accidental_reverts(prefs, wanted, given)
    return replace(wanted, want_running=True, logged_out=False)


ACCIDENTAL_UP_PREFIX = (
    "Error: changing settings via 'tailscale up' requires mentioning all\n"
    "non-default flags. To proceed, either re-run your command with --reset or\n"
    "use the command below to explicitly mention the current value of\n"
    "all non-default settings:\n\n"
    "\ttailscale up"
)


def check_accidental_reverts(current: Prefs, wanted: Prefs, given: Mapping[str, FlagValue]) -> None:
    """up.go checkForAccidentalSettingReverts, message and all."""
    if not current.control_url:
        return
    now, new = flags_of(current), flags_of(wanted)
    missing = sorted(
        _flag_arg(name, now[name]) for name in now if name not in given and now[name] != new[name]
    )
    if not missing:
        return
    explicit = [_explicit_arg(name, given[name]) for name in sorted(given)]
    raise TailnetError(ACCIDENTAL_UP_PREFIX + "".join(f" {a}" for a in explicit + missing) + "\n\n")


def _flag_arg(name: str, value: FlagValue) -> str:
    if value is True:
        return f"--{name}"
    if value == "":
        return f"--{name}="
    text = "false" if value is False else str(value)
    return f"--{name}={shlex.quote(text)}"


def _explicit_arg(name: str, value: FlagValue) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--{name}=false"
    return _flag_arg(name, value)


# `tailscale debug prefs` field order (ipn.Prefs JSON); the constants are prefs we do not model.
def prefs_to_json(prefs: Prefs) -> dict[str, object]:
    return {
        "ControlURL": prefs.control_url,
        "RouteAll": prefs.route_all,
        "ExitNodeID": prefs.exit_node_id,
        "ExitNodeIP": prefs.exit_node_ip,
        "InternalExitNodePrior": "",
        "ExitNodeAllowLANAccess": prefs.exit_node_allow_lan_access,
        "CorpDNS": prefs.corp_dns,
        "RunSSH": prefs.run_ssh,
        "RunWebClient": False,
        "WantRunning": prefs.want_running,
        "LoggedOut": prefs.logged_out,
        "ShieldsUp": prefs.shields_up,
        "AdvertiseTags": list(prefs.advertise_tags) or None,
        "Hostname": prefs.hostname,
        "NotepadURLs": False,
        "AdvertiseRoutes": [str(r) for r in prefs.advertise_routes] or None,
        "AdvertiseServices": None,
        "Sync": None,
        "NoSNAT": prefs.no_snat,
        "NoStatefulFiltering": prefs.no_stateful_filtering,
        "NetfilterMode": int(prefs.netfilter_mode),
        "AutoUpdate": {"Check": True, "Apply": True},
        "AppConnector": {"Advertise": False},
        "PostureChecking": False,
        "NetfilterKind": "",
        "DriveShares": None,
        "AllowSingleHosts": True,
        "Config": {},
    }


_JSON_FIELDS = {
    "ControlURL": ("control_url", str),
    "RouteAll": ("route_all", bool),
    "ExitNodeID": ("exit_node_id", str),
    "ExitNodeIP": ("exit_node_ip", str),
    "ExitNodeAllowLANAccess": ("exit_node_allow_lan_access", bool),
    "CorpDNS": ("corp_dns", bool),
    "RunSSH": ("run_ssh", bool),
    "WantRunning": ("want_running", bool),
    "LoggedOut": ("logged_out", bool),
    "ShieldsUp": ("shields_up", bool),
    "Hostname": ("hostname", str),
    "NoSNAT": ("no_snat", bool),
    "NoStatefulFiltering": ("no_stateful_filtering", bool),
}


def prefs_from_json(text: str, where: str) -> Prefs:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        changes: dict[str, Any] = {}
        for key, (field_name, kind) in _JSON_FIELDS.items():
            if key in data:
                changes[field_name] = _typed(data[key], kind, key)
        changes["advertise_tags"] = tuple(
            _typed(t, str, "AdvertiseTags") for t in _list(data, "AdvertiseTags")
        )
        changes["advertise_routes"] = tuple(
            parse_prefix(_typed(r, str, "AdvertiseRoutes")) for r in _list(data, "AdvertiseRoutes")
        )
        changes["netfilter_mode"] = NetfilterMode(data.get("NetfilterMode", NetfilterMode.ON))
    except (ValueError, TypeError, TailnetError) as exc:
        raise TailnetError(f"{where}: not lab prefs: {exc}", fix="delete it to start over") from exc
    return Prefs(**changes)


def _list(data: Mapping[str, object], key: str) -> list[object]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list or null")
    return value


def _typed(value: object, kind: type[Any], key: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{key} must be {kind.__name__}, not {value!r}")
    return value
