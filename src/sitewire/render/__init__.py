"""The pure rendering stage: per device, the exact files and commands apply will push."""

from __future__ import annotations

from collections.abc import Mapping

from sitewire.plan import Plan
from sitewire.render.client import render_client
from sitewire.render.linux import render_linux
from sitewire.render.model import NoSecrets, Rendered, RenderedFile, Secrets
from sitewire.render.openwrt import render_openwrt
from sitewire.spec.model import Platform
from sitewire.uci import Package

__all__ = ["NoSecrets", "Rendered", "RenderedFile", "Secrets", "render_client", "render_site"]


def render_site(
    plan: Plan, name: str, secrets: Secrets, current: Mapping[str, Package] | None = None
) -> Rendered:
    site = plan.site(name)
    if site.platform is Platform.OPENWRT:
        return render_openwrt(plan, site, secrets, current)
    return render_linux(plan, site, secrets)
