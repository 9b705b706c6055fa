"""Convergence of the real operator process: idle jobs appear -> N EC2 pilots exist.

    .venv/bin/python -m tests.benchmarks.operator_convergence [--pilots 1000]

Starts a local control plane, the EC2 test server and a simulated pool served over HTTP,
runs `glidein-operator run --standalone` as a process, and reports the time to the first
launch, the time to N pilots, and the operator's resident memory at N pilots.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import classad2
import yaml

from glidein_operator.condor.fake import FakePool
from glidein_operator.testing.controlplane import LocalControlPlane
from glidein_operator.testing.ec2server import Ec2Server
from glidein_operator.testing.kube import install_crds, kubectl
from glidein_operator.testing.pool_server import PoolServer
from tests.integration.test_restart_safety import _instances

SCHEDD = "schedd@bench"
NS = "bench-vo"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilots", type=int, default=1000)
    args = parser.parse_args()
    n = args.pilots
    pool = FakePool(schedds={SCHEDD: []})
    tmp = Path(tempfile.mkdtemp())
    with LocalControlPlane() as cp, Ec2Server() as ec2, PoolServer(pool) as served:
        install_crds(cp.kubeconfig)
        boto = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=ec2.url,
            aws_access_key_id="b",
            aws_secret_access_key="b",
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
                    "owner": {"name": "b", "contact": "b@example.org"},
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
                    "limits": {"maxLaunchPerCycle": 200, "launchesPerMinute": 100000},
                },
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "aws", "namespace": NS},
                "stringData": {"accessKeyId": "b", "secretAccessKey": "b"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pool-key", "namespace": NS},
                "stringData": {"signingKey": "bench"},
            },
        ]
        kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        env = {
            **os.environ,
            "KUBECONFIG": str(cp.kubeconfig),
            "GLIDEIN_OPERATOR_ID": "op-bench",
            "GLIDEIN_RECONCILE_INTERVAL": "1",
            "GLIDEIN_POOL_URL": served.url,
            "GLIDEIN_CREDENTIAL_DIR": str(tmp / "creds"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "glidein_operator", "run", "--standalone"],
            env=env,
            stdout=(tmp / "operator.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(6)  # the operator is up and idle
            idle_rss = rss_mb(proc.pid)
            pool.submit(
                SCHEDD,
                n,
                RequestCpus=1,
                RequestMemory=1000,
                Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
            )
            request = {
                "apiVersion": g,
                "kind": "GlideinRequest",
                "metadata": {"name": "vo", "namespace": NS},
                "spec": {
                    "collector": "pool.bench:9618",
                    "schedds": [{"name": SCHEDD}],
                    "credentials": [
                        {
                            "trustDomain": "aws",
                            "type": "ec2-access-key",
                            "secretRef": {"name": "aws"},
                        }
                    ],
                    "pilot": {"tokenSecretRef": {"name": "pool-key"}},
                    "limits": {"maxPilots": n, "maxIdlePilots": n},
                },
            }
            started = time.monotonic()
            kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(request))
            first = None
            count = 0
            while count < n and time.monotonic() - started < 600:
                try:
                    count = len(_instances(boto))
                except Exception:
                    time.sleep(0.5)
                    continue
                if count and first is None:
                    first = time.monotonic() - started
                time.sleep(0.5)
            total = time.monotonic() - started
            print(
                {
                    "pilots": count,
                    "first_launch_s": round(first or -1, 1),
                    f"converged_{n}_s": round(total, 1),
                    "operator_rss_idle_mb": round(idle_rss),
                    f"operator_rss_at_{n}_mb": round(rss_mb(proc.pid)),
                }
            )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
