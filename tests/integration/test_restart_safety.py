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
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import classad2
import pytest
import yaml

from glidein_operator.condor.fake import FakePool
from glidein_operator.testing.controlplane import LocalControlPlane
from glidein_operator.testing.ec2server import Ec2Server
from glidein_operator.testing.kube import install_crds, kubectl
from glidein_operator.testing.pool_server import PoolServer

SCHEDD = "schedd@restart.test"
NS = "restart-vo"
PILOTS = 240
KILLS_UP, KILLS_DOWN = 16, 6


class Operator:
    """``glidein-operator run`` as a child process, killed and restarted at will."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "glidein_operator", "run", "--standalone"],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
    tmp = tmp_path_factory.mktemp("restart")
    pool = FakePool(schedds={SCHEDD: []})
    with LocalControlPlane() as cp, Ec2Server() as ec2, PoolServer(pool) as served:
        install_crds(cp.kubeconfig)
        boto = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=ec2.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        image = boto.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        g = "glidein.dev/v1alpha1"
        docs = [
            {
                "apiVersion": g,
                "kind": "TrustDomain",
                "metadata": {"name": "aws"},
                "spec": {"credentialTypes": ["ec2-access-key"]},
            },
            {
                "apiVersion": g,
                "kind": "VMImage",
                "metadata": {"name": "img"},
                "spec": {
                    "owner": {"name": "t", "contact": "t@example.org"},
                    "version": "1",
                    "patchDate": "2026-11-01",
                    "locations": [{"cloud": "ec2", "region": "us-east-1", "imageId": image}],
                },
            },
            {
                "apiVersion": g,
                "kind": "CloudEntry",
                "metadata": {"name": "east"},
                "spec": {
                    "type": "ec2",
                    "trustDomain": "aws",
                    "site": "EAST",
                    "vmImage": "img",
                    "ec2": {"region": "us-east-1", "endpointUrl": ec2.url},
                    "instanceTypes": [{"name": "t3.small", "cpus": 1, "memory": "2Gi"}],
                    "limits": {"maxLaunchPerCycle": 20},
                },
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "aws", "namespace": NS},
                "stringData": {"accessKeyId": "testing", "secretAccessKey": "testing"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pool-key", "namespace": NS},
                "stringData": {"signingKey": "restart-test-key"},
            },
        ]
        kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        env = {
            **os.environ,
            "KUBECONFIG": str(cp.kubeconfig),
            "GLIDEIN_OPERATOR_ID": "op-restart",
            "GLIDEIN_RECONCILE_INTERVAL": "1",
            "GLIDEIN_POOL_URL": served.url,
            "GLIDEIN_CREDENTIAL_DIR": str(tmp / "creds"),
        }
        op = Operator(env, tmp / "operator.log")
        yield {
            "cp": cp,
            "ec2": ec2,
            "boto": boto,
            "pool": pool,
            "op": op,
            "log": tmp / "operator.log",
        }
        op.stop()


def _instances(boto: Any) -> list[dict[str, Any]]:
    out = []
    for page in boto.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    ):
        for r in page["Reservations"]:
            out += r["Instances"]
    return out


def _pilot_ids(instances: list[dict[str, Any]]) -> Counter[str]:
    ids: Counter[str] = Counter()
    for i in instances:
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        ids[f"{tags.get('glidein.dev/batch')}-{i['AmiLaunchIndex']}"] += 1
    return ids


def _kill_while(op: Operator, rng: random.Random, kills: int, until: Any, deadline: float) -> None:
    """Kill the operator at random moments, restarting it each time, ``kills`` times."""
    done = 0
    while done < kills and time.monotonic() < deadline and not until():
        time.sleep(rng.uniform(0.3, 2.5))
        op.kill()
        done += 1
        op.start()


def test_sigkill_during_scale_up_and_teardown_loses_nothing(world: dict[str, Any]) -> None:
    rng = random.Random(20261123)
    op, boto, pool = world["op"], world["boto"], world["pool"]
    k = world["cp"].kubeconfig
    pool.submit(
        SCHEDD,
        PILOTS,
        RequestCpus=1,
        RequestMemory=1000,
        Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
    )
    request = {
        "apiVersion": "glidein.dev/v1alpha1",
        "kind": "GlideinRequest",
        "metadata": {"name": "vo", "namespace": NS},
        "spec": {
            "collector": "pool.test:9618",
            "schedds": [{"name": SCHEDD}],
            "credentials": [
                {"trustDomain": "aws", "type": "ec2-access-key", "secretRef": {"name": "aws"}}
            ],
            "pilot": {"tokenSecretRef": {"name": "pool-key"}},
            "limits": {"maxPilots": 1000, "maxIdlePilots": 1000},
        },
    }
    kubectl(k, "apply", "-f", "-", stdin=yaml.safe_dump(request))
    op.start()

    # Scale up under fire.
    _kill_while(op, rng, KILLS_UP, lambda: len(_instances(boto)) >= PILOTS, time.monotonic() + 240)
    deadline = time.monotonic() + 180
    while len(_instances(boto)) < PILOTS and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # a few more cycles: nothing more may start
    instances = _instances(boto)
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
    assert gone(), world["log"].read_text()[-3000:]
    assert op.kills >= 20
    assert _instances(boto) == [], "orphans left in the cloud"
    keys = boto.describe_key_pairs(
        Filters=[{"Name": "tag:glidein.dev/operator", "Values": ["op-restart"]}]
    )
    assert keys["KeyPairs"] == [], "key pairs left behind"
    print(f"\nrestart safety: {op.kills} SIGKILLs, {PILOTS} pilots, no duplicate, nothing left")
