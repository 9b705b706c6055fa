"""Planning cost: 100,000 idle jobs in 2,000 clusters against 200 entries x 3 types.

Run with figures:  make bench   (or: pytest tests/benchmarks --benchmark-enable)
The scaling table: python -m tests.benchmarks.plan_scale
"""

from __future__ import annotations

from typing import Any

from glidein_operator.provisioning.planner import Ramp, plan
from tests.benchmarks import workload

UID = "bench-uid"


def test_full_plan_100k_jobs_2000_clusters_200_entries(benchmark: Any) -> None:
    cands = workload.entries(200)
    clusters = workload.clusters(2000, 100_000, 200)
    pilots = workload.running_pilots(cands, 10, UID)
    spec = workload.request()
    result = benchmark(lambda: plan(UID, spec, cands, clusters, pilots, ramp=Ramp(initial=50)))
    assert result.idle_jobs == 100_000
    assert result.launches > 0
    # A few big-memory clusters are pinned to sites without a shape that fits them.
    assert sum(u.cluster.count for u in result.unmatched) < 5_000
