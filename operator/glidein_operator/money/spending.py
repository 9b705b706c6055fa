"""The money step of a reconcile: account, check the budget, pick what the kill switch
takes, trim launches to what the budget allows, and report it.

The decisions are in ``money/``; this is the glue between them, the listings and the
status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.money import budget as bg
from glidein_operator.money.ledger import Ledger, accrue, parse_time, worth_writing
from glidein_operator.money.pricing import charge, launch_price
from glidein_operator.provisioning import status as st
from glidein_operator.provisioning.lifecycle import Reap
from glidein_operator.provisioning.planner import PilotPhase, PilotView, Plan

CLOUD_TYPES = frozenset({"ec2", "openstack", "opennebula"})
# How often the ledger is written while nothing else moves: pilots the listings still show
# are accounted exactly whatever this is; it bounds what a pilot that vanishes from its
# cloud without an end time (not EC2's way) can go uncounted.
WRITE_EVERY = dt.timedelta(seconds=60)
KILL = "BudgetKill"
# How long the ledger waits for an entry that cannot be listed (Secret gone, cloud down)
# before it carries on without it: past this, a stalled ledger would understate the spend
# the gate relies on, which is worse than a gap it reports.
HOLD_FOR_LISTING = dt.timedelta(minutes=10)


# EC2 states times to the second (StateTransitionReason).
CLOUD_TIME_PRECISION = dt.timedelta(seconds=1)


@dataclass
class Spending:
    ledger: Ledger
    write: bool
    fresh: bool  # the ledger moved this cycle (False: kept as stored)
    check: bg.BudgetCheck | None = None
    kill: list[tuple[CloudPilot, Reap]] = field(default_factory=list)
    kill_blocked: dict[str, str] = field(default_factory=dict)
    # Spot pilots the cloud took back lately (cloud ids): the reconcile announces each once.
    interrupted: list[str] = field(default_factory=list)
    accounting_gap: str = ""  # entries whose pilots' time went unaccounted, and since when
    held_back: int = 0  # launches the plan wanted and the budget did not allow
    max_life: dt.timedelta = dt.timedelta(0)


def assess(
    *,
    spec: GlideinRequestSpec,
    uid: str,
    entries: Mapping[str, CloudEntrySpec],
    listings: Mapping[str, list[CloudPilot]],
    unlisted: set[str],
    views: list[PilotView],
    old_status: Mapping[str, Any],
    now: dt.datetime,
    interval: dt.timedelta,
    grace: dt.timedelta,
    listed_as_of: dt.datetime | None = None,
) -> Spending:
    # Time is counted up to the oldest listing's start, not now: a listing is shared for
    # up to a minute (controller/listings.py), and a pilot that ended since shows its end
    # only in the next one. What lies between is the gate's, as committed money.
    upto = min(now, listed_as_of) if listed_as_of is not None else now
    mine = [p for ps in listings.values() for p in ps if p.request_uid == uid]
    charges = [c for p in mine if (c := charge(p, entries.get(p.entry))) is not None]
    period = spec.budget.period if spec.budget else "monthly"
    old = Ledger.from_status(old_status.get("spend"))
    blind = sorted(e for e in unlisted if old is not None and e in old.entries)
    gap = ""
    if old is not None and blind and now - old.accounted_until < HOLD_FOR_LISTING:
        # An entry we had pilots at could not be listed: its pilots' time would be
        # skipped. Keep the ledger where it is; the next good listing counts it all.
        ledger = old
    else:
        ledger = accrue(old, charges, upto, period)
        if blind and old is not None:
            gap = (
                f"{', '.join(blind)} not listed since {st.now_iso(old.accounted_until)}: "
                "time of pilots there since then is not accounted"
            )
    previous_end = old.accounted_until if old else ledger.period_start
    # The cloud reports an end to the second: a pilot taken back in the same second as the
    # last accounting ends "before" it. Anything from a second before counts as lately; the
    # reconcile drops those it already announced.
    lately = previous_end - CLOUD_TIME_PRECISION
    interrupted = [
        p.cloud_id
        for p in mine
        if p.interrupted and p.ended_at is not None and p.ended_at >= lately
    ]
    ended = any(c.ended_at is not None and c.ended_at > previous_end for c in charges)
    out = Spending(
        ledger=ledger,
        write=ledger is not old
        and worth_writing(old, ledger, ended_pilots=ended, every=WRITE_EVERY),
        fresh=ledger is not old,
        accounting_gap=gap,
        interrupted=interrupted,
        # The operator reaps a pilot at its lifetime plus the grace, seen by one cycle.
        max_life=spec.pilot.lifetime_td + grace + interval,
    )
    if spec.budget is None:
        return out
    alive = [c for c in charges if c.ended_at is None]
    out.check = bg.check(
        spec.budget, ledger, bg.committed(alive, upto, out.max_life, ledger.period_end)
    )
    if out.check.kill:
        since = _true_since(old_status, KILL) or now
        grace_over = now - since >= spec.budget.kill_grace_period_td
        phase = {v.pilot_id: v.phase for v in views if v.request_uid == uid}
        busy = (PilotPhase.CLAIMED, PilotPhase.RETIRING)
        for p in mine:
            if entries.get(p.entry) is None or entries[p.entry].type not in CLOUD_TYPES:
                continue
            if p.state is PilotState.TERMINATED:
                continue
            if grace_over or phase.get(p.pilot_id) not in busy:
                out.kill.append((p, Reap.BUDGET))
        for name, e in entries.items():
            if e.type in CLOUD_TYPES:
                out.kill_blocked[name] = f"budget kill switch: {out.check.kill_reason}"
    return out


def affordable(
    result: Plan, spending: Spending, entries: Mapping[str, CloudEntrySpec], now: dt.datetime
) -> dict[tuple[str, str], int] | None:
    """How many of each (entry, instance type) launch of the plan the budget allows, or
    None without a budget. provisioning/cycle.py applies it."""
    check = spending.check
    if check is None:
        return None
    end = spending.ledger.period_end
    priced = [
        (e.entry, itype, n, price)
        for e in result.entries
        if e.entry in entries
        for itype, n in e.launch_by_type.items()
        if (price := launch_price(entries[e.entry], itype)) is not None
    ]
    # Ranked by the price of a job slot, as the plan chose them (jobs per pilot of the type
    # for the jobs it is launched for).
    slots = {
        (e.entry, t): max(1, round(k)) for e in result.entries for t, k in e.slots_by_type.items()
    }
    options = [
        bg.LaunchOption(
            entry,
            itype,
            n,
            bg.worst_case_cost(price, now, now, spending.max_life, end),
            launch_price(entries[entry], itype, slots.get((entry, itype), 1)),
        )
        for entry, itype, n, price in priced
    ]
    # A launch of unknown price is never affordable (eligibility keeps such entries out of
    # a budgeted request's plan; this holds whatever reaches here).
    allowed = {
        (e.entry, t): 0 for e in result.entries if e.entry in entries for t in e.launch_by_type
    }
    allowed.update(bg.gate(options, check))
    return allowed


def spend_status(old_status: Mapping[str, Any], spending: Spending) -> dict[str, Any] | None:
    if not spending.write:
        return old_status.get("spend")
    out = spending.ledger.to_status()
    c = spending.check
    if c is not None:
        out["limit"] = float(c.limit)
        out["committed"] = float(c.committed.quantize(Decimal("0.000001")))
        out["left"] = float(c.left.quantize(Decimal("0.000001")))
    return out


def conditions(
    conds: list[dict[str, Any]],
    spending: Spending,
    spec: GlideinRequestSpec,
    generation: int,
    now: dt.datetime,
    emit: Any,
) -> list[dict[str, Any]]:
    c = spending.check
    if c is None or spec.budget is None:
        return [x for x in conds if x.get("type") not in ("BudgetWarning", "BudgetExhausted", KILL)]
    figures = (
        f"spent {c.spent:.2f} + committed {c.committed:.2f} of {c.limit} "
        f"({spec.budget.period}, since {st.now_iso(spending.ledger.period_start)})"
    )
    period_start = spending.ledger.period_start
    held_since = _true_since({"conditions": conds}, "BudgetExhausted")
    rows = [
        (
            "BudgetWarning",
            c.warn,
            "WarnThresholdCrossed",
            f"{figures}: past warnAt {spec.budget.warn_at:.0%}",
        ),
        (
            # Sticky for the period: launches come and go as pilots end and free money,
            # and a condition (and an Event) flapping with each of them helps no one.
            "BudgetExhausted",
            c.exhausted
            or spending.held_back > 0
            or (held_since is not None and held_since >= period_start),
            "LaunchesHeldBack",
            f"{figures}: launches held back this period, pilots running finish",
        ),
        (KILL, c.kill, "KillSwitch", f"{c.kill_reason}: draining and terminating cloud pilots"),
    ]
    for type_, on, reason, message in rows:
        old = next((x for x in conds if x.get("type") == type_), None)
        was = old is not None and old.get("status") == "True"
        if on and was and not spending.write and old is not None:
            message = str(old.get("message", message))  # figures move with the ledger's writes
        conds = st.set_condition(
            conds,
            type_,
            "True" if on else "False",
            reason if on else "WithinBudget",
            message if on else "",
            generation,
            now,
        )
        if on and not was:
            emit("Warning", type_, message)
    return conds


def _true_since(status: Mapping[str, Any], type_: str) -> dt.datetime | None:
    for x in status.get("conditions") or []:
        if x.get("type") == type_ and x.get("status") == "True":
            return parse_time(str(x["lastTransitionTime"]))
    return None
