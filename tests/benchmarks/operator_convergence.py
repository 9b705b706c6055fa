"""Convergence of the real operator process: idle jobs appear -> N EC2 pilots exist.

    .venv/bin/python -m tests.benchmarks.operator_convergence [--pilots 1000]

Starts a local control plane, the EC2 test server and a simulated pool served over HTTP,
runs `glidein-operator run --standalone` as a process, and reports the time to the first
launch, the time to N pilots, and the operator's resident memory at N pilots.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.integration.process_world import live_instances, process_world


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilots", type=int, default=1000)
    n = parser.parse_args().pilots
    limits = {"maxLaunchPerCycle": 200, "launchesPerMinute": 100000}
    with process_world(Path(tempfile.mkdtemp()), "bench-vo", "op-bench", limits) as world:
        world.operator.start()
        assert world.operator.proc is not None
        pid = world.operator.proc.pid
        time.sleep(6)  # the operator is up and idle
        idle_rss = rss_mb(pid)
        world.submit(n)
        started = time.monotonic()
        world.request(max_pilots=n)
        first = None
        count = 0
        while count < n and time.monotonic() - started < 600:
            try:
                count = len(live_instances(world.boto))
            except Exception:
                time.sleep(0.5)
                continue
            if count and first is None:
                first = time.monotonic() - started
            time.sleep(0.5)
        print(
            {
                "pilots": count,
                "first_launch_s": round(first or -1, 1),
                f"converged_{n}_s": round(time.monotonic() - started, 1),
                "operator_rss_idle_mb": round(idle_rss),
                f"operator_rss_at_{n}_mb": round(rss_mb(pid)),
            }
        )


if __name__ == "__main__":
    main()
