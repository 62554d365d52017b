"""`sitewire status` (the live network as one table) and `sitewire graph` (it as a picture)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import click
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sitewire.cli.apply import _common, reach
from sitewire.cli.out import echo
from sitewire.diagnose.gather import gather_status
from sitewire.diagnose.graph import graph_format, network_graph, render_graph
from sitewire.diagnose.status import (
    Health,
    LinkStatus,
    NetworkStatus,
    Over,
    SiteStatus,
    format_age,
    status_from_json,
    status_json,
    status_path,
)
from sitewire.errors import ExitCode, InputError
from sitewire.fileio import write_atomic
from sitewire.pipeline import make_plan, open_workspace
from sitewire.strict import printable

_SPEC = click.argument(
    "spec", type=click.Path(path_type=Path, dir_okay=False, exists=True), default="network.toml"
)

LINK_COLUMNS = (
    "link",
    "path",
    "handshake",
    "endpoint",
    "a→b",
    "b→a",
    "wg rtt",
    "lan rtt",
    "tailnet rtt",
)
SITE_COLUMNS = ("site", "lan", "overlay", "interface", "tailscale", "accept-routes", "problem")
STYLES = {
    Health.UP: "green",
    Health.STALE: "dark_orange",
    Health.DOWN: "red",
    Health.UNKNOWN: "grey50",
}


# --- cells (pure) --------------------------------------------------------------------------------


def format_bytes(count: int | None) -> str:
    if count is None:
        return ""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_rtt(rtt: Mapping[str, float | None], over: Over) -> str:
    if over not in rtt:
        return ""  # not measured: a site unread, or no Tailscale on one end
    value = rtt[over]
    return "no reply" if value is None else f"{value:.2f} ms"


def link_cells(link: LinkStatus) -> tuple[str, ...]:
    return (
        f"{link.a} – {link.b}",
        f"via {link.relay}" if link.relay else "direct",
        format_age(link.handshake_age, link.health),
        link.endpoint or "",
        format_bytes(link.bytes_ab),
        format_bytes(link.bytes_ba),
        *(format_rtt(link.rtt_ms, over) for over in Over),
    )


def site_cells(site: SiteStatus) -> tuple[str, ...]:
    iface = f"{site.interface} {'up' if site.interface_up else 'down'}" if site.reachable else "?"
    ts = site.tailnet
    if ts is None:
        tailscale, accept = ("" if site.reachable else "?"), ""
    elif not ts.installed:
        tailscale, accept = "not installed", ""
    else:
        tailscale = " ".join(x for x in (ts.state or "unreadable", ts.ip or "") if x)
        accept = "" if ts.accept_routes is None else ("on" if ts.accept_routes else "off")
    return (
        site.name,
        ", ".join(site.lan),
        site.overlay,
        iface,
        tailscale,
        accept,
        site.error or "",
    )


def status_tables(status: NetworkStatus) -> Group:
    """The pairs, then the sites; every cell a Text, so `[fd00::1]:51820` is not rich markup,
    and printable, so what a router said cannot drive the terminal (issue 9)."""
    links = Table(*LINK_COLUMNS, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for link in status.links:
        style = STYLES[link.health]
        cells = [Text(printable(c)) for c in link_cells(link)]
        cells[0].stylize(style)
        cells[2].stylize(style)
        links.add_row(*cells)
    sites = Table(*SITE_COLUMNS, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for site in status.sites:
        cells = [Text(printable(c)) for c in site_cells(site)]
        if not (site.reachable and site.interface_up):
            cells[0].stylize("red")
        sites.add_row(*cells)
    pairs = f"{len(status.links)} site pair{'s' if len(status.links) != 1 else ''}"
    title = Text(f"{printable(status.network)}: {pairs}, read in {status.seconds:.1f} s", "bold")
    return Group(title, links, Text(""), sites)


# --- commands ------------------------------------------------------------------------------------


def _lock(spec: Path, use_lab: bool, lab_name: str | None, lock_path: Path | None) -> Path:
    """The lock the network is described by: the lab's own, or the one beside the spec."""
    if use_lab or lab_name:
        lock_path = reach(spec, use_lab, lab_name, lock_path, None).lock_path
    return open_workspace(spec, lock_path).lock_path


@click.command()
@_SPEC
@_common
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--watch", is_flag=True, help="Read the network again and again until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(0.5, 3600),
    default=5.0,
    show_default=True,
    help="With --watch: seconds between two readings.",
)
def status(
    spec: Path,
    use_lab: bool,
    lab_name: str | None,
    lock_path: Path | None,
    as_json: bool,
    watch: bool,
    interval: float,
) -> int:
    """Every site pair: path, handshake, endpoint, bytes, round-trip times; every site's state.

    The last status is kept beside the lock (network.status.json) for `sitewire graph`.
    Exit 1 when a site cannot be read or a pair has no recent handshake.
    """
    where = reach(spec, use_lab, lab_name, lock_path, None)
    ws = open_workspace(spec, where.lock_path)
    plan = make_plan(ws)
    saved = status_path(ws.lock_path)

    def read() -> NetworkStatus:
        found = asyncio.run(gather_status(plan, where.targets, where.creds))
        write_atomic(saved, json.dumps(status_json(found), indent=2) + "\n")
        return found

    wide = Console(width=None if sys.stdout.isatty() else 200)
    current = read()
    if not watch:
        if as_json:
            echo(json.dumps(status_json(current), indent=2))
        else:
            wide.print(status_tables(current))
        return ExitCode.OK if current.healthy else ExitCode.FAILURE
    try:
        if as_json:  # one JSON object per line, one line per reading
            while True:
                echo(json.dumps(status_json(current)))
                time.sleep(interval)
                current = read()
        with Live(_watched(current, interval), console=wide, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                current = read()
                live.update(_watched(current, interval), refresh=True)
    except KeyboardInterrupt:
        return ExitCode.OK if current.healthy else ExitCode.FAILURE


def _watched(status: NetworkStatus, interval: float) -> Group:
    taken = time.strftime("%H:%M:%S", time.localtime(status.taken_at))
    note = Text(f"read at {taken}, again every {interval:g} s; Ctrl-C to stop", "dim")
    return Group(status_tables(status), note)


@click.command()
@_SPEC
@_common
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The picture: .svg, .png, .pdf, or .dot (Graphviz source).",
)
@click.option(
    "--status",
    "status_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A status to colour by (`status --json` output; default: the last one `status` saved).",
)
def graph(
    spec: Path,
    use_lab: bool,
    lab_name: str | None,
    lock_path: Path | None,
    output: Path,
    status_file: Path | None,
) -> int:
    """Draw the network: sites and LANs, links coloured by the last status, round-trip times."""
    fmt = graph_format(output.name)
    lock = _lock(spec, use_lab, lab_name, lock_path)
    plan = make_plan(open_workspace(spec, lock))
    source = status_file or status_path(lock)
    last = None
    if source.exists():
        last = status_from_json(source.read_text(), str(source))
        if last.network != plan.name:
            raise InputError(
                f"is the status of network {last.network!r}, not {plan.name!r}",
                where=str(source),
                fix="run `sitewire status` for this spec first",
            )
    else:
        echo(
            f"sitewire: note: no status saved yet ({source}): every link is drawn grey; "
            "run `sitewire status` first to colour them",
            err=True,
        )
    write_atomic(output, render_graph(network_graph(plan, last), fmt))
    echo(f"wrote {output}")
    return ExitCode.OK
