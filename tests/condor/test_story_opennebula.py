"""The story on OpenNebula, real: jobs on a real schedd, the operator (its own process, a
real kube-apiserver) instantiates VMs on the OpenNebula double, each boots the real pilot
from its context disk (glidein_devkit/boot_opennebula), which joins the real pool with the
operator's token, posts its boot log through OneGate, runs the jobs, goes idle and powers
off; the VM sits in POWEROFF (OpenNebula has no terminate-on-shutdown) until the
operator reaps it, and nothing is left."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import pytest

from glidein_devkit.boot_opennebula import OpenNebulaBootEmulator
from glidein_devkit.condor_pool import CondorPool
from glidein_devkit.opennebula_fake import FakeOpenNebula
from glidein_operator.api.cloudentry import OpenNebulaSettings
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from tests.condor.support import MAX_PILOTS, Stage, Story, eventually, story_entry, told
from tests.support.documents import Names, secret

pytestmark = pytest.mark.integration

JOBS = 4
USER, PASSWORD = "glidein", "secret"
IMAGE_ID = "1342"  # the fake's image
TEMPLATE_ID = 42  # the fake's VM template
ONE_SMALL = {"name": "one.small", "cpus": 1, "memory": "2Gi", "disk": "10Gi"}


@dataclass
class OneStory(Story, cloud="opennebula"):
    one: FakeOpenNebula

    def machines(self) -> str:
        return f"VMs {[(v.id, v.name, v.state, v.lcm_state) for v in self.one.vms.values()]}"

    @cached_property
    def driver(self) -> OpenNebulaDriver:
        """The operator's own driver for the entry, to read what it reads."""
        return OpenNebulaDriver(
            self.entry,
            OpenNebulaSettings(endpoint=self.one.endpoint, templateId=TEMPLATE_ID),
            username=USER,
            password=PASSWORD,
            operator_id=self.operator_id,
        )


@contextmanager
def one_story(stage: Stage, pool: CondorPool, broken_image: bool = False) -> Iterator[OneStory]:
    """One OpenNebula entry (1-cpu instances), a request on the real pool, the boot
    emulator and the operator process; all of it removed after (while the operator runs,
    so finalizers let go)."""
    ns = stage.namespace
    names = Names(f"{ns}-one", f"{ns}-onetd", f"{ns}-oneimg")
    with FakeOpenNebula(users={USER: PASSWORD}) as one:
        broken = IMAGE_ID if broken_image else None
        with stage.emulator(OpenNebulaBootEmulator, one, broken) as boot:
            settings = {"endpoint": one.endpoint, "templateId": TEMPLATE_ID}
            location = ("default", IMAGE_ID)
            entry = story_entry("opennebula", names, location, settings, ONE_SMALL, "NEBULA")
            user = secret(ns, "one", {"username": USER, "password": PASSWORD})
            yield from told(OneStory, stage, pool, boot, names, entry, user, one)


def test_jobs_run_on_opennebula_pilots_which_power_off_and_are_reaped(
    stage: Stage, own_pool: CondorPool
) -> None:
    with one_story(stage, own_pool) as s:
        t0 = time.monotonic()
        run = s.run_jobs(JOBS, 180)  # every job runs, on a pilot of the OpenNebula entry

        launched = sorted(s.one.vms)
        assert 1 <= len(launched) <= MAX_PILOTS
        assert (
            sorted(int(k) for k in s.boot.vms) == launched
        )  # every VM the operator made booted a pilot
        # Each pilot found its payload on the context disk and said so through OneGate;
        # the operator's driver reads it back as the VM's console.
        driver = s.driver
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
            f"\nOpenNebula story: first job running after {run.first_running:.1f}s, all {JOBS} "
            f"done after {run.all_done:.1f}s, {len(launched)} pilots launched "
            f"(max {MAX_PILOTS}), every VM powered off and reaped after {reaped_after:.1f}s, "
            + s.registered()
        )


def test_an_image_that_does_not_boot_on_opennebula_costs_one_launch_and_says_so(
    stage: Stage, open_pool: CondorPool
) -> None:
    """As on EC2, with OpenNebula's own end: the VM panics and sits in POWEROFF; the
    operator judges it (it never registered), backs off, says so, and terminates it."""
    with one_story(stage, open_pool, broken_image=True) as s:
        s.submit(2)
        message = s.wait_degraded("PilotsNotRegistering", 120, interval=1)
        spent = sorted(s.one.vms)
        assert 1 <= len(spent) <= 2  # the first launch's worth, then a back-off
        s.judged("PilotsNotRegistering")
        eventually(
            lambda: not (set(s.one.live()) & set(spent)), 60, "the dead VMs reaped", interval=1
        )
        print(f"\nbroken image on OpenNebula as the operator says it: {message}")
