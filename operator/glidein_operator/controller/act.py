"""Act: carry out a Decision (provisioning/cycle.py) through the drivers, and say what it
met. Nothing here chooses a pilot or a number; a failure at one entry marks that entry
and the others go on.

One guard stays here because it can only hold at the moment of the call: an entry's
``maxPilots`` across requests (controller/claims.py). Requests reconcile concurrently, so
the room another request took since this cycle's listing is known only under the entry's
lock, just before launching; a batch then starts smaller, never larger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.controller.claims import EntryClaims
from glidein_operator.controller.stopwatch import Stopwatch
from glidein_operator.credentials import payloads
from glidein_operator.ground import CloudPilot, LaunchBatch, PilotState
from glidein_operator.pilot.lifecycle import refusal_in_console
from glidein_operator.pilot.payload import PayloadError
from glidein_operator.provisioning import status as st
from glidein_operator.provisioning.cycle import Acted, Decision, LaunchOrder, tail
from glidein_operator.provisioning.lifecycle import Reap
from glidein_operator.provisioning.planner import Candidate, PilotPhase

Emit = Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)


@dataclass(frozen=True)
class Request:
    """Who the pilots are launched for, as their payload names it."""

    name: str
    namespace: str
    uid: str
    spec: GlideinRequestSpec
    factory: str  # the operator's id

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


async def act(
    decision: Decision,
    *,
    request: Request,
    drivers: Mapping[str, InstrumentedDriver],
    candidates: Mapping[str, Candidate],
    listings: Mapping[str, list[CloudPilot]],
    listed_at: Mapping[str, float],
    pool_credential: tuple[bytes | None, str | None] | None,
    claims: EntryClaims,
    emit: Emit,
    now: dt.datetime,
    watch: Stopwatch | None = None,
) -> Acted:
    """With ``watch``: launch batches after an entry's first that are not started when the
    request's time budget is spent are left to the next cycle (which decides them again,
    from the listings, under the same keys); releases, reaps, cancellations and each
    entry's first batch are always carried out."""
    acted = Acted()
    await _release(decision, drivers, acted)
    await _unregistered(decision, drivers, acted, emit, now)
    await _reap(decision, drivers, acted, emit, now)
    await _cancel(decision, drivers, acted, emit)
    if pool_credential is not None:
        by_entry: dict[str, list[LaunchOrder]] = {}
        for order in decision.launches:
            by_entry.setdefault(order.entry, []).append(order)
        await asyncio.gather(
            *(
                _launch(
                    orders,
                    request,
                    candidates[entry],
                    drivers[entry],
                    listings[entry],
                    listed_at[entry],
                    pool_credential,
                    claims,
                    acted,
                    emit,
                    now,
                    watch,
                )
                for entry, orders in by_entry.items()
            )
        )
    # An entry whose launches back off after failures is still failing, though this cycle
    # made no call to show it (the message stays the same while it waits: no status churn).
    for entry, d in drivers.items():
        if d.degraded and d.last_error is not None:
            acted.health[entry] = (
                f"{d.last_error.reason}: {d.last_error}; launches back off after "
                f"{d.backoff.failures} failure(s)"
            )
        elif d.boot_backoff.failures and d.pilot_failure:
            acted.health[entry] = (
                f"PilotsFailing: {d.boot_backoff.failures} time(s) in a row pilots failed "
                f"there: {d.pilot_failure}; launches back off (their logs are in "
                ".status.pilotLogs)"
            )
        elif d.boot_backoff.failures:
            acted.health[entry] = (
                f"PilotsNotRegistering: {d.boot_backoff.failures} time(s) in a row pilots "
                "ended without registering (powered off, or reaped after "
                "registrationTimeout; their console logs are in .status.pilotLogs); "
                "launches back off"
            )
    return acted


