"""``glidein-operator plan``'s decision: the planner on resources and idle jobs as an admin
has them in files, for debugging a policy.

Pure: it takes the resources and job ads already read (``glidein_operator.cli_plan``
reads the files and renders the report), and says what would start where, and which
limit bound each number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import classad2

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import Resource
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.condor.jobs import cluster_jobs, select, significant_attributes
from glidein_operator.money.pricing import launch_price
from glidein_operator.provisioning.eligibility import EntryRecord, candidates
from glidein_operator.provisioning.planner import Plan, Ramp, plan


@dataclass
class DryRun:
    request: Resource
    plan: Plan
    entries: dict[str, CloudEntrySpec]
    notes: list[str] = field(default_factory=list)  # said under the table (the budget)


def dry_run(
    resources: Iterable[Resource],
    ads: Iterable[classad2.ClassAd],
    request_name: str | None = None,
    ramp: Ramp | None = None,
) -> list[DryRun]:
    """One plan per GlideinRequest among ``resources`` (only ``request_name`` if given),
    for the idle jobs ``ads``, with the entries, trust domains and images among them."""
    resources, jobs = list(resources), list(ads)
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
    out = []
    for req in requests:
        spec = req.spec
        assert isinstance(spec, GlideinRequestSpec)
        significant = significant_attributes((spec.job_constraint, spec.match_expression))
        clusters = select(cluster_jobs("dump", jobs, significant), spec.job_constraint)
        usable, blocked = candidates(spec, records, domains, images)
        result = plan(req.uid or req.key, spec, usable, clusters, [], blocked=blocked, ramp=ramp)
        out.append(DryRun(req, result, {r.name: r.spec for r in records}))
    return out


def launch_cost(spec: CloudEntrySpec, launch_by_type: dict[str, int]) -> Decimal | None:
    """What the launches of a plan cost per hour at the entry's prices; None when a
    price is unknown."""
    total = Decimal(0)
    for name, n in launch_by_type.items():
        itype = spec.instance_type(name)
        price = launch_price(spec, name) if itype is not None else None
        if price is None:
            return None
        total += price * n
    return total
