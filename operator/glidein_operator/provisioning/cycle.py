"""One reconcile's decision for one GlideinRequest, as a pure function of what was seen.

``controller/observe.py`` reads the clouds, the pool and the Secrets into ``Observed``;
``decide`` says what to release, reap, cancel and launch (batch keys, shapes, counts) and
what the status will say; ``controller/act.py`` carries it out and reports what it met;
``report`` folds that into the status. Every number the operator acts on is decided
here, from its inputs alone: the planner's plan, then the budget, in one place, and no
plan is edited after it is made.

Where is it decided how many pilots start at entry X? ``decide``: the planner bounds the
launches by the entry's and the request's limits, slow start, the rate limit and any
backoff the driver is in (``EntryState``), and whether launching is on hold (no pool
credential, a pool that cannot be read); the budget then takes what it cannot afford.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from glidein_operator.api.base import Condition, parse_quantity
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import (
    GlideinRequestSpec,
    GlideinRequestStatus,
    PilotLog,
    SpendStatus,
)
from glidein_operator.condor.jobs import JobCluster
from glidein_operator.condor.pilots import RegisteredPilot
from glidein_operator.ground import CloudPilot, PilotState, Shape
from glidein_operator.money import spending
from glidein_operator.money.ledger import parse_time
from glidein_operator.pilot.lifecycle import refusal_in_console
from glidein_operator.provisioning import status as st
from glidein_operator.provisioning.lifecycle import Reap, Timeouts, classify, shared_phases
from glidein_operator.provisioning.planner import Candidate, PilotPhase, Plan, plan

Event = tuple[str, str, str]  # (Normal|Warning, reason, message)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Why the pool could not be read (Observed.pool_error): the operator's own token is bad,
# the collector or a schedd did not answer.
POOL_REASONS = ("OperatorTokenInvalid", "CollectorUnreachable", "ScheddUnreachable")
# How long past the registration timeout a refusal in a kept pilot log still counts.
REFUSAL_MEMORY = dt.timedelta(minutes=5)
# Which pilots a plan's cancel count takes: never started first, then booting, then idle;
# newest first within each (the least work lost). Never one running a job.
CANCEL_ORDER = {PilotPhase.PENDING: 0, PilotPhase.BOOTING: 1, PilotPhase.IDLE: 2}
# Reaped pilots whose console log (output, hold reason) says what went wrong.
KEEP_LOG = frozenset({Reap.STUCK, Reap.NEVER_STARTED, Reap.ERROR, Reap.FINISHED})


# --- what decide() is given ---------------------------------------------------------------


@dataclass(frozen=True)
class EntryState:
    """What the operator holds about an entry's driver besides its listing."""

    # Launches the entry's rate limit lets start now (None: no limit).
    launch_room: int | None = None
    # Why none may start now (the driver backs off after failures), "" when they may.
    launch_hold: str = ""
    # Batches whose leftovers (EC2 key pairs) were already released.
    released: frozenset[str] = frozenset()


@dataclass
class Observed:
    """One look at everything a request's reconcile decides on."""

    now: dt.datetime
    usable: list[Candidate]  # selected entries with a working driver
    blocked: dict[str, str]  # selected entries that cannot be used, and why
    listings: dict[str, list[CloudPilot]]  # per usable entry that could be listed
    listing_errors: dict[str, str]  # per usable entry that could not
    entries: dict[str, EntryState]
    registered: dict[str, RegisteredPilot] | None  # None: the collector was not read
    clusters: list[JobCluster]
    # Why the pool could not be read (reason, message), if it could not.
    pool_error: tuple[str, str] | None = None
    token_error: str = ""  # why pilots would have no credential to join the pool
    # What this process remembers (level-based otherwise): pilots it saw registered,
    # cloud ids it already judged, when it started, spot interruptions announced.
    seen_registered: frozenset[str] = frozenset()
    judged: frozenset[str] = frozenset()
    started: dt.datetime = EPOCH
    announced: frozenset[str] = frozenset()
    # Pilot id -> when this process first saw it idle in the collector.
    idle_since: Mapping[str, dt.datetime] = field(default_factory=dict)
    # When the oldest of the listings began (they are shared, and may be a minute old).
    listed_as_of: dt.datetime | None = None
    # Every pilot at each listed entry by phase (``lifecycle.shared_phases``), counted once
    # for all requests reading the same listing; None: counted here.
    phases_at: Mapping[str, Counter[PilotPhase]] | None = None


