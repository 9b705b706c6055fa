"""One harness per back end: a driver talking through the real client library to a
service that behaves like the real one, and the knobs to make that service fail."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from glidein_operator.clouds.base import Driver, LaunchBatch, Shape

SHAPE = Shape(name="m5.large", cpus=2, memory_mb=8192, disk_gb=20)


@dataclass
class Harness:
    name: str
    make: Callable[..., Driver]  # make(entry="e1", operator_id=..., bad_auth=False)
    image_id: str | None
    fail: Callable[[str], None]  # fail("quota" | "capacity" | "throttle")
    leftovers: Callable[[Driver], list[str]]
    console_text: str  # something the console log of a fresh pilot contains ("" if none yet)
    missing_image: str | None = None
    supports: set[str] = field(default_factory=lambda: {"quota", "capacity", "throttle"})
    extra: dict[str, Any] = field(default_factory=dict)

    def batch(
        self,
        count: int,
        *,
        key: str | None = None,
        entry: str = "e1",
        request_uid: str = "uid-0001",
        user_data: bytes = b"#!/bin/sh\necho pilot\n",
    ) -> LaunchBatch:
        return LaunchBatch(
            key=key or f"b{uuid.uuid4().hex[:10]}",
            request_uid=request_uid,
            request="ns1/req1",
            entry=entry,
            shape=SHAPE,
            count=count,
            image_id=self.image_id,
            user_data=user_data,
        )


# --- EC2: moto server (AWS-faithful on ClientToken/MaxCount) via boto3 ---------------


@pytest.fixture(scope="session")
def ec2_server() -> Iterator[Any]:
    from glidein_operator.testing.ec2server import Ec2Server

    with Ec2Server() as server:
        yield server


_EC2_IMAGE: dict[str, str] = {}


def _ec2(ec2_server: Any) -> Harness:
    import boto3

    from glidein_operator.api.cloudentry import Ec2Settings
    from glidein_operator.clouds.ec2 import Ec2Driver

    ec2_server.reset()
    if "image" not in _EC2_IMAGE:  # moto's AMI catalogue is the same after every reset
        admin = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=ec2_server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        _EC2_IMAGE["image"] = admin.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    image = _EC2_IMAGE["image"]

    def make(entry: str = "e1", operator_id: str = "op-test", bad_auth: bool = False) -> Driver:
        d = Ec2Driver(
            entry,
            Ec2Settings(region="us-east-1", endpoint_url=ec2_server.url),
            access_key_id="testing",
            secret_access_key="testing",
            operator_id=operator_id,
        )
        if bad_auth:
            ec2_server.fail("RunInstances", "AuthFailure", times=1, status=401)
            ec2_server.fail("DescribeInstances", "AuthFailure", times=1, status=401)
        return d

    # AWS answers capacity with 500 and throttling with 503; botocore's standard mode
    # retries both (4 attempts in all), so every attempt must fail to see the error.
    codes = {
        "quota": ("InstanceLimitExceeded", 400, 1),
        "capacity": ("InsufficientInstanceCapacity", 500, 4),
        "throttle": ("RequestLimitExceeded", 503, 4),
    }

    def fail(kind: str) -> None:
        code, status, times = codes[kind]
        # botocore's standard mode retries throttling and 5xx: fail every attempt.
        ec2_server.fail("RunInstances", code, status=status, times=times)

    return Harness(
        "ec2",
        make,
        image,
        fail,
        lambda d: d.key_pairs_left(),  # type: ignore[attr-defined]
        console_text="Linux version",
        missing_image="ami-00000000deadbeef",
        extra={"server": ec2_server},
    )


# --- Kubernetes pods: the real kube-apiserver ----------------------------------------


def _pods(cluster: Any, namespace: str) -> Harness:
    from glidein_operator.api.cloudentry import KubernetesSettings
    from glidein_operator.clouds.kubernetes import KubernetesDriver, api_client

    kubeconfig = cluster.kubeconfig.read_text()

    def make(entry: str = "e1", operator_id: str = "op-test", bad_auth: bool = False) -> Driver:
        settings = KubernetesSettings(namespace=namespace, pilot_image="example.org/pilot:1")
        if bad_auth:
            cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace, check=False)
            token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
            import yaml

            cfg = yaml.safe_load(kubeconfig)
            cfg["users"][0]["user"] = {"token": token}
            return KubernetesDriver(
                entry, settings, api=api_client(yaml.safe_dump(cfg)), operator_id=operator_id
            )
        return KubernetesDriver(
            entry, settings, api=api_client(kubeconfig), operator_id=operator_id
        )

    def fail(kind: str) -> None:
        assert kind == "quota"
        quota = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods", "namespace": namespace},
            "spec": {"hard": {"pods": "0"}},
        }
        import json

        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(quota))

    return Harness(
        "kubernetes",
        make,
        None,
        fail,
        lambda d: d.leftovers(),  # type: ignore[attr-defined]
        console_text="",
        supports={"quota"},
    )


HARNESSES = ["ec2", "kubernetes"]


@pytest.fixture(params=HARNESSES)
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "ec2":
        return _ec2(request.getfixturevalue("ec2_server"))
    if request.param == "kubernetes":
        return _pods(request.getfixturevalue("cluster"), request.getfixturevalue("namespace"))
    raise AssertionError(request.param)
