"""``glidein-operator demo``: the whole picture on one machine, nothing to install by hand.

Starts the local control plane (real etcd + kube-apiserver), installs the CRDs, applies
examples/, and runs a simulated schedd whose workload arrives in waves and drains. Each
cycle it reads the resources back from the API server, plans with the real planner, and
shows the plan live. Launching pilots is the operator's job (the reconcile loop); until
it is wired in, the demo lets planned pilots "boot" in the simulation so the pool grows
and drains as it will.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import classad2
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import Resource, parse
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.condor.fake import FakePool
from glidein_operator.condor.jobs import cluster_jobs, significant_attributes
from glidein_operator.condor.reader import select
from glidein_operator.provisioning.eligibility import EntryRecord, candidates
from glidein_operator.provisioning.planner import PilotPhase, PilotView, Plan, plan
from glidein_operator.testing.controlplane import LocalControlPlane
from glidein_operator.testing.kube import install_crds, kubectl

REQUIREMENTS = (
    '(TARGET.Arch == "X86_64") && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)'
)
SCHEDD = "schedd@submit1.cms.example.org"


@dataclass
class _World:
    domains: dict[str, TrustDomainSpec]
    images: dict[str, VMImageSpec]
    entries: list[EntryRecord]
    request: Resource
    spec: GlideinRequestSpec


def _world(kubeconfig: Path) -> _World:
    """Everything the planner needs, read back from the API server (not from the files)."""
    objects: list[Resource] = []
    for kind in ("trustdomains", "vmimages", "cloudentries", "glideinrequests"):
        out = kubectl(kubeconfig, "get", kind, "-A", "-o", "json").stdout
        objects += [parse(o) for o in json.loads(out)["items"]]
    request = next(r for r in objects if isinstance(r.spec, GlideinRequestSpec))
    assert isinstance(request.spec, GlideinRequestSpec)
    return _World(
        domains={r.name: r.spec for r in objects if isinstance(r.spec, TrustDomainSpec)},
        images={r.name: r.spec for r in objects if isinstance(r.spec, VMImageSpec)},
        entries=[
            EntryRecord(r.name, r.labels, r.spec)
            for r in objects
            if isinstance(r.spec, CloudEntrySpec)
        ],
        request=request,
        spec=request.spec,
    )


def _workload(pool: FakePool, rng: random.Random, cycle: int) -> None:
    if cycle in (1, 6, 11):
        for cpus, memory, sites in [
            (1, 2000, "T3_US_AWS,Nebraska"),
            (4, 8000, None),
            (8, 30000, None),
        ]:
            attrs: dict[str, object] = {
                "RequestCpus": cpus,
                "RequestMemory": memory,
                "RequestDisk": 2_000_000,
                "Requirements": classad2.ExprTree(REQUIREMENTS),
            }
            if sites:
                attrs["DESIRED_Sites"] = sites
            pool.submit(SCHEDD, rng.randint(20, 120) // cpus + 2, **attrs)


def _run_jobs(pool: FakePool, pilots: list[PilotView]) -> None:
    # Each running pilot finishes a few jobs per cycle: the queue drains.
    capacity = sum(4 for p in pilots if p.phase is PilotPhase.CLAIMED)
    queue = pool.schedds.get(SCHEDD, [])
    del queue[:capacity]


def _table(cycle: int, p: Plan, pilots: list[PilotView], idle_jobs: int) -> Table:
    t = Table(
        title=f"cycle {cycle}: {idle_jobs} idle jobs, {len(pilots)} pilots", title_justify="left"
    )
    for col in ("Entry", "Idle jobs", "Booting", "Running", "Launch", "Cancel", "Bound by"):
        t.add_column(col)
    for e in p.entries:
        booting = sum(1 for x in pilots if x.entry == e.entry and x.phase is PilotPhase.BOOTING)
        running = sum(1 for x in pilots if x.entry == e.entry and x.phase is PilotPhase.CLAIMED)
        t.add_row(
            e.entry,
            str(e.idle_jobs),
            str(booting),
            str(running),
            str(e.launch),
            str(e.cancel),
            e.bound_by,
        )
    return t


def run(cycles: int = 16, interval: float = 0.5, console: Console | None = None) -> dict[str, int]:
    console = console or Console()
    root = Path(__file__).resolve().parents[2]
    examples = root / "examples"
    rng = random.Random(7)  # noqa: S311  (a reproducible workload, not a secret)
    with console.status("starting the local control plane (etcd + kube-apiserver)..."):
        cp = LocalControlPlane().start()
    try:
        console.print(f"control plane ready in {cp.startup_seconds:.1f}s at {cp.server}")
        install_crds(cp.kubeconfig)
        kubectl(cp.kubeconfig, "apply", "-f", str(examples))
        console.print(kubectl(cp.kubeconfig, "get", "cloudentries").stdout)
        pool = FakePool(schedds={SCHEDD: []})
        pilots: list[PilotView] = []
        launched = 0
        peak = 0
        with Live(console=console, refresh_per_second=4) as live:
            for cycle in range(1, cycles + 1):
                _workload(pool, rng, cycle)
                w = _world(cp.kubeconfig)
                uid = w.request.uid or "demo"
                sig = significant_attributes((w.spec.job_constraint, w.spec.match_expression))
                clusters = select(
                    cluster_jobs(SCHEDD, pool.idle_jobs(SCHEDD, "true", sig), sig),
                    w.spec.job_constraint,
                )
                usable, blocked = candidates(w.spec, w.entries, w.domains, w.images)
                result = plan(uid, w.spec, usable, clusters, pilots, blocked=blocked)
                idle = sum(c.count for c in clusters)
                live.update(Group(_table(cycle, result, pilots, idle)))
                # Simulation of what the operator and the pilots will do: boot, run, leave.
                pilots = [
                    PilotView(
                        p.pilot_id, p.request_uid, p.entry, p.instance_type, PilotPhase.CLAIMED
                    )
                    if p.phase is PilotPhase.BOOTING
                    else p
                    for p in pilots
                    if not (p.phase is PilotPhase.CLAIMED and idle == 0)
                ]
                for e in result.entries:
                    for t, n in e.launch_by_type.items():
                        for _ in range(n):
                            launched += 1
                            pilots.append(
                                PilotView(f"p{launched}", uid, e.entry, t, PilotPhase.BOOTING)
                            )
                peak = max(peak, len(pilots))
                _run_jobs(pool, pilots)
                time.sleep(interval)
        summary = {
            "cycles": cycles,
            "pilots_launched": launched,
            "peak_pilots": peak,
            "idle_jobs_left": len(pool.schedds[SCHEDD]),
            "pilots_left": len(pilots),
        }
        console.print(f"summary: {summary}")
        return summary
    finally:
        cp.stop()
