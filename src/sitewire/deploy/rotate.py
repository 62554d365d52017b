"""`sitewire rotate`: the configure stage of an apply that replaces private keys (issue 13).

Each rotated router makes its new key itself (prepare), and every peer learns the new public
key from the plan. For the links to stop only for a handshake, the switch happens everywhere at
once: every site's files are written first (gate `pushed`), then all make the change live
together, the rotated ones with `wg set private-key` (no interface re-created); once every site
runs the new keys (gate `switched`) the dialling ends re-create their changed peers, so a
handshake that went out in the moment before the other end switched is not retried only after
WireGuard's 5 s. With --psk the pairs' new preshared keys are made live too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

from sitewire.deploy.events import Event
from sitewire.deploy.live import (
    Step,
    peers_running_script,
    psk_live_script,
    rehandshake_script,
)
from sitewire.deploy.remote import Shell
from sitewire.deploy.run import Armed, Configured, Options, run_steps
from sitewire.driver import Driver
from sitewire.plan import Plan
from sitewire.plan.model import SitePlan


class Gate:
    """Opens once every site has arrived (its part done, or failed); arriving twice is once."""

    def __init__(self, sites: Collection[str]) -> None:
        self.waiting = set(sites)
        self.opened = asyncio.Event()
        if not self.waiting:
            self.opened.set()

    def arrive(self, site: str) -> None:
        self.waiting.discard(site)
        if not self.waiting:
            self.opened.set()


class Rotation:
    def __init__(self, opts: Options, sites: Collection[str]) -> None:
        self.rotate, self.psk = opts.rotate, opts.rotate_psk
        self.pushed, self.switched = Gate(sites), Gate(sites)

    def leave(self, site: str) -> None:
        """`site` is done (or failed, wherever): no gate waits for it any more."""
        self.pushed.arrive(site)
        self.switched.arrive(site)

    def _touched(self, planned: SitePlan) -> list[str]:
        """The peers whose keys change on this site: all of them if it rotates."""
        mine = planned.name in self.rotate
        return [p.name for p in planned.peers if mine or p.name in self.rotate]

    def steps(self, planned: SitePlan, driver: Driver, steps: Sequence[Step]) -> list[Step]:
        """The new private key live first; the wait for a handler's background renew; with
        --psk, the new preshared keys last, once every peer runs."""
        out = list(steps)
        if planned.name in self.rotate:
            why = "the new private key, live: every peer handshakes anew"
            out.insert(0, Step(driver.key_live(planned.interface), why))
        if any(p.name in self.rotate for p in planned.peers):
            why = "until every peer with its new key runs (a renew applies them in the background)"
            out.append(Step(peers_running_script(planned), why))
        if self.psk:
            sites = {p.name for p in planned.peers if p.kind == "site"}
            renewed = [n for n in self._touched(planned) if n in sites]
            script = psk_live_script(planned, renewed, driver.psk_read)
            if script is not None:
                out.append(Step(script, "the new preshared keys, live"))
        return out

    async def run(
        self,
        session: Shell,
        armed: Armed,
        planned: SitePlan,
        driver: Driver,
        steps: Sequence[Step],
        emit: Callable[[Event], None],
    ) -> Configured:
        try:
            done = await run_steps(session, armed, self.steps(planned, driver, steps), emit)
        finally:
            self.switched.arrive(planned.name)
        await self.switched.opened.wait()
        script = rehandshake_script(planned, self._touched(planned), driver.psk_read)
        if script is None or done.problem is not None:
            return done
        why = "every site runs the new keys: a first handshake now, not a retry in 5 s"
        return await run_steps(session, armed, [Step(script, why)], emit)


def renewed_psks(opts: Options, plan: Plan) -> list[tuple[str, str]]:
    """`rotate --psk`: every preshared pair with a rotated end, (a, b) with a < b."""
    if not opts.rotate_psk:
        return []
    return [
        (name, peer.name)
        for name in plan.site_names
        for peer in plan.site(name).peers
        if peer.kind == "site" and peer.preshared and name < peer.name
        if name in opts.rotate or peer.name in opts.rotate
    ]
