"""plan(jobs, entries, pilots, policy) -> pilots to launch and cancel per entry, with reasons.

Pure: no I/O, no clock (time arrives already folded into pilot phases). The rules are
GlideinWMS's frontend rules, with its known failures designed out:

* jobs that match several entries are split across them, and demand an entry cannot
  take (it is full, or disabled) spills to the others (GlideinWMS #332: idle jobs that
  never got pilots);
* pilots already booting or idle, and what partitionable slots have left, count against
  demand: no launch for jobs that already have a place (#554: retiring pilots are *not*
  capacity). What a busy pilot has left counts for a cluster only as the jobs of that
  cluster it fits on every dimension (cpus, memory, disk, gpus): free cores beside 1 GB of
  memory are no place for an 8 GB job;
* each entry launches, for each cluster, the instance type with the cheapest job slot
  (the price of a pilot over the jobs it runs at once), and placement ``cost`` ranks
  entries by that same figure;
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

from glidein_operator.api.base import parse_quantity
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.condor.jobs import JobCluster
from glidein_operator.condor.pilots import Leftover
from glidein_operator.provisioning.matching import KIB, MIB, ClusterMatch, Matcher, Offer, size_of


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
    # What a CLAIMED partitionable pilot has left on every dimension, as its startd ad
    # says; None: only the fraction is known (of every dimension of its type, then).
    left: Leftover | None = None


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
    # For the explanation of jobs left without a pilot (provisioning/report.py):
    covered_jobs: int = 0  # idle jobs that pilots already there have room for
    jobs_by_type: dict[str, int] = field(default_factory=dict)  # jobs that need new pilots
    slots_by_type: dict[str, float] = field(default_factory=dict)  # their jobs per pilot
    sole_jobs: int = 0  # of idle_jobs, those of clusters no other entry can run

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
    others: Mapping[str, Mapping[PilotPhase, int]] | None = None,
) -> Plan:
    """Decide launches and cancellations for one request.

    ``candidates``: entries the request may use (selected, trust domain credential held,
    image present). ``blocked``: entries it may not use, with why, reported as such.
    ``pilots``: every pilot at these entries, of all requests (entry limits are shared).
    ``global_headroom``: pilots the operator-wide limit still allows.
    ``hold``: why nothing may launch at all ("" when launches may go).
    ``caps``: per entry, a further bound on launches and its name (a rate limit, a backoff).
    ``others``: other requests' pilots per entry and phase, where ``pilots`` holds only
    this request's (``lifecycle.shared_phases``).
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
    specs = {c.name: c.spec for c in usable}
    # What pilots already there have room for: per entry, their leftovers (whole ones for
    # pilots running no job), and pilot-equivalents where the type is not known.
    room_left: dict[str, Counter[Leftover]] = defaultdict(Counter)
    blind: dict[str, float] = defaultdict(float)
    capacity: dict[str, float] = defaultdict(float)
    wholes: dict[tuple[str, str], Leftover | None] = {}
    for p in mine:
        mine_by_entry[p.entry][p.phase] += 1
        if p.phase in NOT_RUNNING or p.phase is PilotPhase.CLAIMED:
            if (p.entry, p.instance_type) not in wholes:
                wholes[(p.entry, p.instance_type)] = _whole(specs.get(p.entry), p.instance_type)
            whole = wholes[(p.entry, p.instance_type)]
            left, share = _room(p, whole)
            capacity[p.entry] += share
            if left is not None:
                if left.cpus > 0:
                    room_left[p.entry][left] += 1
            else:
                blind[p.entry] += share
    all_alive: Counter[str] = Counter(p.entry for p in pilots if p.phase in ALIVE)
    all_idle: Counter[str] = Counter(p.entry for p in pilots if p.phase in NOT_RUNNING)
    for entry, phases in (others or {}).items():
        all_alive[entry] += sum(n for ph, n in phases.items() if ph in ALIVE)
        all_idle[entry] += sum(n for ph, n in phases.items() if ph in NOT_RUNNING)

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
    _assign(matched, work, matcher, fullness if spec.placement == "cost" else None)

    # --- demand in pilots, minus what is already there --------------------------------------
    need: dict[str, int] = {}
    for name, w in work.items():
        units = 0.0
        uncovered = _fill(room_left.get(name, Counter()), w.jobs, matched)
        jobs_by_type: dict[str, int] = defaultdict(int)
        for ci, jobs in w.jobs.items():
            offer, per_pilot = matched[ci].entries[name]
            units += jobs / per_pilot
            short = uncovered[ci]
            if short:
                w.units_by_type[offer.instance_type] += short / per_pilot
                jobs_by_type[offer.instance_type] += short
            if len(matched[ci].entries) == 1:
                w.plan.sole_jobs += jobs
        w.plan.idle_jobs = sum(w.jobs.values())
        w.plan.covered_jobs = w.plan.idle_jobs - sum(jobs_by_type.values())
        w.plan.jobs_by_type = dict(sorted(jobs_by_type.items()))
        w.plan.slots_by_type = {
            t: round(n / w.units_by_type[t], 6) for t, n in w.plan.jobs_by_type.items()
        }
        w.plan.demand = round(units, 3)
        short_units = sum(w.units_by_type.values())
        if short_units > 1e-9:
            need[name] = math.ceil(short_units - blind[name] - 1e-9)
        else:
            # Every job has a place: what is there beyond the demand is the excess that
            # pending pilots may be cancelled for (negative need).
            need[name] = min(0, math.ceil(units - capacity[name] - 1e-9))

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


