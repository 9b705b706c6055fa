"""A control plane of its own, the EC2 test server and a fake pool, with the operator
running in-process (KopfRunner): shared by the operator and Helm chart tests.

The operator runs cluster-wide, so it never shares a control plane with the tests that
apply examples/, whose entries name real clouds that no test may contact.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import classad2
import pytest
import yaml
from kopf.testing import KopfRunner

from glidein_devkit.controlplane import LocalControlPlane
from glidein_devkit.ec2server import Ec2Server
from glidein_devkit.fake_grid import FakeGridSchedd, FakeSubmitters
from glidein_devkit.fake_pool import FakePool
from glidein_devkit.kube import OPERATOR_NAMESPACE, install_crds, kubectl
from glidein_devkit.resources import ec2_entry, trust_domain, vm_image
from glidein_operator.controller import runtime
from tests.support import documents
from tests.support.cluster import own_control_plane

SCHEDD = "schedd@submit.test"
COLLECTOR = "pool.test:9618"
REQUIREMENTS = "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"


def moto_entry(
    name: str,
    endpoint: str,
    *,
    site: str,
    instance_types: list[dict[str, Any]] | None = None,
    limits: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An EC2 entry of the tests' trust domain and image, at the EC2 test server."""
    return ec2_entry(
        name,
        endpoint=endpoint,
        trust_domain="aws-test",
        image="img",
        site=site,
        instance_types=instance_types
        or [{"name": "m5.xlarge", "cpus": 4, "memory": "16Gi", "pricePerHour": 0.19}],
        limits=limits or {"maxPilots": 100},
        **extra,
    )


class Env:
    restart_apiserver: Callable[[], None]
    grid: FakeGridSchedd

    def __init__(self, kubeconfig: Path, ec2: Ec2Server, pool: FakePool, image: str) -> None:
        self.kubeconfig, self.ec2, self.pool, self.image = kubeconfig, ec2, pool, image
        self.logs: list[str] = []
        # Distinctive credential values: a scan for them in logs, Events and status is exact.
        self.cloud_secret = f"ec2-secret-{uuid.uuid4().hex}"
        self.pool_key = f"pool-key-{uuid.uuid4().hex}"
        self.boto = ec2.client()

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


@contextmanager
def operator_env(
    prepare: Callable[[LocalControlPlane], Path] | None = None, webhook: bool = False
) -> Iterator[Env]:
    """``prepare`` may install things and return the kubeconfig the operator runs with
    (default: the admin's). ``webhook``: serve the validating admission webhook on
    127.0.0.1 with a self-signed certificate, kopf writing its configuration."""
    with LocalControlPlane() as cp, Ec2Server() as ec2:
        install_crds(cp.kubeconfig)
        image = ec2.image_id()
        pool = FakePool(schedds={SCHEDD: []})
        grid = FakeGridSchedd()
        runtime.install(
            runtime.Runtime(
                settings=runtime.Settings(
                    operator_id="op-it",
                    namespace=OPERATOR_NAMESPACE,
                    reconcile_interval=1.0,
                    credential_dir=cp.directory / "creds",
                    launch_backoff=1.0,  # the failure tests wait less; the doubling is the same
                    webhook_port=_free_port() if webhook else None,
                    webhook_host="127.0.0.1",
                    webhook_self_signed=True,
                    webhook_cert_dir=cp.directory / "webhook",
                ),  # type: ignore[operator]
                pool_factory=lambda _collector, _token: pool,
                submitters=FakeSubmitters(grid),
            )
        )
        e = Env(cp.kubeconfig, ec2, pool, image)
        e.grid = grid
        e.apply(
            trust_domain("aws-test", ["ec2-access-key"]),
            vm_image("img", [{"cloud": "ec2", "region": "us-east-1", "imageId": image}]),
            moto_entry("moto-east", ec2.url, site="MOTO"),
            moto_entry(
                "moto-spot",
                ec2.url,
                site="MOTO-SPOT",
                spot={"enabled": True, "maxPricePerHour": 0.08, "fallBackToOnDemand": True},
            ),
        )
        e.restart_apiserver = cp.restart_apiserver
        os.environ["KUBECONFIG"] = str(prepare(cp) if prepare else cp.kubeconfig)
        capture = _Capture()
        logging.getLogger().addHandler(capture)
        e.logs = capture.lines
        try:
            with KopfRunner(
                ["run", "-A", "--standalone", "-m", "glidein_operator.controller.handlers"],
                timeout=60,
            ) as runner:
                yield e
        finally:
            logging.getLogger().removeHandler(capture)
        assert runner.exception is None, runner.output


def env_fixture(**operator_env_kw: Any) -> Any:
    """A test module's ``env`` fixture: one ``operator_env(**operator_env_kw)`` for the
    module (skipped against an outside cluster)."""

    @pytest.fixture(scope="module", name="env")
    def env() -> Iterator[Env]:
        own_control_plane()
        with operator_env(**operator_env_kw) as e:
            yield e

    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Capture(logging.Handler):
    """Every log line the operator writes (kopf logs through the logging module)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        ref = getattr(record, "k8s_ref", None) or {}
        about = f"[{ref.get('namespace')}/{ref.get('name')}] " if ref else ""
        self.lines.append(about + self.format(record) + " " + repr(getattr(record, "k8s_skip", "")))


def request(
    env: Env,
    ns: str,
    *,
    token: bool = True,
    secret: bool = True,
    name: str = "vo",
    spec: dict[str, Any] | None = None,
) -> None:
    env.k("create", "namespace", ns)
    docs: list[dict[str, Any]] = []
    if secret:
        keys = {"accessKeyId": "testing", "secretAccessKey": env.cloud_secret}
        docs.append(documents.secret(ns, "aws", keys))
    if token:
        docs.append(documents.pool_key(ns, env.pool_key))
    request = documents.glidein_request(
        ns,
        COLLECTOR,
        SCHEDD,
        [documents.credential("aws-test")],
        name=name,
        pilot={"lifetime": "2h", "retireBeforeEnd": "10m"},
        jobConstraint=f'Owner == "{ns}"',
        entries={"names": ["moto-east"]},
        limits={"maxPilots": 50},
    )
    request["spec"].update(spec or {})
    env.apply(*docs, request)


def advertise(env: Env, instances: list[dict[str, Any]], uid: str, claimed: bool) -> None:
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


def submit(env: Env, ns: str, jobs: int, *, cpus: int = 1, memory: int = 1000) -> None:
    """Queue ``jobs`` idle jobs owned by ``ns`` (the requests' jobConstraint selects them)."""
    env.pool.submit(
        SCHEDD,
        jobs,
        Owner=ns,
        RequestCpus=cpus,
        RequestMemory=memory,
        Requirements=classad2.ExprTree(REQUIREMENTS),
    )


def start(
    env: Env, ns: str, jobs: int, *, cpus: int = 1, memory: int = 1000, **request_kw: Any
) -> str:
    """Queue ``jobs`` idle jobs owned by ``ns``, create the namespace's request; its uid."""
    submit(env, ns, jobs, cpus=cpus, memory=memory)
    request(env, ns, **request_kw)
    return env.uid(ns, "vo")


def delete_and_wait(env: Env, ns: str) -> None:
    """Delete the request and wait until its finalizer has let it go."""
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")
    eventually(
        lambda: (
            env.k("get", "greq", "vo", "-n", ns, "--ignore-not-found", "-o", "name").stdout.strip()
            == ""
        ),
        timeout=90,
        what=f"request {ns}/vo gone",
    )
