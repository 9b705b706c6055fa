"""One reconcile of one GlideinRequest: read what is, plan, act, report.

Level-based: every cycle starts from the clouds' listings and the collector, never from
memory, so a restart in the middle of anything resumes correctly. Each entry is handled
on its own: a broken entry marks itself Degraded and the others go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from glidein_operator.api.base import parse_duration
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.trustdomain import CREDENTIAL_SECRET_KEYS, TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.clouds.factory import missing_keys
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.condor.interface import CondorError
from glidein_operator.condor.pilots import RegisteredPilot
from glidein_operator.condor.reader import select
from glidein_operator.controller import fixes, spending
from glidein_operator.controller import status as st
from glidein_operator.controller.claims import EntryClaims
from glidein_operator.controller.keeper import Credential
from glidein_operator.controller.runtime import Runtime
from glidein_operator.credentials import idtokens, payloads
from glidein_operator.ground import CloudPilot, LaunchBatch, PilotState, Shape
from glidein_operator.money.ledger import parse_time
from glidein_operator.pilot.lifecycle import refusal_in_console
from glidein_operator.pilot.payload import PayloadError
from glidein_operator.provisioning.eligibility import (
    NO_POOL_CREDENTIAL,
    EntryRecord,
    candidates,
    credential_for,
)
from glidein_operator.provisioning.lifecycle import Reap, Timeouts, classify
from glidein_operator.provisioning.planner import Candidate, PilotPhase, Plan, plan

Emit = Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)


@dataclass
class World:
    """The cluster-scoped resources, as the watches last saw them."""

    entries: dict[str, tuple[CloudEntrySpec, Mapping[str, str], int]] = field(default_factory=dict)
    domains: dict[str, TrustDomainSpec] = field(default_factory=dict)
    images: dict[str, VMImageSpec] = field(default_factory=dict)


@dataclass
class Outcome:
    status: dict[str, Any]
    launched: int = 0
    terminated: int = 0
    last_batch: dict[str, int] = field(default_factory=dict)  # highest batch number used


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


async def _credential(
    rt: Runtime, namespace: str, spec: GlideinRequestSpec, entry: CloudEntrySpec, world: World
) -> Credential | str:
    """The credential the request uses at the entry, or the sentence saying why none."""
    cred, why = credential_for(spec, entry, world.domains)
    if cred is None:
        return why
    if cred.secret_ref is None:
        return Credential(cred.type, None, {}, "")
    found = await rt.secret(namespace, cred.secret_ref.name)
    if found is None:
        return (
            f"Secret {cred.secret_ref.name!r} not found in namespace {namespace!r}; create it: "
            + fixes.secret_command(
                namespace,
                cred.secret_ref.name,
                cred.type,
                (cred.secret_ref.key,) if cred.secret_ref.key else None,
            )
        )
    values, _version = found
    lacking = missing_keys(cred.type, values, cred.secret_ref.key)
    if lacking:
        return f"Secret {cred.secret_ref.name!r} lacks {', '.join(lacking)} for a {cred.type} credential"
    defined = CREDENTIAL_SECRET_KEYS[cred.type]
    if cred.secret_ref.key and len(defined) == 1:
        # A one-value credential kept under another key (e.g. a token under "bearer").
        values = {**values, defined[0]: values[cred.secret_ref.key]}
    return Credential(
        cred.type, cred.secret_ref.name, values, f"{namespace}/{cred.secret_ref.name}"
    )


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
    now = rt.clock()
    records = [EntryRecord(n, labels, s) for n, (s, labels, _g) in world.entries.items()]
    usable, blocked = candidates(spec, records, world.domains, world.images)
    conditions: list[dict[str, Any]] = list(old_status.get("conditions") or [])

    # Drivers for usable entries (a missing or incomplete Secret blocks only its entries).
    drivers: dict[str, InstrumentedDriver] = {}
    for c in list(usable):
        got = await _credential(rt, namespace, spec, c.spec, world)
        if isinstance(got, str):
            blocked[c.name] = got
            usable.remove(c)
            continue
        try:
            drivers[c.name] = rt.driver(c.name, c.spec, world.entries[c.name][2], got)
        except DriverError as exc:
            blocked[c.name] = str(exc)
            usable.remove(c)
            continue
        try:
            # Before anything is launched with it: whatever happens to the Secret, the
            # pilots can still be found and terminated (controller/keeper.py).
            await rt.keeper.keep(c.name, got)
        except k8s.exceptions.ApiException as exc:
            blocked[c.name] = (
                f"cannot keep a copy of the credential for cleanup in namespace "
                f"{rt.keeper.namespace!r} ({exc.status} {exc.reason}): nothing is launched "
                "that could not be cleaned up"
            )
            usable.remove(c)
            del drivers[c.name]

    # What exists: one listing per entry, and the collector's view.
    listings: dict[str, list[CloudPilot]] = {}
    degraded: dict[str, str] = {}

    listed_at: dict[str, float] = {}

    async def list_one(entry: str, d: InstrumentedDriver) -> None:
        listed_at[entry] = rt.claims.clock()
        try:
            listings[entry] = await d.list_pilots()
        except DriverError as exc:
            degraded[entry] = f"{exc.reason}: {exc}"

    await asyncio.gather(*(list_one(e, d) for e, d in drivers.items()))

    # The pool credential: pilots' tokens come from it, and so may the operator's own.
    token_problem = await pool_token(rt, namespace, spec)
    token_error = token_problem if isinstance(token_problem, str) else ""
    pool_credential = None if isinstance(token_problem, str) else token_problem
    query = await query_token(rt, namespace, spec, pool_credential)
    schedd_error, pool_reason = "", "ScheddUnreachable"
    clusters = []
    registered: dict[str, RegisteredPilot] | None = None
    if isinstance(query, str):
        schedd_error, pool_reason = query, "OperatorTokenInvalid"
    else:
        token, source = query
        try:
            reader = rt.reader(spec.collector, token, source)
            try:
                registered = {p.pilot_id: p for p in await reader.pilots(now.timestamp())}
            except CondorError:
                pool_reason = "CollectorUnreachable"
                raise
            for schedd in spec.schedds:
                found = await rt.reader(schedd.collector or spec.collector, token, source).clusters(
                    schedd.name, (spec.job_constraint, spec.match_expression)
                )
                clusters += select(found, spec.job_constraint)
        except CondorError as exc:
            schedd_error = str(exc)

    timeouts = Timeouts(
        registration=parse_duration(spec.pilot.registration_timeout),
        lifetime=parse_duration(spec.pilot.lifetime),
    )
    all_cloud = [p for ps in listings.values() for p in ps]
    classified = classify(all_cloud, registered, now, timeouts)

    # Batches whose pilots all ended by themselves (idle, lifetime) release what they
    # hold (EC2 key pairs) now, once, not when the entry's collector next sweeps.
    for entry, listing in listings.items():
        ended = ended_batches(listing, uid) - drivers[entry].released
        if ended:
            try:
                await drivers[entry].terminate([p for p in listing if p.batch in ended])
                drivers[entry].released |= ended
            except DriverError as exc:
                degraded[entry] = f"{exc.reason}: {exc}"
    outcome = Outcome(status={})

    # Money: account for every pilot's time, check the budget, see what a kill takes.
    entry_specs = {n: s for n, (s, _labels, _g) in world.entries.items()}
    spent = spending.assess(
        spec=spec,
        uid=uid,
        entries=entry_specs,
        listings=listings,
        unlisted=set(world.entries) - set(listings),
        views=classified.views,
        old_status=old_status,
        now=now,
        interval=dt.timedelta(seconds=rt.settings.reconcile_interval),
        grace=timeouts.grace,
    )
    if spent.accounting_gap and spent.write:
        emit("Warning", "AccountingGap", spent.accounting_gap)
    announced = rt.interruptions.get(uid, set())
    taken_back = [i for i in spent.interrupted if i not in announced]
    rt.interruptions[uid] = set(spent.interrupted)
    if taken_back:
        emit(
            "Warning",
            "SpotInterrupted",
            f"{len(taken_back)} spot pilot(s) taken back by the cloud; demand still there "
            "gets new ones",
        )

    # Reap what must go, keeping the log of stuck and failed pilots.
    stuck = Counter[str]()
    by_entry: dict[str, list[tuple[CloudPilot, Reap]]] = {}
    reaping = {p.pilot_id: (p, why) for p, why in (*classified.reap, *spent.kill)}
    for p, why in reaping.values():
        if p.request_uid == uid:
            by_entry.setdefault(p.entry, []).append((p, why))
    kept_logs: list[dict[str, Any]] = []
    await _judge_unregistered(rt, uid, registered, listings, drivers, kept_logs, emit, now)
    for entry, items in by_entry.items():
        d = drivers[entry]
        for p, why in items:
            if why in (Reap.STUCK, Reap.ERROR):
                stuck[entry] += why is Reap.STUCK
                log = ""
                if len(kept_logs) < st.KEPT_PILOT_LOGS:
                    try:
                        log = await d.console_log(p)
                    except DriverError:
                        log = ""
                    kept_logs.append(st.pilot_log(p, why.value, log, now))
                refused = refusal_in_console(log)
                emit(
                    "Warning",
                    "PilotRefused"
                    if refused
                    else "PilotStuck"
                    if why is Reap.STUCK
                    else "PilotFailed",
                    f"pilot {p.pilot_id} at {entry} {why.value} ({p.raw_state}); "
                    + (f"the collector refused it: {refused}; " if refused else "")
                    + f"console log kept in .status.pilotLogs: {_tail(log, 3) or '(empty)'}",
                )
        if stuck[entry]:
            # Reaped for never registering: like pilots that powered off unregistered, the
            # entry's launches back off (a too short registrationTimeout, a pool that does
            # not answer), rather than launch the same number again at once.
            d.pilots_failed_to_register()
        try:
            await d.terminate([p for p, _ in items])
            outcome.terminated += len(items)
            reasons = Counter(w.value for _, w in items)
            emit(
                "Normal",
                "Reaped",
                f"terminated {len(items)} pilot(s) at {entry}: "
                + ", ".join(f"{n} {r}" for r, n in reasons.items()),
            )
        except DriverError as exc:
            degraded[entry] = f"{exc.reason}: {exc}"

    # Plan (no launches when the schedd cannot be read: no data is not "no jobs"; nor
    # without a pool credential for the pilots).
    eligible = [c for c in usable if c.name in listings and c.name not in spent.kill_blocked]
    result: Plan = plan(
        uid,
        spec.model_copy(update={"paused": spec.paused or bool(schedd_error) or bool(token_error)}),
        eligible,
        clusters,
        classified.views,
        blocked={
            **blocked,
            **{e: f"listing failed: {m}" for e, m in degraded.items() if e not in listings},
            **{e: why for e, why in spent.kill_blocked.items() if e in listings},
        },
        global_headroom=_headroom(rt, classified.views),
    )
    spending.gate(result, spent, entry_specs, now)

    # Act: cancel pending pilots nobody needs, then launch.
    batch_floor = {
        str(row.get("name")): int(row.get("lastBatch") or 0)
        for row in old_status.get("entries") or []
    }
    phase_of = {v.pilot_id: v.phase for v in classified.views if v.request_uid == uid}
    for e in result.entries:
        if e.cancel and e.entry in drivers:
            doomed = cancellable(listings.get(e.entry, []), uid, phase_of, now)[: e.cancel]
            if not doomed:
                continue
            try:
                await drivers[e.entry].terminate(doomed)
                outcome.terminated += len(doomed)
                kinds = Counter(str(phase_of.get(p.pilot_id, PilotPhase.PENDING)) for p in doomed)
                emit(
                    "Normal",
                    "ScaledDown",
                    f"cancelled {len(doomed)} pilot(s) at {e.entry} running no job "
                    f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): "
                    + "; ".join(n for n in e.notes if n.startswith("cancel")),
                )
            except DriverError as exc:
                degraded[e.entry] = f"{exc.reason}: {exc}"
    await asyncio.gather(
        *(
            _launch(
                name,
                namespace,
                uid,
                spec,
                c,
                drivers[c.name],
                listings[c.name],
                result,
                emit,
                degraded,
                outcome,
                now,
                batch_floor,
                pool_credential,
                rt.settings.operator_id,
                rt.claims,
                listed_at[c.name],
            )
            for c in eligible
            # Without a pool credential the plan was paused: nothing to launch.
            if result.entry(c.name).launch and pool_credential is not None
        )
    )

    # An entry whose launches back off after failures is still failing, though this cycle
    # made no call to show it (the message stays the same while it waits: no status churn).
    for entry, d in drivers.items():
        if d.degraded and entry not in degraded and d.last_error is not None:
            degraded[entry] = (
                f"{d.last_error.reason}: {d.last_error}; launches back off after "
                f"{d.backoff.failures} failure(s)"
            )
        elif d.boot_backoff.failures and entry not in degraded:
            degraded[entry] = (
                f"PilotsNotRegistering: {d.boot_backoff.failures} time(s) in a row pilots "
                "ended without registering (powered off, or reaped after "
                "registrationTimeout; their console logs are in .status.pilotLogs); "
                "launches back off"
            )

    # Report.
    status = st.request_status(result, classified.views, uid, stuck)
    for row in status["entries"]:
        last = max(batch_floor.get(row["name"], 0), outcome.last_batch.get(row["name"], 0))
        if last:
            row["lastBatch"] = last
    if outcome.terminated and spent.fresh:
        spent.write = True  # terminated pilots leave the listings: account for them now
    spend = spending.spend_status(old_status, spent)
    if spend is not None:
        status["spend"] = spend
    conditions = spending.conditions(conditions, spent, spec, generation, now, emit)
    logs = st.keep_pilot_logs(old_status.get("pilotLogs") or [], kept_logs)
    if logs:
        status["pilotLogs"] = logs
    # Pilots the collector refused are not merely stuck: the pool said no, and why (a
    # token's key or issuer, an identity its ALLOW lists do not admit). Said while the
    # kept logs of the last registration timeout show it.
    recent = now - timeouts.registration - REFUSAL_MEMORY
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
    if schedd_error:
        conditions = st.set_condition(
            conditions, "Ready", "False", pool_reason, schedd_error, generation, now
        )
    elif token_error:
        conditions = st.set_condition(
            conditions, "Ready", "False", "NoPoolCredential", token_error, generation, now
        )
    elif not eligible:
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
            f"{len(eligible)} entries usable",
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
    status["conditions"] = conditions
    status["observedGeneration"] = generation
    outcome.status = status
    return outcome


# Which pilots a plan's cancel count takes: never started first, then booting, then idle;
# newest first within each (the least work lost). Never one running a job.
CANCEL_ORDER = {PilotPhase.PENDING: 0, PilotPhase.BOOTING: 1, PilotPhase.IDLE: 2}


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


def _headroom(rt: Runtime, views: list[Any]) -> int | None:
    if rt.settings.max_pilots is None:
        return None
    return rt.settings.max_pilots - sum(1 for v in views if v.phase is not PilotPhase.STUCK)


def _tail(text: str, lines: int = 15) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-900:]


async def _launch(
    name: str,
    namespace: str,
    uid: str,
    spec: GlideinRequestSpec,
    cand: Candidate,
    driver: InstrumentedDriver,
    listing: list[CloudPilot],
    result: Plan,
    emit: Emit,
    degraded: dict[str, str],
    outcome: Outcome,
    now: dt.datetime,
    batch_floor: Mapping[str, int],
    pool_credential: tuple[bytes | None, str | None],
    factory: str,
    claims: EntryClaims,
    listed_at: float,
) -> None:
    ep = result.entry(cand.name)
    allowed = driver.launch_allowance(ep.launch)
    if allowed < ep.launch:
        ep.notes.append(f"rate limit: {allowed} of {ep.launch} now")
    seq = next_seq(listing, uid, cand.name, batch_floor.get(cand.name, 0))
    for itype_name, count in ep.launch_by_type.items():
        count = min(count, allowed)
        if count <= 0:
            continue
        allowed -= count
        itype = cand.spec.instance_type(itype_name)
        assert itype is not None
        key = batch_key(uid, cand.name, seq)
        outcome.last_batch[cand.name] = seq
        seq += 1
        try:
            payload = payloads.build(
                request=f"{namespace}/{name}",
                request_uid=uid,
                spec=spec,
                entry=cand.name,
                entry_spec=cand.spec,
                itype=itype,
                image=cand.image,
                batch=key,
                pool_signing_key=pool_credential[0],
                premade_token=pool_credential[1],
                now=int(now.timestamp()),
                factory=factory,
            )
            user_data = payloads.user_data(payload, cand.spec.type)
        except (ValueError, PayloadError) as exc:
            degraded[cand.name] = f"PayloadInvalid: {exc}"
            return
        image_id = None
        if cand.image is not None and cand.spec.image_region is not None:
            loc = cand.image.location(cand.spec.type, cand.spec.image_region)
            image_id = loc.image_id if loc else None
        from glidein_operator.api.base import parse_quantity

        shape = Shape(
            itype.name,
            itype.cpus,
            parse_quantity(itype.memory) // 2**20,
            max(1, parse_quantity(itype.disk) // 2**30),
            itype.gpus,
            itype.price_per_hour,
        )
        spot = cand.spec.spot
        batch = LaunchBatch(
            key=key,
            request_uid=uid,
            request=f"{namespace}/{name}",
            entry=cand.name,
            shape=shape,
            count=count,
            image_id=image_id,
            user_data=user_data,
            spot=bool(spot and spot.enabled),
            spot_max_price=spot.max_price_per_hour if spot else None,
            spot_fallback=bool(spot and spot.fall_back_to_on_demand),
        )
        async with claims.lock(cand.name):
            # Other requests may have launched here since this cycle's listing began.
            alive = sum(1 for p in listing if p.state is not PilotState.TERMINATED)
            room = claims.room(cand.name, cand.spec.limits.max_pilots, alive, listed_at)
            if room is not None and room < batch.count:
                ep.notes.append(f"entry.maxPilots: {room} of {batch.count} (other requests)")
                if room <= 0:
                    return
                batch = dataclasses.replace(batch, count=room)
            claims.record(cand.name, batch.count)
            try:
                started = await driver.launch(batch)
            except DriverError as exc:
                degraded[cand.name] = f"{exc.reason}: {exc}"
                emit("Warning", "LaunchFailed", f"{cand.name}: {exc.reason}: {exc}")
                return
        outcome.launched += len(started)
        if batch.spot and started and not any(p.spot for p in started):
            emit(
                "Warning",
                "SpotFallback",
                f"{cand.name}: no spot capacity for {itype_name}; launched on-demand instead",
            )
        emit(
            "Normal",
            "ScaledUp",
            f"launched {len(started)} pilot(s) of {itype_name} at {cand.name} ({ep.bound_by})",
        )


# How long past the registration timeout a refusal in a kept pilot log still counts.
REFUSAL_MEMORY = dt.timedelta(minutes=5)


async def _judge_unregistered(
    rt: Runtime,
    uid: str,
    registered: Mapping[str, Any] | None,
    listings: Mapping[str, list[CloudPilot]],
    drivers: Mapping[str, InstrumentedDriver],
    kept_logs: list[dict[str, Any]],
    emit: Emit,
    now: dt.datetime,
) -> None:
    """Pilots that powered themselves off without ever registering (a token the pool
    refuses, an image that does not boot) are not idle pilots that left: their console
    says why, kept like a stuck pilot's, and launches at the entry back off until one of
    its pilots registers. Judged once each, and only those that ended while this process
    watched (it remembers which pilots it saw registered)."""
    if registered is None:
        return  # the collector was not read: nobody can be judged
    seen = rt.registered_once.setdefault(uid, set())
    seen |= set(registered)
    for entry, listing in listings.items():
        d = drivers[entry]
        if any(p.pilot_id in registered for p in listing if p.request_uid == uid):
            d.pilot_registered()
        failed = [
            p
            for p in listing
            if p.request_uid == uid
            and p.shut_itself_down
            and p.pilot_id not in seen
            and p.cloud_id not in rt.judged
            and _ended_while_watched(p, rt.started)
        ]
        if not failed:
            continue
        rt.judged |= {p.cloud_id for p in failed}
        wait = d.pilots_failed_to_register()
        refused = ""
        for p in failed:
            if len(kept_logs) >= st.KEPT_PILOT_LOGS:
                break
            try:
                log = await d.console_log(p)
            except DriverError:
                log = ""
            refused = refused or (refusal_in_console(log) or "")
            kept_logs.append(st.pilot_log(p, "ended without registering", log, now))
        emit(
            "Warning",
            "PilotRefused" if refused else "PilotsNotRegistering",
            f"{len(failed)} pilot(s) at {entry} powered off without registering"
            + (f"; the collector refused them: {refused}" if refused else "")
            + f"; launches there wait {wait:.0f}s; console logs kept in .status.pilotLogs",
        )


def _ended_while_watched(p: CloudPilot, started: dt.datetime) -> bool:
    """Whether it ended after this process started watching, so that "never seen
    registered" means something. Where the cloud does not say when a VM stopped
    (OpenNebula), a pilot launched since then ended since then too."""
    when = p.ended_at or p.launched_at
    return when is not None and when >= started


def ended_batches(listing: list[CloudPilot], uid: str) -> set[str]:
    """This request's batches with no pilot left alive."""
    alive = {p.batch for p in listing if p.state is not PilotState.TERMINATED}
    return {p.batch for p in listing if p.request_uid == uid and p.batch} - alive


