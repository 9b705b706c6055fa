"""The driver contract's harnesses, one per back end: a driver talking through the real
client library to a service that behaves like the real one, and the knobs to make that
service fail. tests/contract/conftest.py makes them fixtures; tests import from here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from glidein_operator.clouds.base import Driver
from glidein_operator.ground import CloudPilot, LaunchBatch, Shape

SHAPE = Shape(name="m5.large", cpus=2, memory_mb=8192, disk_gb=20)


def _leftovers(driver: Driver) -> list[str]:
    return driver.leftovers()  # type: ignore[attr-defined,no-any-return]


@dataclass
class Harness:
    name: str
    make: Callable[..., Driver]  # make(entry="e1", operator_id=..., bad_auth=False)
    image_id: str | None
    fail: Callable[[str], None]  # fail("quota" | "capacity" | "throttle")
    leftovers: Callable[[Driver], list[str]] = _leftovers  # what the driver left in the cloud
    console_text: str = ""  # something the console log of a fresh pilot contains, if any yet
    missing_image: str | None = None
    secrets: tuple[str, ...] = ()  # credential values that must never show in an error
    extra: dict[str, Any] = field(default_factory=dict)
    # Make the pilot print ``text`` where its back end keeps what it printed (a VM's
    # console, OneGate, a grid job's output); None where the double cannot (pods: no
    # kubelet runs them).
    say: Callable[[Driver, CloudPilot, str], None] | None = None

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


EC2_SECRET = "ec2-secret-key-value-0001"
BAD_PASSWORD = "wrong-password-value-0002"


# --- EC2: moto server (AWS-faithful on ClientToken/MaxCount) via boto3 ---------------


# The parameters an older EC2-compatible cloud does not know (their query names), and the
# entry's declaration of it.
OLD_EC2_REFUSES = ("TagSpecification", "ClientToken", "MetadataOptions")
OLD_EC2 = {"tagsAtLaunch": False, "clientToken": False, "imdsV2": False}


def ec2_harness(ec2_server: Any, *, old_cloud: bool = False) -> Harness:
    """``old_cloud``: the server refuses launch tags, ClientToken and MetadataOptions, and
    the entry declares that it lacks them."""
    from glidein_operator.api.cloudentry import Ec2Compatibility, Ec2Settings
    from glidein_operator.clouds.ec2 import Ec2Driver

    ec2_server.reset()
    image = ec2_server.image_id()
    compat = Ec2Compatibility.model_validate(OLD_EC2 if old_cloud else {})
    if old_cloud:
        ec2_server.refuse(*OLD_EC2_REFUSES)

    def make(entry: str = "e1", operator_id: str = "op-test", bad_auth: bool = False) -> Driver:
        d = Ec2Driver(
            entry,
            Ec2Settings(region="us-east-1", endpoint_url=ec2_server.url, compatibility=compat),
            access_key_id="testing",
            secret_access_key=EC2_SECRET,
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

    # No console_text: EC2 has no console output before the machine prints any.
    return Harness(
        "ec2",
        make,
        image,
        fail,
        lambda d: d.key_pairs_left(),  # type: ignore[attr-defined]
        secrets=(EC2_SECRET,),
        missing_image="ami-00000000deadbeef",
        extra={"server": ec2_server},
        say=lambda _d, p, text: ec2_server.set_console(p.cloud_id, text),
    )


# --- Kubernetes pods: the real kube-apiserver ----------------------------------------


def pods_harness(cluster: Any, namespace: str) -> Harness:
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
        assert kind == "quota", kind
        quota = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods", "namespace": namespace},
            "spec": {"hard": {"pods": "0"}},
        }
        import json

        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(quota))
        # The API server admits pods against the quotas its informer has seen: right
        # after the apply, a pod may still get through. Wait until a server-side dry run
        # is refused for the quota, as the driver's launch then will be.
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "quota-probe", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "example.org/none:1"}]},
        }
        deadline = time.monotonic() + 30
        while True:
            out = cluster.kubectl(
                "create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe), check=False
            )
            if out.returncode != 0 and "quota" in out.stderr:
                return
            assert time.monotonic() < deadline, f"the quota never took effect: {out.stderr}"
            time.sleep(0.2)

    # No kubelet runs the pods: no pod log; a pod not started says why it waits.
    return Harness("kubernetes", make, None, fail, console_text="Pending (not started)")


# --- OpenStack: Keystone + Nova + Glance fake via openstacksdk -----------------------


def openstack_harness(fake: Any) -> Harness:
    from glidein_operator.api.cloudentry import OpenStackSettings
    from glidein_operator.clouds.openstack import OpenStackDriver

    fake.reset()
    settings = OpenStackSettings(
        authUrl=fake.auth_url, region="RegionOne", projectName="glidein-project"
    )

    def make(entry: str = "e1", operator_id: str = "op-test", bad_auth: bool = False) -> Driver:
        creds = {"username": "glidein", "password": BAD_PASSWORD if bad_auth else "secret"}
        return OpenStackDriver(entry, settings, credentials=creds, operator_id=operator_id)

    def fail(kind: str) -> None:
        if kind == "quota":
            fake.fail(
                "POST",
                r"/servers$",
                403,
                {
                    "forbidden": {
                        "code": 403,
                        "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
                    }
                },
            )
        elif kind == "throttle":
            # keystoneauth retries 429 itself (3 attempts): answer every one.
            fake.fail(
                "POST",
                r"/servers$",
                429,
                {"overLimit": {"code": 429, "message": "Rate limit"}},
                times=3,
            )
        else:
            raise AssertionError(kind)

    return Harness(
        "openstack",
        make,
        fake.image_id,
        fail,
        console_text="[fake-nova] booting",
        secrets=(BAD_PASSWORD,),
        missing_image="00000000-0000-0000-0000-000000000000",
        extra={"fake": fake},
        say=lambda _d, p, text: fake.set_console(p.cloud_id, text),
    )


# --- OpenNebula: XML-RPC fake via pyone ------------------------------------------------


def opennebula_harness() -> Iterator[Harness]:
    from glidein_devkit.opennebula_fake import FakeOpenNebula
    from glidein_operator.api.cloudentry import OpenNebulaSettings
    from glidein_operator.clouds.opennebula import OpenNebulaDriver

    with FakeOpenNebula() as fake:
        fake.check_leaks = False  # contract tests leave what they made (see ec2_server)
        settings = OpenNebulaSettings(endpoint=fake.endpoint, templateId=42)

        def make(entry: str = "e1", operator_id: str = "op-test", bad_auth: bool = False) -> Driver:
            return OpenNebulaDriver(
                entry,
                settings,
                username="glidein",
                password=BAD_PASSWORD if bad_auth else "secret",
                operator_id=operator_id,
            )

        def fail(kind: str) -> None:
            assert kind == "quota"
            fake.vm_quota = 0

        yield Harness(
            "opennebula",
            make,
            "1342",
            fail,
            missing_image="7",
            extra={"fake": fake},
            secrets=(BAD_PASSWORD,),
            say=lambda _d, p, text: _onegate(fake.endpoint, int(p.cloud_id), text),
        )


def _onegate(endpoint: str, vm_id: int, text: str) -> None:
    """What the pilot's ``onegate vm update`` does: its boot log into USER_TEMPLATE."""
    import base64

    import pyone

    data = base64.b64encode(text.encode()).decode()
    pyone.OneServer(endpoint, session="glidein:secret").vm.update(
        vm_id, f'GLIDEIN_BOOT_LOG="{data}"', 1
    )


