"""Convergence of the real operator process: idle jobs appear -> N EC2 pilots exist.

    .venv/bin/python -m tests.benchmarks.operator_convergence [--pilots 1000] [--timeout 600]

Starts a local control plane, the EC2 test server and a simulated pool served over HTTP,
runs `glidein-operator run --standalone` as a process, and reports the time to the first
launch, the time to N pilots, the operator's resident memory (idle, at N, and the most
seen on the way), and the writes the API server received per reconcile cycle: counted by
kube-apiserver itself (apiserver_request_total), cycles by the operator
(glidein_reconcile_duration_seconds_count), both in steady state at N pilots and over the run.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import urllib.request
from pathlib import Path

from glidein_devkit.controlplane.cluster import free_port
from glidein_devkit.kube import kubectl
from tests.integration.process_world import World, process_world

WRITE_VERBS = ("POST", "PATCH", "PUT", "DELETE")
# Written by the control plane's own components, not the operator.
NOT_OURS = {"leases", "endpointslices", "endpoints", "serviceaccounts", "configmaps", "secrets"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def api_writes(world: World) -> dict[str, float]:
    """Mutating requests the API server has served, by resource[/subresource]."""
    text = kubectl(world.cp.kubeconfig, "get", "--raw", "/metrics").stdout
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") not in WRITE_VERBS or labels.get("resource") in NOT_OURS:
            continue
        key = labels["resource"] + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def cycles(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("glidein_reconcile_duration_seconds_count")
    )


def per_cycle(before: dict[str, float], after: dict[str, float], n: float) -> dict[str, float]:
    return {
        k: round((after.get(k, 0) - before.get(k, 0)) / max(n, 1), 2)
        for k in sorted(set(after) | set(before))
        if after.get(k, 0) != before.get(k, 0)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilots", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    n = args.pilots
    limits = {"maxLaunchPerCycle": 500, "launchesPerMinute": 100000}
    port = free_port()
    with process_world(Path(tempfile.mkdtemp()), "bench-vo", "op-bench", limits) as world:
        world.operator.env["GLIDEIN_METRICS_PORT"] = str(port)
        world.operator.start()
        assert world.operator.proc is not None
        pid = world.operator.proc.pid
        time.sleep(6)  # the operator is up and idle
        idle_rss = rss_mb(pid)
        world.submit(n)
        writes0, cycles0 = api_writes(world), cycles(port)
        started = time.monotonic()
        world.request(max_pilots=n)
        first = None
        count = 0
        peak = idle_rss
        while count < n and time.monotonic() - started < args.timeout:
            peak = max(peak, rss_mb(pid))
            try:
                states = world.ec2.states()
                count = states.get("pending", 0) + states.get("running", 0)
            except OSError:
                time.sleep(1)
                continue
            if count and first is None:
                first = time.monotonic() - started
            time.sleep(1)
        converged = time.monotonic() - started
        writes1, cycles1 = api_writes(world), cycles(port)
        # Steady state: N pilots, nothing to do but look.
        time.sleep(90)
        writes2, cycles2 = api_writes(world), cycles(port)
        print(
            {
                "pilots": count,
                "first_launch_s": round(first or -1, 1),
                f"converged_{n}_s": round(converged, 1),
                "operator_rss_idle_mb": round(idle_rss),
                f"operator_rss_at_{n}_mb": round(rss_mb(pid)),
                "operator_rss_peak_mb": round(max(peak, rss_mb(pid))),
                "cycles_to_converge": cycles1 - cycles0,
                "writes_per_cycle_scaling_up": per_cycle(writes0, writes1, cycles1 - cycles0),
                "writes_per_cycle_steady": per_cycle(writes1, writes2, cycles2 - cycles1),
            }
        )


if __name__ == "__main__":
    main()
