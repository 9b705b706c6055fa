"""The whole decision from the schedd's answer: 100,000 idle job ads (classad2 ads, as the
bindings return them, projected on the significant attributes, in job id order) to a
finished plan, clustering included, as one figure; then the plan alone at 10x fewer and
more jobs and clusters, the clustering alone, and the cost per job-hour of what the plan
launches. Exits 1 if a floor is missed:

* the whole cycle, 100k ads of 2,000 kinds against 200 entries x 3 types: < 0.5 s;
* the plan for 20,000 clusters: < 1 s.

    .venv/bin/python -m tests.benchmarks.plan_scale

Measured on the 2-core development machine (medians of 5, other work running beside it),
before and after issue 18:

* whole cycle, 100k ads in job id order (1,230 distinct clusters): 1.30 s before
  (clustering 0.95 s, plan 0.34 s); 0.36-0.42 s after (clustering 0.18-0.21 s, plan
  0.16-0.19 s), load from other work beside it making the spread. Shuffled ads:
  0.60-0.78 s of clustering.
* plan alone, 100k jobs in 2,000 clusters: 0.60 s -> 0.26-0.35 s; 20,000 clusters:
  3.8 s -> 0.55-0.75 s.
* cost per job-hour of the launches (limits lifted, so that every matched job gets its
  pilot: their cost per hour over the jobs): placement cost 0.1464 -> 0.1376 (-6%),
  placement spread 0.1904 -> 0.1661 (-13%: choosing by the hour cost 15% more); per
  cluster, its cheapest job slot is up to 3.0x cheaper than its cheapest hour was.

Where the time went, and what was chosen: condor/jobs.py (clustering: neighbour
comparison and whole-ad text, not the schedd's AutoCluster grouping, which is not exact
for requests' constraints) and provisioning/matching.py (matchExpression flattened with
the job bound, evaluated with one scope; offer choice memoised per job size).
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import classad2

from glidein_devkit.fake_pool import FakePool
from glidein_operator.condor.jobs import JobCluster, cluster_jobs, significant_attributes
from glidein_operator.provisioning.planner import Candidate, Plan, Ramp, plan
from tests.benchmarks import workload

UID = "bench-uid"
CYCLE_FLOOR = 0.5
CLUSTERS_20K_FLOOR = 1.0


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median seconds of ``repeat`` runs. The garbage collector stays on (timeit turns it
    off), but each run starts with the debt of the runs before it paid (a full collection
    walks the 100k ads held here: 40-60 ms, which a run would otherwise pay for its
    predecessor every other time)."""
    runs = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def schedd_answer(clusters: list[JobCluster], shuffle: bool = False) -> list[classad2.ClassAd]:
    """The idle jobs behind ``clusters`` as a schedd query returns them: one ad per job,
    projected on what the request's expressions read, the jobs of one submission one after
    another (job id order), or shuffled (the worst case for clustering)."""
    pool = FakePool()
    for c in clusters:
        attrs = {k: c.ad[k] for k in c.ad}
        pool.submit("schedd@bench", c.count, **attrs)
    spec = workload.request()
    projection = significant_attributes((spec.job_constraint, spec.match_expression))
    ads = pool.idle_jobs("schedd@bench", "true", projection)
    if shuffle:
        random.Random(3).shuffle(ads)
    return ads


def cost_per_job_hour(cands: list[Candidate], placement: str) -> float:
    """What the plan's launches cost per hour over the jobs they are for, limits lifted
    so that every matched job gets its pilot (100k jobs, 2,000 clusters, no pilots yet)."""
    free = []
    for c in cands:
        spec = c.spec.model_copy(deep=True)
        spec.limits.max_pilots = None
        spec.limits.max_launch_per_cycle = 100_000
        free.append(Candidate(c.name, spec, c.image))
    request = workload.request().model_copy(deep=True)
    request.limits.max_pilots = request.limits.max_idle_pilots = 10**6
    request.placement = placement  # type: ignore[assignment]
    p = plan(UID, request, free, workload.clusters(2000, 100_000, 200), [], ramp=Ramp(10**6))
    prices = {
        (c.name, t.name): float(t.price_per_hour or 0) for c in free for t in c.spec.instance_types
    }
    cost = sum(n * prices[(e.entry, t)] for e in p.entries for t, n in e.launch_by_type.items())
    return cost / max(1, sum(e.idle_jobs for e in p.entries))


