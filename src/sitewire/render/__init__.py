"""The pure rendering stage: per device, the exact files and commands apply will push."""

from __future__ import annotations

from collections.abc import Mapping

from sitewire.driver import driver_for
from sitewire.plan import Plan
from sitewire.render.client import render_client
from sitewire.render.model import NoSecrets, Rendered, RenderedFile, Secrets
from sitewire.uci import Package

__all__ = ["NoSecrets", "Rendered", "RenderedFile", "Secrets", "render_client", "render_site"]


def render_site(
    plan: Plan, name: str, secrets: Secrets, current: Mapping[str, Package] | None = None
) -> Rendered:
    """`name`'s files, rendered over `current` (the UCI packages its device holds) if known."""
    site = plan.site(name)
    return driver_for(site.platform).render_onto(plan, site, secrets, current)
