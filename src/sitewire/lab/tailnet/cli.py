"""The `tailscale` command a lab router runs: the real subcommands plus lab-join/sync/provision."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import TextIO

from sitewire.errors import SitewireError
from sitewire.lab.tailnet import engine, watch, wireguard
from sitewire.lab.tailnet.base import Address, Paths, TailnetError
from sitewire.lab.tailnet.control import Tailnet, read_tailnet
from sitewire.lab.tailnet.prefs import (
    SET_FLAGS,
    UP_FLAGS,
    FlagError,
    FlagSpec,
    FlagValue,
    Prefs,
    apply_set,
    apply_up,
    parse_flags,
    prefs_to_json,
)
from sitewire.lab.tailnet.provision import NodeSpec, provision
from sitewire.lab.tailnet.state import load_prefs, read_identity, router_lock, save_prefs
from sitewire.lab.tailnet.status import VERSION, View, status_json, status_lines

USAGE = """\
USAGE
  tailscale <subcommand> [flags]

  up, down, set, status [--json], ip [-4|-6|-1], debug prefs, version
  lab-join --name NAME --ip 100.64.0.N [--ip6 ADDR] --endpoint ADDR:41641
  lab-sync
  lab-boot
  lab-provision NODE-JSON
  lab-watch
"""


@dataclass(frozen=True)
class Context:
    paths: Paths
    out: TextIO


Command = Callable[[Context, list[str]], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(Context(Paths.from_env(), sys.stdout), args)
    except FlagError as exc:
        _complain(exc)
        return 2
    except SitewireError as exc:
        _complain(exc)
        return 1


def _complain(exc: Exception) -> None:
    text = str(exc)
    sys.stderr.write(text if text.endswith("\n") else f"{text}\n")


def run(ctx: Context, args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        ctx.out.write(USAGE)
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        raise FlagError(f"tailscale: unknown subcommand: {args[0]}")
    if command is cmd_lab_watch:  # runs for good; it takes the lock for each restore
        return command(ctx, args[1:])
    with router_lock(ctx.paths):
        return command(ctx, args[1:])


def _flags(specs: Sequence[FlagSpec], args: list[str]) -> dict[str, FlagValue]:
    values, rest = parse_flags(specs, args)
    if rest:
        raise FlagError(f"too many non-flag arguments: {rest!r}")
    return values


def cmd_set(ctx: Context, args: list[str]) -> int:
    values = _flags(SET_FLAGS, args)
    if not values:
        sys.stderr.write("USAGE\n  tailscale set [flags]\n")
        return 0
    _change_prefs(ctx.paths, apply_set, values)
    return 0


def cmd_up(ctx: Context, args: list[str]) -> int:
    _change_prefs(ctx.paths, apply_up, _flags(UP_FLAGS, args))
    if read_identity(ctx.paths) is None:
        raise TailnetError(
            "this router has not joined the lab tailnet; prefs saved",
            fix="run: tailscale lab-join --name NAME --ip 100.64.0.N --endpoint ADDR:41641",
        )
    return 0


def cmd_down(ctx: Context, args: list[str]) -> int:
    _flags((), args)
    prefs = replace(load_prefs(ctx.paths), want_running=False)
    save_prefs(ctx.paths, prefs)
    engine.publish(ctx.paths, prefs)
    engine.teardown(ctx.paths)
    return 0


def _change_prefs(
    paths: Paths,
    change: Callable[[Prefs, Mapping[str, FlagValue]], Prefs],
    values: Mapping[str, FlagValue],
) -> None:
    prefs = change(load_prefs(paths), values)
    save_prefs(paths, prefs)
    engine.publish(paths, prefs)
    engine.apply(paths)


def _view(paths: Paths) -> View:
    prefs = load_prefs(paths)
    identity = read_identity(paths)
    tailnet = read_tailnet(paths.control) if identity else Tailnet()
    device: dict[str, wireguard.PeerState] = {}
    if identity and prefs.want_running and wireguard.recorded_pid(paths) is not None:
        with suppress(TailnetError):
            device = wireguard.read_device().peers
    return View(prefs, identity.name if identity else None, tailnet, device)


def cmd_status(ctx: Context, args: list[str]) -> int:
    values = _flags((FlagSpec("json", True, False),), args)
    view = _view(ctx.paths)
    if values.get("json"):
        ctx.out.write(json.dumps(status_json(view), indent=2) + "\n")
        return 0
    ctx.out.write("".join(f"{line}\n" for line in status_lines(view)))
    return 0 if view.backend_state == "Running" else 1


def cmd_ip(ctx: Context, args: list[str]) -> int:
    values = _flags([FlagSpec(f, True, False) for f in ("4", "6", "1")], args)
    view = _view(ctx.paths)
    me = view.me
    if me is None or view.backend_state != "Running":
        raise TailnetError(f"no current Tailscale IPs; state: {view.backend_state}")
    addresses: list[Address] = [me.ipv4, me.ipv6]
    if values.get("4") or values.get("6"):
        addresses = [a for a in addresses if values.get(str(a.version))]
    if values.get("1"):
        addresses = addresses[:1]
    ctx.out.write("".join(f"{a}\n" for a in addresses))
    return 0


def cmd_debug(ctx: Context, args: list[str]) -> int:
    if args != ["prefs"]:
        raise FlagError("tailscale debug: the lab stand-in knows only 'debug prefs'")
    ctx.out.write(json.dumps(prefs_to_json(load_prefs(ctx.paths)), indent="\t") + "\n")
    return 0


def cmd_version(ctx: Context, args: list[str]) -> int:
    _flags((), args)
    ctx.out.write(f"{VERSION}\n")
    return 0


_JOIN_FLAGS = tuple(FlagSpec(n, False, "") for n in ("name", "ip", "ip6", "endpoint"))


def cmd_lab_join(ctx: Context, args: list[str]) -> int:
    values = {k: str(v) for k, v in _flags(_JOIN_FLAGS, args).items()}
    missing = [f"--{n}" for n in ("name", "ip", "endpoint") if not values.get(n)]
    if missing:
        raise FlagError(f"lab-join: {', '.join(missing)} required")
    engine.join(ctx.paths, values["name"], values["ip"], values.get("ip6", ""), values["endpoint"])
    return 0


def cmd_lab_sync(ctx: Context, args: list[str]) -> int:
    _flags((), args)
    engine.apply(ctx.paths)
    return 0


def cmd_lab_boot(ctx: Context, args: list[str]) -> int:
    """What tailscaled does when its service starts at boot: the saved prefs, then the watch."""
    _flags((), args)
    engine.apply(ctx.paths)
    watch.start()
    return 0


def cmd_lab_provision(ctx: Context, args: list[str]) -> int:
    if len(args) != 1:
        raise FlagError("usage: tailscale lab-provision NODE-JSON")
    try:
        data = json.loads(args[0])
    except ValueError as exc:
        raise TailnetError(f"lab-provision: node JSON: {exc}") from exc
    provision(ctx.paths, NodeSpec.parse(data))
    watch.start()
    return 0


def cmd_lab_watch(ctx: Context, args: list[str]) -> int:
    _flags((), args)
    watch.run(ctx.paths)
    return 0


COMMANDS: dict[str, Command] = {
    "up": cmd_up,
    "down": cmd_down,
    "set": cmd_set,
    "status": cmd_status,
    "ip": cmd_ip,
    "debug": cmd_debug,
    "version": cmd_version,
    "lab-join": cmd_lab_join,
    "lab-sync": cmd_lab_sync,
    "lab-boot": cmd_lab_boot,
    "lab-provision": cmd_lab_provision,
    "lab-watch": cmd_lab_watch,
}
