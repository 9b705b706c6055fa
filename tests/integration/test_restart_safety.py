"""Restart safety, proven: the operator process is SIGKILLed at random moments (at least
20 times on EC2, 10 more on OpenStack) while it scales a request up to hundreds of pilots
and then tears it down, and is restarted each time. At the end: pilots == plan, no pilot
launched twice, nothing orphaned, no key pair left.

The operator runs as a real separate process (``glidein-operator run``); the simulated
pool it reads is served over HTTP from this process (glidein_devkit/pool_server.py).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from glidein_devkit.kube import kubectl
from tests.integration.process_world import OperatorProcess, World, process_world

NS = "restart-vo"
# (cloud, pilots, kills while scaling up and after, most kills while tearing down)
RUNS = {"ec2": (240, 20, 6), "openstack": (120, 10, 4)}


@pytest.fixture(scope="module", params=sorted(RUNS))
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
    with process_world(
        tmp_path_factory.mktemp("restart"),
        NS,
        "op-restart",
        {"maxLaunchPerCycle": 20},
        cloud=request.param,
    ) as w:
        yield w


def _kill_while(
    op: OperatorProcess, rng: random.Random, kills: int, until: Any, deadline: float
) -> None:
    """Kill the operator at random moments, restarting it each time, ``kills`` times or
    until ``until()`` (None: all of them; kills after the goal is reached test that a
    restarted operator starts nothing more)."""
    done = 0
    while done < kills and time.monotonic() < deadline and not (until and until()):
        time.sleep(rng.uniform(0.3, 2.5))
        op.kill()
        done += 1
        op.start()


def test_sigkill_during_scale_up_and_teardown_loses_nothing(world: World) -> None:
    pilots, kills_up, kills_down = RUNS[world.cloud]
    rng = random.Random(20261123)
    op = world.operator
    k = world.cp.kubeconfig
    world.submit(pilots)
    world.request(max_pilots=1000)
    op.start()

    def alive() -> int:
        return sum(world.pilot_ids().values())

    # Scale up under fire, and keep firing once there.
    _kill_while(op, rng, kills_up, None, time.monotonic() + 240)
    deadline = time.monotonic() + 180
    while alive() < pilots and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # a few more cycles: nothing more may start
    ids = world.pilot_ids()
    assert sum(ids.values()) == pilots, (
        f"{world.cloud}: pilots {sum(ids.values())} != plan {pilots} after {op.kills} kills"
    )
    assert max(ids.values()) == 1, f"launched twice: {[p for p, n in ids.items() if n > 1][:5]}"

    # Tear down under fire: delete the request, keep killing.
    kubectl(k, "delete", "greq", "vo", "-n", NS, "--wait=false")

    def gone() -> bool:
        return (
            kubectl(
                k, "get", "greq", "vo", "-n", NS, "--ignore-not-found", "-o", "name"
            ).stdout.strip()
            == ""
        )

    _kill_while(op, rng, kills_down, gone, time.monotonic() + 120)
    deadline = time.monotonic() + 180
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gone(), op.log.read_text()[-3000:]
    assert op.kills >= kills_up
    assert not world.pilot_ids(), f"orphans left in {world.cloud}"
    assert world.key_pairs_left() == [], "key pairs left behind"
    print(
        f"\nrestart safety on {world.cloud}: {op.kills} SIGKILLs, {pilots} pilots, "
        "no duplicate, nothing left"
    )