@dataclass(frozen=True)
class Policy:
    """The operator's own settings that bear on a request's decision."""

    interval: dt.timedelta
    max_pilots: int | None = None  # operator-wide cap, all requests together


# --- what it decides ------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchOrder:
    """One launch batch: ``count`` pilots of one type at one entry, under ``key``."""

    entry: str
    seq: int
    key: str
    instance_type: str
    shape: Shape
    count: int
    image_id: str | None
    spot: bool
    spot_max_price: Any
    spot_fallback: bool
    bound_by: str


@dataclass(frozen=True)
class Reaping:
    pilot: CloudPilot
    why: Reap
    keep_log: bool  # its console log goes to .status.pilotLogs


@dataclass
class Decision:
    uid: str
    plan: Plan  # final: the planner's plan with the budget's cuts applied
    spending: spending.Spending
    eligible: list[str]
    release: dict[str, list[CloudPilot]] = field(default_factory=dict)
    # Pilots that powered off without ever registering, judged now; whose log is kept.
    unregistered: dict[str, list[tuple[CloudPilot, bool]]] = field(default_factory=dict)
    registered_at: set[str] = field(default_factory=set)  # entries a pilot registered at
    reap: dict[str, list[Reaping]] = field(default_factory=dict)
    cancel: dict[str, list[CloudPilot]] = field(default_factory=dict)
    phase_of: dict[str, PilotPhase] = field(default_factory=dict)
    launches: list[LaunchOrder] = field(default_factory=list)
    last_batch: dict[str, int] = field(default_factory=dict)  # per entry, as the status had it
    stuck: Counter[str] = field(default_factory=Counter)
    views: list[Any] = field(default_factory=list)
    timeouts: Timeouts | None = None
    events: list[Event] = field(default_factory=list)
    # What the process remembers after this cycle.
    seen_registered: frozenset[str] = frozenset()
    judged: frozenset[str] = frozenset()
    announced: frozenset[str] = frozenset()
    idle_since: dict[str, dt.datetime] = field(default_factory=dict)


@dataclass
class Acted:
    """What carrying out a decision met."""

    degraded: dict[str, str] = field(default_factory=dict)
    kept_logs: list[dict[str, Any]] = field(default_factory=list)
    terminated: int = 0
    launched: int = 0
    tried: dict[str, int] = field(default_factory=dict)  # highest batch number used
    # Entries whose driver still backs off (failures, pilots not registering), and why.
    health: dict[str, str] = field(default_factory=dict)


# --- pure helpers -----------------------------------------------------------------------------


def batch_key(request_uid: str, entry: str, seq: int) -> str:
    """Short, DNS-safe and deterministic: Nova tags, label values and ClientTokens fit it."""
    return f"{request_uid[:8]}-{hashlib.sha1(entry.encode()).hexdigest()[:6]}-{seq}"  # noqa: S324


def next_seq(pilots: list[CloudPilot], request_uid: str, entry: str, floor: int = 0) -> int:
    """One past the highest batch number in the cloud's own listing or in the status
    (``floor``, the last one this request used there).

    The listing makes a retry after a crash (before the status was written) recompute the
    same key, and EC2's ClientToken then returns the same instances. The floor keeps
    numbers from ever coming back once old batches have left the listing: EC2 honours a
    ClientToken long after its instances are gone, so a reused key would "launch" the
    dead pilots of a past batch and nothing else."""
    prefix = batch_key(request_uid, entry, 0)[:-1]
    seqs = [
        int(m.group(1))
        for p in pilots
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", p.batch))
    ]
    return max(max(seqs, default=0), floor) + 1


def cancellable(
    listing: list[CloudPilot], uid: str, phase_of: Mapping[str, PilotPhase], now: dt.datetime
) -> list[CloudPilot]:
    found = [
        p
        for p in listing
        if p.request_uid == uid
        and p.state in (PilotState.PENDING, PilotState.RUNNING)
        and phase_of.get(p.pilot_id, PilotPhase.PENDING) in CANCEL_ORDER
    ]
    found.sort(key=lambda p: (p.launched_at or now).timestamp(), reverse=True)
    found.sort(key=lambda p: CANCEL_ORDER[phase_of.get(p.pilot_id, PilotPhase.PENDING)])
    return found


