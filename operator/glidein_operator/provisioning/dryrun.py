"""``glidein-operator plan``: the planner on files, for an admin debugging a policy.

Reads resource YAML (the same files applied to the cluster) and a dump of idle jobs
(``condor_q -json`` output, or ClassAds in the long ``condor_q -l`` form), and reports
what would start where, and which limit bound each number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import classad2

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import Resource, load
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.condor.classads import ads_from_json
from glidein_operator.condor.jobs import cluster_jobs, significant_attributes
from glidein_operator.condor.reader import select
from glidein_operator.provisioning.eligibility import EntryRecord, candidates
from glidein_operator.provisioning.planner import Plan, Ramp, plan


def read_jobs(path: Path) -> list[classad2.ClassAd]:
    text = path.read_text()
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        ads = ads_from_json(text)
    else:
        ads = list(classad2.parseAds(text, classad2.ParserType.Auto))
    return [ad for ad in ads if ad.get("JobStatus", 1) == 1]


@dataclass
class DryRun:
    request: Resource
    plan: Plan
    entries: dict[str, CloudEntrySpec]


def dry_run(
    resource_paths: Iterable[Path],
    jobs_path: Path,
    request_name: str | None = None,
    ramp: Ramp | None = None,
) -> list[DryRun]:
    resources = load(resource_paths)
    domains = {r.name: r.spec for r in resources if isinstance(r.spec, TrustDomainSpec)}
    images = {r.name: r.spec for r in resources if isinstance(r.spec, VMImageSpec)}
    records = [
        EntryRecord(r.name, r.labels, r.spec)
        for r in resources
        if isinstance(r.spec, CloudEntrySpec)
    ]
    requests = [r for r in resources if isinstance(r.spec, GlideinRequestSpec)]
    if request_name:
        requests = [r for r in requests if r.name == request_name]
        if not requests:
            raise ValueError(f"no GlideinRequest named {request_name!r} in the files given")
    if not requests:
        raise ValueError("no GlideinRequest in the files given")
    ads = read_jobs(jobs_path)
    out = []
    for req in requests:
        spec = req.spec
        assert isinstance(spec, GlideinRequestSpec)
        significant = significant_attributes((spec.job_constraint, spec.match_expression))
        clusters = select(cluster_jobs("dump", ads, significant), spec.job_constraint)
        usable, blocked = candidates(spec, records, domains, images)
        result = plan(req.uid or req.key, spec, usable, clusters, [], blocked=blocked, ramp=ramp)
        out.append(DryRun(req, result, {r.name: r.spec for r in records}))
    return out
