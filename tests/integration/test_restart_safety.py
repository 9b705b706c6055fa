"""Restart safety, proven: the operator process is SIGKILLed at random moments (at least
20 times) while it scales a request up to hundreds of EC2 pilots and then tears it down,
and is restarted each time. At the end: pilots == plan, no pilot launched twice, nothing
orphaned, no key pair left.

The operator runs as a real separate process (``glidein-operator run``); the simulated
pool it reads is served over HTTP from this process (testing/pool_server.py).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from glidein_operator.testing.kube import kubectl
from tests.integration.process_world import OperatorProcess, World, live_instances, process_world

NS = "restart-vo"
PILOTS = 240
KILLS_UP, KILLS_DOWN = 16, 6


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
    with process_world(
        tmp_path_factory.mktemp("restart"), NS, "op-restart", {"maxLaunchPerCycle": 20}
    ) as w:
        yield w


def _pilot_ids(instances: list[dict[str, Any]]) -> Counter[str]:
    ids: Counter[str] = Counter()
    for i in instances:
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        ids[f"{tags.get('glidein.dev/batch')}-{i['AmiLaunchIndex']}"] += 1
    return ids


def _kill_while(
    op: OperatorProcess, rng: random.Random, kills: int, until: Any, deadline: float
) -> None:
    """Kill the operator at random moments, restarting it each time, ``kills`` times."""
    done = 0
    while done < kills and time.monotonic() < deadline and not until():
        time.sleep(rng.uniform(0.3, 2.5))
        op.kill()
        done += 1
        op.start()


def test_sigkill_during_scale_up_and_teardown_loses_nothing(world: World) -> None:
    rng = random.Random(20261123)
    op, boto = world.operator, world.boto
    k = world.cp.kubeconfig
    world.submit(PILOTS)
    world.request(max_pilots=1000)
    op.start()

    # Scale up under fire.
    _kill_while(
        op, rng, KILLS_UP, lambda: len(live_instances(boto)) >= PILOTS, time.monotonic() + 240
    )
    deadline = time.monotonic() + 180
    while len(live_instances(boto)) < PILOTS and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # a few more cycles: nothing more may start
    instances = live_instances(boto)
    ids = _pilot_ids(instances)
    assert len(instances) == PILOTS, (
        f"pilots {len(instances)} != plan {PILOTS} after {op.kills} kills"
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

    _kill_while(op, rng, KILLS_DOWN, gone, time.monotonic() + 120)
    deadline = time.monotonic() + 180
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gone(), op.log.read_text()[-3000:]
    assert op.kills >= 20
    assert live_instances(boto) == [], "orphans left in the cloud"
    keys = boto.describe_key_pairs(
        Filters=[{"Name": "tag:glidein.dev/operator", "Values": ["op-restart"]}]
    )
    assert keys["KeyPairs"] == [], "key pairs left behind"
    print(f"\nrestart safety: {op.kills} SIGKILLs, {PILOTS} pilots, no duplicate, nothing left")
