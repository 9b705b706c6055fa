"""Accounting: pilot-hours, core-hours and cost per entry in the current budget period.

Rebuilt from the clouds, not from memory. Each cycle adds, for every pilot the listing
shows, the part of its life between ``accounted_until`` and now, at the price it was
launched at (its tag) or the price the cloud reports. The ledger lives in the
request's status: after a restart the next cycle carries on from ``accounted_until``
with the pilots' own launch times, so nothing is counted twice or lost. A pilot the
operator terminates is accounted up to that very cycle; one that ends by itself is
accounted up to the end time the cloud reports (EC2 keeps terminated instances with
their transition time for about an hour). Arithmetic is Decimal on whole microseconds:
the ledger adds up to the sum of the pilots' lifetimes times their prices.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from glidein_operator.money.periods import Period, period_end, period_start

_US_PER_HOUR = Decimal(3_600_000_000)
_MICRO = Decimal("0.000001")


@dataclass(frozen=True)
class Charge:
    """One pilot as accounting sees it."""

    pilot_id: str
    entry: str
    price_per_hour: Decimal
    cpus: int
    launched_at: dt.datetime | None
    ended_at: dt.datetime | None = None  # None: alive as of the listing
    # The most it may cost per hour from now on: a spot pilot's market price may climb to
    # its cap before the cloud takes it back. What the budget gate reserves.
    worst_price_per_hour: Decimal | None = None

    @property
    def worst_price(self) -> Decimal:
        return max(self.price_per_hour, self.worst_price_per_hour or Decimal(0))


@dataclass
class Usage:
    spent: Decimal = Decimal(0)
    pilot_hours: Decimal = Decimal(0)
    core_hours: Decimal = Decimal(0)

    def __iadd__(self, other: Usage) -> Usage:
        self.spent += other.spent
        self.pilot_hours += other.pilot_hours
        self.core_hours += other.core_hours
        return self

    def to_status(self) -> dict[str, float]:
        return {
            "spent": float(self.spent.quantize(_MICRO)),
            "pilotHours": float(self.pilot_hours.quantize(_MICRO)),
            "coreHours": float(self.core_hours.quantize(_MICRO)),
        }

    @classmethod
    def from_status(cls, d: Mapping[str, Any]) -> Usage:
        return cls(
            Decimal(str(d.get("spent", 0))),
            Decimal(str(d.get("pilotHours", 0))),
            Decimal(str(d.get("coreHours", 0))),
        )


@dataclass
class Ledger:
    period: Period
    period_start: dt.datetime
    accounted_until: dt.datetime
    entries: dict[str, Usage] = field(default_factory=dict)
    previous: dict[str, Any] | None = None  # the last closed period, as status shows it

    @property
    def period_end(self) -> dt.datetime:
        return period_end(self.period_start, self.period)

    @property
    def total(self) -> Usage:
        out = Usage()
        for u in self.entries.values():
            out += u
        return out

    def spent(self, entry: str | None = None) -> Decimal:
        if entry is None:
            return self.total.spent
        return self.entries.get(entry, Usage()).spent

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period": self.period,
            "periodStart": _iso(self.period_start),
            "accountedUntil": _iso(self.accounted_until),
            **self.total.to_status(),
            "entries": [
                {"name": name, **u.to_status()} for name, u in sorted(self.entries.items())
            ],
        }
        if self.previous:
            out["previousPeriod"] = self.previous
        return out

    @classmethod
    def from_status(cls, d: Mapping[str, Any] | None) -> Ledger | None:
        if not d or not d.get("periodStart") or not d.get("accountedUntil"):
            return None
        return cls(
            period=d.get("period", "monthly"),
            period_start=parse_time(d["periodStart"]),
            accounted_until=parse_time(d["accountedUntil"]),
            entries={e["name"]: Usage.from_status(e) for e in d.get("entries", [])},
            previous=dict(d["previousPeriod"]) if d.get("previousPeriod") else None,
        )


def accrue(
    ledger: Ledger | None, charges: Iterable[Charge], now: dt.datetime, period: Period
) -> Ledger:
    """The ledger with every pilot's time up to ``now`` added, periods rolled over."""
    charges = list(charges)
    if ledger is None or ledger.period != period:
        # First look (or the period kind changed): the running pilots' cost so far in this
        # period, from their launch times.
        start = period_start(now, period)
        ledger = Ledger(period, start, start)
    if now <= ledger.accounted_until:
        return ledger  # a clock behind the ledger's (another node): never count backwards
    out = replace(ledger, entries={k: replace(u) for k, u in ledger.entries.items()})
    while True:
        end = out.period_end
        upto = min(now, end)
        _add(out, charges, out.accounted_until, upto)
        out.accounted_until = upto
        if now < end:
            return out
        total = out.total
        out = Ledger(
            period,
            end,
            end,
            previous={
                "start": _iso(out.period_start),
                "end": _iso(end),
                **total.to_status(),
            },
        )


def _add(ledger: Ledger, charges: list[Charge], frm: dt.datetime, to: dt.datetime) -> None:
    sums: dict[str, list[Decimal]] = {}
    for c in charges:
        start = max(c.launched_at or frm, frm)
        stop = min(c.ended_at or to, to)
        if stop <= start:
            continue
        us = Decimal((stop - start) // dt.timedelta(microseconds=1))
        acc = sums.setdefault(c.entry, [Decimal(0), Decimal(0), Decimal(0)])
        acc[0] += c.price_per_hour * us
        acc[1] += us
        acc[2] += us * c.cpus
    for entry, (money_us, us, core_us) in sums.items():
        ledger.entries.setdefault(entry, Usage()).__iadd__(
            Usage(money_us / _US_PER_HOUR, us / _US_PER_HOUR, core_us / _US_PER_HOUR)
        )


def worth_writing(
    old: Ledger | None, new: Ledger, *, ended_pilots: bool, every: dt.timedelta
) -> bool:
    """Whether to persist ``new`` now or keep the stored ledger (and its accountedUntil) for
    the next cycle to carry on from. Written when pilots ended this cycle (they vanish
    from the listings), at a period change, and at least every ``every``; in between the
    status stays put, which is exact for every pilot still listed."""
    if old is None or old.period_start != new.period_start or ended_pilots:
        return True
    return new.accounted_until - old.accounted_until >= every


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s: str) -> dt.datetime:
    """An RFC 3339 time as status holds it (``...Z``), as an aware UTC datetime."""
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.UTC)
