"""`sitewire adopt`: read live routers made by hand, write network.toml and network.lock."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path

import click
import tomli_w

from sitewire.adopt.derive import AdoptError, Router, derive, read_router
from sitewire.adopt.meshconf import read_meshconf
from sitewire.adopt.wgquick import file_key, parse, router_from_wg_quick
from sitewire.cli.out import echo
from sitewire.deploy.remote import Credentials, Shell, Target
from sitewire.deploy.runner import run_on_sites
from sitewire.diagnose.collect import gather_facts
from sitewire.diagnose.facts import DeviceFacts
from sitewire.errors import ExitCode, InputError, SpecError
from sitewire.fileio import write_atomic
from sitewire.plan import plan_network
from sitewire.spec.load import parse_model
from sitewire.spec.lock import lock_path_for, save_lock
from sitewire.spec.model import Platform, Spec

_NAMED = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_]{0,31})=(?P<target>.+)")


def _targets(texts: tuple[str, ...]) -> dict[str, tuple[Target, str]]:
    out: dict[str, tuple[Target, str]] = {}
    for n, text in enumerate(texts, 1):
        match = _NAMED.fullmatch(text)
        name = match["name"] if match else f"site{n}"
        target_text = match["target"] if match else text
        if name in out:
            raise InputError(f"site name {name!r} given twice", where="adopt", fix="name each once")
        out[name] = (Target.parse(name, target_text), target_text)
    return out


async def _read(targets: dict[str, Target], creds: Credentials) -> dict[str, DeviceFacts]:
    from sitewire.deploy.ssh import connect

    async def one(name: str) -> DeviceFacts:
        session: Shell = await connect(targets[name], creds)
        async with session:
            return await gather_facts(session, Platform.OPENWRT)

    results = await run_on_sites(targets, one)
    results.raise_first()
    return dict(results.ok)


@click.command()
@click.argument("targets", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default="network.toml",
    show_default=True,
    help="Where to write the spec; the lock goes beside it.",
)
@click.option("--name", "network_name", default="home", show_default=True, help="network.name.")
@click.option("--force", is_flag=True, help="Overwrite an existing spec and lock.")
@click.option(
    "--wg-quick",
    "wg_quick",
    multiple=True,
    metavar="NAME=FILE",
    help="A wg-quick file: a Linux host of the network (it has a ListenPort) or a client "
    "(a phone's file), named NAME. Its private key is read only to know its public key.",
)
@click.option(
    "--wg-meshconf",
    "meshconf",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A wg-meshconf database (its CSV): each row a Linux host of the network, all meshed. "
    "Its private keys are read only to know the public keys.",
)
@click.option(
    "--ssh",
    "ssh",
    multiple=True,
    metavar="NAME=TARGET",
    help="How to reach a site found in a file (--wg-quick, --wg-meshconf): user@host[:port].",
)
@click.option(
    "--lab-name",
    help="Read the routers of this lab (TARGETS are its site names) over its management network.",
)
def adopt(
    targets: tuple[str, ...],
    output: Path,
    network_name: str,
    force: bool,
    wg_quick: tuple[str, ...],
    meshconf: Path | None,
    ssh: tuple[str, ...],
    lab_name: str | None,
) -> int:
    """Write network.toml and network.lock reproducing routers configured by hand.

    TARGETS are OpenWrt routers, NAME=user@host[:port] (or user@host: named site1, site2, ...),
    read over SSH. Nothing on the routers is changed; nothing is written unless the whole
    network can be expressed.
    """
    if not (targets or wg_quick or meshconf):
        raise InputError(
            "nothing to adopt",
            where="adopt",
            fix="name the routers (NAME=user@host), or give --wg-quick / --wg-meshconf files",
        )
    lock_path = lock_path_for(output)
    for path in (output, lock_path):
        if path.exists() and not force:
            raise InputError("already exists", where=str(path), fix="pass --force, or -o elsewhere")
    found, creds = _where(targets, lab_name) if targets else ({}, Credentials())
    facts = asyncio.run(_read({n: t for n, (t, _) in found.items()}, creds)) if found else {}
    routers: list[Router] = [read_router(n, found[n][1], facts[n]) for n in found]
    meshed, notes = _meshconf(meshconf, set(found))
    hosts, clients = _files(wg_quick, set(found) | {r.name for r in meshed})
    routers += _reached([*meshed, *hosts], ssh)
    data, lock = derive(network_name, routers, clients)
    text = _HEADER + tomli_w.dumps(data)
    spec = parse_model(Spec, data, str(output), SpecError)
    try:
        plan_network(spec, lock, source=str(output), lock_source=str(lock_path))
    except InputError as exc:
        raise AdoptError(
            f"the network found cannot be planned: {exc.message}", where=exc.where, fix=exc.fix
        ) from None
    # The lock first: a spec without its lock would be planned afresh (renumbered); a lock
    # without a spec is inert.
    save_lock(lock_path, lock)
    write_atomic(output, text)
    for note in notes:
        echo(f"note: {note}")
    echo(f"wrote {output} and {lock_path} ({len(routers)} sites, {len(lock.clients)} clients)")
    echo(f"next: sitewire plan --live {output}  (only takeovers and fixes should show)")
    return ExitCode.OK


def _meshconf(path: Path | None, taken: set[str]) -> tuple[list[Router], list[str]]:
    if path is None:
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", where=str(path)) from None
    routers, notes = read_meshconf(text, str(path))
    for r in routers:
        if r.name in taken:
            raise InputError(
                f"site {r.name} is both a router given and a row of the database",
                where=str(path),
                fix="give each site once",
            )
    return routers, notes


def _reached(routers: list[Router], items: tuple[str, ...]) -> list[Router]:
    """Routers found in files, with the SSH targets --ssh gives them."""
    names = {r.name for r in routers}
    given: dict[str, str] = {}
    for item in items:
        match = _NAMED.fullmatch(item)
        if match is None or match["name"] not in names:
            raise InputError(
                f"{item!r} is not NAME=user@host for a site found in a file",
                where="--ssh",
                fix=f"name one of: {', '.join(sorted(names)) or '(no file given)'}",
            )
        Target.parse(match["name"], match["target"])  # refused here, not at apply
        given[match["name"]] = match["target"]
    return [replace(r, ssh=given.get(r.name, r.ssh)) for r in routers]


def _files(items: tuple[str, ...], taken: set[str]) -> tuple[list[Router], dict[str, str]]:
    hosts: list[Router] = []
    clients: dict[str, str] = {}
    for item in items:
        match = _NAMED.fullmatch(item)
        if match is None or match["name"] in taken:
            raise InputError(
                f"{item!r} is not NAME=FILE with a name of its own",
                where="--wg-quick",
                fix="name it: --wg-quick C=/etc/wireguard/wg0.conf",
            )
        name, path = match["name"], Path(match["target"])
        taken.add(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read: {exc}", where=str(path)) from None
        conf = parse(text, str(path))
        if "listenport" in conf.interface:
            hosts.append(router_from_wg_quick(name, text, str(path), path.stem))
        else:
            clients[file_key(text, str(path))] = name
    return hosts, clients


_HEADER = (
    "# Written by `sitewire adopt` from the routers as they were configured by hand.\n"
    "# Review it, then: sitewire plan --live (it should show only takeovers and fixes).\n\n"
)


def _where(
    targets: tuple[str, ...], lab_name: str | None
) -> tuple[dict[str, tuple[Target, str]], Credentials]:
    if lab_name is None:
        return _targets(targets), Credentials()
    from sitewire.cli.apply import lab_reach
    from sitewire.lab.host import require_root
    from sitewire.lab.state import load_state

    require_root()
    state = load_state(lab_name)
    where = lab_reach(state, targets)
    return {n: (t, f"root@{t.host}") for n, t in where.targets.items()}, where.creds
