"""The operator's series: named as Prometheus' conventions say, labelled by namespace and
name, and gone with what they describe (a deleted request, a deleted entry, an entry
that left a request's status)."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import CollectorRegistry

from glidein_operator.clouds.instrumented import DriverMetrics
from glidein_operator.controller.metrics import ReconcileMetrics


def _registry() -> tuple[CollectorRegistry, ReconcileMetrics, DriverMetrics]:
    registry = CollectorRegistry()
    return registry, ReconcileMetrics(registry), DriverMetrics(registry)


def _series(registry: CollectorRegistry) -> list[tuple[str, dict[str, str]]]:
    return [
        (s.name, s.labels)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def _status(*entries: str, budget: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "totals": {"idleJobs": 7},
        "entries": [
            {"name": e, "launching": 1, "running": 2, "idle": 0, "stuck": 0, "wanted": 3}
            for e in entries
        ],
        "spend": {"entries": [{"name": e, "spent": 1.5, "coreHours": 2.0} for e in entries]},
    }
    if budget:
        status["spend"].update(left=10.0, committed=2.5)
    return status


def test_names_follow_the_prometheus_conventions() -> None:
    registry, _m, _d = _registry()
    families = {f.name: f for f in registry.collect()}
    for name, family in families.items():
        assert name.startswith("glidein_"), name
        # Base units only: seconds, never hours or milliseconds (money has none).
        assert not re.search(r"_(hours|minutes|milliseconds|ms|percent)\b", name), name
        assert "_total" not in name  # the client adds it to counters' samples, only there
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), (
                family.samples
            )
        if family.type == "histogram":
            assert name.endswith("_seconds"), name  # every histogram here times something
        assert family.documentation, name
    for money in ("glidein_spend", "glidein_budget_left", "glidein_budget_committed"):
        assert "currency" in families[money].documentation
    assert set(families) >= {
        "glidein_reconcile_duration_seconds",
        "glidein_cloud_call_duration_seconds",
        "glidein_pilot_core_seconds",
        "glidein_reconcile_errors",  # exported as glidein_reconcile_errors_total
    }


def test_requests_are_labelled_by_namespace_and_name() -> None:
    registry, m, _d = _registry()
    m.record("cms", "vo", _status("east"), seconds=0.2)
    m.failed("cms", "vo")
    get = registry.get_sample_value
    assert get("glidein_idle_jobs", {"namespace": "cms", "name": "vo"}) == 7
    assert (
        get(
            "glidein_pilots",
            {"namespace": "cms", "name": "vo", "entry": "east", "state": "running"},
        )
        == 2
    )
    assert (
        get("glidein_pilot_core_seconds", {"namespace": "cms", "name": "vo", "entry": "east"})
        == 7200
    )
    assert get("glidein_reconcile_duration_seconds_count", {"namespace": "cms", "name": "vo"}) == 1
    assert get("glidein_reconcile_errors_total", {"namespace": "cms", "name": "vo"}) == 1
    assert all("request" not in labels for _n, labels in _series(registry))


def test_a_deleted_requests_series_go_and_a_late_reconcile_does_not_bring_them_back() -> None:
    registry, m, _d = _registry()
    m.record("cms", "vo", _status("east", "west"), seconds=0.2, uid="u1")
    m.failed("cms", "vo", "u1")
    m.record("atlas", "vo", _status("east"), seconds=0.1, uid="u2")
    m.forget_request("cms", "vo", "u1")
    left = _series(registry)
    assert not [s for s in left if s[1].get("namespace") == "cms"], left
    assert [s for s in left if s[1].get("namespace") == "atlas"]
    # A reconcile that was still running when the finalizer ended records nothing.
    m.record("cms", "vo", _status("east"), seconds=0.2, uid="u1")
    m.failed("cms", "vo", "u1")
    assert not [s for s in _series(registry) if s[1].get("namespace") == "cms"]
    # A new request of the same name is another object: its series are its own.
    m.record("cms", "vo", _status("east"), uid="u3")
    assert registry.get_sample_value("glidein_idle_jobs", {"namespace": "cms", "name": "vo"}) == 7


def test_an_entry_that_leaves_a_status_and_a_budget_removed_leave_no_rows() -> None:
    registry, m, _d = _registry()
    m.record("cms", "vo", _status("east", "west"))
    m.record("cms", "vo", _status("east", budget=False))
    entries = {s[1].get("entry") for s in _series(registry) if "entry" in s[1]}
    assert entries == {"east"}
    assert (
        registry.get_sample_value("glidein_budget_left", {"namespace": "cms", "name": "vo"}) is None
    )


def test_a_deleted_entrys_rows_go_from_every_request_and_from_the_drivers() -> None:
    registry, m, d = _registry()
    m.record("cms", "vo", _status("east", "west"))
    m.record("atlas", "vo", _status("east"))
    for entry in ("east", "west"):
        d.calls.labels(entry, "list").observe(0.1)
        d.errors.labels(entry, "launch", "Throttled").inc()
        d.launched.labels(entry).inc(3)
        d.terminated.labels(entry).inc()
    m.forget_entry("east")
    d.forget_entry("east")
    assert not [s for s in _series(registry) if s[1].get("entry") == "east"]
    assert [s for s in _series(registry) if s[1].get("entry") == "west"]
    assert registry.get_sample_value("glidein_idle_jobs", {"namespace": "atlas", "name": "vo"}) == 7
    # The entry that is gone is not "left" the status at the next record: nothing to drop.
    m.record("cms", "vo", _status("west"))
    assert registry.get_sample_value("glidein_pilots_launched_total", {"entry": "west"}) == 3
