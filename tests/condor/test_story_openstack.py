"""The story on OpenStack, real: jobs on a real schedd, the operator (its own process, a
real kube-apiserver) creates servers on the Nova fake, each boots the real pilot (boot
emulator: the payload from Nova's metadata service or the config drive), which joins the
real pool, runs the jobs, goes idle and powers off; the server goes SHUTOFF and stays, as
on OpenStack, and the operator deletes it and its batch's key pair: nothing is left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest

from glidein_devkit.boot_openstack import OpenStackBootEmulator
from glidein_devkit.condor_pool import CondorPool
from glidein_devkit.openstack_fake import FakeOpenStack
from glidein_operator.api.cloudentry import OpenStackSettings
from glidein_operator.clouds.openstack import OpenStackDriver
from glidein_operator.ground import PilotState
from glidein_operator.provisioning.lifecycle import Reap
from tests.condor.support import MAX_PILOTS, Stage, Story, eventually, story_entry, told
from tests.support.documents import Names, secret

pytestmark = pytest.mark.integration

JOBS = 4
FLAVOR = "g1.small"  # one vcpu
CREDENTIALS = {"username": "glidein", "password": "secret"}


@dataclass
class OpenStackStory(Story, cloud="openstack"):
    boot: OpenStackBootEmulator
    nova: FakeOpenStack
    settings: dict[str, Any]  # the entry's

    def machines(self) -> str:
        return f"servers {[(x['name'], x['status']) for x in self.servers()]} {self.key_pairs()}"

    def servers(self) -> list[dict[str, Any]]:
        with self.nova.state.lock:
            return [dict(s) for s in self.nova.state.servers.values()]

    def key_pairs(self) -> list[str]:
        with self.nova.state.lock:
            return sorted(self.nova.state.keypairs)

    @cached_property
    def driver(self) -> OpenStackDriver:
        """The operator's own driver for the entry, as the test reads the cloud (consoles)."""
        return OpenStackDriver(
            self.entry,
            OpenStackSettings.model_validate(self.settings),
            credentials=CREDENTIALS,
            operator_id=self.operator_id,
        )


@contextmanager
def openstack_story(
    stage: Stage, pool: CondorPool, refused: bool = False
) -> Iterator[OpenStackStory]:
    """One OpenStack entry (with a config drive), a request on the real pool, the boot
    emulator and the operator process; all of it removed after, while the operator runs."""
    ns = stage.namespace
    names = Names(f"{ns}-nova", f"{ns}-os", f"{ns}-img")
    with FakeOpenStack() as nova, stage.emulator(OpenStackBootEmulator, nova) as boot:
        nova.add_flavor(FLAVOR, 1, 2048, 20)
        settings = {
            "authUrl": nova.auth_url,
            "region": "RegionOne",
            "projectName": nova.state.project,
            "configDrive": True,
        }
        flavor = {"name": FLAVOR, "cpus": 1, "memory": "2Gi", "disk": "10Gi"}
        location = ("RegionOne", nova.image_id)
        entry = story_entry("openstack", names, location, settings, flavor, "NOVA")
        user = secret(ns, "nova", CREDENTIALS)
        yield from told(
            OpenStackStory, stage, pool, boot, names, entry, user, nova, settings, refused=refused
        )


def test_jobs_run_on_openstack_pilots_which_shut_off_and_are_reaped(
    stage: Stage, own_pool: CondorPool
) -> None:
    with openstack_story(stage, own_pool) as s:
        console = ""

        def read_console() -> None:
            nonlocal console
            if not console:  # a running pilot's console, through the operator's driver
                running = [p for p in s.driver.list_pilots() if p.state is PilotState.RUNNING]
                for p in running:
                    text = s.driver.console_log(p)
                    if "glidein-pilot: payload" in text:
                        console = text

        # Every job runs, on a pilot of the OpenStack entry.
        run = s.run_jobs(JOBS, 240, read_console)
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
            f"\nOpenStack story: first job running after {run.first_running:.1f}s, all {JOBS} "
            f"done after {run.all_done:.1f}s, {launched} pilots launched (max {MAX_PILOTS}; "
            f"payload from {sorted(s.boot.sources.values())}), " + s.registered()
        )


def test_servers_whose_pilot_the_collector_refuses_are_judged_and_reaped(
    stage: Stage, open_pool: CondorPool
) -> None:
    """As on EC2, with OpenStack's own end: the pilot powers off, the server sits SHUTOFF,
    and the operator says why (the collector's words) before it deletes it."""
    with openstack_story(stage, open_pool, refused=True) as s:
        s.submit(2)
        message = s.refused()
        spent = sorted(s.boot.vms)
        assert 1 <= len(spent) <= 2  # the first launch's worth, then a back-off
        logs = s.judged("PilotRefused", "the collector refused this pilot's ad")
        assert all("[fake-nova] booting glidein-" in x["log"] for x in logs)  # Nova's console
        # Each went SHUTOFF by its own pilot, and the operator deleted it.
        assert set(spent) <= set(s.boot.shut_off)
        eventually(
            lambda: not ({x["id"] for x in s.servers()} & set(spent)),
            60,
            "the refused servers deleted",
            interval=1,
        )
        assert open_pool.tool("condor_history", "-af", "ClusterId").stdout.strip() == ""
        print(f"\nOpenStack refusal as the operator says it: {message}")