async def query_token(
    rt: Runtime,
    namespace: str,
    spec: GlideinRequestSpec,
    pool_credential: tuple[bytes | None, str | None] | None,
) -> tuple[str | None, str] | str:
    """(the token the operator reads the pool with, or None; where it comes from), or the
    sentence saying why the pool cannot be read."""
    ref = spec.operator_token_secret_ref
    if ref is not None:
        found = await rt.secret(namespace, ref.name)
        if found is None:
            return f"Secret {ref.name!r} (spec.operatorTokenSecretRef) not found in namespace {namespace!r}"
        values, _version = found
        key = ref.key or "token"
        try:
            token = values.get(key, b"").decode("ascii").strip()
        except UnicodeDecodeError:
            token = ""
        if token.count(".") != 2:
            return f"Secret {ref.name!r} key {key!r} (spec.operatorTokenSecretRef) holds no IDTOKEN"
        return token, f"secret:{namespace}/{ref.name}"
    if pool_credential is not None and pool_credential[0] is not None:
        return rt.query_token(spec.trust_domain(), pool_credential[0]), "minted"
    return None, ""


async def pool_token(
    rt: Runtime, namespace: str, spec: GlideinRequestSpec
) -> tuple[bytes | None, str | None] | str:
    """(signing key, ready token), or the sentence saying why pilots could not join."""
    ref = spec.pilot.token_secret_ref
    if ref is None:
        return NO_POOL_CREDENTIAL
    found = await rt.secret(namespace, ref.name)
    if found is None:
        return (
            f"Secret {ref.name!r} (spec.pilot.tokenSecretRef) not found in namespace "
            f"{namespace!r}; create it from the pool's signing key: "
            + fixes.pool_key_command(namespace, ref.name)
        )
    values, _ = found
    if values.get("signingKey"):
        # Bytes as stored: a POOL key file is binary.
        return values["signingKey"], None
    key = ref.key or "token"
    if values.get(key):
        try:
            token = values[key].decode("ascii").strip()
        except UnicodeDecodeError:
            return f"Secret {ref.name!r} key {key!r} is not a token (binary data)"
        try:
            issuer = idtokens.claims(token).get("iss")
        except (ValueError, IndexError):
            return f"Secret {ref.name!r} key {key!r} is not an IDTOKEN (not a JWT)"
        if issuer != spec.trust_domain():
            return (
                f"the token in Secret {ref.name!r} was issued by {issuer!r}, but the pool's "
                f"TRUST_DOMAIN is {spec.trust_domain()!r} (spec.poolTrustDomain): pilots "
                "would ignore it"
            )
        return None, token
    return f"Secret {ref.name!r} has neither signingKey nor {key}"