# --- Grid: HTCondor-G submits to a schedd (fake with real classad2 job ads) ----------------


def grid_harness(tmp_path: Any) -> Harness:
    from glidein_devkit.fake_grid import FakeGridSchedd, FakeSubmitters
    from glidein_operator.api.cloudentry import GridSettings
    from glidein_operator.clouds.grid import GridDriver

    schedd = FakeGridSchedd()
    settings = GridSettings.model_validate(
        {
            "ceType": "condor",
            "endpoint": "ce.example.org:9619",
            "submitter": {
                "collector": "submit.example.org:9618",
                "schedd": "glidein-submitter",
                "tokenSecretRef": {"name": "submit-token"},
            },
        }
    )
    submitters = FakeSubmitters(schedd)

    def make(entry: str = "e1", operator_id: str = "op-test", bad_auth: bool = False) -> Driver:
        assert settings.submitter is not None
        return GridDriver(
            entry,
            settings,
            submitter=settings.submitter,
            submitters=submitters,
            operator_id=operator_id,
            workdir=tmp_path / "grid" / entry,
            credential=b"expired-token" if bad_auth else b"valid-token",
        )

    def fail(kind: str) -> None:
        assert kind == "quota"
        schedd.max_jobs = 0

    def say(_d: Driver, p: CloudPilot, text: str) -> None:
        cluster, proc = (int(x) for x in p.cloud_id.split("."))
        schedd.finish(cluster, proc, stdout=text)

    return Harness(
        "grid",
        make,
        None,
        fail,
        console_text="Running at the site",
        extra={"schedd": schedd},
        say=say,
    )


# ec2-old-cloud: EC2 as an older EC2-compatible cloud (no launch tags, ClientToken or
# IMDSv2) and an entry that says so; it keeps every promise of the contract too.
HARNESSES = ["ec2", "ec2-old-cloud", "kubernetes", "openstack", "opennebula", "grid"]
# Which failures each service can be made to produce for real. A pod has no capacity
# error at creation (it waits Pending), OpenNebula and a schedd never throttle, and a grid
# CE refusing a token holds the job instead of failing the submit (tested on its own).
SUPPORTS = {
    "ec2": ("auth", "quota", "capacity", "throttle"),
    "kubernetes": ("auth", "quota"),
    "openstack": ("auth", "quota", "throttle"),
    "opennebula": ("auth", "quota"),
    "grid": ("quota",),
}
