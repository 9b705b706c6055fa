"""One corpus of malformed resources, run through pydantic (unit) and the API server
(integration): whatever one rejects the other must reject too, naming the same field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(kind: str, name: str) -> dict[str, Any]:
    for f in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return copy.deepcopy(doc)
    raise KeyError(f"{kind}/{name} not in examples/")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    base: str
    mutate: Callable[[dict[str, Any]], None]
    field: str  # the path kube-apiserver names, e.g. spec.limits.maxPilots

    def build(self, name: str | None = None) -> dict[str, Any]:
        obj = example(self.kind, self.base)
        if name:
            obj["metadata"]["name"] = name
        self.mutate(obj["spec"])
        return obj

    @property
    def leaf(self) -> str:
        """Last segment of the field path (what pydantic's cross-field messages name)."""
        return self.field.rsplit(".", 1)[-1].split("[")[0]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
        last = parts[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return f


_DELETE = object()


def _both(*fs: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def f(spec: dict[str, Any]) -> None:
        for g in fs:
            g(spec)

    return f


CE, TD, VMI, GR = "CloudEntry", "TrustDomain", "VMImage", "GlideinRequest"
EC2, OS_, GRID = "aws-us-east-1", "hlt-openstack", "osg-nebraska"
IMG, REQ = "glidein-el9-2026.11", "cms-production"

CASES: list[Case] = [
    Case("entry-unknown-type", CE, EC2, _set("type", "azure"), "spec.type"),
    Case(
        "entry-ec2-and-openstack-sections",
        CE,
        EC2,
        _set("openstack", {"authUrl": "https://k:5000/v3", "region": "RegionOne"}),
        "spec.openstack",
    ),
    Case("entry-section-missing", CE, OS_, _set("openstack", _DELETE), "spec.openstack"),
    Case(
        "entry-negative-max-pilots", CE, EC2, _set("limits.maxPilots", -1), "spec.limits.maxPilots"
    ),
    Case(
        "entry-idle-above-max",
        CE,
        EC2,
        _both(_set("limits.maxPilots", 5), _set("limits.maxIdlePilots", 10)),
        "spec.limits.maxIdlePilots",
    ),
    Case(
        "entry-cpus-not-a-number",
        CE,
        EC2,
        _set("instanceTypes.0.cpus", "four"),
        "spec.instanceTypes[0].cpus",
    ),
    Case(
        "entry-memory-not-a-quantity",
        CE,
        EC2,
        _set("instanceTypes.0.memory", "lots"),
        "spec.instanceTypes[0].memory",
    ),
    Case(
        "entry-negative-price",
        CE,
        EC2,
        _set("instanceTypes.0.pricePerHour", -0.1),
        "spec.instanceTypes[0].pricePerHour",
    ),
    Case("entry-no-instance-types", CE, EC2, _set("instanceTypes", []), "spec.instanceTypes"),
    Case("entry-missing-trust-domain", CE, EC2, _set("trustDomain", _DELETE), "spec.trustDomain"),
    Case("entry-spot-on-openstack", CE, OS_, _set("spot", {"enabled": True}), "spec.spot"),
    Case(
        "entry-batch-ce-without-batch-system",
        CE,
        GRID,
        _set("grid.ceType", "batch"),
        "spec.grid.batchSystem",
    ),
    Case("entry-image-on-grid", CE, GRID, _set("vmImage", IMG), "spec.vmImage"),
    Case(
        "entry-endpoint-not-http",
        CE,
        EC2,
        _set("ec2.endpointUrl", "ftp://ec2.example.org"),
        "spec.ec2.endpointUrl",
    ),
    Case(
        "entry-bad-trust-domain-name",
        CE,
        EC2,
        _set("trustDomain", "Not_A_Name"),
        "spec.trustDomain",
    ),
    Case(
        "trustdomain-no-credential-types",
        TD,
        "aws",
        _set("credentialTypes", []),
        "spec.credentialTypes",
    ),
    Case(
        "trustdomain-unknown-credential-type",
        TD,
        "aws",
        _set("credentialTypes", ["password123"]),
        "spec.credentialTypes[0]",
    ),
    Case("image-bad-patch-date", VMI, IMG, _set("patchDate", "last tuesday"), "spec.patchDate"),
    Case("image-no-locations", VMI, IMG, _set("locations", []), "spec.locations"),
    Case(
        "image-unknown-cloud",
        VMI,
        IMG,
        _set("locations.0.cloud", "azure"),
        "spec.locations[0].cloud",
    ),
    Case(
        "image-superseded-not-deprecated",
        VMI,
        IMG,
        _set("supersededBy", "glidein-el10"),
        "spec.supersededBy",
    ),
    Case("request-no-schedds", GR, REQ, _set("schedds", []), "spec.schedds"),
    Case("request-missing-collector", GR, REQ, _set("collector", _DELETE), "spec.collector"),
    Case(
        "request-bad-duration", GR, REQ, _set("pilot.lifetime", "two days"), "spec.pilot.lifetime"
    ),
    Case(
        "request-retire-longer-than-lifetime",
        GR,
        REQ,
        _both(_set("pilot.lifetime", "2h"), _set("pilot.retireBeforeEnd", "3h")),
        "spec.pilot.retireBeforeEnd",
    ),
    Case(
        "request-min-above-max",
        GR,
        REQ,
        _both(
            _set("limits.minPilots", 3000),
            _set("limits.maxPilots", 10),
            _set("limits.maxIdlePilots", 5),
            _set("limits.curbIdlePilots", 1),
        ),
        "spec.limits.minPilots",
    ),
    Case(
        "request-curb-above-idle",
        GR,
        REQ,
        _set("limits.curbIdlePilots", 500),
        "spec.limits.curbIdlePilots",
    ),
    Case(
        "request-credential-without-secret",
        GR,
        REQ,
        _set("credentials.2.secretRef", _DELETE),
        "spec.credentials[2].secretRef",
    ),
    Case(
        "request-secret-bad-name",
        GR,
        REQ,
        _set("credentials.0.secretRef.name", "Bad_Name"),
        "spec.credentials[0].secretRef.name",
    ),
    Case("request-negative-budget", GR, REQ, _set("budget.limit", -5), "spec.budget.limit"),
    Case("request-warn-above-one", GR, REQ, _set("budget.warnAt", 1.5), "spec.budget.warnAt"),
    Case("request-kill-below-warn", GR, REQ, _set("budget.killAt", 0.5), "spec.budget.killAt"),
    Case("request-bad-period", GR, REQ, _set("budget.period", "fortnightly"), "spec.budget.period"),
    Case("request-misspelt-field", GR, REQ, _set("maxPilot", 3), "spec.maxPilot"),
    Case(
        "request-credential-unknown-type",
        GR,
        REQ,
        _set("credentials.0.type", "aws-root-password"),
        "spec.credentials[0].type",
    ),
]
