"""The operator's own cost at scale, without any cloud's: the real reconcile (observe,
decide, act, report) of every request, as kopf's timers run it, against in-memory
drivers (one per entry and credential, as ``Runtime.driver`` keeps them) that answer a
listing of thousands at once, and an in-memory pool.

    .venv/bin/python -m tests.benchmarks.operator_scale [--requests 50] [--entries 100]
        [--pilots 20000]

Reports: cycles and wall time to converge (every request's pilots launched), the time of
one cycle of all requests while ramping up and at steady state, listings per cycle (read
from the drivers' call metrics), status writes per cycle (reconciles whose status patch
is not empty: what kopf would send), and resident memory. Then calls per cycle for 1, 10
and 50 requests on the same entries.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time

from glidein_operator.api.glideinrequest import GlideinRequestStatus
from glidein_operator.provisioning import status as st
from tests.support.many_requests import World_


def rss_mb() -> float:
    for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def cycle(w: World_, seconds: float = 1.0) -> tuple[float, int, int]:
    """(wall seconds, listings, status writes) of one cycle of every request."""
    import datetime as dt

    w.now += dt.timedelta(seconds=seconds)
    before = w.calls("list")
    writes = 0

    async def one(request: int) -> None:
        nonlocal writes
        old, new = await w.reconcile_one(request)
        writes += bool(st.changes(old, st.through(GlideinRequestStatus, new)))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(w.requests))))
    return time.perf_counter() - started, w.calls("list") - before, writes


async def scale(requests: int, entries: int, pilots: int) -> None:
    w = World_(requests, entries)
    per = pilots // requests
    for r in range(requests):
        w.submit(r, per)
    print(f"{requests} requests x {per} jobs on {entries} entries -> {pilots} pilots")
    t0 = time.perf_counter()
    ramp: list[tuple[float, int, int]] = []
    while w.alive() < pilots and len(ramp) < 200:
        ramp.append(await cycle(w))
        print(
            f"  cycle {len(ramp):3d}: {ramp[-1][0]:6.2f} s, {ramp[-1][1]:4d} listings, "
            f"{ramp[-1][2]:3d} status writes, {w.alive():6d} pilots, RSS {rss_mb():6.0f} MiB"
        )
    converged = time.perf_counter() - t0
    print(f"converged: {w.alive()} pilots in {len(ramp)} cycles, {converged:.1f} s of work")
    w.start_all()
    await cycle(w, 6)  # one listing each sees them settled
    steady = [await cycle(w) for _ in range(10)]
    gc.collect()
    print(
        f"steady state: cycle {sum(s[0] for s in steady) / len(steady):.2f} s "
        f"(max {max(s[0] for s in steady):.2f}), listings/cycle "
        f"{sum(s[1] for s in steady) / len(steady):.1f}, status writes/cycle "
        f"{sum(s[2] for s in steady) / len(steady):.1f}"
    )
    relisted = await cycle(w, 60)  # past the steady interval: every entry listed once
    print(
        f"steady cycle that relists every entry: {relisted[0]:.2f} s, {relisted[1]} listings, "
        f"{relisted[2]} status writes"
    )
    print(
        f"RSS now {rss_mb():.0f} MiB, peak "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


async def flat(entries: int) -> None:
    print(f"\nlistings per cycle on {entries} entries (cycles 1-5: ramping up; 6-10: settled)")
    for requests in (1, 10, 50):
        w = World_(requests, entries)
        for r in range(requests):
            w.submit(r, entries)
        got = [(await cycle(w))[1] for _ in range(5)]
        w.start_all()
        await cycle(w, 6)
        got += [(await cycle(w))[1] for _ in range(5)]
        print(f"  {requests:3d} requests: {got}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--entries", type=int, default=100)
    ap.add_argument("--pilots", type=int, default=20_000)
    args = ap.parse_args()
    asyncio.run(scale(args.requests, args.entries, args.pilots))
    asyncio.run(flat(5))


if __name__ == "__main__":
    main()
