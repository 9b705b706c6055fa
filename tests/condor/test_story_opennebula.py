"""The story on OpenNebula, real: jobs on a real schedd, the operator (its own process, a
real kube-apiserver) instantiates VMs on the OpenNebula double, each boots the real pilot
from its context disk (glidein_devkit/boot_opennebula), which joins the real pool with the
operator's token, posts its boot log through OneGate, runs the jobs, goes idle and powers
off; the VM sits in POWEROFF (OpenNebula has no terminate-on-shutdown) until the
operator reaps it, and nothing is left."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glidein_devkit.boot_opennebula import OpenNebulaBootEmulator
from glidein_devkit.condor_pool import CondorInstall, CondorPool, job
from glidein_devkit.opennebula_fake import FakeOpenNebula
from glidein_devkit.resources import G, cloud_entry, trust_domain, vm_image
from glidein_operator.api.cloudentry import OpenNebulaSettings
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from tests.condor.support import (
    Registrations,
    degraded,
    diagnose,
    event_reasons,
    eventually,
    operator_on,
    request_status,
    story_operator_id,
    unregistered_logs,
    wait_for_jobs,
)
from tests.condor.test_story_ec2 import open_pool, story_pool  # noqa: F401  (fixtures)
from tests.integration.process_world import OperatorProcess
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration

JOBS = 4
MAX_PILOTS = 4
USER, PASSWORD = "glidein", "secret"
IMAGE_ID = "1342"  # the fake's image
TEMPLATE_ID = 42  # the fake's VM template


@dataclass
class OneStory:
    cluster: Cluster
    namespace: str
    pool: CondorPool
    one: FakeOpenNebula
    boot: OpenNebulaBootEmulator
    operator: OperatorProcess
    operator_id: str
    entry: str

    def status(self) -> dict[str, Any]:
        return request_status(self.cluster, self.namespace)

    def driver(self) -> OpenNebulaDriver:
        """The operator's own driver for the entry, to read what it reads."""
        return OpenNebulaDriver(
            self.entry,
            OpenNebulaSettings(endpoint=self.one.endpoint, templateId=TEMPLATE_ID),
            username=USER,
            password=PASSWORD,
            operator_id=self.operator_id,
        )


def _request(ns: str, pool: CondorPool, entry: str, td: str) -> list[Any]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "one", "namespace": ns},
            "stringData": {"username": USER, "password": PASSWORD},
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
                "jobConstraint": 'Story =?= "opennebula"',
                "entries": {"names": [entry]},
                "credentials": [
                    {
                        "trustDomain": td,
                        "type": "opennebula-user-password",
                        "secretRef": {"name": "one"},
                    }
                ],
                "pilot": {
                    "tokenSecretRef": {"name": "pool-key"},
                    "idleTimeout": "20s",
                    "registrationTimeout": "3m",
                    "lifetime": "2h",
                    "retireBeforeEnd": "10m",
                },
                "limits": {"maxPilots": MAX_PILOTS, "maxIdlePilots": MAX_PILOTS},
            },
        },
    ]


@contextmanager
def one_story(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    pool: CondorPool,
    broken_image: bool = False,
) -> Iterator[OneStory]:
    """One OpenNebula entry (1-cpu instances), a request on the real pool, the boot
    emulator and the operator process; all of it removed after (while the operator runs,
    so finalizers let go)."""
    entry, td, image = f"{namespace}-one", f"{namespace}-onetd", f"{namespace}-oneimg"
    operator_id = story_operator_id(namespace)
    with (
        FakeOpenNebula(users={USER: PASSWORD}) as one,
        OpenNebulaBootEmulator(
            one,
            condor,
            condor_tmp / f"one-vms-{namespace}",
            broken_images=frozenset({IMAGE_ID} if broken_image else ()),
        ) as boot,
    ):
        docs = [
            trust_domain(td, ["opennebula-user-password"]),
            vm_image(image, [{"cloud": "opennebula", "region": "default", "imageId": IMAGE_ID}]),
            cloud_entry(
                entry,
                {
                    "type": "opennebula",
                    "trustDomain": td,
                    "site": "NEBULA",
                    "vmImage": image,
                    "opennebula": {"endpoint": one.endpoint, "templateId": TEMPLATE_ID},
                    "instanceTypes": [
                        {"name": "one.small", "cpus": 1, "memory": "2Gi", "disk": "10Gi"}
                    ],
                    "limits": {"maxPilots": 10},
                },
            ),
            *_request(namespace, pool, entry, td),
        ]
        with operator_on(cluster, namespace, condor_tmp, docs) as operator:
            s = OneStory(cluster, namespace, pool, one, boot, operator, operator_id, entry)
            try:
                yield s
            except BaseException:
                diagnose(
                    s.cluster,
                    s.namespace,
                    s.operator.log,
                    f"VMs {[(v.id, v.name, v.state, v.lcm_state) for v in s.one.vms.values()]}",
                    s.boot,
                )
                raise