def ended_batches(listing: list[CloudPilot], uid: str) -> set[str]:
    """This request's batches with no pilot left alive (a batch is one request's)."""
    mine = [p for p in listing if p.request_uid == uid]
    alive = {p.batch for p in mine if p.state is not PilotState.TERMINATED}
    return {p.batch for p in mine if p.batch} - alive


def ended_while_watched(p: CloudPilot, started: dt.datetime) -> bool:
    """Whether it ended after this process started watching, so that "never seen
    registered" means something. Where the cloud does not say when a VM stopped
    (OpenNebula), a pilot launched since then ended since then too."""
    when = p.ended_at or p.launched_at
    return when is not None and when >= started


def shape_of(spec: CloudEntrySpec, instance_type: str) -> Shape:
    itype = spec.instance_type(instance_type)
    assert itype is not None  # the planner offers only the entry's own types
    return Shape(
        itype.name,
        itype.cpus,
        parse_quantity(itype.memory) // 2**20,
        max(1, parse_quantity(itype.disk) // 2**30),
        itype.gpus,
        itype.price_per_hour,
    )


def tail(text: str, lines: int = 15) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-900:]


# --- the decision -------------------------------------------------------------------------------


def decide(
    seen: Observed,
    *,
    uid: str,
    spec: GlideinRequestSpec,
    entries: Mapping[str, CloudEntrySpec],
    old_status: Mapping[str, Any],
    policy: Policy,
) -> Decision:
    now = seen.now
    timeouts = Timeouts(
        registration=spec.pilot.registration_timeout_td,
        lifetime=spec.pilot.lifetime_td,
        idle=spec.pilot.idle_timeout_td,
    )
    all_cloud = [p for ps in seen.listings.values() for p in ps]
    # This request's pilots are judged in full; the others only counted where entry and
    # operator limits are shared (their own requests judge them): one request's cycle
    # costs its pilots, not every pilot at its entries.
    mine = [p for p in all_cloud if p.request_uid == uid]
    if seen.phases_at is not None:
        own = shared_phases(mine, seen.registered)
        others = {e: c - own.get(e, Counter()) for e, c in seen.phases_at.items()}
    else:
        others = shared_phases((p for p in all_cloud if p.request_uid != uid), seen.registered)
    classified = classify(
        mine, seen.registered, now, timeouts, seen.seen_registered, seen.idle_since
    )
    money = spending.assess(
        spec=spec,
        uid=uid,
        entries=entries,
        listings=seen.listings,
        unlisted=set(entries) - set(seen.listings),
        views=classified.views,
        old_status=old_status,
        now=now,
        interval=policy.interval,
        grace=timeouts.grace,
        listed_as_of=seen.listed_as_of,
    )
    # Pilots that powered off without registering first in the kept-log budget, then
    # stuck and failed ones among those reaped.
    judging = _judge(seen, uid)
    # Ended pilots whose record lingers (finished grid jobs) go too, their output kept,
    # unless judged for ending unregistered just now (that keeps their log already).
    judged_now = {p.cloud_id for ps in judging.unregistered.values() for p, _keep in ps}
    finished = [(p, Reap.FINISHED) for p in mine if p.lingers]
    doomed = [*classified.reap, *money.kill, *finished]
    reap, stuck = _reap(doomed, uid, st.KEPT_PILOT_LOGS - judging.logs_kept, judged_now)

    # The plan: bounded by every limit, the rate limit and backoff included; nothing
    # launches without the jobs (no data is not "no jobs") or a credential for pilots.
    eligible = [
        c for c in seen.usable if c.name in seen.listings and c.name not in money.kill_blocked
    ]
    hold, caps = _launch_bounds(seen)
    planned = plan(
        uid,
        spec,
        eligible,
        seen.clusters,
        classified.views,
        blocked={
            **seen.blocked,
            **{e: f"listing failed: {m}" for e, m in seen.listing_errors.items()},
            **{e: why for e, why in money.kill_blocked.items() if e in seen.listings},
        },
        global_headroom=_headroom(policy.max_pilots, classified.views, others),
        hold=hold,
        caps=caps,
        others=others,
    )
    final = within_budget(planned, money, entries, now)

    phase_of = {v.pilot_id: v.phase for v in classified.views if v.request_uid == uid}
    cancel = {}
    for e in final.entries:
        if e.cancel and e.entry in seen.listings:
            chosen = cancellable(seen.listings[e.entry], uid, phase_of, now)[: e.cancel]
            if chosen:
                cancel[e.entry] = chosen
    floor = _last_batches(old_status)
    return Decision(
        uid=uid,
        plan=final,
        spending=money,
        eligible=[c.name for c in eligible],
        release=_released(seen, uid),
        unregistered=judging.unregistered,
        registered_at=judging.registered_at,
        reap=reap,
        cancel=cancel,
        phase_of=phase_of,
        launches=_orders(eligible, final, seen.listings, uid, floor),
        last_batch=floor,
        stuck=stuck,
        views=classified.views,
        timeouts=timeouts,
        events=_money_events(money, seen.announced),
        seen_registered=judging.remembered,
        judged=judging.judged,
        announced=frozenset(money.interrupted),
        idle_since=classified.idle_since,
    )


