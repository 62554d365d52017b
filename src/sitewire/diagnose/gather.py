"""The live network for status and doctor: every site's facts, then its probes, in parallel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sitewire.deploy.ssh import Credentials, Session, Target, connect
from sitewire.diagnose.collect import run_sections
from sitewire.diagnose.doctor import Live
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.probes import Probes, parse_probes, probe_sections
from sitewire.diagnose.script import FACT_SECTIONS
from sitewire.errors import SitewireError
from sitewire.plan import Plan


@dataclass
class Gathered:
    live: Live
    unreachable: dict[str, str] = field(default_factory=dict)  # site -> why
    seconds: float = 0.0


async def gather_network(plan: Plan, targets: Mapping[str, Target], creds: Credentials) -> Gathered:
    """Two round trips per site, all sites at once; a site that cannot be read is reported."""
    started = time.monotonic()
    sessions: dict[str, Session] = {}
    facts: dict[str, DeviceFacts] = {}
    unreachable: dict[str, str] = {}

    async def read(name: str) -> None:
        try:
            session = await connect(targets[name], creds)
            sessions[name] = session
            sections = await run_sections(session, FACT_SECTIONS)
            facts[name] = facts_from_sections(name, plan.site(name).platform, sections)
        except SitewireError as exc:
            unreachable[name] = str(exc)

    probes: dict[str, Probes] = {}

    async def probe(name: str) -> None:
        try:
            sections = await run_sections(sessions[name], probe_sections(plan, name, {**facts}))
            probes[name] = parse_probes(sections["sw_probes"])
        except SitewireError as exc:
            unreachable[name] = str(exc)
            facts.pop(name, None)

    try:
        await asyncio.gather(*(read(n) for n in plan.site_names))
        await asyncio.gather(*(probe(n) for n in plan.site_names if n in facts))
    finally:
        await asyncio.gather(*(s.close() for s in sessions.values()), return_exceptions=True)
    live = Live(plan, facts, probes)
    return Gathered(live, unreachable, time.monotonic() - started)