def test_jobs_run_on_opennebula_pilots_which_power_off_and_are_reaped(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    story_pool: CondorPool,  # noqa: F811
) -> None:
    pool = story_pool
    with one_story(cluster, namespace, condor, condor_tmp, pool) as s:
        cluster_id = pool.submit(
            job(
                arguments="5",
                extra=['+Story = "opennebula"', "job_machine_attrs = GLIDEIN_Entry_Name"],
            ),
            JOBS,
        )
        t0 = time.monotonic()
        registrations = Registrations(pool)
        run = wait_for_jobs(pool, cluster_id, JOBS, 180, registrations.look)
        first_running, all_done_after, rows = run.first_running, run.all_done, run.rows
        # Every job ran, on a pilot of the OpenNebula entry.
        assert rows == [["4", "0", s.entry]] * JOBS

        launched = sorted(s.one.vms)
        assert 1 <= len(launched) <= MAX_PILOTS
        assert (
            sorted(int(k) for k in s.boot.vms) == launched
        )  # every VM the operator made booted a pilot
        # Each pilot found its payload on the context disk and said so through OneGate;
        # the operator's driver reads it back as the VM's console.
        driver = s.driver()
        pilots = driver.list_pilots()
        assert sorted(int(p.cloud_id) for p in pilots) == launched
        for p in pilots:
            console = driver.console_log(p)
            assert "from opennebula-context" in console, console
            assert f"pilot {p.pilot_id}," in console, console
        # Idle pilots power off: the VMs go POWEROFF, and the operator reaps them.
        eventually(lambda: s.one.live() == [], 120, "no VM left alive", interval=1)
        reaped_after = time.monotonic() - t0
        assert s.boot.errors == []
        assert all(vm.machine.powered_off for vm in s.boot.vms.values())
        assert s.one.calls["vm.action"] >= len(launched)  # terminated by the operator
        print(
            f"\nOpenNebula story: first job running after {first_running:.1f}s, all {JOBS} "
            f"done after {all_done_after:.1f}s, {len(launched)} pilots launched "
            f"(max {MAX_PILOTS}), every VM powered off and reaped after {reaped_after:.1f}s, "
            + registrations.summary(list(s.boot.vms.values()))
        )


def test_an_image_that_does_not_boot_on_opennebula_costs_one_launch_and_says_so(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    open_pool: CondorPool,  # noqa: F811
) -> None:
    """As on EC2, with OpenNebula's own end: the VM panics and sits in POWEROFF; the
    operator judges it (it never registered), backs off, says so, and terminates it."""
    pool = open_pool
    with one_story(cluster, namespace, condor, condor_tmp, pool, broken_image=True) as s:
        pool.submit(job(arguments="5", extra=['+Story = "opennebula"']), 2)
        message = eventually(
            lambda: degraded(s.status(), "PilotsNotRegistering"),
            120,
            "a Degraded condition on the entry",
            interval=1,
        )
        spent = sorted(s.one.vms)
        assert 1 <= len(spent) <= 2  # the first launch's worth, then a back-off
        unregistered_logs(s.status())
        assert "PilotsNotRegistering" in event_reasons(s.cluster, s.namespace)
        eventually(
            lambda: not (set(s.one.live()) & set(spent)), 60, "the dead VMs reaped", interval=1
        )
        print(f"\nbroken image on OpenNebula as the operator says it: {message}")
