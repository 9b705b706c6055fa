"""plan(jobs, entries, pilots, policy) -> pilots to launch and cancel per entry, with reasons.

Pure: no I/O, no clock (time arrives already folded into pilot phases). The rules are
GlideinWMS's frontend rules, with its known failures designed out:

* jobs that match several entries are split across them, and demand an entry cannot
  take (it is full, or disabled) spills to the others (GlideinWMS #332: idle jobs that
  never got pilots);
* pilots already booting or idle, and the free part of partitionable slots, count against
  demand: no launch for jobs that already have a place (#554: retiring pilots are *not*
  capacity);
* no demand, no launch (#443), except the explicit warm pool ``minPilots``; the reserve
  of idle pilots applies only while there is demand;
* only pilots that have not started yet are cancelled for covered demand, never more than
  the excess of this request, so a removal can never drain a pool (#282); over a lowered
  ``maxPilots``, booting and idle pilots go too, never one running a job;
* limits, from the entry's, the request's and the operator's, each recorded by name when
  it is what bound the number.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.condor.jobs import JobCluster
from glidein_operator.provisioning.matching import ClusterMatch, Matcher, Offer


class PilotPhase(enum.StrEnum):
    PENDING = "pending"  # asked for, not started by the cloud/CE yet: can be cancelled
    BOOTING = "booting"  # started, not yet registered in the collector
    IDLE = "idle"  # registered, nothing claimed
    CLAIMED = "claimed"  # running jobs
    RETIRING = "retiring"  # draining to its end
    STUCK = "stuck"  # never registered in time: to be reaped


ALIVE = frozenset(PilotPhase) - {PilotPhase.STUCK}
NOT_RUNNING = frozenset({PilotPhase.PENDING, PilotPhase.BOOTING, PilotPhase.IDLE})


@dataclass(frozen=True)
class PilotView:
    pilot_id: str
    request_uid: str
    entry: str
    instance_type: str
    phase: PilotPhase
    free_fraction: float = 0.0  # of a CLAIMED partitionable pilot's cores


@dataclass(frozen=True)
class Candidate:
    """An entry this request may use, with its image (None for grid/pods)."""

    name: str
    spec: CloudEntrySpec
    image: VMImageSpec | None = None


@dataclass(frozen=True)
class Ramp:
    """Slow start: at most max(initial, alive * (factor - 1)) launches per entry per cycle,
    so a broken image wastes ten VMs, not a thousand, before stuck pilots show it."""

    initial: int = 10
    factor: float = 2.0

    def allowance(self, alive: int) -> int:
        return max(self.initial, int(alive * (self.factor - 1)))


@dataclass
class EntryPlan:
    entry: str
    idle_jobs: int = 0
    demand: float = 0.0  # pilot-equivalents the matched jobs need
    capacity: float = 0.0  # pilot-equivalents already there for them
    launch: int = 0
    launch_by_type: dict[str, int] = field(default_factory=dict)
    # Pilots to cancel: pending ones first, then (over a lowered maxPilots) booting and
    # idle ones; never one running a job.
    cancel: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    bound_by: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def alive(self) -> int:
        return sum(n for p, n in self.phases.items() if p != PilotPhase.STUCK)

    @property
    def wanted(self) -> int:
        """Pilots this entry should have once the plan is carried out."""
        return self.alive + self.launch - self.cancel


@dataclass
class Unmatched:
    cluster: JobCluster
    reason: str


@dataclass
class Plan:
    entries: list[EntryPlan]
    unmatched: list[Unmatched]
    blocked: dict[str, str]
    bound_by: str  # request-wide limit that cut launches, if any
    evaluations: int = 0

    @property
    def launches(self) -> int:
        return sum(e.launch for e in self.entries)

    @property
    def cancels(self) -> int:
        return sum(e.cancel for e in self.entries)

    @property
    def idle_jobs(self) -> int:
        return sum(e.idle_jobs for e in self.entries) + sum(u.cluster.count for u in self.unmatched)

    def entry(self, name: str) -> EntryPlan:
        return next(e for e in self.entries if e.entry == name)


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` in whole numbers (deterministic)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    exact = [total * w / s for w in weights]
    out = [math.floor(x) for x in exact]
    rest = total - sum(out)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:rest]:
        out[i] += 1
    return out


@dataclass
class _EntryWork:
    plan: EntryPlan
    spec: CloudEntrySpec
    room: int
    room_reason: str
    # per cluster index -> jobs assigned here
    jobs: dict[int, int] = field(default_factory=dict)
    spilled: int = 0  # jobs moved to other entries for lack of room here
    units_by_type: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def plan(
    request_uid: str,
    spec: GlideinRequestSpec,
    candidates: Iterable[Candidate],
    clusters: Sequence[JobCluster],
    pilots: Iterable[PilotView],
    *,
    blocked: dict[str, str] | None = None,
    global_headroom: int | None = None,
    ramp: Ramp | None = None,
    matcher: Matcher | None = None,
    hold: str = "",
    caps: Mapping[str, tuple[int, str]] | None = None,
) -> Plan:
    """Decide launches and cancellations for one request.

    ``candidates``: entries the request may use (selected, trust domain credential held,
    image present). ``blocked``: entries it may not use, with why, reported as such.
    ``pilots``: every pilot at these entries, of all requests (entry limits are shared).
    ``global_headroom``: pilots the operator-wide limit still allows.
    ``hold``: why nothing may launch at all ("" when launches may go).
    ``caps``: per entry, a further bound on launches and its name (a rate limit, a backoff).
    """
    ramp = ramp or Ramp()
    blocked = dict(blocked or {})
    limits = spec.limits
    usable = []
    for c in candidates:
        if not c.spec.enabled:
            blocked[c.name] = "entry disabled"
        else:
            usable.append(c)

    pilots = list(pilots)
    mine = [p for p in pilots if p.request_uid == request_uid]
    mine_by_entry: dict[str, Counter[PilotPhase]] = defaultdict(Counter)
    capacity: dict[str, float] = defaultdict(float)
    for p in mine:
        mine_by_entry[p.entry][p.phase] += 1
        if p.phase in NOT_RUNNING:
            capacity[p.entry] += 1.0
        elif p.phase is PilotPhase.CLAIMED:
            capacity[p.entry] += p.free_fraction
    all_alive: Counter[str] = Counter(p.entry for p in pilots if p.phase in ALIVE)
    all_idle: Counter[str] = Counter(p.entry for p in pilots if p.phase in NOT_RUNNING)

    # --- per-entry room for new pilots -------------------------------------------------
    work: dict[str, _EntryWork] = {}
    for c in usable:
        phases = mine_by_entry.get(c.name, Counter())
        my_alive = sum(n for ph, n in phases.items() if ph in ALIVE)
        bounds: list[tuple[int, str]] = []
        el = c.spec.limits
        if el.max_pilots is not None:
            bounds.append((el.max_pilots - all_alive[c.name], "entry.maxPilots"))
        if el.max_idle_pilots is not None:
            bounds.append((el.max_idle_pilots - all_idle[c.name], "entry.maxIdlePilots"))
        if limits.max_pilots_per_entry is not None:
            bounds.append((limits.max_pilots_per_entry - my_alive, "request.maxPilotsPerEntry"))
        bounds.append((el.max_launch_per_cycle, "entry.maxLaunchPerCycle"))
        bounds.append((ramp.allowance(my_alive), "rampUp"))
        if spec.paused:
            bounds.append((0, "paused"))
        if hold:  # nothing may launch (no pool credential, a pool that cannot be read)
            bounds.append((0, hold))
        if caps and c.name in caps:  # the driver's: its rate limit, or a backoff
            bounds.append(caps[c.name])
        room, reason = min(bounds, key=lambda b: b[0])
        ep = EntryPlan(
            entry=c.name,
            capacity=round(capacity[c.name], 3),
            phases={str(ph): n for ph, n in sorted(phases.items())},
        )
        work[c.name] = _EntryWork(ep, c.spec, max(0, room), reason)

    # --- match and assign jobs -----------------------------------------------------------
    matcher = matcher or Matcher(
        ((c.name, c.spec, c.image) for c in usable), partitionable=spec.pilot.partitionable
    )
    matches = matcher.match(clusters, spec.match_expression)
    unmatched = [
        Unmatched(m.cluster, matcher.why_unmatched(m.cluster, spec.match_expression))
        for m in matches
        if not m.entries
    ]
    matched = [m for m in matches if m.entries]
    fullness = {
        c.name: (all_alive[c.name] / c.spec.limits.max_pilots if c.spec.limits.max_pilots else 0.0)
        for c in usable
    }
    _assign(matched, work, fullness if spec.placement == "cost" else None)

    # --- demand in pilots, minus what is already there --------------------------------------
    need: dict[str, int] = {}
    for name, w in work.items():
        units = 0.0
        for ci, jobs in w.jobs.items():
            offer, per_pilot = matched[ci].entries[name]
            u = jobs / per_pilot
            units += u
            w.units_by_type[offer.instance_type] += u
        w.plan.idle_jobs = sum(w.jobs.values())
        w.plan.demand = round(units, 3)
        need[name] = math.ceil(units - capacity[name] - 1e-9)

    total_jobs = sum(w.plan.idle_jobs for w in work.values())
    if total_jobs and limits.reserve_idle_pilots:
        # The reserve rides on demand: with an empty queue it asks for nothing (#443).
        weights = [w.plan.demand for w in work.values()]
        for (name, w), extra in zip(
            work.items(), _largest_remainder(limits.reserve_idle_pilots, weights), strict=True
        ):
            if extra:
                need[name] = max(need[name], 0) + extra
                w.plan.notes.append(f"+{extra} reserveIdlePilots")

    my_alive_total = sum(1 for p in mine if p.phase in ALIVE)
    floor_deficit = limits.min_pilots - my_alive_total - sum(max(0, n) for n in need.values())
    if floor_deficit > 0 and work:
        for name, extra in zip(
            work, _largest_remainder(floor_deficit, [1.0] * len(work)), strict=True
        ):
            if extra:
                need[name] = max(need[name], 0) + extra
                work[name].plan.notes.append(f"+{extra} minPilots")

    # --- entry-level bounds ------------------------------------------------------------
    launch: dict[str, int] = {}
    for name, w in work.items():
        wanted = max(0, need[name])
        if wanted > w.room:
            launch[name] = w.room
            w.plan.bound_by = w.room_reason
        else:
            launch[name] = wanted
            if not wanted and w.spilled:
                w.plan.bound_by = w.room_reason
            elif not wanted:
                w.plan.bound_by = (
                    "no demand" if not w.plan.idle_jobs else "covered by pilots already there"
                )
            else:
                w.plan.bound_by = "demand"

    # --- request- and operator-level bounds ------------------------------------------
    idle_now = sum(1 for p in mine if p.phase in NOT_RUNNING)
    idle_room = limits.idle_cap - idle_now
    request_bounds = [
        (limits.max_pilots - my_alive_total, "request.maxPilots"),
        (idle_room, "request.maxIdlePilots"),
    ]
    if limits.curb_idle_pilots is not None and idle_now >= limits.curb_idle_pilots:
        request_bounds.append((max(0, idle_room) // 2, "request.curbIdlePilots"))
    if global_headroom is not None:
        request_bounds.append((global_headroom, "operator.maxPilots"))
    allowed, request_reason = min(request_bounds, key=lambda b: b[0])
    allowed = max(0, allowed)
    total = sum(launch.values())
    request_bound = ""
    if total > allowed:
        request_bound = request_reason
        names = list(launch)
        for name, n in zip(
            names, _largest_remainder(allowed, [launch[n] for n in names]), strict=True
        ):
            if n < launch[name]:
                work[name].plan.bound_by = request_reason
            launch[name] = n

    # --- cancel pending pilots nobody needs (never started ones only: #282) ------------------
    over_max = max(0, my_alive_total - limits.max_pilots)
    spare_floor = max(0, my_alive_total - limits.min_pilots)
    for name, w in work.items():
        pending = mine_by_entry.get(name, Counter())[PilotPhase.PENDING]
        excess = -need[name] if need[name] < 0 else 0
        cancel = min(pending, max(excess, over_max), spare_floor)
        if cancel:
            w.plan.cancel = cancel
            spare_floor -= cancel
            over_max = max(0, over_max - cancel)
            w.plan.notes.append(f"cancel {cancel} pending: demand covered")
    # --- a lowered maxPilots: pilots running no job go too ---------------------------------
    # Past the pending ones: booting, then idle (newest first, the act picks them), so the
    # new cap holds within a cycle or two. A pilot running a job is never touched: it
    # leaves when its job is done and nothing replaces it.
    for name, w in work.items():
        if over_max <= 0 or spare_floor <= 0:
            break
        phases = mine_by_entry.get(name, Counter())
        started = phases[PilotPhase.BOOTING] + phases[PilotPhase.IDLE]
        pending_left = phases[PilotPhase.PENDING] - w.plan.cancel
        cut = min(started + pending_left, over_max, spare_floor)
        if cut:
            w.plan.cancel += cut
            spare_floor -= cut
            over_max -= cut
            w.plan.notes.append(f"cancel {cut} running no job: over request.maxPilots")

    for name, w in work.items():
        if w.spilled:
            w.plan.notes.append(f"{w.spilled} jobs moved to other entries ({w.room_reason})")
        n = launch[name]
        w.plan.launch = n
        if n:
            w.plan.launch_by_type = _split_by_type(
                n, w.units_by_type, _cheapest(matcher, name).instance_type
            )

    entries = [w.plan for w in work.values()]
    entries += [EntryPlan(entry=name, bound_by=why) for name, why in sorted(blocked.items())]
    return Plan(
        entries=entries,
        unmatched=unmatched,
        blocked=blocked,
        bound_by=request_bound,
        evaluations=matcher.evaluations,
    )


def _split_by_type(n: int, units: dict[str, float], cheapest: str) -> dict[str, int]:
    """Launches per instance type: each type gets the pilots its clusters need; what is
    left (reserve, warm pool) goes to the cheapest; a cut is shared out in proportion."""
    need = {t: math.ceil(u - 1e-9) for t, u in sorted(units.items()) if u > 1e-9}
    total = sum(need.values())
    if total <= n:
        out = dict(need)
        if n > total:
            out[cheapest] = out.get(cheapest, 0) + n - total
    else:
        names = list(need)
        shares = _largest_remainder(n, [float(need[t]) for t in names])
        out = dict(zip(names, shares, strict=True))
    return {t: k for t, k in out.items() if k}


def _cheapest(matcher: Matcher, entry: str) -> Offer:
    group = next(g for g in matcher.entries if g.entry == entry)
    return group.offers[0]


def figure_of_merit(offer: Offer, jobs_per_pilot: int, fullness: float) -> float:
    """Price per useful core, made worse as the entry fills (the HEPCloud Decision
    Engine's idea): the price of one job slot, divided by the share of the entry still
    free, so a nearly full cheap entry loses to an empty one slightly dearer."""
    if offer.price is None:
        return math.inf  # unknown is not free: any priced entry ranks first
    per_job = float(offer.price) / max(1, jobs_per_pilot)
    return per_job / max(0.05, 1.0 - min(1.0, fullness))


def _assign(
    matched: list[ClusterMatch],
    work: dict[str, _EntryWork],
    fullness: dict[str, float] | None = None,
) -> None:
    """Split each cluster's jobs over its entries (the cheapest ones when ``fullness`` is
    given, evenly otherwise), then move what a full entry cannot take to the cluster's
    other entries that still have room, cheapest first."""
    rank: dict[int, dict[str, float]] = {}
    for ci, m in enumerate(matched):
        names = list(m.entries)
        if fullness is not None:
            merit = {
                n: figure_of_merit(offer, per_pilot, fullness.get(n, 0.0))
                for n, (offer, per_pilot) in m.entries.items()
            }
            rank[ci] = merit
            best = min(merit.values())
            names = [n for n in names if merit[n] <= best * (1 + 1e-9) + 1e-12]
        for name, jobs in zip(
            names, _largest_remainder(m.cluster.count, [1.0] * len(names)), strict=True
        ):
            if jobs:
                work[name].jobs[ci] = jobs

    # pilot-equivalents each entry can still serve (what is there plus what may start),
    # and what is assigned to it; kept up to date as jobs move.
    supply = {name: w.plan.capacity + w.room for name, w in work.items()}
    demand = {
        name: sum(j / matched[ci].entries[name][1] for ci, j in w.jobs.items())
        for name, w in work.items()
    }
    has_spare = {n for n in work if supply[n] - demand[n] > 1e-9}
    for name, w in work.items():
        over = demand[name] - supply[name]
        if over <= 1e-9 or not has_spare:
            continue
        for ci in sorted(w.jobs):
            if over <= 1e-9 or not has_spare:
                break
            m = matched[ci]
            per_pilot = m.entries[name][1]
            # Only entries that still have room and also match: a set intersection, not a
            # walk over every entry a widely matching cluster can use.
            merit = rank.get(ci, {})
            for other in sorted(
                has_spare.intersection(m.entries), key=lambda n: (merit.get(n, 0.0), n)
            ):
                if other == name or over <= 1e-9:
                    continue
                spare = supply[other] - demand[other]
                other_per_pilot = m.entries[other][1]
                movable = min(
                    w.jobs.get(ci, 0),
                    math.ceil(over * per_pilot),
                    math.floor(spare * other_per_pilot),
                )
                if movable <= 0:
                    continue
                w.jobs[ci] -= movable
                w.spilled += movable
                work[other].jobs[ci] = work[other].jobs.get(ci, 0) + movable
                over -= movable / per_pilot
                demand[name] -= movable / per_pilot
                demand[other] += movable / other_per_pilot
                if supply[other] - demand[other] <= 1e-9:
                    has_spare.discard(other)
            if not w.jobs.get(ci):
                w.jobs.pop(ci, None)
