"""One reconcile of one GlideinRequest: observe, decide, act, report.

``observe`` (I/O) reads the Secrets, the clouds and the pool; ``cycle.decide`` (pure)
says what to do and why; ``act`` (I/O) does it through the drivers; ``cycle.report``
(pure) writes what that came to into the status. Level-based: every cycle starts from
the clouds' listings and the collector, so a restart in the middle of anything resumes
correctly. Each entry is handled on its own: a broken entry marks itself Degraded and
the others go on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.controller.act import Request, act
from glidein_operator.controller.observe import World, observe
from glidein_operator.controller.runtime import Runtime
from glidein_operator.provisioning.cycle import Policy, decide, report

Emit = Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)

__all__ = ["Outcome", "World", "reconcile"]


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
    sight = await observe(rt, namespace=namespace, uid=uid, spec=spec, world=world)
    seen = sight.observed
    decision = decide(
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
    # What the process remembers, from the decision (observe handed it over).
    rt.registered_once[uid] = set(decision.seen_registered)
    rt.judged |= decision.judged
    rt.interruptions[uid] = set(decision.announced)
    rt.idle_since[uid] = decision.idle_since
    for event in decision.events:
        emit(*event)

    changes = {e: d.mutations for e, d in sight.drivers.items()}
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
    )
    for entry, d in sight.drivers.items():
        if d.mutations != changes[entry]:
            rt.listings.acted(d, uid)  # its next look must show what it did
    status, events = report(
        decision, seen, acted, spec=spec, old_status=old_status, generation=generation
    )
    for event in events:
        emit(*event)
    return Outcome(
        status=status,
        launched=acted.launched,
        terminated=acted.terminated,
        last_batch=dict(acted.tried),
    )
