"""Idle jobs, grouped into clusters the way the schedd's autoclusters group them.

Planning cost must grow with the number of distinct kinds of job, not with jobs: a
cluster is every idle job whose *significant* attributes (resources requested,
Requirements, DESIRED_Sites and whatever the requests' constraints read) are equal, with
one representative ad and a count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import classad2

from glidein_operator.condor.classads import evaluates_true  # and HTCondor's functions

# What every cluster is keyed on. Requests may add more (what their jobConstraint and
# matchExpression read): see significant_attributes().
BASE_SIGNIFICANT: tuple[str, ...] = (
    "RequestCpus",
    "RequestMemory",
    "RequestDisk",
    "RequestGPUs",
    "Requirements",
    "DESIRED_Sites",
    "JobUniverse",
    "Owner",
)
RESOURCE_DEFAULTS = {
    "RequestCpus": 1,
    "RequestMemory": 1024,
    "RequestDisk": 1024 * 1024,
    "RequestGPUs": 0,
}


def referenced_names(ad: classad2.ClassAd, expr: classad2.ExprTree) -> set[str]:
    """Attribute names an expression reads, on either side (MY./TARGET. stripped)."""
    names = set()
    for ref in [*ad.internalRefs(expr), *ad.externalRefs(expr)]:
        names.add(ref.split(".", 1)[1] if ref.lower().startswith(("my.", "target.")) else ref)
    return names


def significant_attributes(expressions: Iterable[str]) -> tuple[str, ...]:
    """BASE_SIGNIFICANT plus every attribute the given expressions read."""
    probe = classad2.ClassAd()
    extra: set[str] = set()
    for text in expressions:
        extra |= referenced_names(probe, classad2.ExprTree(text))
    base = {a.lower() for a in BASE_SIGNIFICANT}
    return BASE_SIGNIFICANT + tuple(sorted(a for a in extra if a.lower() not in base))


def _key_value(value: object) -> object:
    return str(value) if isinstance(value, classad2.ExprTree) else value


@dataclass
class JobCluster:
    """Idle jobs that look alike to matchmaking."""

    id: str
    schedd: str
    count: int
    ad: classad2.ClassAd = field(repr=False)
    cpus: int
    memory_mb: int
    disk_kb: int
    gpus: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.schedd, self.id)


def _resource(ad: classad2.ClassAd, name: str) -> int:
    value = ad.get(name, RESOURCE_DEFAULTS[name])
    if isinstance(value, classad2.ExprTree):
        value = value.eval(ad)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        # Undefined or an expression that needs a machine (e.g. MemoryUsage based): use
        # the default, as the schedd does for a job that has not run yet.
        return RESOURCE_DEFAULTS[name]


def cluster_jobs(
    schedd: str, jobs: Iterable[classad2.ClassAd], significant: tuple[str, ...] = BASE_SIGNIFICANT
) -> list[JobCluster]:
    """Group idle job ads into clusters by their significant attributes."""
    groups: dict[tuple[object, ...], JobCluster] = {}
    for ad in jobs:
        key = tuple(_key_value(ad.get(a)) for a in significant)
        cluster = groups.get(key)
        if cluster is None:
            rep = classad2.ClassAd()
            for a in significant:
                v = ad.get(a)
                if v is not None:
                    rep[a] = v
            groups[key] = JobCluster(
                id=f"c{len(groups)}",
                schedd=schedd,
                count=1,
                ad=rep,
                cpus=max(1, _resource(ad, "RequestCpus")),
                memory_mb=_resource(ad, "RequestMemory"),
                disk_kb=_resource(ad, "RequestDisk"),
                gpus=_resource(ad, "RequestGPUs"),
            )
        else:
            cluster.count += 1
    return list(groups.values())


def select(clusters: list[JobCluster], constraint: str) -> list[JobCluster]:
    """The clusters a request's jobConstraint admits."""
    if constraint.strip().lower() == "true":
        return clusters
    expr = classad2.ExprTree(constraint)
    return [c for c in clusters if evaluates_true(expr, c.ad)]
