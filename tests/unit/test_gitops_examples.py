"""The GitOps examples point at the chart that exists, with values its schema accepts."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _schema_props() -> set[str]:
    return set(
        json.loads((ROOT / "helm/glidein-operator/values.schema.json").read_text())["properties"]
    )


def test_argocd_application() -> None:
    app = yaml.safe_load((ROOT / "docs/gitops/argocd-application.yaml").read_text())
    assert (ROOT / app["spec"]["source"]["path"] / "Chart.yaml").exists()
    assert set(app["spec"]["source"]["helm"]["valuesObject"]) <= _schema_props()


def test_flux_helmrelease() -> None:
    docs = list(yaml.safe_load_all((ROOT / "docs/gitops/flux-helmrelease.yaml").read_text()))
    release = next(d for d in docs if d["kind"] == "HelmRelease")
    assert (ROOT / release["spec"]["chart"]["spec"]["chart"] / "Chart.yaml").exists()
    assert set(release["spec"]["values"]) <= _schema_props()