async def _release(
    decision: Decision, drivers: Mapping[str, InstrumentedDriver], acted: Acted
) -> None:
    for entry, pilots in decision.release.items():
        try:
            await drivers[entry].terminate(pilots)
            drivers[entry].released |= {p.batch for p in pilots}
        except DriverError as exc:
            acted.degraded[entry] = f"{exc.reason}: {exc}"


async def _console(d: InstrumentedDriver, p: CloudPilot) -> str:
    try:
        return await d.console_log(p)
    except DriverError:
        return ""


async def _unregistered(
    decision: Decision,
    drivers: Mapping[str, InstrumentedDriver],
    acted: Acted,
    emit: Emit,
    now: dt.datetime,
) -> None:
    """Pilots that powered themselves off without ever registering (a token the pool
    refuses, an image that does not boot): their console says why, kept like a stuck
    pilot's, and launches at the entry back off until one of its pilots registers."""
    for entry in decision.registered_at:
        drivers[entry].pilot_registered()
    for entry, failed in decision.unregistered.items():
        d = drivers[entry]
        wait = d.pilots_failed_to_register()
        refused = ""
        for p, keep in failed:
            if not keep:
                continue
            log = await _console(d, p)
            refused = refused or (refusal_in_console(log) or "")
            acted.kept_logs.append(st.pilot_log(p, "ended without registering", log, now))
        emit(
            "Warning",
            "PilotRefused" if refused else "PilotsNotRegistering",
            f"{len(failed)} pilot(s) at {entry} powered off without registering"
            + (f"; the collector refused them: {refused}" if refused else "")
            + f"; launches there wait {wait:.0f}s; console logs kept in .status.pilotLogs",
        )


async def _reap(
    decision: Decision,
    drivers: Mapping[str, InstrumentedDriver],
    acted: Acted,
    emit: Emit,
    now: dt.datetime,
) -> None:
    for entry, items in decision.reap.items():
        d = drivers[entry]
        for item in items:
            p, why = item.pilot, item.why
            log = ""
            if item.keep_log:
                log = await _console(d, p)
                acted.kept_logs.append(st.pilot_log(p, why.value, log, now))
            if why is Reap.IDLE:
                # Its startd should have shut itself down: an image whose pilot ignores
                # its idle timeout costs money until someone looks.
                assert decision.timeouts is not None
                assert decision.timeouts.idle is not None
                emit(
                    "Warning",
                    "PilotIdleTooLong",
                    f"pilot {p.pilot_id} at {entry} stayed idle past idleTimeout "
                    f"({decision.timeouts.idle}) plus {decision.timeouts.idle_grace} without "
                    "shutting itself down; terminated",
                )
                continue
            if why not in (Reap.STUCK, Reap.NEVER_STARTED, Reap.ERROR):
                continue
            refused = refusal_in_console(log)
            emit(
                "Warning",
                "PilotRefused" if refused else "PilotFailed" if why is Reap.ERROR else "PilotStuck",
                f"pilot {p.pilot_id} at {entry} {why.value} ({p.raw_state}); "
                + (f"the collector refused it: {refused}; " if refused else "")
                + f"console log kept in .status.pilotLogs: {tail(log, 3) or '(empty)'}",
            )
        failed = [i.pilot for i in items if i.why is Reap.ERROR]
        if failed:
            # Failed at the back end (a site that refuses the credential holds every pilot
            # the same way): say why on the entry, and back off as for pilots that never
            # register, rather than feed the same failure more pilots at once.
            d.pilots_failed(f"pilot {failed[-1].pilot_id}: {failed[-1].raw_state}"[:500])
        if decision.stuck[entry]:
            # Reaped for never registering: like pilots that powered off unregistered, the
            # entry's launches back off (a too short registrationTimeout, a pool that does
            # not answer), rather than launch the same number again at once.
            d.pilots_failed_to_register()
        try:
            await d.terminate([i.pilot for i in items])
            acted.terminated += len(items)
            reasons = Counter(i.why.value for i in items)
            emit(
                "Normal",
                "Reaped",
                f"terminated {len(items)} pilot(s) at {entry}: "
                + ", ".join(f"{n} {r}" for r, n in reasons.items()),
            )
        except DriverError as exc:
            acted.degraded[entry] = f"{exc.reason}: {exc}"


