"""The operator end to end on a real kube-apiserver: idle jobs -> EC2 pilots (moto server,
AWS-faithful) -> registered -> status and Events -> deletion terminates everything.

The operator runs cluster-wide, so it gets a control plane of its own: the shared one
holds examples/ whose entries name real clouds, which no test may contact.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import classad2
import pytest
import yaml
from kopf.testing import KopfRunner

from glidein_operator.condor.fake import FakePool
from glidein_operator.controller import runtime
from glidein_operator.testing.controlplane import LocalControlPlane
from glidein_operator.testing.ec2server import Ec2Server
from glidein_operator.testing.kube import install_crds, kubectl

SCHEDD = "schedd@submit.test"
REQUIREMENTS = "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"


class Env:
    def __init__(self, kubeconfig: Path, ec2: Ec2Server, pool: FakePool, image: str) -> None:
        self.kubeconfig, self.ec2, self.pool, self.image = kubeconfig, ec2, pool, image
        self.boto = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=ec2.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def k(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        return kubectl(self.kubeconfig, *args, stdin=stdin, check=check)

    def apply(self, *docs: dict[str, Any]) -> None:
        self.k("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def instances(self, request_uid: str | None = None) -> list[dict[str, Any]]:
        filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        if request_uid:
            filters.append({"Name": "tag:glidein.dev/request-uid", "Values": [request_uid]})
        out = []
        for page in self.boto.get_paginator("describe_instances").paginate(Filters=filters):
            for r in page["Reservations"]:
                out += r["Instances"]
        return out

    def status(self, ns: str, name: str) -> dict[str, Any]:
        obj = json.loads(self.k("get", "greq", name, "-n", ns, "-o", "json").stdout)
        return dict(obj.get("status") or {})

    def uid(self, ns: str, name: str) -> str:
        return str(
            json.loads(self.k("get", "greq", name, "-n", ns, "-o", "json").stdout)["metadata"][
                "uid"
            ]
        )


def eventually(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
    with LocalControlPlane() as cp, Ec2Server() as ec2:
        install_crds(cp.kubeconfig)
        admin = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=ec2.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        image = admin.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        pool = FakePool(schedds={SCHEDD: []})
        runtime.install(
            runtime.Runtime(
                settings=runtime.Settings(
                    operator_id="op-it",
                    reconcile_interval=1.0,
                    credential_dir=cp.directory / "creds",
                ),  # type: ignore[operator]
                pool_factory=lambda collector: pool,
            )
        )
        e = Env(cp.kubeconfig, ec2, pool, image)
        e.apply(
            {
                "apiVersion": "glidein.dev/v1alpha1",
                "kind": "TrustDomain",
                "metadata": {"name": "aws-test"},
                "spec": {"credentialTypes": ["ec2-access-key"]},
            },
            {
                "apiVersion": "glidein.dev/v1alpha1",
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
                "apiVersion": "glidein.dev/v1alpha1",
                "kind": "CloudEntry",
                "metadata": {"name": "moto-east"},
                "spec": {
                    "type": "ec2",
                    "trustDomain": "aws-test",
                    "site": "MOTO",
                    "vmImage": "img",
                    "ec2": {"region": "us-east-1", "endpointUrl": ec2.url},
                    "instanceTypes": [
                        {"name": "m5.xlarge", "cpus": 4, "memory": "16Gi", "pricePerHour": 0.19}
                    ],
                    "limits": {"maxPilots": 100},
                },
            },
        )
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        with KopfRunner(
            ["run", "-A", "--standalone", "-m", "glidein_operator.controller.handlers"], timeout=60
        ) as runner:
            yield e
        assert runner.exception is None, runner.output


def _request(
    env: Env, ns: str, *, token: bool = True, secret: bool = True, name: str = "vo"
) -> None:
    env.k("create", "namespace", ns)
    docs: list[dict[str, Any]] = []
    if secret:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "aws", "namespace": ns},
                "stringData": {"accessKeyId": "testing", "secretAccessKey": "testing"},
            }
        )
    if token:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pool-key", "namespace": ns},
                "stringData": {"signingKey": uuid.uuid4().hex},
            }
        )
    docs.append(
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "GlideinRequest",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "collector": "pool.test:9618",
                "schedds": [{"name": SCHEDD}],
                "jobConstraint": f'Owner == "{ns}"',
                "credentials": [
                    {
                        "trustDomain": "aws-test",
                        "type": "ec2-access-key",
                        "secretRef": {"name": "aws"},
                    }
                ],
                "pilot": {
                    "tokenSecretRef": {"name": "pool-key"},
                    "lifetime": "2h",
                    "retireBeforeEnd": "10m",
                },
                "limits": {"maxPilots": 50},
            },
        }
    )
    env.apply(*docs)


def _advertise(env: Env, instances: list[dict[str, Any]], uid: str, claimed: bool) -> None:
    ads = []
    for inst in instances:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        ad = classad2.ClassAd()
        ad["Name"] = f"slot1@{inst['InstanceId']}"
        ad["GlideinPilotId"] = f"{tags['glidein.dev/batch']}-{inst['AmiLaunchIndex']}"
        ad["GlideinRequestUid"] = uid
        ad["GlideinEntryName"] = "moto-east"
        ad["PartitionableSlot"] = True
        ad["TotalSlotCpus"] = 4
        ad["Cpus"] = 0 if claimed else 4
        ads.append(ad)
    env.pool.advertise(ads)


def test_idle_jobs_launch_pilots_which_register_and_leave_on_delete(env: Env) -> None:
    ns = f"vo-{uuid.uuid4().hex[:6]}"
    env.pool.submit(
        SCHEDD,
        20,
        Owner=ns,
        RequestCpus=1,
        RequestMemory=2000,
        Requirements=classad2.ExprTree(REQUIREMENTS),
    )
    started = time.monotonic()
    _request(env, ns)
    uid = env.uid(ns, "vo")
    # 20 one-core jobs on 4-core pilots: 5 pilots.
    launched = eventually(
        lambda: len(env.instances(uid)) == 5 and env.instances(uid), what="5 EC2 pilots"
    )
    reaction = time.monotonic() - started
    for inst in launched:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["glidein.dev/entry"] == "moto-east"
        assert tags["glidein.dev/operator"] == "op-it"
        assert inst["KeyName"].startswith("glidein-")
    status = eventually(
        lambda: (s := env.status(ns, "vo")).get("totals", {}).get("launching") == 5 and s,
        what="status launching=5",
    )
    assert status["totals"]["idleJobs"] == 20
    [row] = status["entries"]
    assert row["name"] == "moto-east"
    ready = {c["type"]: c for c in status["conditions"]}
    assert ready["Ready"]["status"] == "True"
    assert ready["Degraded"]["status"] == "False"
    events = env.k("get", "events", "-n", ns, "-o", "json").stdout
    assert "ScaledUp" in events
    print(f"\nreaction: idle jobs -> 5 pilots launched in {reaction:.1f}s")

    # Pilots register and take the jobs: no more launches, running in status.
    _advertise(env, launched, uid, claimed=True)
    env.pool.set_status(SCHEDD, f'Owner == "{ns}"', 2)
    eventually(lambda: env.status(ns, "vo").get("totals", {}).get("running") == 5, what="running=5")
    assert len(env.instances(uid)) == 5

    # Deleting the request terminates every pilot and key pair before the object goes.
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")
    eventually(
        lambda: (
            env.k("get", "greq", "vo", "-n", ns, "--ignore-not-found", "-o", "name").stdout.strip()
            == ""
        ),
        what="request gone",
    )
    assert env.instances(uid) == []
    keys = env.boto.describe_key_pairs(
        Filters=[{"Name": "tag:glidein.dev/request-uid", "Values": [uid]}]
    )
    assert keys["KeyPairs"] == []


def test_a_broken_request_names_its_problem_and_others_keep_working(env: Env) -> None:
    bad, good = f"bad-{uuid.uuid4().hex[:6]}", f"good-{uuid.uuid4().hex[:6]}"
    for ns in (bad, good):
        env.pool.submit(
            SCHEDD,
            4,
            Owner=ns,
            RequestCpus=1,
            RequestMemory=1000,
            Requirements=classad2.ExprTree(REQUIREMENTS),
        )
    _request(env, bad, secret=False)
    _request(env, good)
    status = eventually(
        lambda: (s := env.status(bad, "vo")).get("conditions") and s, what="bad status"
    )
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "NoUsableEntry"
    assert f"Secret 'aws' not found in namespace '{bad}'" in conds["Ready"]["message"]
    good_uid = env.uid(good, "vo")
    eventually(lambda: len(env.instances(good_uid)) == 1, what="the good request's pilot")
    assert env.instances(env.uid(bad, "vo")) == []
    for ns in (bad, good):
        env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def test_no_pool_credential_means_no_launch_and_says_why(env: Env) -> None:
    ns = f"notok-{uuid.uuid4().hex[:6]}"
    env.pool.submit(
        SCHEDD,
        4,
        Owner=ns,
        RequestCpus=1,
        RequestMemory=1000,
        Requirements=classad2.ExprTree(REQUIREMENTS),
    )
    _request(env, ns, token=False)
    status = eventually(lambda: (s := env.status(ns, "vo")).get("conditions") and s, what="status")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["reason"] == "NoPoolCredential"
    assert "pool-key" in ready["message"]
    assert env.instances(env.uid(ns, "vo")) == []
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def test_entry_status_reports_a_missing_image(env: Env) -> None:
    env.apply(
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "CloudEntry",
            "metadata": {"name": "no-image"},
            "spec": {
                "type": "ec2",
                "trustDomain": "aws-test",
                "site": "X",
                "vmImage": "absent",
                "ec2": {"region": "us-east-1", "endpointUrl": env.ec2.url},
                "instanceTypes": [{"name": "m5.large", "cpus": 2, "memory": "8Gi"}],
            },
        }
    )

    def ready() -> Any:
        obj = json.loads(env.k("get", "ce", "no-image", "-o", "json").stdout)
        return next(
            (c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"),
            None,
        )

    cond = eventually(ready, what="entry condition")
    assert cond["status"] == "False"
    assert cond["reason"] == "ImageMissing"
    printed = env.k("get", "ce", "no-image").stdout
    assert "False" in printed
    env.k("delete", "ce", "no-image")
