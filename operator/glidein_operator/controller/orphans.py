"""The orphan collector: pilots at an entry whose GlideinRequest is gone.

A request's finalizer terminates its pilots before the request goes, but a finalizer
can be forced off, or its namespace deleted while the operator was down. So every
``INTERVAL`` seconds, for each CloudEntry (a kopf timer of its own, ``collect_orphans``),
the collector lists the entry through every credential that reaches it (after a
restart, the kept copies are the only ones: controller/keeper.py) and terminates the
pilots whose request no longer exists. It also counts the pilots of live requests
there, which the entry's status shows (``.status.pilots``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.controller.cleanup import alive, drivers_reaching
from glidein_operator.controller.runtime import Runtime

log = logging.getLogger(__name__)

# Seconds between two collections at one entry: an orphan costs until it is found, and
# each collection is one listing per credential at the entry.
INTERVAL = 30.0

# Leftovers of a batch (key pairs, payload Secrets) younger than this are spared: a
# launch may be in flight between creating them and starting its pilots.
LEFTOVER_MIN_AGE = 600.0


async def collect(
    rt: Runtime,
    entry: str,
    spec: CloudEntrySpec,
    generation: int,
    alive_requests: Collection[str],
    request_namespaces: Collection[str],
) -> int | None:
    """Terminate pilots at the entry whose request is gone (not in ``alive_requests``,
    by uid), through every credential that reaches it, and the leftovers of batches with
    no pilot alive. A kept copy whose namespace has no request left
    (``request_namespaces``) and behind which nothing of ours is alive goes. Returns how
    many pilots of live requests are alive there, each counted once however many
    credentials see it (None: no credential reaches the entry)."""
    kept = await rt.keeper.kept(entry)
    drivers = await drivers_reaching(rt, entry, spec, generation, kept, rt.drivers_for(entry))
    if not drivers:
        return None
    live: set[str] = set()
    for d in drivers:
        try:
            # The listing the requests share (controller/listings.py): no extra call.
            listed = alive((await rt.listings.listing(d)).pilots, None)
        except DriverError:
            continue
        stray = [p for p in listed if p.request_uid and p.request_uid not in alive_requests]
        if stray:
            try:
                await d.terminate(stray)
            except DriverError as exc:
                log.warning("orphans at %s: %s", entry, exc)
        strays = {p.cloud_id for p in stray}
        live |= {p.cloud_id for p in listed if p.cloud_id not in strays}
        try:
            await d.collect(None, min_age_seconds=LEFTOVER_MIN_AGE)
        except DriverError as exc:
            log.warning("leftovers at %s: %s", entry, exc)
        if not listed:
            for k in drivers[d]:
                if k.namespace not in request_namespaces:
                    await rt.keeper.forget(k)
    return len(live)
