"""`sitewire rotate SITE...`: a new private key for each site, born on its router (issue 13)."""

from __future__ import annotations

from pathlib import Path

import click

from sitewire.cli.apply import _common, _reporting, _timer, reach, run_apply
from sitewire.deploy.run import Options
from sitewire.errors import InputError
from sitewire.pipeline import open_workspace


@click.command()
@click.argument("sites", nargs=-1)
@click.option(
    "--spec",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default="network.toml",
    show_default=True,
    help="The network's spec.",
)
@click.option("--all", "every", is_flag=True, help="Rotate every site's key.")
@click.option("--psk", is_flag=True, help="Also replace the preshared keys of their pairs.")
@_common
@_reporting
@click.option("-y", "--yes", is_flag=True, help="Rotate without asking.")
@_timer
def rotate(
    sites: tuple[str, ...],
    spec: Path,
    every: bool,
    psk: bool,
    use_lab: bool,
    lab_name: str | None,
    lock_path: Path | None,
    verbose: bool,
    as_json: bool,
    yes: bool,
    no_confirm: bool,
    revert_after: int,
) -> int:
    """Replace the private key of SITE... (or --all): each new key is made on its router, every
    peer learns the new public key, under the revert timer and verification of apply; once
    confirmed, the old key is gone from the routers and network.lock."""
    if bool(sites) == every:
        raise click.UsageError("name the sites to rotate (rotate A B), or pass --all; not both")
    names = list(open_workspace(spec, lock_path).spec.sites)
    unknown = [s for s in sites if s not in names]
    if unknown:
        raise InputError(
            f"no site {unknown[0]!r} in the spec (its sites: {', '.join(names)})",
            where=str(spec),
            fix="name sites as the spec's [sites.NAME] tables do",
        )
    where = reach(spec, use_lab, lab_name, lock_path, None)
    opts = Options(
        yes=yes,
        confirm=not no_confirm,
        revert_after=revert_after,
        env=where.env,
        rotate=frozenset(names if every else sites),
        rotate_psk=psk,
    )
    return run_apply(spec, where, opts, verbose, as_json, verb="rotate")
