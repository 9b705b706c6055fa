"""Accounting and budget decisions, with injected time and prices."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from glidein_operator.api.cloudentry import SpotOptions
from glidein_operator.api.glideinrequest import Budget
from glidein_operator.money import budget as bg
from glidein_operator.money.ledger import Charge, Ledger, accrue, worth_writing
from glidein_operator.money.periods import period_end, period_start

T0 = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def charge(
    pid: str,
    price: str,
    launched: dt.datetime,
    ended: dt.datetime | None = None,
    entry: str = "a",
    cpus: int = 4,
) -> Charge:
    return Charge(pid, entry, Decimal(price), cpus, launched, ended)


def test_periods_start_at_midnight_utc() -> None:
    t = dt.datetime(2026, 11, 25, 13, 7, tzinfo=dt.UTC)  # a Wednesday
    assert period_start(t, "daily") == dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    assert period_start(t, "weekly") == dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert period_start(t, "monthly") == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert period_end(dt.datetime(2026, 12, 1, tzinfo=dt.UTC), "monthly") == dt.datetime(
        2027, 1, 1, tzinfo=dt.UTC
    )
    assert period_end(dt.datetime(2026, 2, 1, tzinfo=dt.UTC), "monthly") == dt.datetime(
        2026, 3, 1, tzinfo=dt.UTC
    )


def test_first_look_counts_running_pilots_from_their_launch_within_the_period() -> None:
    # Launched before the period began: only its time inside the period counts.
    pilots = [
        charge("p1", "0.50", T0 - 2 * H),
        charge("p2", "0.25", period_start(T0, "daily") - 3 * H),
    ]
    ledger = accrue(None, pilots, T0, "daily")
    assert ledger.spent() == Decimal("0.50") * 2 + Decimal("0.25") * 20
    assert ledger.total.core_hours == (2 + 20) * 4


def test_a_pilot_is_charged_to_the_second_and_never_twice() -> None:
    p = charge("p", "0.36", T0)  # 0.0001 per second
    ledger = accrue(None, [p], T0 + dt.timedelta(seconds=10), "monthly")
    ledger = accrue(ledger, [p], T0 + dt.timedelta(seconds=25), "monthly")
    ended = charge("p", "0.36", T0, T0 + dt.timedelta(seconds=31))
    ledger = accrue(ledger, [ended], T0 + dt.timedelta(seconds=90), "monthly")
    ledger = accrue(ledger, [ended], T0 + dt.timedelta(seconds=200), "monthly")  # still listed
    assert ledger.spent() == Decimal("0.0031")
    assert ledger.entries["a"].pilot_hours * 3600 == 31


def test_the_ledger_survives_the_status_round_trip() -> None:
    p = charge("p", "0.192", T0 - 5 * H)
    ledger = accrue(None, [p], T0, "monthly")
    again = Ledger.from_status(ledger.to_status())
    assert again is not None
    assert again.accounted_until == ledger.accounted_until
    later = accrue(again, [p], T0 + H, "monthly")
    assert later.spent() == Decimal("0.192") * 6


def test_period_rollover_closes_the_month_and_starts_the_next() -> None:
    p = charge("p", "1.00", T0)  # Nov 30, 20:00
    ledger = accrue(None, [p], T0 + H, "monthly")
    ledger = accrue(ledger, [p], T0 + 7 * H, "monthly")  # Dec 1, 03:00
    assert ledger.period_start == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert ledger.spent() == 3
    assert ledger.previous is not None
    assert ledger.previous["spent"] == 4.0


def test_a_clock_behind_the_ledger_counts_nothing() -> None:
    p = charge("p", "1.00", T0)
    ledger = accrue(None, [p], T0 + H, "monthly")
    assert accrue(ledger, [p], T0 + H / 2, "monthly") is ledger


def test_the_ledger_is_written_when_pilots_end_and_at_least_every_minute() -> None:
    p = charge("p", "1.00", T0)
    first = accrue(None, [p], T0, "monthly")
    soon = accrue(first, [p], T0 + dt.timedelta(seconds=5), "monthly")
    every = dt.timedelta(seconds=60)
    assert not worth_writing(first, soon, ended_pilots=False, every=every)
    assert worth_writing(first, soon, ended_pilots=True, every=every)
    later = accrue(first, [p], T0 + dt.timedelta(seconds=61), "monthly")
    assert worth_writing(first, later, ended_pilots=False, every=every)


def test_committed_cost_runs_to_the_pilots_end_or_the_period_end() -> None:
    end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # 4 h after T0
    life = dt.timedelta(hours=10)
    young = charge("y", "1.00", T0)  # could live 10 h, the period has 4 left
    old = charge("o", "1.00", T0 - 9 * H)  # 1 h of life left
    gone = charge("g", "1.00", T0 - H, T0)
    assert bg.committed([young, old, gone], T0, life, end) == {"a": Decimal(5)}


def test_gate_buys_the_cheapest_pilots_first_and_respects_entry_limits() -> None:
    budget = Budget.model_validate({"limit": 100, "perEntry": {"dear": 30}})
    ledger = accrue(None, [], T0, "monthly")
    check = bg.check(budget, ledger, {"cheap": Decimal(50)})
    assert check.room == 50
    allowed = bg.gate(
        [
            bg.LaunchOption("dear", "big", 10, Decimal(10)),
            bg.LaunchOption("cheap", "small", 3, Decimal(8)),
            bg.LaunchOption("free", "grid", 500, Decimal(0)),
        ],
        check,
    )
    # 3 x 8 = 24 from the cheap entry, then 2 x 10 of the dear one (26 left, entry cap 30).
    assert allowed == {("cheap", "small"): 3, ("dear", "big"): 2, ("free", "grid"): 500}


@pytest.mark.parametrize(
    ("budget", "spent", "kill"),
    [
        ({"limit": 100, "killAt": 0.9}, "89.99", False),
        ({"limit": 100, "killAt": 0.9}, "90", True),
        ({"limit": 100, "killSwitch": True}, "0", True),
        ({"limit": 100}, "150", False),  # no kill configured: the gate alone acts
    ],
)
def test_kill_switch_by_field_or_threshold(
    budget: dict[str, object], spent: str, kill: bool
) -> None:
    ledger = accrue(None, [], T0, "monthly")
    ledger.entries["a"] = type(ledger.total)(spent=Decimal(spent))
    check = bg.check(Budget.model_validate(budget), ledger, {})
    assert check.kill is kill


def test_warn_counts_what_is_committed() -> None:
    ledger = accrue(None, [], T0, "monthly")
    budget = Budget.model_validate({"limit": 100, "warnAt": 0.8})
    assert not bg.check(budget, ledger, {"a": Decimal(79)}).warn
    assert bg.check(budget, ledger, {"a": Decimal(80)}).warn


def test_spot_pilots_are_reserved_at_their_cap_and_charged_at_the_market() -> None:
    end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # 4 h after T0
    spot = Charge("s", "a", Decimal("0.03"), 4, T0, None, worst_price_per_hour=Decimal("0.10"))
    # Committed: 4 h at the cap the market may climb to, not at today's price.
    assert bg.committed([spot], T0, dt.timedelta(hours=24), end) == {"a": Decimal("0.40")}
    # Spent: what the market charged.
    assert accrue(None, [spot], T0 + H, "monthly").spent() == Decimal("0.03")


def test_a_spot_pilot_without_a_price_tag_is_charged_its_cap_and_reserved_at_it() -> None:
    from glidein_operator.ground import CloudPilot, PilotState
    from glidein_operator.money.pricing import charge as charge_of
    from tests.support.simulation import entry_spec

    spec = entry_spec("us-east-1", Decimal("0.192")).model_copy(
        update={"spot": SpotOptions(enabled=True, max_price_per_hour=Decimal("0.08"))}
    )
    pilot = CloudPilot("p", "i-1", "e", "u", "b", "m5.xlarge", PilotState.RUNNING, T0, spot=True)
    c = charge_of(pilot, spec)
    assert c is not None
    assert c.price_per_hour == Decimal("0.08")
    assert c.worst_price == Decimal("0.08")
    on_demand = charge_of(dataclasses.replace(pilot, spot=False), spec)
    assert on_demand is not None
    assert on_demand.price_per_hour == Decimal("0.192")
    assert on_demand.worst_price == Decimal("0.192")