def figure_of_merit(slot_price: float, fullness: float) -> float:
    """The price of one job slot (``Matcher.slot_price``: ``launch_price`` per job, inf
    when unknown, which is not free: any priced entry ranks first), made worse as the
    entry fills (the HEPCloud Decision Engine's idea): divided by the share of the entry
    still free, so a nearly full cheap entry loses to an empty one slightly dearer."""
    if math.isinf(slot_price):
        return math.inf
    return slot_price / max(0.05, 1.0 - min(1.0, fullness))


def _whole(spec: CloudEntrySpec | None, instance_type: str) -> Leftover | None:
    """A pilot of this type with nothing taken (None: the type is not the entry's)."""
    itype = spec.instance_type(instance_type) if spec is not None else None
    if itype is None:
        return None
    return Leftover(
        itype.cpus,
        parse_quantity(itype.memory) // MIB,
        parse_quantity(itype.disk) // KIB,
        itype.gpus,
    )


def _room(p: PilotView, whole: Leftover | None) -> tuple[Leftover | None, float]:
    """What a pilot running no job, or a busy partitionable one, has room for, and that
    as a share of a whole pilot (the smallest share over its dimensions)."""
    if p.phase in NOT_RUNNING:
        return whole, 1.0
    if p.left is not None:
        left = p.left
    elif whole is not None:
        f = max(0.0, min(1.0, p.free_fraction))
        left = Leftover(
            math.floor(whole.cpus * f),
            None if whole.memory_mb is None else math.floor(whole.memory_mb * f),
            None if whole.disk_kb is None else math.floor(whole.disk_kb * f),
            math.floor(whole.gpus * f),
        )
    else:
        return None, max(0.0, min(1.0, p.free_fraction))
    if whole is None:
        return left, max(0.0, min(1.0, p.free_fraction))
    shares = [left.cpus / max(1, whole.cpus)]
    if left.memory_mb is not None and whole.memory_mb:
        shares.append(left.memory_mb / whole.memory_mb)
    if left.disk_kb is not None and whole.disk_kb:
        shares.append(left.disk_kb / whole.disk_kb)
    if whole.gpus:
        shares.append(left.gpus / whole.gpus)
    return left, max(0.0, min(1.0, *shares))


