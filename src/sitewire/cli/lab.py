"""`sitewire lab`: rehearse the network on this machine in namespaces, and take it away again."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path

import click

from sitewire.cli.out import echo
from sitewire.cli.show import count
from sitewire.errors import ExitCode, InputError
from sitewire.lab.host import (
    RELEASES,
    LabSummary,
    check_lab_name,
    host_exec,
    lab_down,
    lab_move,
    lab_status,
    lab_up,
    require_root,
    router_exec,
)
from sitewire.lab.probe import matrix, run_probes
from sitewire.lab.reboot import lab_reboot
from sitewire.lab.rehearse import after_up, await_handshakes, columns, lab_plan, probes
from sitewire.lab.state import lab_names, load_state
from sitewire.pipeline import make_plan, open_workspace
from sitewire.spec.load import load_spec

_NAME = click.option("--name", help="Lab name (default: the spec's network.name).")
_SPEC_OPTION = click.option(
    "--spec",
    "spec",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Find the lab by this spec's network.name.",
)


class _EchoHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        echo(self.format(record), err=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show every command the lab runs.")
def lab(verbose: bool) -> None:
    """Rehearse the network on this machine: namespaces, real WireGuard, SSH and nftables."""
    if verbose:
        logger = logging.getLogger("sitewire.lab")
        logger.setLevel(logging.DEBUG)
        if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
            logger.addHandler(_EchoHandler())


@lab.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False), default="network.toml")
@_NAME
@click.option(
    "--openwrt",
    type=click.Choice(RELEASES),
    default=RELEASES[0],
    show_default=True,
    help="Which OpenWrt release the openwrt routers behave like.",
)
@click.option(
    "--configured",
    is_flag=True,
    help="Also install what 'sitewire render' produces, over SSH, as apply would.",
)
@click.option(
    "--tailscale-accept-routes",
    is_flag=True,
    help="Tailscale accepts subnet routes (the state that broke the hand-made setup); "
    "with --configured it is re-asserted after the configuration, as after that reboot.",
)
def up(
    spec: Path, name: str | None, openwrt: str, configured: bool, tailscale_accept_routes: bool
) -> int:
    """Build every site of SPEC: routers, LAN hosts, internet, management network."""
    require_root()
    plan = make_plan(open_workspace(spec))
    started = time.monotonic()
    then = functools.partial(after_up, configured=configured, accept_routes=tailscale_accept_routes)
    state = lab_up(plan, name or plan.name, openwrt, spec_path=str(spec.resolve()), then=then)
    seconds = time.monotonic() - started
    echo(f"lab {state.name} up in {seconds:.1f}s")
    echo(status_text(lab_status(state.name)[0]), nl=False)
    return ExitCode.OK


@lab.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False), required=False)
@_NAME
def down(spec: Path | None, name: str | None) -> int:
    """Remove the lab: processes, mounts, namespaces, interfaces, state."""
    require_root()
    lab_name = pick_lab(spec, name)
    lab_down(lab_name)
    echo(f"lab {lab_name} down")
    return ExitCode.OK


@lab.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False), required=False)
@_NAME
def status(spec: Path | None, name: str | None) -> int:
    """List the labs that are up (or one), with each router's addresses and SSH state."""
    require_root()
    lab_name = name or (load_spec(spec).network.name if spec else None)
    summaries = lab_status(lab_name)
    if not summaries:
        echo("no lab is up")
    for summary in summaries:
        echo(status_text(summary), nl=False)
    return ExitCode.OK


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("site")
@click.option("--host", is_flag=True, help="Run on the site's LAN host, not the router.")
@click.option("--lan", type=int, help="Which LAN's host (0 = br-lan); implies --host.")
@_NAME
@_SPEC_OPTION
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(
    site: str,
    host: bool,
    lan: int | None,
    name: str | None,
    spec: Path | None,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND in SITE's router (or LAN host); exits with the command's status."""
    require_root()
    state = load_state(pick_lab(spec, name))
    if host or lan is not None:
        done = host_exec(state, site, command, lan=lan or 0, capture=False)
    else:
        done = router_exec(state, site, command, capture=False)
    return done.returncode


@lab.command("test")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False), required=False)
@_NAME
def test_(spec: Path | None, name: str | None) -> int:
    """Ping every LAN host from every other one and each router's overlay address; show a matrix."""
    require_root()
    state = load_state(pick_lab(spec, name))
    plan = lab_plan(state)
    started = time.monotonic()
    for pending in await_handshakes(state, plan):
        echo(f"sitewire: lab: {pending}", err=True)
    outcomes = asyncio.run(run_probes(list(probes(state, plan))))
    echo(matrix(outcomes, columns(state, plan)), nl=False)
    failed = [o for o in outcomes if o.failed]
    seconds = time.monotonic() - started
    echo(f"{len(outcomes) - len(failed)}/{len(outcomes)} reachable as planned in {seconds:.1f}s")
    for o in failed:
        echo(f"sitewire: lab: {o.probe.source} cannot reach {o.probe.target}", err=True)
    return ExitCode.FAILURE if failed else ExitCode.OK


@lab.command()
@click.argument("site")
@_NAME
@_SPEC_OPTION
def move(site: str, name: str | None, spec: Path | None) -> int:
    """Give SITE a new WAN address and point its DNS name at it, as a DDNS update would."""
    require_root()
    state = load_state(pick_lab(spec, name))
    old, new = lab_move(state, site)
    echo(f"{site}: wan {old.wan4} => {new.wan4}, {old.wan6} => {new.wan6}")
    if new.dns_name:
        echo(f"{new.dns_name} now resolves to {new.wan4.ip} and {new.wan6.ip} in every router")
    return ExitCode.OK


@lab.command()
@click.argument("sites", nargs=-1, required=True)
@_NAME
@_SPEC_OPTION
def reboot(sites: tuple[str, ...], name: str | None, spec: Path | None) -> int:
    """Cut the power of each SITE's router and boot it: processes, /tmp, /run and the kernel's
    network state go, its files stay; the boot runs as on the real platform."""
    require_root()
    state = load_state(pick_lab(spec, name))
    for site in sites:
        state.layout.router(site)  # every name checked before any router goes down
    for site in sites:
        done = lab_reboot(state, site)
        killed = f"{done.killed} killed"
        echo(f"{site}: power cut ({killed}), booted, SSH answers after {done.seconds:.1f}s")
    return ExitCode.OK


def pick_lab(spec: Path | None, name: str | None) -> str:
    """--name, else the spec's network.name, else the only lab that is up."""
    if name is not None:
        check_lab_name(name)
        return name
    if spec is not None:
        return load_spec(spec).network.name
    names = lab_names()
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError("no lab is up", where="lab", fix="bring one up: sitewire lab up SPEC")
    raise InputError(
        f"{count(len(names), 'lab')} are up: {', '.join(names)}",
        where="lab",
        fix="say which with --name",
    )


def status_text(summary: LabSummary) -> str:
    lines = [
        f"lab {summary.name}: OpenWrt {summary.openwrt_release}, management "
        f"198.19.{summary.k}.0/24 on swl{summary.k}, spec {summary.spec_path or '[none]'}"
    ]
    width = max((len(r.site) for r in summary.routers), default=0)
    for r in summary.routers:
        state = ("ssh up" if r.ssh else "ssh DOWN") if r.up else "MISSING"
        hosts = ", ".join(r.hosts) or "[none]"
        lines.append(
            f"  {r.site:<{width}}  {r.platform:<7}  wan {r.wan[0]} {r.wan[1]}  "
            f"mgmt {r.mgmt}  {state}  hosts {hosts}"
        )
    lines += [f"note: {note}" for note in summary.notes]
    return "\n".join(lines) + "\n"