def _last_batches(old_status: Mapping[str, Any]) -> dict[str, int]:
    """The last batch number used per entry, as the status keeps it (next_seq's floor)."""
    return {
        str(row.get("name")): int(row.get("lastBatch") or 0)
        for row in old_status.get("entries") or []
    }


def _money_events(money: spending.Spending, announced: frozenset[str]) -> list[Event]:
    events: list[Event] = []
    if money.accounting_gap and money.write:
        events.append(("Warning", "AccountingGap", money.accounting_gap))
    taken_back = [i for i in money.interrupted if i not in announced]
    if taken_back:
        events.append(
            (
                "Warning",
                "SpotInterrupted",
                f"{len(taken_back)} spot pilot(s) taken back by the cloud; demand still "
                "there gets new ones",
            )
        )
    return events


def _released(seen: Observed, uid: str) -> dict[str, list[CloudPilot]]:
    """Batches whose pilots all ended by themselves (idle, lifetime) release what they
    hold (EC2 key pairs) now, once, not when the entry's collector next sweeps."""
    release = {}
    for entry, listing in seen.listings.items():
        ended = ended_batches(listing, uid) - seen.entries[entry].released
        if ended:
            # Lingering ones are reaped instead, their output kept first.
            release[entry] = [p for p in listing if p.batch in ended and not p.lingers]
    return release


@dataclass
class _Judging:
    unregistered: dict[str, list[tuple[CloudPilot, bool]]] = field(default_factory=dict)
    registered_at: set[str] = field(default_factory=set)
    remembered: frozenset[str] = frozenset()
    judged: frozenset[str] = frozenset()
    logs_kept: int = 0


def _judge(seen: Observed, uid: str) -> _Judging:
    """Pilots that powered themselves off without ever registering, judged once each,
    and only those that ended while this process watched (it remembers which pilots it
    saw registered); and the entries where a pilot did register."""
    out = _Judging(remembered=seen.seen_registered, judged=seen.judged)
    if seen.registered is None:
        return out  # the collector was not read: nobody can be judged
    registered = seen.registered
    mine = {e: [p for p in listing if p.request_uid == uid] for e, listing in seen.listings.items()}
    # This request's own pilots only: what is remembered grows with the request's
    # pilots, not with everyone's registered in the pool.
    remembered = set(seen.seen_registered) | {
        p.pilot_id for ps in mine.values() for p in ps if p.pilot_id in registered
    }
    judged = set(seen.judged)
    for entry, listing in mine.items():
        if any(p.pilot_id in registered for p in listing):
            out.registered_at.add(entry)
        failed = [
            p
            for p in listing
            if p.shut_itself_down
            and p.pilot_id not in remembered
            and p.cloud_id not in judged
            and ended_while_watched(p, seen.started)
        ]
        if failed:
            judged |= {p.cloud_id for p in failed}
            out.unregistered[entry] = []
            for p in failed:
                keep = out.logs_kept < st.KEPT_PILOT_LOGS
                out.logs_kept += keep
                out.unregistered[entry].append((p, keep))
    out.remembered, out.judged = frozenset(remembered), frozenset(judged)
    return out


