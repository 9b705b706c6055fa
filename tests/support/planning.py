"""Builders for planner tests: entries, requests, jobs and pilots in a few words."""

from __future__ import annotations

from typing import Any

import classad2

from glidein_devkit.fake_pool import FakePool
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.condor.jobs import JobCluster, cluster_jobs
from glidein_operator.provisioning.planner import Candidate, PilotPhase, PilotView

REQ = "uid-req"
STD_REQUIREMENTS = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Memory >= RequestMemory)'
    " && (TARGET.Cpus >= RequestCpus) && (TARGET.Disk >= RequestDisk) && TARGET.HasFileTransfer"
)
SITE_MATCH = (
    "stringListMember(GLIDEIN_Site, ifThenElse(isUndefined(TARGET.DESIRED_Sites), "
    "GLIDEIN_Site, TARGET.DESIRED_Sites))"
)


def grid_spec(
    name: str,
    *,
    site: str | None = None,
    types: list[dict[str, Any]] | None = None,
    limits: dict[str, Any] | None = None,
    enabled: bool = True,
    attributes: dict[str, str] | None = None,
) -> CloudEntrySpec:
    """A grid entry at ``<name>.example.org`` (free: the planner's tests need no price)."""
    return CloudEntrySpec.model_validate(
        {
            "type": "grid",
            "trustDomain": "osg",
            "site": site or name,
            "enabled": enabled,
            "grid": {
                "ceType": "condor",
                "endpoint": f"{name}.example.org:9619",
                "submitter": {
                    "collector": "submit.example.org",
                    "schedd": "glidein-submitter",
                    "tokenSecretRef": {"name": "submit-key"},
                },
            },
            "instanceTypes": types or [{"name": "4c", "cpus": 4, "memory": "8Gi", "disk": "40Gi"}],
            "limits": limits or {},
            "attributes": attributes or {},
        }
    )


def entry(name: str, **spec: Any) -> Candidate:
    """The planner's view of ``grid_spec(name, **spec)``."""
    return Candidate(name, grid_spec(name, **spec))


def request(**overrides: Any) -> GlideinRequestSpec:
    body: dict[str, Any] = {
        "collector": "pool.example.org:9618",
        "schedds": [{"name": "schedd@submit"}],
        "credentials": [{"trustDomain": "osg", "type": "scitoken", "secretRef": {"name": "tok"}}],
        "matchExpression": SITE_MATCH,
        "limits": {"maxPilots": 1000},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return GlideinRequestSpec.model_validate(body)


def jobs(
    count: int,
    *,
    cpus: int = 1,
    memory: int = 2000,
    sites: str | None = None,
    requirements: str = STD_REQUIREMENTS,
    **attrs: Any,
) -> list[JobCluster]:
    pool = FakePool()
    extra = dict(attrs)
    if sites is not None:
        extra["DESIRED_Sites"] = sites
    pool.submit(
        "schedd@submit",
        count,
        RequestCpus=cpus,
        RequestMemory=memory,
        RequestDisk=1_000_000,
        Requirements=classad2.ExprTree(requirements),
        **extra,
    )
    return cluster_jobs("schedd@submit", pool.idle_jobs("schedd@submit", "true", ()))


def pilots(
    entry_name: str,
    phase: PilotPhase,
    n: int,
    *,
    request_uid: str = REQ,
    itype: str = "4c",
    free: float = 0.0,
) -> list[PilotView]:
    return [
        PilotView(
            f"{entry_name}-{phase}-{i}-{request_uid}", request_uid, entry_name, itype, phase, free
        )
        for i in range(n)
    ]
