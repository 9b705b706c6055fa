"""One reconcile of one GlideinRequest: observe, decide, act, report.

``observe`` (I/O) reads the Secrets, the clouds and the pool; ``cycle.decide`` (pure)
says what to do and why; ``act`` (I/O) does it through the drivers; ``cycle.report``
(pure) writes what that came to into the status. Level-based: every cycle starts from
the clouds' listings and the collector, so a restart in the middle of anything resumes
correctly. Each entry is handled on its own: a broken entry marks itself Degraded and
the others go on.

Each reconcile has a time budget (``Settings.reconcile_budget``, controller/stopwatch.py):
one request with bad input at scale holds up neither the others (a large decision runs
off the event loop) nor itself without saying so (its ``ReconcileSlow`` condition names
what took the time).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.controller.act import Request, act
from glidein_operator.controller.observe import World, observe
from glidein_operator.controller.runtime import Runtime
from glidein_operator.controller.stopwatch import Stopwatch
from glidein_operator.provisioning import status as st
from glidein_operator.provisioning.cycle import Decision, Observed, Policy, decide, report

Emit = Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)

__all__ = ["Outcome", "World", "reconcile"]

log = logging.getLogger(__name__)

# A decision over more than this many items (pilots listed and registered, job clusters
# times usable entries) runs off the event loop: decide() is pure CPU, about 10 us an
# item, and on the loop it held every other request's reconcile (200 entries by 2,000 job
# clusters: 4 s). Off it, in a thread, the loop gets the interpreter every switch interval
# (5 ms). One thread: large decisions wait for one another, not for the small ones.
OFF_LOOP = 2_000
_DECIDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glidein-decide")


@dataclass
class Outcome:
    status: dict[str, Any]
    launched: int = 0
    terminated: int = 0
    last_batch: dict[str, int] = field(default_factory=dict)  # highest batch number used


async def reconcile(
    rt: Runtime,
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    spec: GlideinRequestSpec,
    old_status: Mapping[str, Any],
    world: World,
    emit: Emit,
) -> Outcome:
    watch = Stopwatch(rt.settings.reconcile_budget)
    with watch.phase("observe"):
        sight = await observe(rt, namespace=namespace, uid=uid, spec=spec, world=world, watch=watch)
    seen = sight.observed

    def deciding() -> Decision:
        return decide(
            seen,
            uid=uid,
            spec=spec,
            entries={n: s for n, (s, _labels, _g) in world.entries.items()},
            old_status=old_status,
            policy=Policy(
                interval=dt.timedelta(seconds=rt.settings.reconcile_interval),
                max_pilots=rt.settings.max_pilots,
            ),
        )

    with watch.phase("decide"):
        if size(seen) > OFF_LOOP:
            watch.notes.append("decide ran off the event loop")
            decision = await asyncio.get_running_loop().run_in_executor(_DECIDER, deciding)
        else:
            decision = deciding()
    # What the process remembers, from the decision (observe handed it over).
    rt.registered_once[uid] = set(decision.seen_registered)
    rt.judged |= decision.judged
    rt.interruptions[uid] = set(decision.announced)
    rt.idle_since[uid] = decision.idle_since
    for event in decision.events:
        emit(*event)

    changes = {e: d.mutations for e, d in sight.drivers.items()}
    with watch.phase("act"):
        acted = await act(
            decision,
            request=Request(name, namespace, uid, spec, rt.settings.operator_id),
            drivers=sight.drivers,
            candidates={c.name: c for c in seen.usable},
            listings=seen.listings,
            listed_at=sight.listed_at,
            pool_credential=sight.pool_credential,
            claims=rt.claims,
            emit=emit,
            now=seen.now,
            watch=watch,
        )
    for entry, d in sight.drivers.items():
        if d.mutations != changes[entry]:
            rt.listings.acted(d, uid)  # its next look must show what it did
    with watch.phase("report"):
        status, events = report(
            decision, seen, acted, spec=spec, old_status=old_status, generation=generation
        )
    for event in events:
        emit(*event)
    status["conditions"] = timed(
        watch, list(status.get("conditions") or []), generation, seen.now, emit
    )
    return Outcome(
        status=status,
        launched=acted.launched,
        terminated=acted.terminated,
        last_batch=dict(acted.tried),
    )


def size(seen: Observed) -> int:
    """How much a decision has to go through: pilots listed and registered, and each job
    cluster once per usable entry (matching)."""
    return (
        sum(len(ps) for ps in seen.listings.values())
        + len(seen.registered or ())
        + len(seen.clusters) * max(1, len(seen.usable))
    )


def timed(
    watch: Stopwatch,
    conditions: list[dict[str, Any]],
    generation: int,
    now: dt.datetime,
    emit: Emit,
) -> list[dict[str, Any]]:
    """The ``ReconcileSlow`` condition: True, naming what took the time, when the reconcile
    ran over its budget or the budget cut something; back to False once one fits. Absent
    on a request that never ran over."""
    old = next((c for c in conditions if c.get("type") == "ReconcileSlow"), None)
    if watch.over():
        message = watch.message()
        if old is None or old.get("status") != "True":
            emit("Warning", "ReconcileSlow", message)
            log.warning("%s", message)
        return st.set_condition(
            conditions, "ReconcileSlow", "True", "OverTimeBudget", message, generation, now
        )
    if old is None:
        return conditions
    return st.set_condition(
        conditions,
        "ReconcileSlow",
        "False",
        "WithinTimeBudget",
        f"the reconcile fits its time budget of {watch.budget:g}s (GLIDEIN_RECONCILE_BUDGET)",
        generation,
        now,
    )
