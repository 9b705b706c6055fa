"""The chart's Grafana dashboard asks only for series the operator exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from glidein_operator.clouds.instrumented import DriverMetrics
from glidein_operator.controller.metrics import ReconcileMetrics

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "helm/glidein-operator/dashboards/glidein-operator.json"
)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exported() -> dict[str, set[str]]:
    """Series name -> label names, as a scrape would show them."""
    registry = CollectorRegistry()
    ReconcileMetrics(registry)
    DriverMetrics(registry)
    out: dict[str, set[str]] = {}
    for family in registry.collect():
        labels = set(getattr(registry._names_to_collectors[family.name], "_labelnames", ()))
        for suffix in SUFFIXES.get(family.type, ("",)):
            out[family.name + suffix] = labels
    return out


def test_every_series_on_the_dashboard_is_exported_with_its_labels() -> None:
    series = exported()
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        for name in re.findall(r"\bglidein_[a-z_]+", expr):
            assert name in series, f"{name} in {expr!r} is not exported"
            for label in re.findall(r"\b([a-z_]+)=~?\"", expr):
                assert label in series[name], f"{name} has no label {label!r}"
    used = {n for e in exprs for n in re.findall(r"\bglidein_[a-z_]+", e)}
    for money in (
        "glidein_spend",
        "glidein_budget_left",
        "glidein_pilots",
        "glidein_cloud_errors_total",
        "glidein_reconcile_errors_total",
    ):
        assert money in used


def test_the_dashboards_variables_are_labels_of_exported_series() -> None:
    series = exported()
    dash = json.loads(DASHBOARD.read_text())
    queries = [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    assert queries
    for query in queries:
        name, label = re.fullmatch(r"label_values\((glidein_[a-z_]+)[^,]*, (\w+)\)", query).groups()  # type: ignore[union-attr]
        assert label in series[name], query
    # Requests are told apart by namespace and name, as the series label them.
    assert {"namespace", "name"} <= {v["name"] for v in dash["templating"]["list"]}
