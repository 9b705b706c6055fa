"""The whole story, real: jobs on a real schedd, the operator (its own process, a real
kube-apiserver) launches EC2 instances on the test server, each boots the real pilot
(boot emulator), which joins the real pool with the operator's token, runs the jobs, goes
idle and powers off; EC2 terminates it, and nothing is left. And when the pool refuses
the pilots, the operator says why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from glidein_devkit.boot import Ec2BootEmulator
from glidein_devkit.condor_pool import CondorPool, job
from glidein_devkit.ec2server import Ec2Server
from tests.condor.support import MAX_PILOTS, Stage, Story, ec2_docs, ec2_names, eventually, told
from tests.support.documents import EC2_TESTING, secret

pytestmark = pytest.mark.integration

JOBS = 6


@dataclass
class Ec2Story(Story, cloud="ec2"):
    ec2: Ec2Server

    def machines(self) -> str:
        return f"instances {self.ec2.instances()}"


@contextmanager
def ec2_story(
    stage: Stage, pool: CondorPool, refused: bool = False, broken_image: bool = False
) -> Iterator[Ec2Story]:
    """One EC2 entry, a request on the real pool, the boot emulator and the operator
    process; all of it removed after (while the operator runs, so finalizers let go)."""
    ns, names = stage.namespace, ec2_names(stage.namespace)
    with Ec2Server() as ec2:
        broken = ec2.image_id() if broken_image else None
        with stage.emulator(Ec2BootEmulator, ec2, broken) as boot:
            aws, entry = secret(ns, "aws", EC2_TESTING), ec2_docs(names, ec2)
            yield from told(Ec2Story, stage, pool, boot, names, entry, aws, ec2, refused=refused)


def test_jobs_run_on_pilots_the_operator_launched_and_nothing_is_left(
    stage: Stage, own_pool: CondorPool
) -> None:
    with ec2_story(stage, own_pool) as s:
        # A job no entry can run: it gets no pilot, and the request says why.
        s.pool.submit(
            job(arguments="1", requirements="TARGET.HAS_QUANTUM =?= true", extra=['+Story = "ec2"'])
        )
        seen_running = 0

        def watch() -> None:
            nonlocal seen_running
            seen_running = max(seen_running, int(s.status().get("totals", {}).get("running", 0)))

        # Every job runs, on a pilot of the entry the plan chose.
        run = s.run_jobs(JOBS, 300, watch)
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
            f"\nEC2 story: first job running after {run.first_running:.1f}s, all {JOBS} done "
            f"after {run.all_done:.1f}s, {len(launched)} pilots launched (max {MAX_PILOTS}), "
            + s.registered()
        )


def test_pilots_the_collector_refuses_are_reaped_and_the_reason_is_said(
    stage: Stage, open_pool: CondorPool
) -> None:
    with ec2_story(stage, open_pool, refused=True) as s:
        s.submit(2)
        message = s.refused()
        spent_then = len(s.ec2.instances())
        s.judged("PilotRefused", "the collector refused this pilot's ad")
        # The pilots saw it themselves and powered off at once (EC2 terminated them);
        # the first launch's worth was spent on finding out, and launches back off.
        assert spent_then <= 2
        assert all(i["state"] == "terminated" for i in s.ec2.instances()[:spent_then])
        assert s.pool.tool("condor_history", "-af", "ClusterId").stdout.strip() == ""
        print(f"\nrefusal as the operator says it: {message}")


def test_an_image_that_does_not_boot_costs_one_launch_and_says_so(
    stage: Stage, open_pool: CondorPool
) -> None:
    with ec2_story(stage, open_pool, broken_image=True) as s:
        s.submit(2)
        message = s.wait_degraded("PilotsNotRegistering", 120, interval=1)
        assert len(s.ec2.instances()) <= 2  # the first launch's worth, then a back-off
        s.judged("PilotsNotRegistering", "Kernel panic")
        print(f"\nbroken image as the operator says it: {message}")
