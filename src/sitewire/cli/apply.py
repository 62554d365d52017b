"""`sitewire apply`, `confirm`, `rollback`: the plan onto live devices over SSH."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from sitewire.cli.out import echo
from sitewire.cli.report import Json, Lines, ProgressLines, command_log
from sitewire.deploy.apply import apply_network, exclusive
from sitewire.deploy.changes import plan_with
from sitewire.deploy.decide import settle
from sitewire.deploy.events import Observer, Result
from sitewire.deploy.remote import Credentials, Target
from sitewire.deploy.run import Options
from sitewire.errors import ExitCode, InputError
from sitewire.lab.configure import USERSPACE
from sitewire.lab.state import LabState
from sitewire.pipeline import Workspace, open_workspace

_SPEC = click.argument(
    "spec", type=click.Path(path_type=Path, dir_okay=False, exists=True), default="network.toml"
)


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--lab",
            "use_lab",
            is_flag=True,
            help="Reach the sites of the lab rehearsing this spec ('sitewire lab up') over its "
            "management network instead of their ssh addresses; uses the lab's own lock.",
        ),
        click.option("--lab-name", help="Which lab (default: the spec's network.name)."),
        click.option(
            "--lock",
            "lock_path",
            type=click.Path(path_type=Path, dir_okay=False),
            help="network.lock to use (default: beside the spec).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _reporting(func: Callable[..., Any]) -> Callable[..., Any]:
    """-v and --json, for the commands that change devices."""
    func = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON object per event, then a summary, instead of lines.",
    )(func)
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Show every command run on the devices, as [#] SITE: COMMAND, on stderr.",
    )(func)


@dataclass
class Reach:
    """Where the sites are and how to log in: the spec's ssh =, or a lab's management network."""

    targets: dict[str, Target]
    creds: Credentials
    lock_path: Path | None
    keys_path: Path | None
    env: str = ""


def reach(
    spec: Path, use_lab: bool, lab_name: str | None, lock_path: Path | None, keys_path: Path | None
) -> Reach:
    ws = open_workspace(spec, lock_path)
    if use_lab or lab_name:
        from sitewire.cli.lab import pick_lab
        from sitewire.lab.host import require_root
        from sitewire.lab.state import load_state

        require_root()
        state = load_state(pick_lab(spec, lab_name))
        if state.spec_path is not None and Path(state.spec_path) != spec.resolve():
            raise InputError(
                f"lab {state.name!r} rehearses {state.spec_path}, not this spec",
                where=str(spec),
                fix="pass --lab-name for the right lab, or 'sitewire lab up' this spec",
            )
        lab_sites = {r.site for r in state.layout.routers}
        missing = [n for n in ws.spec.sites if n not in lab_sites]
        if missing:
            raise InputError(
                f"site {missing[0]!r} is not in lab {state.name!r} (the spec changed since lab up)",
                where=str(spec),
                fix="bring the lab down and up again with this spec (labs do not grow)",
            )
        return lab_reach(state, ws.spec.sites)
    targets = {}
    for name, site in ws.spec.sites.items():
        if site.ssh is None:
            raise InputError(
                "has no ssh = address to configure it through",
                where=f"{spec}: sites.{name}",
                fix=f'add ssh = "root@<address>" to sites.{name}',
            )
        targets[name] = Target.parse(name, str(site.ssh))
    return Reach(targets, Credentials(), lock_path, keys_path)


def lab_reach(state: LabState, sites: Iterable[str]) -> Reach:
    """The lab's routers over its management network, with the lab's lock and client keys."""
    targets = {n: Target(n, str(state.layout.router(n).mgmt.ip)) for n in sites}
    creds = Credentials((state.client_key,), state.known_hosts, use_user_config=False)
    env = f"export {USERSPACE}; "
    return Reach(targets, creds, state.dir / "network.lock", state.dir / "keys.json", env)


@contextmanager
def observer(as_json: bool) -> Iterator[Observer]:
    """JSON lines, a progress display on a terminal, or plain lines."""
    if as_json:
        yield Json()
    elif sys.stdout.isatty():
        with ProgressLines().shown() as shown:
            yield shown
    else:
        yield Lines()


def _workspace(spec: Path, where: Reach) -> Workspace:
    return open_workspace(spec, where.lock_path, where.keys_path)


def _timer(func: Callable[..., Any]) -> Callable[..., Any]:
    """--no-confirm and --revert-after, for the commands that change devices under a timer."""
    func = click.option(
        "--revert-after",
        type=click.IntRange(10, 3600),
        default=300,
        show_default=True,
        help="Seconds after which a router restores its backup unless the change is confirmed.",
    )(func)
    return click.option(
        "--no-confirm",
        is_flag=True,
        help="Verify, but leave each change pending: each router reverts it unless "
        "'sitewire confirm' runs within --revert-after seconds.",
    )(func)


@click.command()
@_SPEC
@_common
@_reporting
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
@click.option("--dry-run", is_flag=True, help="Show what would change on each site and stop.")
@_timer
@click.option(
    "--local-keys",
    "keys_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep the keys of clients without a public_key in this 0600 file "
    "(sites' keys are always made on the devices).",
)
@click.option(
    "--remove-foreign",
    is_flag=True,
    help="Also remove peers of the interface that the spec does not know (by default they "
    "are kept and named).",
)
def apply(
    spec: Path,
    use_lab: bool,
    lab_name: str | None,
    lock_path: Path | None,
    yes: bool,
    dry_run: bool,
    no_confirm: bool,
    revert_after: int,
    keys_path: Path | None,
    remove_foreign: bool,
    verbose: bool,
    as_json: bool,
) -> int:
    """Configure every site over SSH: diff, ask, change under a revert timer, verify, confirm."""
    where = reach(spec, use_lab, lab_name, lock_path, keys_path)
    opts = Options(
        yes=yes,
        dry_run=dry_run,
        confirm=not no_confirm,
        revert_after=revert_after,
        env=where.env,
        remove_foreign=remove_foreign,
    )
    return run_apply(spec, where, opts, verbose, as_json)


def run_apply(
    spec: Path, where: Reach, opts: Options, verbose: bool, as_json: bool, verb: str = "apply"
) -> int:
    """An apply (or a rotate: `opts.rotate`) with its report, summary and exit code."""
    ws = _workspace(spec, where)
    with exclusive(spec), command_log(verbose), observer(as_json) as shown:
        outcome = asyncio.run(apply_network(ws, where.targets, where.creds, opts, shown))
    if isinstance(shown, Json):
        shown.summary(outcome)
        return ExitCode.OK if outcome.ok else ExitCode.FAILURE
    if opts.dry_run:
        return ExitCode.OK
    changed = [r for r in outcome.sites.values() if r.result is not Result.UNCHANGED]
    if changed:
        width = max(len(r.name) for r in changed)
        echo("summary:")
        for report in changed:
            echo(f"  {report.name:<{width}}  {report.result.value}")
    if outcome.lock_changed:
        echo(f"{ws.lock_path} updated (commit it with the spec)", err=True)
    if not outcome.ok:
        # Rolled back, or (unreachable) left to revert by its own timer: say which.
        failed = [f"{r.name} ({r.result.value})" for r in outcome.sites.values() if r.problems]
        echo(
            f"sitewire: {verb}: {', '.join(failed)} not applied; "
            "the other sites keep their new state",
            err=True,
        )
        return ExitCode.FAILURE
    return ExitCode.OK


def dry_run(spec: Path, use_lab: bool, lab_name: str | None, lock_path: Path | None) -> int:
    """`plan --live`: what apply would change on every site; nothing is changed."""
    where = reach(spec, use_lab, lab_name, lock_path, None)
    ws = _workspace(spec, where)
    opts = Options(dry_run=True, env=where.env)
    asyncio.run(apply_network(ws, where.targets, where.creds, opts, Lines()))
    return ExitCode.OK


def _settle_command(verb: str, doc: str) -> click.Command:
    @click.command(verb, help=doc)
    @_SPEC
    @_common
    @_reporting
    def command(
        spec: Path,
        use_lab: bool,
        lab_name: str | None,
        lock_path: Path | None,
        verbose: bool,
        as_json: bool,
    ) -> int:
        where = reach(spec, use_lab, lab_name, lock_path, None)
        ws = _workspace(spec, where)
        plan = plan_with(ws, {}, {})  # which sites and platforms; keys play no part
        with exclusive(spec), command_log(verbose), observer(as_json) as shown:
            done = asyncio.run(settle(plan, where.targets, where.creds, verb, shown))
        if not as_json:
            echo(f"{done} site(s) {'confirmed' if verb == 'confirm' else 'rolled back'}")
        return ExitCode.OK

    return command


confirm = _settle_command(
    "confirm", "Keep the changes a --no-confirm apply left pending on every site."
)
rollback = _settle_command(
    "rollback",
    "Undo the changes a --no-confirm apply left pending: each router restores its backup.",
)
