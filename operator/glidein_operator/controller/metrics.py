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
