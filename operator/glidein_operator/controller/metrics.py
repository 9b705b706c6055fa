"""Prometheus series of the reconcile loop (the drivers' own are in clouds/instrumented.py)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.idle_jobs = Gauge(
            "glidein_idle_jobs", "Idle jobs a request serves.", ["request"], registry=registry
        )
        self.pilots = Gauge(
            "glidein_pilots", "Pilots by state.", ["request", "entry", "state"], registry=registry
        )
        self.wanted = Gauge(
            "glidein_pilots_wanted",
            "Pilots the plan wants.",
            ["request", "entry"],
            registry=registry,
        )
        self.spent = Gauge(
            "glidein_spend",
            "Spent in the current budget period, in the entries' price currency.",
            ["request", "entry"],
            registry=registry,
        )
        self.core_hours = Gauge(
            "glidein_core_hours",
            "Core-hours of pilots in the current budget period.",
            ["request", "entry"],
            registry=registry,
        )
        self.budget_left = Gauge(
            "glidein_budget_left",
            "Budget limit minus spend in the current period.",
            ["request"],
            registry=registry,
        )
        self.budget_committed = Gauge(
            "glidein_budget_committed",
            "What pilots alive now may still cost in the current period, at worst.",
            ["request"],
            registry=registry,
        )
        self.duration = Histogram(
            "glidein_reconcile_seconds",
            "Duration of one request's reconcile.",
            ["request"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )

    def record(self, request: str, status: dict[str, Any]) -> None:
        self.idle_jobs.labels(request).set(status.get("totals", {}).get("idleJobs", 0))
        for row in status.get("entries", []):
            for state in ("launching", "running", "idle", "stuck"):
                self.pilots.labels(request, row["name"], state).set(row.get(state, 0))
            self.wanted.labels(request, row["name"]).set(row.get("wanted", 0))
        spend = status.get("spend") or {}
        for row in spend.get("entries", []):
            self.spent.labels(request, row["name"]).set(row.get("spent", 0))
            self.core_hours.labels(request, row["name"]).set(row.get("coreHours", 0))
        if spend.get("left") is not None:
            self.budget_left.labels(request).set(spend["left"])
            self.budget_committed.labels(request).set(spend.get("committed", 0))
