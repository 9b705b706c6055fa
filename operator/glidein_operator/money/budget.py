"""What the budget allows: warn, gate new launches, kill.

The gate counts money already committed: every pilot alive runs, at worst, until its
lifetime (plus the grace and one cycle before the operator reaps it) or the end of the
period, at its own price. New pilots are let through only while
``spent + committed + their own worst case`` stays within the limit, so the period
cannot overspend by more than what no one can foresee (a price the cloud changes after
launch). Existing pilots finish their work; only the kill switch takes them away.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from glidein_operator.api.glideinrequest import Budget
from glidein_operator.money.ledger import Charge, Ledger

_US_PER_HOUR = Decimal(3_600_000_000)


def worst_case_cost(
    price_per_hour: Decimal,
    launched_at: dt.datetime,
    now: dt.datetime,
    max_life: dt.timedelta,
    period_end: dt.datetime,
) -> Decimal:
    """What a pilot may still cost in this period, from now to its end at the latest."""
    stop = min(launched_at + max_life, period_end)
    if stop <= now:
        return Decimal(0)
    return price_per_hour * Decimal((stop - now) // dt.timedelta(microseconds=1)) / _US_PER_HOUR


def committed(
    alive: Iterable[Charge], now: dt.datetime, max_life: dt.timedelta, period_end: dt.datetime
) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for c in alive:
        if c.ended_at is not None:
            continue
        out[c.entry] = out.get(c.entry, Decimal(0)) + worst_case_cost(
            c.worst_price, c.launched_at or now, now, max_life, period_end
        )
    return out


@dataclass
class BudgetCheck:
    limit: Decimal
    spent: Decimal
    committed: Decimal
    warn: bool
    kill: bool
    kill_reason: str
    room: Decimal  # money left for new launches in this period
    entry_room: dict[str, Decimal] = field(default_factory=dict)

    @property
    def exhausted(self) -> bool:
        return self.room <= 0

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent)


def check(budget: Budget, ledger: Ledger, committed_by_entry: Mapping[str, Decimal]) -> BudgetCheck:
    spent = ledger.spent()
    total_committed = sum(committed_by_entry.values(), Decimal(0))
    kill_reason = ""
    if budget.kill_switch:
        kill_reason = "spec.budget.killSwitch is set"
    elif budget.kill_at is not None and spent >= budget.limit * Decimal(str(budget.kill_at)):
        kill_reason = f"spent {spent:.2f} of {budget.limit} reached killAt ({budget.kill_at:.0%})"
    entry_room = {
        name: limit - ledger.spent(name) - committed_by_entry.get(name, Decimal(0))
        for name, limit in budget.per_entry.items()
    }
    return BudgetCheck(
        limit=budget.limit,
        spent=spent,
        committed=total_committed,
        warn=spent + total_committed >= budget.limit * Decimal(str(budget.warn_at)),
        kill=bool(kill_reason),
        kill_reason=kill_reason,
        room=budget.limit - spent - total_committed,
        entry_room=entry_room,
    )


@dataclass(frozen=True)
class LaunchOption:
    """Pilots the plan would launch: ``count`` of one type at one entry, each costing at
    most ``cost`` in this period. ``slot_price``: the launch price of one job slot
    (``pricing.launch_price`` per job), what the gate ranks by when given."""

    entry: str
    instance_type: str
    count: int
    cost: Decimal
    slot_price: Decimal | None = None


def gate(options: Iterable[LaunchOption], check: BudgetCheck) -> dict[tuple[str, str], int]:
    """How many of each option the budget lets through, cheapest job slots first (the
    same figure the plan chose types and entries by; cheapest pilots where it is not
    given): a tight budget runs the most jobs it can."""
    room = check.room
    entry_room = dict(check.entry_room)
    allowed: dict[tuple[str, str], int] = {}
    for o in sorted(
        options,
        key=lambda o: (
            o.cost if o.slot_price is None else o.slot_price,
            o.cost,
            o.entry,
            o.instance_type,
        ),
    ):
        if o.cost <= 0:
            allowed[(o.entry, o.instance_type)] = o.count
            continue
        fit = math.floor(max(Decimal(0), room) / o.cost)
        if o.entry in entry_room:
            fit = min(fit, math.floor(max(Decimal(0), entry_room[o.entry]) / o.cost))
        n = min(o.count, fit)
        allowed[(o.entry, o.instance_type)] = n
        room -= o.cost * n
        if o.entry in entry_room:
            entry_room[o.entry] -= o.cost * n
    return allowed