async def _cancel(
    decision: Decision, drivers: Mapping[str, InstrumentedDriver], acted: Acted, emit: Emit
) -> None:
    for entry, doomed in decision.cancel.items():
        try:
            await drivers[entry].terminate(doomed)
        except DriverError as exc:
            acted.degraded[entry] = f"{exc.reason}: {exc}"
            continue
        acted.terminated += len(doomed)
        kinds = Counter(str(decision.phase_of.get(p.pilot_id, PilotPhase.PENDING)) for p in doomed)
        notes = decision.plan.entry(entry).notes
        emit(
            "Normal",
            "ScaledDown",
            f"cancelled {len(doomed)} pilot(s) at {entry} running no job "
            f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): "
            + "; ".join(n for n in notes if n.startswith("cancel")),
        )


async def _launch(
    orders: list[LaunchOrder],
    request: Request,
    cand: Candidate,
    driver: InstrumentedDriver,
    listing: list[CloudPilot],
    listed_at: float,
    pool_credential: tuple[bytes | None, str | None],
    claims: EntryClaims,
    acted: Acted,
    emit: Emit,
    now: dt.datetime,
    watch: Stopwatch | None = None,
) -> None:
    for i, order in enumerate(orders):
        # The first batch at each entry always starts: a request whose look and decision
        # alone take its budget still makes progress, every cycle.
        if i > 0 and watch is not None and watch.spent():
            watch.launches_cut[cand.name] = sum(o.count for o in orders[i:])
            return
        acted.tried[cand.name] = order.seq
        itype = cand.spec.instance_type(order.instance_type)
        assert itype is not None
        try:
            payload = payloads.build(
                request=request.key,
                request_uid=request.uid,
                spec=request.spec,
                entry=cand.name,
                entry_spec=cand.spec,
                itype=itype,
                image=cand.image,
                batch=order.key,
                pool_signing_key=pool_credential[0],
                premade_token=pool_credential[1],
                now=int(now.timestamp()),
                factory=request.factory,
            )
            user_data = payloads.user_data(payload, cand.spec.type)
        except (ValueError, PayloadError) as exc:
            acted.degraded[cand.name] = f"PayloadInvalid: {exc}"
            return
        batch = LaunchBatch(
            key=order.key,
            request_uid=request.uid,
            request=request.key,
            entry=cand.name,
            shape=order.shape,
            count=driver.spend_launches(order.count),
            image_id=order.image_id,
            user_data=user_data,
            spot=order.spot,
            spot_max_price=order.spot_max_price,
            spot_fallback=order.spot_fallback,
        )
        if batch.count <= 0:
            return
        async with claims.lock(cand.name):
            # Other requests may have launched here since this cycle's listing began.
            alive = sum(1 for p in listing if p.state is not PilotState.TERMINATED)
            room = claims.room(cand.name, cand.spec.limits.max_pilots, alive, listed_at)
            if room is not None and room < batch.count:
                if room <= 0:
                    return
                batch = dataclasses.replace(batch, count=room)
            claims.record(cand.name, batch.count)
            try:
                started = await driver.launch(batch)
            except DriverError as exc:
                acted.degraded[cand.name] = f"{exc.reason}: {exc}"
                emit("Warning", "LaunchFailed", f"{cand.name}: {exc.reason}: {exc}")
                return
        acted.launched += len(started)
        if batch.spot and started and not any(p.spot for p in started):
            emit(
                "Warning",
                "SpotFallback",
                f"{cand.name}: no spot capacity for {order.instance_type}; launched on-demand "
                "instead",
            )
        emit(
            "Normal",
            "ScaledUp",
            f"launched {len(started)} pilot(s) of {order.instance_type} at {cand.name} "
            f"({order.bound_by})",
        )
