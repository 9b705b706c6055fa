"""Prometheus series of the reconcile loop (the drivers' own are in clouds/instrumented.py).

Names follow Prometheus' conventions: base units as a suffix (``_seconds``; core-hours
are exported as core-seconds), counters end in ``_total``. Money has no base unit: the
spend and budget series are in the currency of the CloudEntries' prices (``pricePerHour``),
whatever it is, as their HELP says.

A request's series are labelled ``namespace`` and ``name``, an entry's ``entry``. Series
do not outlive what they describe: a deleted GlideinRequest's go when its finalizer is
done (``forget_request``), a deleted CloudEntry's (every request's rows for it, and the
drivers') when its own is (``forget_entry``), and a request's rows for an entry that left
its status at its next reconcile. A scrape never shows a gauge of something gone.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from glidein_operator.clouds.instrumented import forget

REQUEST = ("namespace", "name")
STATES = ("launching", "running", "idle", "stuck")
SECONDS_PER_HOUR = 3600
# Uids of deleted requests, so a reconcile that was still running when its request's
# finalizer finished does not bring its series back (kept bounded).
FORGOTTEN_KEPT = 10_000


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.idle_jobs = Gauge(
            "glidein_idle_jobs",
            "Idle jobs a GlideinRequest serves.",
            REQUEST,
            registry=registry,
        )
        self.pilots = Gauge(
            "glidein_pilots",
            "Pilots of a GlideinRequest at an entry, by state.",
            [*REQUEST, "entry", "state"],
            registry=registry,
        )
        self.wanted = Gauge(
            "glidein_pilots_wanted",
            "Pilots the plan wants at an entry.",
            [*REQUEST, "entry"],
            registry=registry,
        )
        self.spent = Gauge(
            "glidein_spend",
            "Spent at an entry in the current budget period. Money has no base unit: in "
            "the currency of the CloudEntries' prices (pricePerHour), whatever it is.",
            [*REQUEST, "entry"],
            registry=registry,
        )
        self.core_seconds = Gauge(
            "glidein_pilot_core_seconds",
            "Core-seconds of pilots at an entry in the current budget period (core-hours "
            "times 3600).",
            [*REQUEST, "entry"],
            registry=registry,
        )
        self.budget_left = Gauge(
            "glidein_budget_left",
            "Budget limit minus spend in the current period, in the currency of the "
            "CloudEntries' prices (money has no base unit).",
            REQUEST,
            registry=registry,
        )
        self.budget_committed = Gauge(
            "glidein_budget_committed",
            "What pilots alive now may still cost in the current period, at worst, in the "
            "currency of the CloudEntries' prices (money has no base unit).",
            REQUEST,
            registry=registry,
        )
        self.duration = Histogram(
            "glidein_reconcile_duration_seconds",
            "Duration of one GlideinRequest's reconcile.",
            REQUEST,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )
        self.errors = Counter(
            "glidein_reconcile_errors_total",
            "Reconciles of a GlideinRequest that failed: an unforeseen error "
            "(Ready=False ReconcileError) or a spec the operator cannot use (InvalidSpec).",
            REQUEST,
            registry=registry,
        )
        self._per_request: list[tuple[MetricWrapperBase, tuple[str, ...]]] = [
            (self.idle_jobs, REQUEST),
            (self.pilots, (*REQUEST, "entry", "state")),
            (self.wanted, (*REQUEST, "entry")),
            (self.spent, (*REQUEST, "entry")),
            (self.core_seconds, (*REQUEST, "entry")),
            (self.budget_left, REQUEST),
            (self.budget_committed, REQUEST),
            (self.duration, REQUEST),
            (self.errors, REQUEST),
        ]
        # Per request (namespace, name): the entries it has rows for, in the pilot rows
        # and in the spend rows, so rows of an entry that left its status can go.
        self._entries: dict[tuple[str, str], set[str]] = {}
        self._spend_entries: dict[tuple[str, str], set[str]] = {}
        self._forgotten: OrderedDict[str, None] = OrderedDict()

    def record(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        seconds: float | None = None,
        uid: str | None = None,
    ) -> None:
        """A reconcile's outcome: its status as series, and how long it took."""
        if uid is not None and uid in self._forgotten:
            return  # ended after its request's finalizer: its series are gone for good
        key = (namespace, name)
        if seconds is not None:
            self.duration.labels(namespace, name).observe(seconds)
        self.idle_jobs.labels(namespace, name).set(status.get("totals", {}).get("idleJobs", 0))
        entries = set()
        for row in status.get("entries", []):
            entry = row["name"]
            entries.add(entry)
            for state in STATES:
                self.pilots.labels(namespace, name, entry, state).set(row.get(state, 0))
            self.wanted.labels(namespace, name, entry).set(row.get("wanted", 0))
        for gone in self._entries.get(key, set()) - entries:
            for state in STATES:
                self.pilots.remove(namespace, name, gone, state)
            self.wanted.remove(namespace, name, gone)
        self._entries[key] = entries
        spend = status.get("spend") or {}
        spent = set()
        for row in spend.get("entries", []):
            entry = row["name"]
            spent.add(entry)
            self.spent.labels(namespace, name, entry).set(row.get("spent", 0))
            self.core_seconds.labels(namespace, name, entry).set(
                row.get("coreHours", 0) * SECONDS_PER_HOUR
            )
        for gone in self._spend_entries.get(key, set()) - spent:
            self.spent.remove(namespace, name, gone)
            self.core_seconds.remove(namespace, name, gone)
        self._spend_entries[key] = spent
        if spend.get("left") is not None:
            self.budget_left.labels(namespace, name).set(spend["left"])
            self.budget_committed.labels(namespace, name).set(spend.get("committed", 0))
        else:  # no budget (any more): no figure rather than a stale one
            self.budget_left.remove(namespace, name)
            self.budget_committed.remove(namespace, name)

    def failed(self, namespace: str, name: str, uid: str | None = None) -> None:
        """A reconcile that ended in an error (ReconcileError or InvalidSpec)."""
        if uid is None or uid not in self._forgotten:
            self.errors.labels(namespace, name).inc()

    def forget_request(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Every series of a deleted request (its finalizer is done)."""
        if uid is not None:
            self._forgotten[uid] = None
            while len(self._forgotten) > FORGOTTEN_KEPT:
                self._forgotten.popitem(last=False)
        for metric, labelnames in self._per_request:
            forget(metric, labelnames, namespace=namespace, name=name)
        self._entries.pop((namespace, name), None)
        self._spend_entries.pop((namespace, name), None)

    def forget_entry(self, entry: str) -> None:
        """Every request's rows for a deleted entry (its finalizer is done)."""
        for metric, labelnames in self._per_request:
            if "entry" in labelnames:
                forget(metric, labelnames, entry=entry)
        for rows in (*self._entries.values(), *self._spend_entries.values()):
            rows.discard(entry)


SERVED: set[int] = set()


def serve(port: int, registry: CollectorRegistry) -> None:
    """Serve ``/metrics`` on ``port`` (in a thread of prometheus_client's own), once per
    process: every replica, a standby too, from ``glidein-operator run``; kopf's own CLI
    (the tests' KopfRunner) gets it from the startup handler."""
    if port in SERVED:
        return
    from prometheus_client import start_http_server

    start_http_server(port, registry=registry)
    SERVED.add(port)
