"""`sitewire doctor`: findings with evidence and the fix; exit 1 when any is an error, 4 when
there are only warnings (what breaks at the next boot)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from sitewire.cli.apply import _common, reach
from sitewire.cli.out import echo
from sitewire.diagnose.doctor import Finding, diagnose
from sitewire.diagnose.gather import gather_network
from sitewire.errors import ExitCode
from sitewire.pipeline import make_plan, open_workspace

_SPEC = click.argument(
    "spec", type=click.Path(path_type=Path, dir_okay=False, exists=True), default="network.toml"
)


@click.command()
@_SPEC
@_common
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(
    spec: Path, use_lab: bool, lab_name: str | None, lock_path: Path | None, as_json: bool
) -> int:
    """Compare the live routers with the plan; name each fault, its evidence and its fix."""
    where = reach(spec, use_lab, lab_name, lock_path, None)
    plan = make_plan(open_workspace(spec, where.lock_path))
    gathered = asyncio.run(gather_network(plan, where.targets, where.creds))
    findings = [
        Finding(
            "unreachable",
            site,
            "cannot be read over SSH",
            (why,),
            "check the router is up and its ssh = address; then run doctor again",
        )
        for site, why in gathered.unreachable.items()
    ]
    findings += diagnose(gathered.live)
    if as_json:
        echo(
            json.dumps(
                {
                    "findings": [f.as_json() for f in findings],
                    "sites": sorted(gathered.live.facts),
                    "seconds": round(gathered.seconds, 2),
                },
                indent=2,
            )
        )
    else:
        for finding in findings:
            echo(finding.text())
        sites = len(gathered.live.facts)
        echo(
            f"{len(findings) or 'no'} finding{'s' if len(findings) != 1 else ''} "
            f"on {sites} site{'s' if sites != 1 else ''} in {gathered.seconds:.1f}s"
        )
    if any(f.kind == "error" for f in findings):
        return ExitCode.FAILURE
    return ExitCode.WARNINGS if findings else ExitCode.OK
