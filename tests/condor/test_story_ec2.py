"""The whole story, real: jobs on a real schedd, the operator (its own process, a real
kube-apiserver) launches EC2 instances on the test server, each boots the real pilot
(boot emulator), which joins the real pool with the operator's token, runs the jobs, goes
idle and powers off; EC2 terminates it, and nothing is left. And when the pool refuses
the pilots, the operator says why."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glidein_devkit.boot import Ec2BootEmulator
from glidein_devkit.condor_pool import CondorInstall, CondorPool, job
from glidein_devkit.ec2server import Ec2Server
from glidein_devkit.resources import G, ec2_entry, trust_domain, vm_image
from tests.condor.support import (
    Registrations,
    degraded,
    diagnose,
    event_reasons,
    eventually,
    operator_on,
    request_status,
    unregistered_logs,
    wait_for_jobs,
)
from tests.integration.process_world import OperatorProcess
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration

JOBS = 6
MAX_PILOTS = 4


@pytest.fixture
def story_pool(condor: CondorInstall, condor_tmp: Path) -> Iterator[CondorPool]:
    p = CondorPool(condor, condor_tmp / f"story-{time.monotonic_ns()}", read_needs_auth=True)
    p.start()
    yield p
    p.stop()


@pytest.fixture
def open_pool(condor: CondorInstall, condor_tmp: Path) -> Iterator[CondorPool]:
    """A pool that lets anyone READ (the common case): the operator reads it whatever
    token it holds, and only the pilots' tokens are put to the test."""
    p = CondorPool(condor, condor_tmp / f"open-{time.monotonic_ns()}")
    p.start()
    yield p
    p.stop()


@dataclass
class Story:
    cluster: Cluster
    namespace: str
    pool: CondorPool
    ec2: Ec2Server
    boot: Ec2BootEmulator
    operator: OperatorProcess
    entry: str

    def status(self) -> dict[str, Any]:
        return request_status(self.cluster, self.namespace)

    def degraded(self, reason: str) -> str | None:
        return degraded(self.status(), reason)


def _request(ns: str, pool: CondorPool, entry: str, td: str, pilot: dict[str, Any]) -> list[Any]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aws", "namespace": ns},
            "stringData": {"accessKeyId": "testing", "secretAccessKey": "testing"},
        },
        {
            # The POOL file as the collector wrote it: binary, as --from-file keeps it.
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pool-key", "namespace": ns},
            "data": {"signingKey": base64.b64encode(pool.signing_key()).decode()},
        },
        {
            "apiVersion": G,
            "kind": "GlideinRequest",
            "metadata": {"name": "vo", "namespace": ns},
            "spec": {
                "collector": pool.collector,
                "schedds": [{"name": pool.schedd_name}],
                "jobConstraint": 'Story =?= "ec2"',
                "entries": {"names": [entry]},
                "credentials": [
                    {"trustDomain": td, "type": "ec2-access-key", "secretRef": {"name": "aws"}}
                ],
                "pilot": {
                    "tokenSecretRef": {"name": "pool-key"},
                    "idleTimeout": "20s",
                    "registrationTimeout": "3m",
                    "lifetime": "2h",
                    "retireBeforeEnd": "10m",
                    **pilot,
                },
                "limits": {"maxPilots": MAX_PILOTS, "maxIdlePilots": MAX_PILOTS},
            },
        },
    ]


@contextmanager
def story(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    pool: CondorPool,
    spec: dict[str, Any] | None = None,
    pilot: dict[str, Any] | None = None,
    broken_image: bool = False,
) -> Iterator[Story]:
    """One EC2 entry, a request on the real pool, the boot emulator and the operator
    process; all of it removed after (while the operator runs, so finalizers let go)."""
    entry, td, image = f"{namespace}-east", f"{namespace}-aws", f"{namespace}-img"
    with (
        Ec2Server() as ec2,
        Ec2BootEmulator(
            ec2,
            condor,
            condor_tmp / f"vms-{namespace}",
            broken_images=frozenset({ec2.image_id()} if broken_image else ()),
        ) as boot,
    ):
        docs = [
            trust_domain(td, ["ec2-access-key"]),
            vm_image(image, [{"cloud": "ec2", "region": "us-east-1", "imageId": ec2.image_id()}]),
            ec2_entry(
                entry,
                endpoint=ec2.url,
                trust_domain=td,
                image=image,
                site="EAST",
                instance_types=[{"name": "t3.small", "cpus": 1, "memory": "2Gi", "disk": "10Gi"}],
                limits={"maxPilots": 10},
            ),
            *_request(namespace, pool, entry, td, pilot or {}),
        ]
        docs[-1]["spec"].update(spec or {})
        with operator_on(cluster, namespace, condor_tmp, docs) as operator:
            s = Story(cluster, namespace, pool, ec2, boot, operator, entry)
            try:
                yield s
            except BaseException:
                diagnose(
                    s.cluster, s.namespace, s.operator.log, f"instances {s.ec2.instances()}", s.boot
                )
                raise


