"""Making sure nothing is left when something is deleted: a deleted request's pilots, and
a deleted entry's pilots (pilots whose request is gone without its finalizer:
controller/orphans.py, which reaches the clouds the same way).

Each reaches the cloud with every credential that could have launched there: the
request's own Secret while it exists, and the copies the operator kept of it
(controller/keeper.py) when the Secret went first (a deleted namespace). Each says how
many pilots are still alive, so that a finalizer holds until the cloud is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.controller.keeper import Kept
from glidein_operator.controller.observe import World
from glidein_operator.controller.observe import credential as _credential
from glidein_operator.controller.runtime import Runtime
from glidein_operator.ground import CloudPilot, PilotState

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    terminated: int = 0
    left: int = 0  # still alive after the terminate calls (ending, or a call failed)
    failed: list[str] | None = None  # entry: why, for calls that failed


def alive(pilots: list[CloudPilot], uid: str | None) -> list[CloudPilot]:
    """The pilots not terminated yet (of one request, or all)."""
    # Anything not terminated still exists, and may cost: a SHUTOFF or ERROR server too.
    return [
        p
        for p in pilots
        if p.state is not PilotState.TERMINATED and (uid is None or p.request_uid == uid)
    ]


async def drivers_reaching(
    rt: Runtime,
    entry: str,
    spec: CloudEntrySpec,
    generation: int,
    kept: list[Kept],
    built: Sequence[InstrumentedDriver],
) -> dict[InstrumentedDriver, list[Kept]]:
    """The drivers that reach an entry: one per distinct credential (``built`` ones, and
    those made from kept copies, deduplicated by Runtime.driver's key, which keeps them),
    each with the kept copies behind it."""
    out: dict[InstrumentedDriver, list[Kept]] = {d: [] for d in built}
    for k in kept:
        try:
            d = rt.driver(entry, spec, generation, k.credential())
        except DriverError as exc:
            log.warning("kept credential %s cannot reach %s: %s", k.name, entry, exc)
            continue
        out.setdefault(d, []).append(k)
    return out


async def _sweep(
    drivers: Collection[InstrumentedDriver], entry: str, uid: str | None, sweep: Sweep
) -> None:
    for d in drivers:
        try:
            doomed = alive(await d.list_pilots(), uid)
            if doomed:
                await d.terminate(doomed)
                sweep.terminated += len(doomed)
            # Key pairs and payload Secrets a kill left between create and launch, or
            # between terminate and delete.
            await d.collect(uid)
            sweep.left += len(alive(await d.list_pilots(), uid))
        except DriverError as exc:
            sweep.left += 1
            sweep.failed = [*(sweep.failed or []), f"{entry}: {exc}"]


async def request_pilots(
    rt: Runtime,
    uid: str,
    namespace: str,
    spec: GlideinRequestSpec | None,
    world: World,
) -> Sweep:
    """Terminate every pilot of a request that is being deleted, at every entry, with
    its own Secret if it is still there and with the kept copies of its namespace's
    Secrets otherwise. A spec that no longer validates does not stop it."""
    sweep = Sweep()
    kept = [k for k in await rt.keeper.kept() if k.namespace == namespace]
    for entry, (espec, _labels, generation) in world.entries.items():
        own: list[InstrumentedDriver] = []
        if spec is not None:
            got = await _credential(rt, namespace, spec, espec, world)
            if not isinstance(got, str):
                try:
                    own.append(rt.driver(entry, espec, generation, got))
                except DriverError as exc:
                    log.warning("cleanup of %s/%s at %s: %s", namespace, uid, entry, exc)
        # Only credentials this request (its namespace) had: another request's entry
        # that is down must not hold this deletion.
        drivers = await drivers_reaching(
            rt, entry, espec, generation, [k for k in kept if k.entry == entry], own
        )
        await _sweep(drivers, entry, uid, sweep)
    return sweep


async def entry_pilots(rt: Runtime, entry: str, spec: CloudEntrySpec, generation: int) -> Sweep:
    """Terminate every pilot of ours at an entry that is being deleted, whichever
    request launched it; then forget the copies of credentials kept for it."""
    kept = await rt.keeper.kept(entry)
    sweep = Sweep()
    drivers = await drivers_reaching(rt, entry, spec, generation, kept, rt.drivers_for(entry))
    await _sweep(drivers, entry, None, sweep)
    if not sweep.left:
        for k in kept:
            await rt.keeper.forget(k)
    return sweep
