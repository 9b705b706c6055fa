"""``glidein-operator plan --kubeconfig``: the dry run against a live cluster, so that it
agrees with what the operator then does. Read only.

The resources come from the cluster, the pilots alive from each usable entry's cloud
through its driver's listing (``list_pilots``: no launch, no terminate, no kept copy of a
credential), the budget from the request's ``.status.spend``; the idle jobs from the dump
given (``--jobs``), as in the offline dry run. The decision is the operator's own
``cycle.decide`` on that observation: the same planner bounds, the pilots already there
("Pilots now"), and the budget gate. The collector is not read: registered pilots count
as capacity like booting ones, and no pilot is judged stuck.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from typing import Any

import classad2
from kubernetes import client as k8s

from glidein_operator.api.base import API_GROUP, API_VERSION
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import InvalidResource, Resource, parse
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.condor.jobs import cluster_jobs, select, significant_attributes
from glidein_operator.controller.observe import World, credential
from glidein_operator.controller.runtime import Runtime
from glidein_operator.ground import CloudPilot
from glidein_operator.provisioning.cycle import EntryState, Observed, Policy, decide
from glidein_operator.provisioning.dryrun import DryRun
from glidein_operator.provisioning.eligibility import EntryRecord, candidates


async def _items(rt: Runtime, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
    if namespace:
        listed = await asyncio.to_thread(
            rt.custom.list_namespaced_custom_object, API_GROUP, API_VERSION, namespace, plural
        )
    else:
        listed = await asyncio.to_thread(
            rt.custom.list_cluster_custom_object, API_GROUP, API_VERSION, plural
        )
    return [
        i for i in listed.get("items", []) if not (i.get("metadata") or {}).get("deletionTimestamp")
    ]


async def world(rt: Runtime) -> World:
    """The cluster-scoped resources that validate, as the operator's watches hold them."""
    out = World()
    for plural in ("cloudentries", "trustdomains", "vmimages"):
        for item in await _items(rt, plural):
            try:
                r = parse(item)
            except InvalidResource:
                continue  # the operator does not use it either
            if isinstance(r.spec, CloudEntrySpec):
                out.entries[r.name] = (r.spec, r.labels, r.generation or 0)
            elif isinstance(r.spec, TrustDomainSpec):
                out.domains[r.name] = r.spec
            elif isinstance(r.spec, VMImageSpec):
                out.images[r.name] = r.spec
    return out


async def live_plans(
    rt: Runtime,
    ads: Iterable[classad2.ClassAd],
    *,
    namespace: str | None = None,
    request_name: str | None = None,
) -> list[DryRun]:
    """One plan per GlideinRequest in the cluster (in ``namespace``, only ``request_name``
    if given), as the operator would decide it now for the idle jobs ``ads``."""
    jobs = list(ads)
    seen_world = await world(rt)
    requests: list[tuple[Resource, dict[str, Any]]] = []
    for item in await _items(rt, "glideinrequests", namespace):
        try:
            r = parse(item)
        except InvalidResource:
            continue
        if request_name is None or r.name == request_name:
            requests.append((r, dict(item.get("status") or {})))
    if not requests:
        where = f"namespace {namespace!r}" if namespace else "the cluster"
        what = f"GlideinRequest {request_name!r}" if request_name else "GlideinRequest"
        raise ValueError(f"no {what} in {where}")
    out = []
    for r, status in requests:
        out.append(await _one(rt, r, status, seen_world, jobs))
    return out


async def _one(
    rt: Runtime, r: Resource, status: dict[str, Any], w: World, jobs: list[classad2.ClassAd]
) -> DryRun:
    spec = r.spec
    assert isinstance(spec, GlideinRequestSpec)
    namespace, uid = r.namespace or "default", r.uid or r.key
    records = [EntryRecord(n, labels, s) for n, (s, labels, _g) in w.entries.items()]
    usable, blocked = candidates(spec, records, w.domains, w.images)
    listings: dict[str, list[CloudPilot]] = {}
    errors: dict[str, str] = {}
    for c in list(usable):
        got = await credential(rt, namespace, spec, c.spec, w)
        if isinstance(got, str):
            blocked[c.name] = got
            usable.remove(c)
            continue
        try:
            driver = rt.driver(c.name, c.spec, w.entries[c.name][2], got)
            listings[c.name] = await driver.list_pilots()
        except DriverError as exc:
            errors[c.name] = f"{exc.reason}: {exc}"
    significant = significant_attributes((spec.job_constraint, spec.match_expression))
    clusters = select(cluster_jobs("dump", jobs, significant), spec.job_constraint)
    now = rt.clock()
    seen = Observed(
        now=now,
        usable=usable,
        blocked=blocked,
        listings=listings,
        listing_errors=errors,
        entries={c.name: EntryState() for c in usable},
        registered=None,  # the collector is not read
        clusters=clusters,
    )
    decision = decide(
        seen,
        uid=uid,
        spec=spec,
        entries={n: s for n, (s, _l, _g) in w.entries.items()},
        old_status=status,
        policy=Policy(interval=dt.timedelta(seconds=rt.settings.reconcile_interval)),
    )
    return DryRun(
        r,
        decision.plan,
        {n: s for n, (s, _l, _g) in w.entries.items()},
        notes=_budget_notes(decision.spending, spec),
    )


def _budget_notes(money: Any, spec: GlideinRequestSpec) -> list[str]:
    check = money.check
    if spec.budget is None or check is None:
        return []
    line = (
        f"budget ({spec.budget.period}): spent {check.spent:.2f} of {check.limit:.2f}, "
        f"committed {check.committed:.2f}, room for new launches {max(check.room, 0):.2f}"
    )
    if money.held_back:
        line += f"; {money.held_back} launch(es) held back by the budget"
    if check.kill:
        line += f"; kill: {check.kill_reason}"
    return [line]


def client_for(kubeconfig: str) -> k8s.ApiClient:
    from kubernetes import config as k8s_config

    return k8s_config.new_client_from_config(config_file=kubeconfig)
