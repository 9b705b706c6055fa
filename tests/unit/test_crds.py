"""The CRDs in crds/ are exactly what the models generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from glidein_operator.api import crdgen
from glidein_operator.api.resources import KINDS, Kind

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", crdgen.TARGETS, ids=str)
def test_generated_crds_are_current(target: Path) -> None:
    stale = crdgen.stale(ROOT / target)
    assert not stale, f"{target} is stale ({stale}): run `glidein-operator crds generate`"


def test_no_stray_files_in_crds() -> None:
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(crdgen.rendered())
    chart = sorted(p.name for p in (ROOT / "helm/glidein-operator/crds").glob("glidein.dev_*.yaml"))
    assert chart == sorted(crdgen.rendered())


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if "items" in node:
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Kind) -> None:
    schema = crdgen.openapi_schema(kind)
    for path, node in _walk(schema):
        assert "type" in node, f"{kind.kind}{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf"} & node.keys(), f"{kind.kind}{path}"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("default", 0) is not None, f"{kind.kind}{path} defaults to null"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_spec_field_is_described(kind: Kind) -> None:
    # Descriptions are what `kubectl explain` shows: none may be missing.
    schema = crdgen.openapi_schema(kind)["properties"]["spec"]
    missing = [
        p
        for p, n in _walk(schema, "spec")
        if not n.get("description") and not p.endswith(("[]", "{}"))
    ]
    assert not missing, f"{kind.kind}: no description on {missing}"


def test_crd_shape() -> None:
    for kind in KINDS:
        doc = yaml.safe_load(crdgen.render(kind))
        version = doc["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert "glidein" in doc["spec"]["names"]["categories"]
        assert doc["spec"]["names"]["shortNames"]
        assert any(c["name"] == "Ready" for c in version["additionalPrinterColumns"])
        # kopf's progress lives in annotations: a strict status schema would drop it.
        assert "kopf" not in version["schema"]["openAPIV3Schema"]["properties"]["status"].get(
            "properties", {}
        )


def test_cel_rules_reach_the_schema() -> None:
    entry = crdgen.openapi_schema(KINDS[1])["properties"]["spec"]
    rules = [r["rule"] for r in entry["x-kubernetes-validations"]]
    assert "(self.type == 'ec2') == has(self.ec2)" in rules


# What JSON Schema calls these, pydantic spells ge, le, min_length...: a pydantic name in a
# CRD means a constraint the API server silently ignores.
PYDANTIC_WORDS = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of", "strict"}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_constraint_is_spelt_as_the_server_reads_it(kind: Kind) -> None:
    schema = crdgen.openapi_schema(kind)
    for path, node in _walk(schema):
        assert not PYDANTIC_WORDS & node.keys(), f"{kind.kind}{path}: {node.keys()}"


def test_every_duration_is_bounded_on_the_server() -> None:
    pilot = crdgen.openapi_schema(KINDS[0])["properties"]["spec"]["properties"]["pilot"]
    durations = {
        name: node
        for name, node in pilot["properties"].items()
        if node.get("pattern", "").endswith("(ms|s|m|h))+$")
    }
    assert set(durations) == {"lifetime", "idleTimeout", "registrationTimeout", "retireBeforeEnd"}
    for name, node in durations.items():
        [rule] = node["x-kubernetes-validations"]
        assert "duration('8760h')" in rule["rule"], name
        assert rule["message"].startswith("must be between"), name
        assert node["maxLength"] <= 20, name


def test_pilot_pods_on_the_nodes_network_are_opt_in() -> None:
    [entry] = [k for k in KINDS if k.kind == "CloudEntry"]
    pods = crdgen.openapi_schema(entry)["properties"]["spec"]["properties"]["kubernetes"]
    node = pods["properties"]["hostNetwork"]
    assert node["type"] == "boolean"
    assert node["default"] is False  # existing entries keep the pod network
    assert "hostNetwork" not in pods.get("required", [])
    assert "node's network" in node["description"]
