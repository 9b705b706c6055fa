"""Making sure nothing is left: a deleted request's pilots, a deleted entry's pilots, and
pilots whose request is gone (orphans).

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
from glidein_operator.controller.reconcile import World, _credential
from glidein_operator.controller.runtime import Runtime
from glidein_operator.ground import CloudPilot, PilotState

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    terminated: int = 0
    left: int = 0  # still alive after the terminate calls (ending, or a call failed)
    failed: list[str] | None = None  # entry: why, for calls that failed


def _alive(pilots: list[CloudPilot], uid: str | None) -> list[CloudPilot]:
    # Anything not terminated still exists, and may cost: a SHUTOFF or ERROR server too.
    return [
        p
        for p in pilots
        if p.state is not PilotState.TERMINATED and (uid is None or p.request_uid == uid)
    ]


async def _drivers(
    rt: Runtime,
    entry: str,
    spec: CloudEntrySpec,
    generation: int,
    kept: list[Kept],
    built: Sequence[InstrumentedDriver],
) -> dict[InstrumentedDriver, list[Kept]]:
    """One driver per distinct credential (``built`` ones, and those from kept copies,
    deduplicated by Runtime.driver's key), each with the kept copies behind it."""
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
            doomed = _alive(await d.list_pilots(), uid)
            if doomed:
                await d.terminate(doomed)
                sweep.terminated += len(doomed)
            # Key pairs and payload Secrets a kill left between create and launch, or
            # between terminate and delete.
            await d.collect(uid)
            sweep.left += len(_alive(await d.list_pilots(), uid))
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
        drivers = await _drivers(
            rt, entry, espec, generation, [k for k in kept if k.entry == entry], own
        )
        await _sweep(drivers, entry, uid, sweep)
    return sweep


async def entry_pilots(rt: Runtime, entry: str, spec: CloudEntrySpec, generation: int) -> Sweep:
    """Terminate every pilot of ours at an entry that is being deleted, whichever
    request launched it; then forget the copies of credentials kept for it."""
    kept = await rt.keeper.kept(entry)
    sweep = Sweep()
    drivers = await _drivers(rt, entry, spec, generation, kept, rt.drivers_for(entry))
    await _sweep(drivers, entry, None, sweep)
    if not sweep.left:
        for k in kept:
            await rt.keeper.forget(k)
    return sweep


async def orphans(
    rt: Runtime,
    entry: str,
    spec: CloudEntrySpec,
    generation: int,
    alive_requests: Collection[str],
    request_namespaces: Collection[str],
) -> int | None:
    """Terminate pilots at the entry whose request is gone, through every credential
    that reaches it (after a restart, the kept copies are the only ones). A copy whose
    namespace has no request left and behind which nothing of ours is alive goes.
    Returns how many pilots of live requests run there (None: no credential reaches it)."""
    kept = await rt.keeper.kept(entry)
    drivers = await _drivers(rt, entry, spec, generation, kept, rt.drivers_for(entry))
    if not drivers:
        return None
    live = 0
    for d in drivers:
        try:
            listed = _alive(await d.list_pilots(), None)
        except DriverError:
            continue
        stray = [p for p in listed if p.request_uid and p.request_uid not in alive_requests]
        if stray:
            try:
                await d.terminate(stray)
            except DriverError as exc:
                log.warning("orphans at %s: %s", entry, exc)
        live += len(listed) - len(stray)
        # Leftovers of any batch with no pilot alive, sparing launches in flight.
        try:
            await d.collect(None, min_age_seconds=600)
        except DriverError as exc:
            log.warning("leftovers at %s: %s", entry, exc)
        if not listed:
            for k in drivers[d]:
                if k.namespace not in request_namespaces:
                    await rt.keeper.forget(k)
    return live
