"""The status as JSON: what `--json` prints, and the last one kept beside the lock."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sitewire import strict
from sitewire.diagnose.status.model import (
    Health,
    LinkStatus,
    NetworkStatus,
    SiteStatus,
    TailnetState,
)
from sitewire.errors import InputError

VERSION = 1


def status_path(lock_path: Path) -> Path:
    """network.lock -> network.status.json: the last status, beside the lock it describes."""
    return lock_path.with_name(f"{lock_path.stem}.status.json")


def status_json(status: NetworkStatus) -> dict[str, object]:
    """What `--json` prints and `graph` reads: the dataclasses' own fields, versioned."""
    data = asdict(status)
    data.update(taken_at=round(status.taken_at, 3), seconds=round(status.seconds, 2))
    return {"version": VERSION, **data, "healthy": status.healthy}


def status_from_json(text: str, where: str) -> NetworkStatus:
    """The saved status back as values; a file from another version is refused with the fix."""
    fix = "run `sitewire status` again to replace it"
    try:
        data = strict.loads_json(text)
        if data.get("version") != VERSION:
            raise InputError(
                f"status version {data.get('version')!r}, not {VERSION}", where=where, fix=fix
            )
        sites = tuple(
            SiteStatus(
                **{
                    **s,
                    "lan": tuple(s["lan"]),
                    "tailnet": s["tailnet"] and TailnetState(**s["tailnet"]),
                }
            )
            for s in data["sites"]
        )
        links = tuple(LinkStatus(**{**x, "health": Health(x["health"])}) for x in data["links"])
        return NetworkStatus(
            str(data["network"]), float(data["taken_at"]), float(data["seconds"]), sites, links
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a sitewire status file: {exc}", where=where, fix=fix) from None
