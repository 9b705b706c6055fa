"""The real reconcile through simulated weeks (tests/support/simulation.py): budgets hold, the
kill switch empties the clouds, accounting matches the pilots' lives to the cent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.money import spending
from glidein_operator.money.ledger import parse_time
from glidein_operator.provisioning.lifecycle import Reap
from glidein_operator.provisioning.planner import PilotPhase, PilotView
from tests.support.simulation import START, UID, Sim, entry_spec, request_spec

CENT = Decimal("0.01")
DEC1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def test_a_simulated_month_with_price_changes_stays_within_budget_to_the_cent() -> None:
    limit = Decimal(2000)
    sim = Sim({"limit": 2000, "period": "monthly", "warnAt": 0.8}, step=dt.timedelta(minutes=15))
    # 31 days: all of November, prices moving every 3 days, an operator restart mid-month,
    # and the first day of December.
    sim.run(31, restart_at=START + dt.timedelta(days=15, hours=3))
    november = sim.cloud.cost(START, DEC1)
    worst_hour = sim.cloud.most_expensive_price()
    overspend = november - limit
    print(f"\nNovember: spent {november:.4f} of {limit}, overspend {overspend:.4f}")
    assert overspend <= worst_hour, "overspent by more than one instance-hour"
    assert november >= limit * Decimal("0.95"), "the gate starved the workload"
    prices = {p.price_per_hour for p in sim.cloud.history.values() for p in [p.pilot]}
    assert len(prices) >= 5, "prices did not change during the run"

    spend = sim.status["spend"]
    closed = spend["previousPeriod"]
    assert parse_time(closed["start"]) == START
    assert parse_time(closed["end"]) == DEC1
    error_nov = abs(Decimal(str(closed["spent"])) - november)
    december = sim.cloud.cost(DEC1, parse_time(spend["accountedUntil"]))
    error_dec = abs(Decimal(str(spend["spent"])) - december)
    print(f"accounting error: November {error_nov:.7f}, December {error_dec:.7f}")
    assert error_nov < CENT
    assert error_dec < CENT
    assert december > 0, "December did not start afresh"

    reasons = [e[1] for e in sim.events]
    assert reasons.count("BudgetWarning") >= 1
    assert reasons.count("BudgetExhausted") >= 1, "the budget never bound: test proves nothing"
    assert reasons.count("BudgetExhausted") <= 3, "the condition flaps"


def test_kill_threshold_terminates_every_cloud_pilot_and_launches_stop() -> None:
    sim = Sim({"limit": 300, "warnAt": 0.3, "killAt": 0.5}, step=dt.timedelta(minutes=15))
    while not any(e[1] == "BudgetKill" for e in sim.events):
        sim.run(1 / 96, price_every=None)
        assert sim.clock.now < START + dt.timedelta(days=10), "killAt never reached"
    assert sim.cloud.alive() == []
    kill = next(c for c in sim.status["conditions"] if c["type"] == "BudgetKill")
    assert kill["status"] == "True"
    assert "killAt" in kill["message"]
    launched = sim.cloud.launch_calls
    sim.run(1, price_every=None)  # jobs keep coming
    assert sim.cloud.launch_calls == launched
    assert sim.cloud.alive() == []
    assert {e["boundBy"] for e in sim.status["entries"]} == {
        f"budget kill switch: {kill['message'].split(': draining')[0]}"
    }


def test_kill_switch_field_empties_the_clouds_at_once() -> None:
    sim = Sim({"limit": 10000}, step=dt.timedelta(minutes=15))
    sim.run(0.5, price_every=None)
    assert len(sim.cloud.alive()) > 20
    sim.spec = request_spec({"limit": 10000, "killSwitch": True})
    sim.cycle()
    assert sim.cloud.alive() == []
    assert [e[2] for e in sim.events if e[1] == "BudgetKill"] == [
        "spec.budget.killSwitch is set: draining and terminating cloud pilots"
    ]
    reaped = [e[2] for e in sim.events if e[1] == "Reaped"][-2:]
    assert all("budget kill switch" in m for m in reaped)


def test_kill_drains_busy_pilots_for_the_grace_period_then_terminates_them() -> None:
    now = START + dt.timedelta(hours=5)
    spec = request_spec({"limit": 100, "killSwitch": True, "killGracePeriod": "10m"})
    entries = {"east": entry_spec("us-east-1", Decimal("0.2"))}

    def pilot(pid: str) -> CloudPilot:
        return CloudPilot(pid, pid, "east", UID, "b", "m5.xlarge", PilotState.RUNNING, START)

    listing = {"east": [pilot("busy"), pilot("idle")]}
    views = [
        PilotView("busy", UID, "east", "m5.xlarge", PilotPhase.CLAIMED),
        PilotView("idle", UID, "east", "m5.xlarge", PilotPhase.IDLE),
    ]

    def assess(status: dict[str, object], at: dt.datetime) -> list[str]:
        out = spending.assess(
            spec=spec,
            uid=UID,
            entries=entries,
            listings=listing,
            unlisted=set(),
            views=views,
            old_status=status,
            now=at,
            interval=dt.timedelta(seconds=5),
            grace=dt.timedelta(minutes=15),
        )
        assert all(why is Reap.BUDGET for _, why in out.kill)
        return sorted(p.pilot_id for p, _ in out.kill)

    assert assess({}, now) == ["idle"]
    engaged = {
        "conditions": [
            {"type": "BudgetKill", "status": "True", "lastTransitionTime": "2026-11-01T05:00:00Z"}
        ]
    }
    assert assess(engaged, now + dt.timedelta(minutes=9)) == ["idle"]
    assert assess(engaged, now + dt.timedelta(minutes=10)) == ["busy", "idle"]


def test_an_entry_that_cannot_be_listed_holds_the_ledger_then_is_reported_as_a_gap() -> None:
    spec = request_spec({"limit": 100})
    entries = {
        "east": entry_spec("us-east-1", Decimal("0.2")),
        "west": entry_spec("us-west-2", Decimal("0.2")),
    }
    pilot = CloudPilot("p", "i-1", "east", UID, "b", "m5.xlarge", PilotState.RUNNING, START)

    def assess(status: dict[str, object], at: dt.datetime, unlisted: set[str]) -> spending.Spending:
        return spending.assess(
            spec=spec,
            uid=UID,
            entries=entries,
            listings={"east": [pilot]} if "east" not in unlisted else {},
            unlisted=unlisted,
            views=[],
            old_status=status,
            now=at,
            interval=dt.timedelta(seconds=5),
            grace=dt.timedelta(minutes=15),
        )

    first = assess({}, START + dt.timedelta(hours=1), set())
    assert first.ledger.spent() == Decimal("0.2")
    stored = {"spend": spending.spend_status({}, first)}
    # east's listing fails: its pilot's time must not be skipped, so nothing moves...
    held = assess(stored, START + dt.timedelta(hours=1, minutes=5), {"east"})
    assert held.ledger.accounted_until == first.ledger.accounted_until
    assert not held.write
    # ...and once east is back the hour is all there.
    back = assess(stored, START + dt.timedelta(hours=2), set())
    assert back.ledger.spent() == Decimal("0.4")
    # Blind for longer than the hold: the others go on, the gap is said.
    late = assess(stored, START + dt.timedelta(hours=1, minutes=11), {"east"})
    assert late.ledger.accounted_until == START + dt.timedelta(hours=1, minutes=11)
    assert "east not listed since" in late.accounting_gap
