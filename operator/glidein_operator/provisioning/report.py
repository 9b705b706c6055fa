"""Why idle jobs are left without a new pilot after a cycle, in words an admin reads
without the code: "320 jobs match only entry X, which is full (entry.maxPilots)".

Pure: from the final plan (the planner's, with the budget's cuts applied). For every job
the plan does not launch a pilot for, one reason, the first that holds:

* no entry: no entry can run it (``Plan.unmatched``, with the matcher's sentence);
* pilots already there: pilots booting, idle, or with room left in a busy partitionable
  slot are counted as its place (it waits for them, no new pilot is asked for);
* whatever bound the entry's launches: a limit (``entry.maxPilots``, ``request.maxPilots``,
  ...), ramp-up, the budget, the driver's rate limit or backoff, a pause, a hold.

Read by ``glidein-operator plan`` (cli_plan.py) and written to the request's status
(``.status.uncovered``, ``.status.totals.uncoveredJobs``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from glidein_operator.provisioning.planner import EntryPlan, Plan

WAITING = "pilots already there"
NO_ENTRY = "no entry"
# Bounds that say the entry (or the request) is full, and how to say it.
FULL = ("entry.maxPilots", "request.maxPilotsPerEntry", "request.maxPilots", "operator.maxPilots")
IDLE_LIMITS = (
    "entry.maxIdlePilots",
    "request.maxIdlePilots",
    "request.curbIdlePilots",
)


@dataclass(frozen=True)
class Uncovered:
    """Idle jobs the plan launches no pilot for, and the one thing that bound them."""

    jobs: int
    bound_by: str
    entries: tuple[str, ...]
    message: str


def _jobs(n: int, verb: str = "") -> str:
    """'1 job matches', '320 jobs match'."""
    if n == 1:
        return f"1 job {verb}es" if verb.endswith("ch") else f"1 job {verb}s" if verb else "1 job"
    return f"{n} jobs {verb}" if verb else f"{n} jobs"


def _state(bound_by: str) -> str:
    """What an entry is, when ``bound_by`` stopped its launches."""
    if bound_by in FULL:
        return f"full ({bound_by})"
    if bound_by in IDLE_LIMITS:
        return f"at its limit of idle pilots ({bound_by})"
    if bound_by == "rampUp":
        return "ramping up (slow start: launches grow with the pilots that register)"
    if bound_by == "budget":
        return "held back by the budget"
    if bound_by == "entry.maxLaunchPerCycle":
        return "at its launches per cycle (entry.maxLaunchPerCycle)"
    if bound_by == "entry.launchesPerMinute":
        return "at its launch rate limit (entry.launchesPerMinute)"
    if bound_by == "backoff":
        return "backing off after failed launches or pilots that did not register"
    if bound_by == "paused":
        return "paused (spec.paused)"
    return f"held: {bound_by}"


def _short(e: EntryPlan) -> int:
    """Jobs at the entry that neither pilots already there nor this cycle's launches
    have room for."""
    short = 0
    for itype, jobs in e.jobs_by_type.items():
        room = e.launch_by_type.get(itype, 0) * e.slots_by_type.get(itype, 1.0)
        short += max(0, math.ceil(jobs - room - 1e-6))
    return short


def explain(plan: Plan) -> list[Uncovered]:
    """Every idle job the plan launches no pilot for, grouped by what bound it, the
    largest groups first."""
    out: list[Uncovered] = []
    waiting: list[tuple[str, int]] = []
    for e in plan.entries:
        if e.entry in plan.blocked or not e.idle_jobs:
            continue
        if e.covered_jobs:
            waiting.append((e.entry, e.covered_jobs))
        short = _short(e)
        if not short:
            continue
        bound = e.bound_by or "demand"
        state = _state(bound)
        only = min(short, e.sole_jobs)
        if only:
            out.append(
                Uncovered(
                    only,
                    bound,
                    (e.entry,),
                    f"{_jobs(only, 'match')} only entry {e.entry}, which is {state}",
                )
            )
        if short - only:
            out.append(
                Uncovered(
                    short - only,
                    bound,
                    (e.entry,),
                    f"{_jobs(short - only, 'get')} no pilot at entry {e.entry}: it is {state}, "
                    "and no other entry they match has room left",
                )
            )
    if waiting:
        n = sum(j for _, j in waiting)
        names = tuple(sorted(name for name, _ in waiting))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        out.append(
            Uncovered(
                n,
                WAITING,
                names,
                f"{_jobs(n, 'wait')} for pilots already there (booting, idle, or with room left) "
                f"at {shown}",
            )
        )
    no_entry: dict[str, int] = defaultdict(int)
    for u in plan.unmatched:
        no_entry[u.reason] += u.cluster.count
    for reason, n in no_entry.items():
        out.append(Uncovered(n, NO_ENTRY, (), f"{_jobs(n, 'match')} no entry: {reason}"))
    out.sort(key=lambda u: (-u.jobs, u.message))
    return out
