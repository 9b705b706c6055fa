"""A synthetic but realistic planning workload: many sites, few machine shapes, jobs
that differ in cores, memory and where they may run."""

from __future__ import annotations

import random
from decimal import Decimal

import classad2

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.condor.jobs import JobCluster
from glidein_operator.provisioning.planner import Candidate, PilotPhase, PilotView
from tests.support.planning import SITE_MATCH, STD_REQUIREMENTS

SHAPES = [
    ("c4", 4, "8Gi", "0.17"),
    ("m4", 4, "16Gi", "0.19"),
    ("c8", 8, "16Gi", "0.34"),
    ("m8", 8, "32Gi", "0.38"),
    ("c16", 16, "32Gi", "0.68"),
    ("m16", 16, "64Gi", "0.77"),
    ("r8", 8, "64Gi", "0.50"),
    ("c32", 32, "64Gi", "1.36"),
]


def entries(n: int, types_per_entry: int = 3, seed: int = 1) -> list[Candidate]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        shapes = rng.sample(SHAPES, types_per_entry)
        spec = CloudEntrySpec.model_validate(
            {
                "type": "grid",
                "trustDomain": "osg",
                "site": f"S{i:03d}",
                "grid": {
                    "ceType": "condor",
                    "endpoint": f"ce{i}.example.org:9619",
                    "submitter": {
                        "collector": "submit.example.org",
                        "schedd": "glidein-submitter",
                        "tokenSecretRef": {"name": "submit-key"},
                    },
                },
                "instanceTypes": [
                    {
                        "name": name,
                        "cpus": cpus,
                        "memory": mem,
                        "disk": "200Gi",
                        "pricePerHour": (
                            Decimal(price) * Decimal(rng.choice(["0.9", "1.0", "1.1"]))
                        ),
                    }
                    for name, cpus, mem, price in shapes
                ],
                "limits": {"maxPilots": rng.choice([50, 200, 1000]), "maxLaunchPerCycle": 200},
            }
        )
        out.append(Candidate(f"entry-{i:03d}", spec))
    return out


def clusters(
    n_clusters: int, n_jobs: int, n_entries: int, site_lists: int = 200, seed: int = 2
) -> list[JobCluster]:
    rng = random.Random(seed)
    requirements = classad2.ExprTree(STD_REQUIREMENTS)
    lists = [
        ",".join(f"S{s:03d}" for s in rng.sample(range(n_entries), rng.randint(1, 8)))
        for _ in range(site_lists)
    ]
    per = n_jobs // n_clusters
    out = []
    for i in range(n_clusters):
        cpus = rng.choice([1, 1, 1, 2, 4, 8])
        memory = rng.choice([1000, 2000, 2500, 4000, 8000]) * cpus
        ad = classad2.ClassAd()
        ad["RequestCpus"] = cpus
        ad["RequestMemory"] = memory
        ad["RequestDisk"] = 2_000_000
        ad["Requirements"] = requirements
        if i % 5:
            ad["DESIRED_Sites"] = lists[i % site_lists]
        cluster = JobCluster(
            f"c{i}",
            "schedd@bench",
            per + (1 if i < n_jobs % n_clusters else 0),
            ad,
            cpus,
            memory,
            2_000_000,
            0,
        )
        cluster.attribute_values()  # as cluster_jobs() fills it, reading each ad once
        out.append(cluster)
    return out


def running_pilots(cands: list[Candidate], per_entry: int, request_uid: str) -> list[PilotView]:
    phases = [PilotPhase.CLAIMED] * 6 + [
        PilotPhase.BOOTING,
        PilotPhase.IDLE,
        PilotPhase.PENDING,
        PilotPhase.RETIRING,
    ]
    return [
        PilotView(
            f"{c.name}-{k}",
            request_uid,
            c.name,
            c.spec.instance_types[0].name,
            phases[k % len(phases)],
            0.25,
        )
        for c in cands
        for k in range(per_entry)
    ]


def request() -> GlideinRequestSpec:
    return GlideinRequestSpec.model_validate(
        {
            "collector": "pool:9618",
            "schedds": [{"name": "schedd@bench"}],
            "credentials": [{"trustDomain": "osg", "type": "scitoken", "secretRef": {"name": "t"}}],
            "matchExpression": SITE_MATCH,
            "limits": {"maxPilots": 50_000, "maxIdlePilots": 10_000},
        }
    )
