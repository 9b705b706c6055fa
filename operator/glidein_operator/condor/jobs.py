"""Idle jobs, grouped into clusters the way the schedd's autoclusters group them.

Planning cost must grow with the number of distinct kinds of job, not with jobs: a
cluster is every idle job whose *significant* attributes (resources requested,
Requirements, DESIRED_Sites and whatever the requests' constraints read) are equal, with
one representative ad and a count.

How, measured (``tests/benchmarks/plan_scale.py``, 100,000 projected ads as the bindings
return them, 2 cores): reading the significant attributes of every ad costs 0.80 s, and
nearly all of it is Requirements (``ad.get`` copies the expression tree, 2.9 us, and
unparsing it for a key, 1.5 us more). Unparsing the whole ad once (``printOld``) costs
0.33 s. Comparing an ad with the previous one in C++ (``==``, structural equality of every
attribute) costs 0.17 s, and a schedd answers in job id order: the jobs of one submission
come one after another and are alike. So each ad is first compared with the last new
one; only when it differs is it unparsed whole (a projected ad holds only significant
attributes) and looked up by that text, and only a text not seen before has its
significant attributes read, as before. Exact: equal ads, or equal texts, have equal
significant attributes. An answer in random order costs the unparsing: shuffled, the
100,000 ads take about as long as before, in job id order a quarter.

Not taken: the schedd's own grouping (an AutoCluster query, or grouping on AutoClusterId)
counts running jobs too and covers only the schedd's significant attributes, so a
request's constraint on, say, AcctGroup could not be evaluated on it (condor/htcondor.py);
vectorised grouping needs the attribute values out of the ads first, which is the 0.8 s.
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
    # The representative's attributes by lower-case name (ClassAd names ignore case), as
    # matching reads them; filled when the cluster is made, else on first use.
    values: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    # What matching works out from the representative alone, kept with it.
    derived: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.schedd, self.id)

    def attribute_values(self) -> dict[str, object]:
        if not self.values:
            self.values = {k.lower(): v for k, v in self.ad.items()}
        return self.values


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
    by_text: dict[str, JobCluster] = {}
    last_ad: classad2.ClassAd | None = None
    last: JobCluster | None = None
    width = len(significant)
    for ad in jobs:
        if last is not None and ad == last_ad:
            last.count += 1  # alike its neighbour in the answer (see the module's note)
            continue
        # A projected ad, whole, unparsed in one call: equal text, equal ads.
        text = ad.printOld() if len(ad) <= width else None
        if text is not None and (seen := by_text.get(text)) is not None:
            seen.count += 1
            last_ad, last = ad, seen
            continue
        raw = [ad.get(a) for a in significant]
        key = tuple(_key_value(v) for v in raw)
        cluster = groups.get(key)
        if cluster is None:
            rep = classad2.ClassAd()
            values: dict[str, object] = {}
            for a, v in zip(significant, raw, strict=True):
                if v is not None:
                    rep[a] = v
                    values[a.lower()] = v
            groups[key] = JobCluster(
                id=f"c{len(groups)}",
                schedd=schedd,
                count=1,
                ad=rep,
                cpus=max(1, _resource(ad, "RequestCpus")),
                memory_mb=_resource(ad, "RequestMemory"),
                disk_kb=_resource(ad, "RequestDisk"),
                gpus=_resource(ad, "RequestGPUs"),
                values=values,
            )
            cluster = groups[key]
        else:
            cluster.count += 1
        if text is not None:
            by_text[text] = cluster
        last_ad, last = ad, cluster
    return list(groups.values())


def select(clusters: list[JobCluster], constraint: str) -> list[JobCluster]:
    """The clusters a request's jobConstraint admits."""
    if constraint.strip().lower() == "true":
        return clusters
    expr = classad2.ExprTree(constraint)
    return [c for c in clusters if evaluates_true(expr, c.ad)]
