"""The operator as its own process, against a control plane, one cloud (the EC2 test
server, or the OpenStack fake) and a simulated pool served over HTTP: shared by the
restart-safety tests and the convergence benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import classad2
import pytest
import yaml

from glidein_devkit.controlplane import LocalControlPlane
from glidein_devkit.ec2server import Ec2Server
from glidein_devkit.fake_pool import FakePool
from glidein_devkit.kube import OPERATOR_NAMESPACE, install_crds, kubectl
from glidein_devkit.openstack_fake import FakeOpenStack
from glidein_devkit.pool_server import PoolServer
from tests.support import documents
from tests.support.cluster import own_control_plane
from tests.support.documents import CREDENTIAL_TYPE, EC2_TESTING, Names, credential

SCHEDD = "schedd@process.test"
COLLECTOR = "pool.test:9618"


class OperatorProcess:
    """``glidein-operator run --standalone`` as a child process, killed and restarted at will.
    With GLIDEIN_POOL_URL in its environment it reads the simulated pool served there
    (glidein_devkit/simulated_pool.py injects that pool factory); without, real pools."""

    def __init__(
        self, env: dict[str, str], log: Path, args: tuple[str, ...] = ("--standalone",)
    ) -> None:
        self.env, self.log, self.args = env, log, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        handle = self.log.open("ab")
        simulated = bool(self.env.get("GLIDEIN_POOL_URL"))
        module = "glidein_devkit.simulated_pool" if simulated else "glidein_operator"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "run", *self.args],
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
    nova: FakeOpenStack | None = None  # set when the cloud is OpenStack

    @property
    def cloud(self) -> str:
        return "openstack" if self.nova else "ec2"

    def pilot_ids(self) -> Counter[str]:
        """Alive pilots of the cloud, by pilot id: a count above 1 is a duplicate launch."""
        ids: Counter[str] = Counter()
        if self.nova is None:
            for i in live_instances(self.boto):
                tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                ids[f"{tags.get('glidein.dev/batch')}-{i['AmiLaunchIndex']}"] += 1
            return ids
        with self.nova.state.lock:
            servers = list(self.nova.state.servers.values())
        for srv in servers:
            if srv["status"] in ("BUILD", "ACTIVE"):
                ids[f"{srv['metadata'].get('glidein.dev/batch')}:{srv['name']}"] += 1
        return ids

    def key_pairs_left(self) -> list[str]:
        if self.nova is None:
            reply = self.boto.describe_key_pairs(
                Filters=[{"Name": "tag:glidein.dev/operator", "Values": [self.operator_id]}]
            )
            return [k["KeyName"] for k in reply["KeyPairs"]]
        with self.nova.state.lock:
            return sorted(self.nova.state.keypairs)

    @property
    def operator_id(self) -> str:
        return self.operator.env["GLIDEIN_OPERATOR_ID"]

    def submit(self, jobs: int) -> None:
        self.pool.submit(
            SCHEDD,
            jobs,
            RequestCpus=1,
            RequestMemory=1000,
            Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
        )

    def add_request(
        self,
        ns: str,
        entry: str,
        jobs: int,
        *,
        max_pilots: int = 50,
        secret: dict[str, Any] | None = None,
    ) -> str:
        """A namespace with its Secrets and a request on one entry for its own ``jobs``
        (Owner == the namespace); the request's uid."""
        self.pool.submit(
            SCHEDD,
            jobs,
            Owner=ns,
            RequestCpus=1,
            RequestMemory=1000,
            Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
        )
        request = documents.glidein_request(
            ns,
            COLLECTOR,
            SCHEDD,
            [credential("aws")],
            jobConstraint=f'Owner == "{ns}"',
            entries={"names": [entry]},
            limits={"maxPilots": max_pilots, "maxIdlePilots": max_pilots},
        )
        docs = [
            documents.namespace_doc(ns),
            documents.secret(ns, "aws", None if secret else EC2_TESTING, **(secret or {})),
            documents.pool_key(ns, f"{ns}-key"),
            request,
        ]
        kubectl(self.cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        return kubectl(
            self.cp.kubeconfig, "get", "greq", "vo", "-n", ns, "-o", "jsonpath={.metadata.uid}"
        ).stdout

    def request(self, max_pilots: int) -> None:
        doc = documents.glidein_request(
            self.namespace,
            COLLECTOR,
            SCHEDD,
            [credential("aws", CREDENTIAL_TYPE[self.cloud])],
            limits={"maxPilots": max_pilots, "maxIdlePilots": max_pilots},
        )
        kubectl(self.cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))


@contextmanager
def process_world(
    tmp: Path,
    namespace: str,
    operator_id: str,
    entry_limits: dict[str, int],
    cloud: str = "ec2",
) -> Iterator[World]:
    """One entry (one-core instance type) on ``cloud`` ("ec2" or "openstack") and a namespace
    with its Secrets; the operator process is made but not started."""
    pool = FakePool(schedds={SCHEDD: []})
    with ExitStack() as stack:
        cp = stack.enter_context(LocalControlPlane())
        ec2 = stack.enter_context(Ec2Server())
        served = stack.enter_context(PoolServer(pool))
        nova = stack.enter_context(FakeOpenStack()) if cloud == "openstack" else None
        install_crds(cp.kubeconfig)
        if nova is None:
            location = ("us-east-1", ec2.image_id())
            settings: dict[str, Any] = {"region": "us-east-1", "endpointUrl": ec2.url}
            instance_type = {"name": "t3.small", "cpus": 1, "memory": "2Gi"}
            secret = EC2_TESTING
        else:
            nova.add_flavor("p1.small", 1, 2048, 20)
            location = ("RegionOne", nova.image_id)
            settings = {
                "authUrl": nova.auth_url,
                "region": "RegionOne",
                "projectName": "glidein-project",
            }
            instance_type = {"name": "p1.small", "cpus": 1, "memory": "2Gi"}
            secret = {"username": "glidein", "password": "secret"}
        names = Names("east", "aws", "img")
        docs = [
            *documents.entry_docs(
                cloud, names, location, settings, instance_type, site="EAST", limits=entry_limits
            ),
            documents.namespace_doc(namespace),
            documents.secret(namespace, "aws", secret),
            documents.pool_key(namespace, f"{operator_id}-key"),
        ]
        kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        env = {
            **os.environ,
            "KUBECONFIG": str(cp.kubeconfig),
            "GLIDEIN_OPERATOR_ID": operator_id,
            "GLIDEIN_NAMESPACE": OPERATOR_NAMESPACE,
            "GLIDEIN_RECONCILE_INTERVAL": "1",
            "GLIDEIN_POOL_URL": served.url,
            "GLIDEIN_CREDENTIAL_DIR": str(tmp / "creds"),
        }
        operator = OperatorProcess(env, tmp / "operator.log")
        try:
            yield World(cp, ec2, ec2.client(), pool, operator, namespace, nova)
        finally:
            operator.stop()


def world_fixture(namespace: str, operator_id: str, entry_limits: dict[str, int]) -> Any:
    """A test module's ``world`` fixture: a ``process_world`` of its own for each test,
    in the test's tmp_path (skipped against an outside cluster)."""

    @pytest.fixture(name="world")
    def world(tmp_path: Path) -> Iterator[World]:
        own_control_plane()
        with process_world(tmp_path, namespace, operator_id, entry_limits) as w:
            yield w

    return world


def live_instances(boto: Any) -> list[dict[str, Any]]:
    out = []
    for page in boto.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    ):
        for r in page["Reservations"]:
            out += r["Instances"]
    return out
