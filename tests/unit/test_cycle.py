"""decide() and report(): one cycle's decision from what was observed, in milliseconds.

Where is it decided how many pilots start at an entry? Here, in one pure call: every
limit (rate limit and backoff included), the launch hold, then the budget.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.provisioning.cycle import (
    Acted,
    EntryState,
    Observed,
    Policy,
    batch_key,
    decide,
    report,
)
from glidein_operator.provisioning.planner import Candidate
from tests.support.planning import REQ, entry, jobs, request

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
POLICY = Policy(interval=dt.timedelta(seconds=5))


def _seen(cands: list[Candidate], n_jobs: int = 40, **kw: Any) -> Observed:
    base: dict[str, Any] = {
        "now": NOW,
        "usable": cands,
        "blocked": {},
        "listings": {c.name: [] for c in cands},
        "listing_errors": {},
        "entries": {c.name: EntryState() for c in cands},
        "registered": {},
        "clusters": jobs(n_jobs, cpus=4, memory=4000),
    }
    base.update(kw)
    return Observed(**base)


def _decide(seen: Observed, cands: list[Candidate], **spec: Any) -> Any:
    return decide(
        seen,
        uid=REQ,
        spec=request(**spec),
        entries={c.name: c.spec for c in cands},
        old_status={},
        policy=POLICY,
    )


def _pilot(entry: str, seq: int, i: int, state: PilotState, minutes_ago: int) -> CloudPilot:
    key = batch_key(REQ, entry, seq)
    return CloudPilot(
        pilot_id=f"{key}-{i}",
        cloud_id=f"c-{key}-{i}",
        entry=entry,
        request_uid=REQ,
        batch=key,
        instance_type="4c",
        state=state,
        launched_at=NOW - dt.timedelta(minutes=minutes_ago),
    )


def test_every_bound_on_launches_is_decided_in_one_place() -> None:
    a, b, c = entry("a"), entry("b"), entry("c")
    seen = _seen(
        [a, b, c],
        entries={
            "a": EntryState(launch_room=3),  # the rate limit lets 3 go now
            "b": EntryState(launch_hold="launches wait 40s after 2 failure(s)"),
            "c": EntryState(),
        },
    )
    d = _decide(seen, [a, b, c], matchExpression="true")
    rows = {e.entry: e for e in d.plan.entries}
    assert rows["a"].launch == 3
    assert rows["a"].bound_by == "entry.launchesPerMinute"
    assert rows["b"].launch == 0
    assert rows["b"].bound_by == "backoff"
    assert rows["c"].launch == 10  # slow start: 10 at first
    # The orders are exactly the plan's numbers, keyed deterministically.
    orders = {o.entry: o for o in d.launches}
    assert set(orders) == {"a", "c"}
    assert (orders["a"].count, orders["a"].key) == (3, batch_key(REQ, "a", 1))
    assert orders["c"].count == 10


def test_no_launch_without_jobs_read_or_a_pool_credential_and_the_status_says_why() -> None:
    a = entry("a")
    for kw, reason in (
        ({"pool_error": ("ScheddUnreachable", "timed out")}, "ScheddUnreachable"),
        ({"token_error": "spec.pilot.tokenSecretRef is not set"}, "NoPoolCredential"),
    ):
        seen = _seen([a], **kw)
        d = _decide(seen, [a])
        assert d.launches == []
        assert d.plan.entry("a").bound_by in ("pool unreadable", "no pool credential")
        status, _ = report(d, seen, Acted(), spec=request(), old_status={}, generation=3)
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reason)


def test_the_budget_cuts_the_decision_not_the_planners_plan() -> None:
    priced = entry(
        "paid",
        types=[{"name": "4c", "cpus": 4, "memory": "8Gi", "disk": "40Gi", "pricePerHour": 1}],
    )
    seen = _seen([priced])
    # 1 a month buys less than one pilot's worst case (lifetime 24h at 1/h).
    d = _decide(seen, [priced], budget={"limit": 1, "period": "monthly"})
    assert d.plan.entry("paid").launch == 0
    assert d.plan.entry("paid").bound_by == "budget"
    assert d.launches == []
    assert d.spending.held_back == 10
    status, events = report(
        d, seen, Acted(), spec=request(budget={"limit": 1}), old_status={}, generation=1
    )
    assert {r["name"]: r["boundBy"] for r in status["entries"]} == {"paid": "budget"}
    assert any(e[1] == "BudgetExhausted" for e in events)
    assert Decimal(status["spend"]["limit"]) == 1


def test_batch_numbers_continue_from_the_listing_and_never_come_back() -> None:
    a = entry("a")
    listing = [_pilot("a", 4, 0, PilotState.TERMINATED, 60)]
    seen = _seen([a], listings={"a": listing}, registered={})
    d = decide(
        seen,
        uid=REQ,
        spec=request(),
        entries={"a": a.spec},
        old_status={"entries": [{"name": "a", "lastBatch": 7}]},
        policy=POLICY,
    )
    assert [o.seq for o in d.launches] == [8]
    status, _ = report(d, seen, Acted(tried={"a": 8}), spec=request(), old_status={}, generation=1)
    assert status["entries"][0]["lastBatch"] == 8


def test_pilots_to_cancel_are_the_newest_never_started_first() -> None:
    a = entry("a", limits={"maxPilots": 2})
    listing = [
        _pilot("a", 1, 0, PilotState.PENDING, 9),
        _pilot("a", 1, 1, PilotState.PENDING, 1),
        _pilot("a", 1, 2, PilotState.PENDING, 5),
    ]
    seen = _seen([a], listings={"a": listing}, n_jobs=0)
    d = _decide(seen, [a])
    assert [p.pilot_id for p in d.cancel["a"]] == [
        listing[1].pilot_id,
        listing[2].pilot_id,
        listing[0].pilot_id,
    ][: len(d.cancel["a"])]
    assert d.launches == []


def test_what_acting_met_reaches_the_conditions() -> None:
    a = entry("a")
    seen = _seen([a])
    d = _decide(seen, [a])
    acted = Acted(degraded={"a": "QuotaExceeded: no more instances"}, health={"a": "ignored"})
    status, _ = report(d, seen, acted, spec=request(), old_status={}, generation=1)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True"
    assert "a: QuotaExceeded: no more instances" in degraded["message"]
