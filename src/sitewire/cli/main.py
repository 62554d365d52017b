"""The command line: the only place that prints, and where errors become exit codes."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

from sitewire import __version__
from sitewire.cli.out import echo, error
from sitewire.cli.show import count, plan_json, plan_text
from sitewire.cli.starter import STARTER_SPEC
from sitewire.errors import ExitCode, InputError, SitewireError
from sitewire.fileio import write_atomic
from sitewire.pipeline import (
    check_output_dir,
    make_plan,
    open_workspace,
    save_keys,
    save_state,
    write_tree,
)
from sitewire.plan import Plan
from sitewire.render.client import client_config, qr_terminal
from sitewire.spec.model import Spec

_SPEC = click.argument(
    "spec", type=click.Path(path_type=Path, dir_okay=False), default="network.toml"
)
_LOCK = click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="network.lock to use (default: beside the spec, same name, .lock).",
)
_KEYS = click.option(
    "--local-keys",
    "keys_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep private and preshared keys in this 0600 file (created if missing) "
    "and render complete configs offline.",
)


def _warn(text: str) -> None:
    echo(f"sitewire: warning: {text}", err=True)


def _notes(plan: Plan) -> None:
    for note in plan.notes:
        echo(f"sitewire: note: {note}", err=True)


# Commands that reach devices or the lab live in their own modules, imported only when one of
# them runs: `render` and `validate` never load SSH, the lab or doctor (a third of start-up).
_LAZY = {
    "lab": "sitewire.cli.lab:lab",
    "adopt": "sitewire.cli.adopt:adopt",
    "apply": "sitewire.cli.apply:apply",
    "confirm": "sitewire.cli.apply:confirm",
    "rollback": "sitewire.cli.apply:rollback",
    "rotate": "sitewire.cli.rotate:rotate",
    "doctor": "sitewire.cli.diagnose:doctor",
    "status": "sitewire.cli.status:status",
    "graph": "sitewire.cli.status:graph",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY and cmd_name not in self.commands:
            module, name = _LAZY[cmd_name].split(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sitewire")
def cli() -> None:
    """Join the LANs of OpenWrt routers and Linux hosts with plain WireGuard."""


@cli.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False), default="network.toml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> int:
    """Write a commented starting network.toml."""
    if path.exists() and not force:
        raise InputError("already exists", where=str(path), fix="pick another path or use --force")
    write_atomic(path, STARTER_SPEC)
    echo(f"wrote {path}; edit it, then run: sitewire plan {path}")
    return ExitCode.OK


@cli.command()
@_SPEC
@_LOCK
def validate(spec: Path, lock_path: Path | None) -> int:
    """Check the spec and prove the plan sound, writing nothing."""
    ws = open_workspace(spec, lock_path)
    plan = make_plan(ws)
    _notes(plan)
    peers = sum(len(site.peers) for site in plan.sites())
    echo(
        f"{spec}: ok: {count(len(plan.site_names), 'site')}, "
        f"{count(len(plan.client_names), 'client')}, {count(peers, 'peer')}, "
        "AllowedIPs disjoint on every interface"
    )
    return ExitCode.OK


@cli.command()
@_SPEC
@_LOCK
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--live",
    is_flag=True,
    help="Also connect to every site and show what apply would change there (apply --dry-run).",
)
@click.option("--lab", "use_lab", is_flag=True, help="With --live: the lab's routers.")
@click.option("--lab-name", help="With --lab: which lab (default: the spec's network.name).")
def plan(
    spec: Path,
    lock_path: Path | None,
    as_json: bool,
    live: bool,
    use_lab: bool,
    lab_name: str | None,
) -> int:
    """Show what every site will get: links, AllowedIPs, endpoints, firewall, Tailscale."""
    if live or use_lab or lab_name:
        from sitewire.cli.apply import dry_run

        return dry_run(spec, use_lab, lab_name, lock_path)
    ws = open_workspace(spec, lock_path)
    the_plan = make_plan(ws)
    if as_json:
        echo(json.dumps(plan_json(the_plan), indent=2))
    else:
        echo(plan_text(the_plan), nl=False)
    if save_state(ws, the_plan):
        _warn(f"{ws.lock_path} updated (commit it with the spec)")
    return ExitCode.OK


@cli.command()
@_SPEC
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to write DIR/<site>/ and DIR/clients/ into (replaced whole).",
)
@_LOCK
@_KEYS
def render(spec: Path, out: Path, lock_path: Path | None, keys_path: Path | None) -> int:
    """Write every site's exact configuration (what apply pushes) and client configs + QR codes."""
    check_output_dir(out)
    ws = open_workspace(spec, lock_path, keys_path)
    for warning in ws.warnings:
        _warn(warning)
    the_plan = make_plan(ws)
    _notes(the_plan)
    # Keys first: rendered files carrying a key must never exist without the key file.
    save_keys(ws)
    written = write_tree(out, the_plan, ws.secrets)
    save_state(ws, the_plan)
    for path in written:
        echo(f"wrote {path}")
    return ExitCode.OK


@cli.command()
@_SPEC
@click.argument("client")
@_LOCK
@_KEYS
def qr(spec: Path, client: str, lock_path: Path | None, keys_path: Path | None) -> int:
    """Show a client's config as a QR code in the terminal, to scan with the WireGuard app."""
    if keys_path is None:
        raise InputError(
            "a QR code needs the client's private key",
            where="qr",
            fix="pass --local-keys FILE (the same file render used)",
        )
    ws = open_workspace(spec, lock_path, keys_path)
    if client not in ws.spec.clients:
        raise InputError(
            f"{client!r} is not a client",
            where=str(spec),
            fix=f"use one of {list(ws.spec.clients)}",
        )
    the_plan = make_plan(ws)
    config, _ = client_config(the_plan, the_plan.client(client), ws.secrets)
    save_state(ws, the_plan)
    echo(qr_terminal(config), nl=False)
    return ExitCode.OK


@cli.command()
def schema() -> int:
    """Print the JSON Schema of network.toml (for editor completion)."""
    echo(json.dumps(Spec.json_schema(), indent=2))
    return ExitCode.OK


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code; errors become one line on stderr."""
    try:
        result = cli.main(args=argv, prog_name="sitewire", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except click.exceptions.Abort:
        echo("sitewire: aborted", err=True)
        return ExitCode.FAILURE
    except SitewireError as exc:
        error(f"sitewire: {exc}")
        return exc.exit_code
    except OSError as exc:
        # The disk, not the input: a full disk, a read-only path, a directory in the way.
        where = f"{exc.filename}: " if exc.filename else ""
        echo(f"sitewire: {where}{exc.strerror or exc}", err=True)
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        echo("sitewire: interrupted", err=True)
        return 130
    return int(result) if isinstance(result, int) else ExitCode.OK
