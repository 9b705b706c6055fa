"""The operator as its own process, against a control plane, the EC2 test server and a
simulated pool served over HTTP: shared by the restart-safety test and the convergence
benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import classad2
import yaml

from glidein_operator.condor.fake import FakePool
from glidein_operator.testing.controlplane import LocalControlPlane
from glidein_operator.testing.ec2server import Ec2Server
from glidein_operator.testing.kube import install_crds, kubectl
from glidein_operator.testing.pool_server import PoolServer

SCHEDD = "schedd@process.test"
G = "glidein.dev/v1alpha1"


class OperatorProcess:
    """``glidein-operator run --standalone`` as a child process, killed and restarted at will."""

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


@dataclass
class World:
    cp: LocalControlPlane
    ec2: Ec2Server
    boto: Any
    pool: FakePool
    operator: OperatorProcess
    namespace: str

    def submit(self, jobs: int) -> None:
        self.pool.submit(
            SCHEDD,
            jobs,
            RequestCpus=1,
            RequestMemory=1000,
            Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
        )

    def request(self, max_pilots: int) -> None:
        doc = {
            "apiVersion": G,
            "kind": "GlideinRequest",
            "metadata": {"name": "vo", "namespace": self.namespace},
            "spec": {
                "collector": "pool.test:9618",
                "schedds": [{"name": SCHEDD}],
                "credentials": [
                    {"trustDomain": "aws", "type": "ec2-access-key", "secretRef": {"name": "aws"}}
                ],
                "pilot": {"tokenSecretRef": {"name": "pool-key"}},
                "limits": {"maxPilots": max_pilots, "maxIdlePilots": max_pilots},
            },
        }
        kubectl(self.cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))


@contextmanager
def process_world(
    tmp: Path, namespace: str, operator_id: str, entry_limits: dict[str, int]
) -> Iterator[World]:
    """One EC2 entry (one-core instance type) and a namespace with its Secrets; the
    operator process is made but not started."""
    pool = FakePool(schedds={SCHEDD: []})
    with LocalControlPlane() as cp, Ec2Server() as ec2, PoolServer(pool) as served:
        install_crds(cp.kubeconfig)
        docs = [
            {
                "apiVersion": G,
                "kind": "TrustDomain",
                "metadata": {"name": "aws"},
                "spec": {"credentialTypes": ["ec2-access-key"]},
            },
            {
                "apiVersion": G,
                "kind": "VMImage",
                "metadata": {"name": "img"},
                "spec": {
                    "owner": {"name": "t", "contact": "t@example.org"},
                    "version": "1",
                    "patchDate": "2026-11-01",
                    "locations": [
                        {"cloud": "ec2", "region": "us-east-1", "imageId": ec2.image_id()}
                    ],
                },
            },
            {
                "apiVersion": G,
                "kind": "CloudEntry",
                "metadata": {"name": "east"},
                "spec": {
                    "type": "ec2",
                    "trustDomain": "aws",
                    "site": "EAST",
                    "vmImage": "img",
                    "ec2": {"region": "us-east-1", "endpointUrl": ec2.url},
                    "instanceTypes": [{"name": "t3.small", "cpus": 1, "memory": "2Gi"}],
                    "limits": entry_limits,
                },
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "aws", "namespace": namespace},
                "stringData": {"accessKeyId": "testing", "secretAccessKey": "testing"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pool-key", "namespace": namespace},
                "stringData": {"signingKey": f"{operator_id}-key"},
            },
        ]
        kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        env = {
            **os.environ,
            "KUBECONFIG": str(cp.kubeconfig),
            "GLIDEIN_OPERATOR_ID": operator_id,
            "GLIDEIN_RECONCILE_INTERVAL": "1",
            "GLIDEIN_POOL_URL": served.url,
            "GLIDEIN_CREDENTIAL_DIR": str(tmp / "creds"),
        }
        operator = OperatorProcess(env, tmp / "operator.log")
        try:
            yield World(cp, ec2, ec2.client(), pool, operator, namespace)
        finally:
            operator.stop()


def live_instances(boto: Any) -> list[dict[str, Any]]:
    out = []
    for page in boto.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    ):
        for r in page["Reservations"]:
            out += r["Instances"]
    return out