def test_jobs_run_on_pilots_the_operator_launched_and_nothing_is_left(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    story_pool: CondorPool,
) -> None:
    pool = story_pool
    with story(cluster, namespace, condor, condor_tmp, pool) as s:
        cluster_id = pool.submit(
            job(arguments="5", extra=['+Story = "ec2"', "job_machine_attrs = GLIDEIN_Entry_Name"]),
            JOBS,
        )
        # A job no entry can run: it gets no pilot, and the request says why.
        pool.submit(
            job(arguments="1", requirements="TARGET.HAS_QUANTUM =?= true", extra=['+Story = "ec2"'])
        )
        seen_running = 0
        registrations = Registrations(pool)

        def watch() -> None:
            nonlocal seen_running
            seen_running = max(seen_running, int(s.status().get("totals", {}).get("running", 0)))
            registrations.look()

        run = wait_for_jobs(pool, cluster_id, JOBS, 300, watch)
        first_running, all_done_after, rows = run.first_running, run.all_done, run.rows
        # Every job ran, on a pilot of the entry the plan chose.
        assert rows == [["4", "0", s.entry]] * JOBS
        assert seen_running >= 1, "kubectl get greq never showed a running pilot"
        unmatched = next(c for c in s.status()["conditions"] if c["type"] == "JobsUnmatched")
        assert unmatched["status"] == "True"
        assert "HAS_QUANTUM" in unmatched["message"]

        launched = s.ec2.instances()
        assert 1 <= len(launched) <= MAX_PILOTS
        # Idle pilots leave by themselves; EC2 terminates them on shutdown.
        eventually(
            lambda: all(i["state"] == "terminated" for i in s.ec2.instances()),
            180,
            "every instance terminated",
            interval=2,
        )
        # Each batch's key pair goes with its last pilot, on the operator's next look.
        eventually(
            lambda: s.ec2.client().describe_key_pairs()["KeyPairs"] == [],
            60,
            "no key pair left",
            interval=1,
        )
        assert s.boot.errors == []
        assert all(vm.machine.powered_off for vm in s.boot.vms.values())
        print(
            f"\nEC2 story: first job running after {first_running:.1f}s, all {JOBS} done "
            f"after {all_done_after:.1f}s, {len(launched)} pilots launched (max {MAX_PILOTS}), "
            + registrations.summary(list(s.boot.vms.values()))
        )


def test_pilots_the_collector_refuses_are_reaped_and_the_reason_is_said(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    open_pool: CondorPool,
) -> None:
    pool = open_pool
    # The admin wrote the wrong TRUST_DOMAIN: every token the operator mints names an
    # issuer the collector does not sign for.
    with story(
        cluster,
        namespace,
        condor,
        condor_tmp,
        pool,
        spec={"poolTrustDomain": "cm.wrong.example.org"},
        pilot={"registrationTimeout": "40s"},
    ) as s:
        pool.submit(job(arguments="5", extra=['+Story = "ec2"']), 2)

        message = eventually(
            lambda: s.degraded("PilotsRefused"),
            180,
            "a Degraded condition naming the refusal",
            interval=2,
        )
        spent_then = len(s.ec2.instances())
        assert "Failed to authenticate using IDTOKENS" in message
        logs = unregistered_logs(s.status())
        assert all("the collector refused this pilot's ad" in x["log"] for x in logs)
        # The pilots saw it themselves and powered off at once (EC2 terminated them);
        # the first launch's worth was spent on finding out, and launches back off.
        assert spent_then <= 2
        assert all(i["state"] == "terminated" for i in s.ec2.instances()[:spent_then])
        assert pool.tool("condor_history", "-af", "ClusterId").stdout.strip() == ""
        assert "PilotRefused" in event_reasons(s.cluster, s.namespace)
        print(f"\nrefusal as the operator says it: {message}")


def test_an_image_that_does_not_boot_costs_one_launch_and_says_so(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    open_pool: CondorPool,
) -> None:
    pool = open_pool
    with story(cluster, namespace, condor, condor_tmp, pool, broken_image=True) as s:
        pool.submit(job(arguments="5", extra=['+Story = "ec2"']), 2)

        message = eventually(
            lambda: s.degraded("PilotsNotRegistering"),
            120,
            "a Degraded condition on the entry",
            interval=1,
        )
        assert len(s.ec2.instances()) <= 2  # the first launch's worth, then a back-off
        logs = unregistered_logs(s.status())
        assert all("Kernel panic" in x["log"] for x in logs)
        assert "PilotsNotRegistering" in event_reasons(s.cluster, s.namespace)
        print(f"\nbroken image as the operator says it: {message}")
