"""Launch 2,000 EC2 pilots against the moto server (AWS-faithful on ClientToken and
MaxCount) in batches, then list them once: count API calls and time it.

    .venv/bin/python -m tests.benchmarks.ec2_launch [--pilots 2000] [--batch 100]
"""

from __future__ import annotations

import argparse
import math
import time

from glidein_devkit.ec2server import Ec2Server
from glidein_operator.api.cloudentry import Ec2Settings
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.ground import LaunchBatch, PilotState, Shape


def run(server: Ec2Server, pilots: int, batch: int) -> dict[str, float]:
    server.reset()
    image = server.image_id()
    driver = Ec2Driver(
        "bench",
        Ec2Settings(region="us-east-1", endpoint_url=server.url),
        access_key_id="a",
        secret_access_key="b",
        operator_id="bench-op",
    )
    server.reset()  # count only the driver's calls
    shape = Shape("m5.large", 2, 8192, 20)
    started = time.perf_counter()
    launched = 0
    for seq in range(math.ceil(pilots / batch)):
        n = min(batch, pilots - launched)
        got = driver.launch(
            LaunchBatch(
                f"bench-{seq}", "uid-bench", "ns/bench", "bench", shape, n, image, b"#!/bin/sh\n"
            )
        )
        launched += len(got)
    launch_s = time.perf_counter() - started
    t = time.perf_counter()
    listed = [p for p in driver.list_pilots() if p.state is not PilotState.TERMINATED]
    list_s = time.perf_counter() - t
    calls = server.calls()
    return {
        "pilots": launched,
        "listed": len(listed),
        "RunInstances": calls.get("RunInstances", 0),
        "CreateKeyPair": calls.get("CreateKeyPair", 0),
        "DescribeInstances": calls.get("DescribeInstances", 0),
        "launch_s": round(launch_s, 2),
        "list_s": round(list_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilots", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with Ec2Server() as server:
        for batch in sorted({args.batch, 500, 1000}):
            print(run(server, args.pilots, batch))


if __name__ == "__main__":
    main()