def _reap(
    doomed: list[tuple[CloudPilot, Reap]],
    uid: str,
    logs_left: int,
    logs_kept: Collection[str] = (),
) -> tuple[dict[str, list[Reaping]], Counter[str]]:
    """This request's pilots to reap, per entry (one entry per pilot, whoever asked),
    stuck, failed and finished ones keeping their console log while the budget lasts
    (unless ``logs_kept`` already has it: cloud ids)."""
    reap: dict[str, list[Reaping]] = {}
    stuck = Counter[str]()
    for p, why in {p.pilot_id: (p, why) for p, why in doomed}.values():
        if p.request_uid != uid:
            continue
        keep = why in KEEP_LOG and p.cloud_id not in logs_kept and logs_left > 0
        logs_left -= keep
        stuck[p.entry] += why in (Reap.STUCK, Reap.NEVER_STARTED)
        reap.setdefault(p.entry, []).append(Reaping(p, why, keep))
    return reap, stuck


def _launch_bounds(seen: Observed) -> tuple[str, dict[str, tuple[int, str]]]:
    """Why nothing may launch at all (or ""), and each entry's driver-side bound."""
    hold = (
        "pool unreadable" if seen.pool_error else "no pool credential" if seen.token_error else ""
    )
    caps = {}
    for name, state in seen.entries.items():
        if state.launch_hold:
            caps[name] = (0, "backoff")
        elif state.launch_room is not None:
            caps[name] = (state.launch_room, "entry.launchesPerMinute")
    return hold, caps


def _orders(
    eligible: list[Candidate],
    final: Plan,
    listings: Mapping[str, list[CloudPilot]],
    uid: str,
    floor: Mapping[str, int],
) -> list[LaunchOrder]:
    """The plan's launches as batches: deterministic keys, one batch per instance type."""
    launches = []
    for c in eligible:
        e = final.entry(c.name)
        if not e.launch:
            continue
        seq = next_seq(listings[c.name], uid, c.name, floor.get(c.name, 0))
        image_id = None
        if c.image is not None and c.spec.image_region is not None:
            loc = c.image.location(c.spec.type, c.spec.image_region)
            image_id = loc.image_id if loc else None
        spot = c.spec.spot
        for itype, count in e.launch_by_type.items():
            launches.append(
                LaunchOrder(
                    entry=c.name,
                    seq=seq,
                    key=batch_key(uid, c.name, seq),
                    instance_type=itype,
                    shape=shape_of(c.spec, itype),
                    count=count,
                    image_id=image_id,
                    spot=bool(spot and spot.enabled),
                    spot_max_price=spot.max_price_per_hour if spot else None,
                    spot_fallback=bool(spot and spot.fall_back_to_on_demand),
                    bound_by=e.bound_by,
                )
            )
            seq += 1
    return launches


def _headroom(
    max_pilots: int | None, views: list[Any], others: Mapping[str, Counter[PilotPhase]]
) -> int | None:
    if max_pilots is None:
        return None
    theirs = sum(n for c in others.values() for ph, n in c.items() if ph is not PilotPhase.STUCK)
    return max_pilots - theirs - sum(1 for v in views if v.phase is not PilotPhase.STUCK)


def within_budget(
    planned: Plan, money: spending.Spending, entries: Mapping[str, CloudEntrySpec], now: dt.datetime
) -> Plan:
    """The plan with what the budget cannot afford taken out (a new plan; the planner's
    is left as it was made)."""
    allowed = spending.affordable(planned, money, entries, now)
    if allowed is None:
        return planned
    rows = []
    for e in planned.entries:
        cut = {t: allowed.get((e.entry, t), n) for t, n in e.launch_by_type.items()}
        if not e.launch_by_type or cut == e.launch_by_type:
            rows.append(e)
            continue
        launch = sum(cut.values())
        money.held_back += e.launch - launch
        rows.append(
            dataclasses.replace(
                e,
                launch=launch,
                launch_by_type={t: n for t, n in cut.items() if n},
                bound_by="budget",
                notes=[*e.notes, f"budget: {launch} of {e.launch} launches affordable"],
            )
        )
    return dataclasses.replace(planned, entries=rows)