def _fill(
    room: Counter[Leftover], jobs: Mapping[int, int], matched: Sequence[ClusterMatch]
) -> dict[int, int]:
    """Jobs of each cluster that pilots already there have no room for. The room is
    shared: each job placed takes its cpus, memory, disk and gpus out of one pilot's
    leftover (biggest jobs first), so no free core is counted twice or next to memory that
    is not there."""
    uncovered = dict(jobs)
    groups = [(left, n) for left, n in room.items() if n > 0 and left.cpus > 0]
    if not groups:
        return uncovered
    sizes = {ci: size_of(matched[ci].cluster) for ci in jobs}
    order = sorted(jobs, key=lambda ci: (-sizes[ci][0], -sizes[ci][1], ci))
    no_fit: set[tuple[int, int, int, int]] = set()  # room only shrinks: no fit stays so
    for ci in order:
        size = sizes[ci]
        want = uncovered[ci]
        if not want or size in no_fit:
            continue
        fits = [left.jobs_fit(*size) for left, _ in groups]
        if not any(f > 0 for f in fits):
            no_fit.add(size)
            continue
        after: Counter[Leftover] = Counter()
        for (left, n), fit in zip(groups, fits, strict=True):
            if fit <= 0 or not want:
                after[left] += n
                continue
            take = min(want, fit * n)
            want -= take
            full, part = divmod(take, fit)
            if full:
                after[left.minus(fit, *size)] += full
            if part:
                after[left.minus(part, *size)] += 1
            if n - full - (1 if part else 0):
                after[left] += n - full - (1 if part else 0)
        uncovered[ci] = want
        groups = [(left, n) for left, n in after.items() if left.cpus > 0]
        if not groups:
            break
    return uncovered


def _assign(
    matched: list[ClusterMatch],
    work: dict[str, _EntryWork],
    matcher: Matcher,
    fullness: dict[str, float] | None = None,
) -> None:
    """Split each cluster's jobs over its entries (the cheapest ones when ``fullness`` is
    given, evenly otherwise), then move what a full entry cannot take to the cluster's
    other entries that still have room, cheapest first."""
    # Per cluster, its entries in the order jobs spill to them (cheapest first under
    # placement cost). The matcher shares one choice dict among clusters of the same size
    # and matching offers: their ranking is the same too, worked out once.
    order: dict[int, list[str]] = {}
    ranked: dict[tuple[int, int], tuple[list[str], list[str]]] = {}
    for ci, m in enumerate(matched):
        names = list(m.entries)
        memo_key = (id(m.entries), m.cluster.count)
        memo = ranked.get(memo_key)
        if memo is None:
            if fullness is not None:
                merit = {
                    n: figure_of_merit(
                        matcher.slot_price(offer, min(per_pilot, m.cluster.count)),
                        fullness.get(n, 0.0),
                    )
                    for n, (offer, per_pilot) in m.entries.items()
                }
                best = min(merit.values())
                memo = (
                    sorted(names, key=lambda n: (merit[n], n)),
                    [n for n in names if merit[n] <= best * (1 + 1e-9) + 1e-12],
                )
            else:
                memo = (sorted(names), names)
            ranked[memo_key] = memo
        order[ci], names = memo
        if len(names) == 1:
            work[names[0]].jobs[ci] = m.cluster.count
            continue
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
    no_room: set[int] = set()
    cursor: dict[int, int] = {}
    for name, w in work.items():
        over = demand[name] - supply[name]
        if over <= 1e-9 or not has_spare:
            continue
        for ci in sorted(w.jobs):
            if over <= 1e-9 or not has_spare:
                break
            m = matched[ci]
            per_pilot = m.entries[name][1]
            # Only entries that still have room and also match, cheapest first. Entries
            # only ever lose their room here: an order (shared by clusters alike, with the
            # same jobs per pilot at each entry) that found no room for one job once finds
            # none again.
            targets = order[ci]
            if id(targets) in no_room:
                continue
            # Past the entries already found full (a cursor per shared order).
            first = cursor.get(id(targets), 0)
            while first < len(targets) and targets[first] not in has_spare:
                first += 1
            cursor[id(targets)] = first
            found = False
            for k in range(first, len(targets)):
                other = targets[k]
                if over <= 1e-9:
                    break
                if other == name or other not in has_spare:
                    continue
                spare = supply[other] - demand[other]
                other_per_pilot = m.entries[other][1]
                movable = min(
                    w.jobs.get(ci, 0),
                    math.ceil(over * per_pilot),
                    math.floor(spare * other_per_pilot),
                )
                if movable <= 0:
                    continue  # no room for one job of this size there, now or later
                found = True
                w.jobs[ci] -= movable
                w.spilled += movable
                work[other].jobs[ci] = work[other].jobs.get(ci, 0) + movable
                over -= movable / per_pilot
                demand[name] -= movable / per_pilot
                demand[other] += movable / other_per_pilot
                if supply[other] - demand[other] <= 1e-9:
                    has_spare.discard(other)
            if not found:
                no_room.add(id(targets))
            if not w.jobs.get(ci):
                w.jobs.pop(ci, None)
