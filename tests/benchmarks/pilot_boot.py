"""Real HTCondor figures: a pool's start to ready, and N real pilots (glidein-pilot from
their payload, with an operator-minted token) from boot to registered in the collector,
their resident memory (master + startd + procd), and a job on each.

    .venv/bin/python -m tests.benchmarks.pilot_boot [--pilots 8] [--timeout 300]

Every daemon binds 127.0.0.1; the run stops its pilots and the pool at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from glidein_devkit.condor_pool import (
    CondorPool,
    PilotMachine,
    descendants,
    find_condor,
    job,
)
from glidein_operator.api.objects import parse
from glidein_operator.credentials import payloads
from glidein_operator.pilot.payload import LIMITS, encode
from tests.malformed_cases import example


def _rss_mb(pid: int) -> float:
    total = 0
    for p in (pid, *descendants(pid)):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _payload(pool: CondorPool, batch: str) -> bytes:
    doc = example("GlideinRequest", "cms-production")
    doc["spec"]["collector"] = pool.collector
    doc["spec"]["pilot"].update({"idleTimeout": "10m", "lifetime": "4h"})
    entry = parse(example("CloudEntry", "aws-us-east-1")).spec
    itype = entry.instance_type("m5.xlarge")
    assert itype is not None
    return encode(
        payloads.build(
            request="bench/bench",
            request_uid="uid-bench",
            spec=parse(doc).spec,
            entry="aws-us-east-1",
            entry_spec=entry,
            itype=itype,
            image=parse(example("VMImage", "glidein-el9-2026.11")).spec,
            batch=batch,
            pool_signing_key=pool.signing_key(),
            premade_token=None,
            now=int(time.time()),
        ),
        LIMITS["ec2"],
    )


def run(pilots: int, timeout: float) -> dict[str, float]:
    install = find_condor()
    work = Path(tempfile.mkdtemp(prefix="glidein-bench-"))
    work.chmod(0o755)
    pool = CondorPool(install, work / "pool")
    machines: list[PilotMachine] = []
    try:
        pool.start()
        booted: dict[str, float] = {}
        for i in range(pilots):
            m = PilotMachine(install, work / f"vm{i}", f"vm{i}")
            machines.append(m)
            booted[f"b{i}-0"] = time.monotonic()
            m.boot(_payload(pool, f"b{i}"), pilot_id=f"b{i}-0", extra_args=["--interval", "2"])
        registered: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(registered) < pilots and time.monotonic() < deadline:
            out = pool.tool("condor_status", "-af", "GlideinPilotId", check=False).stdout
            for pid in out.split():
                registered.setdefault(pid, time.monotonic())
            time.sleep(0.2)
        boot_to_reg = [registered[p] - booted[p] for p in registered if p in booted]
        rss = [_rss_mb(m.process.pid) for m in machines if m.process]
        t0 = time.monotonic()
        cluster = pool.submit(job(arguments="1"), pilots)
        first_run = 0.0
        while time.monotonic() < deadline:
            done = pool.tool("condor_history", str(cluster), "-af", "JobStatus", check=False)
            q = pool.tool("condor_q", str(cluster), "-af", "JobStatus", check=False).stdout
            if not first_run and ("2" in q.split() or done.stdout.strip()):
                first_run = time.monotonic() - t0
            if done.stdout.split().count("4") == pilots:
                break
            time.sleep(0.2)
        all_done = time.monotonic() - t0
        return {
            "pilots": pilots,
            "registered": len(registered),
            "pool_ready_s": round(pool.ready_seconds, 2),
            "boot_to_registered_median_s": round(statistics.median(boot_to_reg), 1),
            "boot_to_registered_max_s": round(max(boot_to_reg), 1),
            "pilot_tree_rss_median_mb": round(statistics.median(rss), 1),
            "submit_to_first_running_s": round(first_run, 1),
            "submit_to_all_done_s": round(all_done, 1),
        }
    finally:
        for m in machines:
            m.stop()
        pool.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pilots", type=int, default=8)
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    for k, v in run(args.pilots, args.timeout).items():
        print(f"{k:32} {v}")


if __name__ == "__main__":
    main()