# --- the status, once acted -----------------------------------------------------------------


def report(
    decision: Decision,
    seen: Observed,
    acted: Acted,
    *,
    spec: GlideinRequestSpec,
    old_status: Mapping[str, Any],
    generation: int,
) -> tuple[dict[str, Any], list[Event]]:
    """The status to write, and the Events its conditions call for."""
    now = seen.now
    events: list[Event] = []
    result, money = decision.plan, decision.spending
    degraded = {**seen.listing_errors, **acted.degraded}
    for entry, why in acted.health.items():
        degraded.setdefault(entry, why)
    floor = decision.last_batch
    last_batch = {e: max(floor.get(e, 0), acted.tried.get(e, 0)) for e in {*floor, *acted.tried}}
    totals, rows = st.request_status(
        result, decision.views, decision.uid, decision.stuck, last_batch
    )
    if acted.terminated and money.fresh:
        money.write = True  # terminated pilots leave the listings: account for them now
    spend = spending.spend_status(old_status, money)
    conditions: list[dict[str, Any]] = list(old_status.get("conditions") or [])
    conditions = spending.conditions(
        conditions, money, spec, generation, now, lambda *e: events.append(e)
    )
    logs = st.keep_pilot_logs(old_status.get("pilotLogs") or [], acted.kept_logs)
    # Pilots the collector refused are not merely stuck: the pool said no, and why (a
    # token's key or issuer, an identity its ALLOW lists do not admit). Said while the
    # kept logs of the last registration timeout show it.
    assert decision.timeouts is not None
    recent = now - decision.timeouts.registration - REFUSAL_MEMORY
    for kept in logs:
        refused = refusal_in_console(str(kept.get("log", "")))
        entry = str(kept.get("entry", ""))
        known = degraded.get(entry, "PilotsNotRegistering")
        if (
            refused
            and known.startswith("PilotsNotRegistering")
            and parse_time(str(kept["at"])) >= recent
        ):
            degraded[entry] = f"PilotsRefused: the collector refused the pilots: {refused}"
    if seen.pool_error:
        # The reason is one of a known few (docs/conditions.md lists them; its test reads
        # them here).
        for reason in POOL_REASONS:
            if seen.pool_error[0] == reason:
                conditions = st.set_condition(
                    conditions, "Ready", "False", reason, seen.pool_error[1], generation, now
                )
    elif seen.token_error:
        conditions = st.set_condition(
            conditions, "Ready", "False", "NoPoolCredential", seen.token_error, generation, now
        )
    elif not decision.eligible:
        unusable = st.describe(result.blocked) or "no CloudEntry selected"
        conditions = st.set_condition(
            conditions, "Ready", "False", "NoUsableEntry", unusable, generation, now
        )
    else:
        conditions = st.set_condition(
            conditions,
            "Ready",
            "True",
            "Reconciled",
            f"{len(decision.eligible)} entries usable",
            generation,
            now,
        )
    conditions = st.flag(
        conditions, "Degraded", degraded, ("EntryFailing", "AllEntriesHealthy"), generation, now
    )
    # Idle jobs no entry can run get no pilot, whatever the demand: say which and why
    # (what `glidein-operator plan` says), so a user does not wait for them.
    unmatched = {
        f"{u.cluster.count} job(s) of {u.cluster.cpus} cpu(s)/{u.cluster.memory_mb} MB "
        f"at {u.cluster.schedd}": u.reason
        for u in result.unmatched[:5]
    }
    conditions = st.flag(
        conditions, "JobsUnmatched", unmatched, ("NoEntryCanRun", "AllJobsMatch"), generation, now
    )
    blocked_now = {k: v for k, v in result.blocked.items() if k not in degraded}
    conditions = st.flag(
        conditions, "EntriesBlocked", blocked_now, ("EntryUnusable", "None"), generation, now
    )
    status = GlideinRequestStatus(
        observed_generation=generation,
        totals=totals,
        entries=rows,
        spend=None if spend is None else SpendStatus.model_validate(spend),
        uncovered=st.uncovered(result),
        pilot_logs=[PilotLog.model_validate(x) for x in logs],
        conditions=[Condition.model_validate(c) for c in conditions],
    )
    return st.dump(status), events
