"""The story on OpenStack, real: jobs on a real schedd, the operator (its own process, a
real kube-apiserver) creates servers on the Nova fake, each boots the real pilot (boot
emulator: the payload from Nova's metadata service or the config drive), which joins the
real pool, runs the jobs, goes idle and powers off; the server goes SHUTOFF and stays, as
on OpenStack, and the operator deletes it and its batch's key pair: nothing is left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glidein_devkit.boot_openstack import OpenStackBootEmulator
from glidein_devkit.condor_pool import CondorInstall, CondorPool, job
from glidein_devkit.openstack_fake import FakeOpenStack
from glidein_devkit.resources import cloud_entry, trust_domain, vm_image
from glidein_operator.api.cloudentry import OpenStackSettings
from glidein_operator.clouds.openstack import OpenStackDriver
from glidein_operator.ground import PilotState
from glidein_operator.provisioning.lifecycle import Reap
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
from tests.condor.test_story_ec2 import _request, open_pool, story_pool  # noqa: F401 (fixtures)
from tests.integration.process_world import OperatorProcess
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration

JOBS = 4
MAX_PILOTS = 4
FLAVOR = "g1.small"  # one vcpu
CREDENTIALS = {"username": "glidein", "password": "secret"}


@dataclass
class OpenStackStory:
    cluster: Cluster
    namespace: str
    pool: CondorPool
    nova: FakeOpenStack
    boot: OpenStackBootEmulator
    operator: OpenStackDriver
    process: OperatorProcess
    entry: str

    def status(self) -> dict[str, Any]:
        return request_status(self.cluster, self.namespace)

    def servers(self) -> list[dict[str, Any]]:
        with self.nova.state.lock:
            return [dict(s) for s in self.nova.state.servers.values()]

    def key_pairs(self) -> list[str]:
        with self.nova.state.lock:
            return sorted(self.nova.state.keypairs)


@contextmanager
def openstack_story(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    pool: CondorPool,
    spec: dict[str, Any] | None = None,
    pilot: dict[str, Any] | None = None,
) -> Iterator[OpenStackStory]:
    """One OpenStack entry (with a config drive), a request on the real pool, the boot
    emulator and the operator process; all of it removed after, while the operator runs."""
    entry, td, image = f"{namespace}-nova", f"{namespace}-os", f"{namespace}-img"
    with (
        FakeOpenStack() as nova,
        OpenStackBootEmulator(nova, condor, condor_tmp / f"vms-{namespace}") as boot,
    ):
        nova.add_flavor(FLAVOR, 1, 2048, 20)
        settings = {
            "authUrl": nova.auth_url,
            "region": "RegionOne",
            "projectName": nova.state.project,
            "configDrive": True,
        }
        request = _request(namespace, pool, entry, td, pilot or {})
        request[0]["stringData"] = CREDENTIALS  # the Secret the request names
        request_spec = request[-1]["spec"]
        request_spec["jobConstraint"] = 'Story =?= "openstack"'
        request_spec["credentials"][0]["type"] = "openstack-password"
        request_spec.update(spec or {})
        docs = [
            trust_domain(td, ["openstack-password"]),
            vm_image(
                image, [{"cloud": "openstack", "region": "RegionOne", "imageId": nova.image_id}]
            ),
            cloud_entry(
                entry,
                {
                    "type": "openstack",
                    "trustDomain": td,
                    "site": "NOVA",
                    "vmImage": image,
                    "openstack": settings,
                    "instanceTypes": [{"name": FLAVOR, "cpus": 1, "memory": "2Gi", "disk": "10Gi"}],
                    "limits": {"maxPilots": 10},
                },
            ),
            *request,
        ]
        # The operator's own driver, as the test reads the cloud (console output).
        driver = OpenStackDriver(
            entry,
            OpenStackSettings.model_validate(settings),
            credentials=CREDENTIALS,
            operator_id=story_operator_id(namespace),
        )
        with operator_on(cluster, namespace, condor_tmp, docs) as process:
            s = OpenStackStory(cluster, namespace, pool, nova, boot, driver, process, entry)
            try:
                yield s
            except BaseException:
                diagnose(
                    s.cluster,
                    s.namespace,
                    s.process.log,
                    f"servers {[(x['name'], x['status']) for x in s.servers()]} {s.key_pairs()}",
                    s.boot,
                )
                raise


def test_jobs_run_on_openstack_pilots_which_shut_off_and_are_reaped(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    story_pool: CondorPool,  # noqa: F811 (the fixture imported above)
) -> None:
    pool = story_pool
    with openstack_story(cluster, namespace, condor, condor_tmp, pool) as s:
        cluster_id = pool.submit(
            job(
                arguments="5",
                extra=['+Story = "openstack"', "job_machine_attrs = GLIDEIN_Entry_Name"],
            ),
            JOBS,
        )
        console = ""
        registrations = Registrations(pool)

        def read_console() -> None:
            nonlocal console
            registrations.look()
            if not console:  # a running pilot's console, through the operator's driver
                running = [p for p in s.operator.list_pilots() if p.state is PilotState.RUNNING]
                for p in running:
                    text = s.operator.console_log(p)
                    if "glidein-pilot: payload" in text:
                        console = text

        run = wait_for_jobs(pool, cluster_id, JOBS, 240, read_console)
        first_running, all_done_after, rows = run.first_running, run.all_done, run.rows
        # Every job ran, on a pilot of the OpenStack entry.
        assert rows == [["4", "0", s.entry]] * JOBS
        # The VM's boot log is the server's console output, as the operator reads it.
        assert "[fake-nova] booting glidein-" in console
        assert "glidein-pilot: payload v" in console

        launched = len(s.boot.vms)
        assert 1 <= launched <= MAX_PILOTS
        assert launched == len({vm.machine.name for vm in s.boot.vms.values()})
        # Each pilot found its payload where it was pointed: Nova's metadata service, or
        # (every other server) the config drive.
        logs = {sid: vm.machine.boot_log.read_text() for sid, vm in s.boot.vms.items()}
        for sid, where in s.boot.sources.items():
            source = {"metadata": "openstack-metadata", "drive": "openstack-config-drive"}[where]
            assert f"from {source}: pilot " in logs[sid], logs[sid]
        if launched >= 2:
            assert set(s.boot.sources.values()) == {"metadata", "drive"}

        # Idle pilots power off; their servers go SHUTOFF and the operator deletes them,
        # and each batch's key pair with its last server.
        eventually(lambda: s.servers() == [], 150, "every server reaped", interval=1)
        eventually(lambda: s.key_pairs() == [], 60, "no key pair left", interval=1)
        assert all(vm.machine.powered_off for vm in s.boot.vms.values())
        # Each server went SHUTOFF by its pilot's power-off, and was reaped as such.
        assert sorted(s.boot.shut_off) == sorted(s.boot.vms)
        reaped = s.cluster.kubectl(
            "get",
            "events",
            "-n",
            s.namespace,
            "--field-selector",
            "reason=Reaped",
            "-o",
            "jsonpath={.items[*].message}",
        ).stdout
        assert "stopped without terminating" in reaped
        assert not any(r.value in reaped for r in Reap if r is not Reap.SHUTDOWN), reaped
        assert s.boot.errors == []
        calls = s.nova.calls()
        assert calls.get("DELETE /compute/v2.1/servers/{id}", 0) >= launched
        print(
            f"\nOpenStack story: first job running after {first_running:.1f}s, all {JOBS} done "
            f"after {all_done_after:.1f}s, {launched} pilots launched (max {MAX_PILOTS}; "
            f"payload from {sorted(s.boot.sources.values())}), "
            + registrations.summary(list(s.boot.vms.values()))
        )


def test_servers_whose_pilot_the_collector_refuses_are_judged_and_reaped(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    open_pool: CondorPool,  # noqa: F811 (the fixture imported above)
) -> None:
    """As on EC2, with OpenStack's own end: the pilot powers off, the server sits SHUTOFF,
    and the operator says why (the collector's words) before it deletes it."""
    pool = open_pool
    with openstack_story(
        cluster,
        namespace,
        condor,
        condor_tmp,
        pool,
        spec={"poolTrustDomain": "cm.wrong.example.org"},
        pilot={"registrationTimeout": "40s"},
    ) as s:
        pool.submit(job(arguments="5", extra=['+Story = "openstack"']), 2)
        message = eventually(
            lambda: degraded(s.status(), "PilotsRefused"),
            180,
            "a Degraded condition naming the refusal",
            interval=2,
        )
        assert "Failed to authenticate using IDTOKENS" in message
        spent = sorted(s.boot.vms)
        assert 1 <= len(spent) <= 2  # the first launch's worth, then a back-off
        logs = unregistered_logs(s.status())
        assert all("the collector refused this pilot's ad" in x["log"] for x in logs)
        assert all("[fake-nova] booting glidein-" in x["log"] for x in logs)  # Nova's console
        assert "PilotRefused" in event_reasons(s.cluster, s.namespace)
        # Each went SHUTOFF by its own pilot, and the operator deleted it.
        assert set(spent) <= set(s.boot.shut_off)
        eventually(
            lambda: not ({x["id"] for x in s.servers()} & set(spent)),
            60,
            "the refused servers deleted",
            interval=1,
        )
        assert pool.tool("condor_history", "-af", "ClusterId").stdout.strip() == ""
        print(f"\nOpenStack refusal as the operator says it: {message}")