def main() -> int:
    cands = workload.entries(200)
    pilots = workload.running_pilots(cands, 10, UID)
    spec = workload.request()
    ok = True

    # --- the whole cycle: the schedd's answer to a plan ------------------------------------
    base = workload.clusters(2000, 100_000, 200)
    projection = significant_attributes((spec.job_constraint, spec.match_expression))
    print("whole cycle: 100,000 job ads (2,000 kinds) -> clusters -> plan, 200 entries x 3 types")
    print(
        f"{'schedd answer':>14} {'clustering s':>12} {'plan s':>8} {'cycle s':>8} {'clusters':>8}"
    )
    for label, shuffle in (("job id order", False), ("shuffled", True)):
        ads = schedd_answer(base, shuffle)
        got: dict[str, Any] = {}

        def cluster_step(ads: list[classad2.ClassAd] = ads, got: dict[str, Any] = got) -> None:
            got["c"] = cluster_jobs("schedd@bench", ads, projection)

        def plan_step(got: dict[str, Any] = got) -> None:
            got["p"] = plan(UID, spec, cands, got["c"], pilots, ramp=Ramp(initial=50))

        def cycle(ads: list[classad2.ClassAd] = ads, got: dict[str, Any] = got) -> None:
            got["c"] = cluster_jobs("schedd@bench", ads, projection)
            got["p"] = plan(UID, spec, cands, got["c"], pilots, ramp=Ramp(initial=50))

        c_s = timed(cluster_step)
        p_s = timed(plan_step)
        cycle_s = timed(cycle)
        print(f"{label:>14} {c_s:>12.3f} {p_s:>8.3f} {cycle_s:>8.3f} {len(got['c']):>8}")
        if not shuffle and cycle_s >= CYCLE_FLOOR:
            ok = False
        if not shuffle:
            whole = cycle_s

    # --- the plan alone -------------------------------------------------------------------
    print()
    print(
        f"{'jobs':>9} {'clusters':>8} {'entries':>7} {'plan s (median of 5)':>21} {'ClassAd evals':>13}"
    )
    for jobs, n_clusters in [
        (10_000, 2000),
        (100_000, 2000),
        (1_000_000, 2000),
        (100_000, 200),
        (100_000, 20_000),
    ]:
        cl = workload.clusters(n_clusters, jobs, 200)
        last: dict[str, Plan] = {}

        def run(cl: list[JobCluster] = cl, last: dict[str, Plan] = last) -> None:
            last["p"] = plan(UID, spec, cands, cl, pilots, ramp=Ramp(initial=50))

        seconds = timed(run)
        print(
            f"{jobs:>9} {n_clusters:>8} {len(cands):>7} {seconds:>21.3f} {last['p'].evaluations:>13}"
        )
        if n_clusters == 20_000 and seconds >= CLUSTERS_20K_FLOOR:
            ok = False
            print(f"  20,000 clusters: {seconds:.3f} s, floor {CLUSTERS_20K_FLOOR} s MISSED")

    # --- what the plan buys ---------------------------------------------------------------
    print()
    for placement in ("cost", "spread"):
        print(
            f"cost per job-hour of the launches, placement {placement}: "
            f"{cost_per_job_hour(cands, placement):.5f}"
        )
    print(
        f"\nfloor (whole cycle, 100k ads -> plan, < {CYCLE_FLOOR} s): {whole:.3f} s",
        "MET" if whole < CYCLE_FLOOR else "MISSED",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
