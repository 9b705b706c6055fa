"""A pilot never outlives its use, whatever it does inside: the whole reconcile (observe,
decide, act, report) against programmable fake drivers, an in-memory pool and a clock
the test moves. What the operator does from outside when a pilot does not end itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

import classad2

from glidein_devkit.fake_driver import FakeDriver
from glidein_devkit.fake_pool import FakePool
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.condor.pilots import PILOT_ENTRY, PILOT_ID, PILOT_REQUEST
from glidein_operator.condor.reader import PoolReader
from glidein_operator.controller.reconcile import Outcome, World
from glidein_operator.controller.runtime import Runtime, Settings
from glidein_operator.ground import CloudPilot, PilotState
from tests.support.simulation import reconcile_once

SCHEDD = "schedd@submit.test"
UID = "0fa57e57-0000-4000-8000-0000000000e1"
SECRETS = {"token": b"scitoken-value", "signingKey": bytes(range(64))}
START = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - START).total_seconds()

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class Rig:
    """One request at one grid entry (a pod, a VM: the rules are the back end's states)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.pool = FakePool(schedds={SCHEDD: []})
        self.fake = FakeDriver("site", clock=self.clock)
        self.events: list[tuple[str, str, str]] = []
        self.status: dict[str, Any] = {}
        rt = Runtime(
            Settings(reconcile_interval=30.0),  # type: ignore[call-arg]
            pool_factory=lambda _c, _t: self.pool,
            clock=self.clock,
        )
        wrapped = InstrumentedDriver(
            self.fake, launches_per_minute=10**6, metrics=rt.metrics, clock=self.clock.monotonic
        )

        async def secret(_ns: str, _name: str) -> tuple[dict[str, bytes], str]:
            return dict(SECRETS), "1"

        reader = PoolReader(self.pool, ttl=0)
        rt.secret = secret  # type: ignore[method-assign]
        rt.driver = lambda *_: wrapped  # type: ignore[method-assign]
        rt.reader = lambda *_: reader  # type: ignore[method-assign]
        self.rt = rt
        self.world = World(
            entries={"site": (_entry(), {}, 1)},
            domains={"osg": TrustDomainSpec.model_validate({"credentialTypes": ["scitoken"]})},
        )
        self.spec = GlideinRequestSpec.model_validate(
            {
                "collector": "pool.example.org:9618",
                "schedds": [{"name": SCHEDD}],
                "credentials": [
                    {"trustDomain": "osg", "type": "scitoken", "secretRef": {"name": "tok"}}
                ],
                "pilot": {
                    "tokenSecretRef": {"name": "pool"},
                    "lifetime": "6h",
                    "retireBeforeEnd": "1h",
                    "idleTimeout": "20m",
                    "registrationTimeout": "15m",
                },
            }
        )

    def cycle(self) -> Outcome:
        out = reconcile_once(self, "vo", UID)
        self.status.update(out.status)
        return out

    def launch(self, n: int, *, jobs_stay: bool = False) -> list[CloudPilot]:
        """``n`` pilots launched for ``n`` jobs, which then leave the queue unless told."""
        self.pool.submit(SCHEDD, n, RequestCpus=4, RequestMemory=4000, RequestDisk=1000)
        self.cycle()
        if not jobs_stay:
            self.pool.schedds[SCHEDD] = []
        pilots = self.fake.alive()
        assert len(pilots) == n
        return pilots

    def run(self, pilot: CloudPilot) -> None:
        self.fake.set_state(pilot.cloud_id, PilotState.RUNNING, raw_state="running")

    def register(self, pilot: CloudPilot, state: str) -> None:
        """Its startd's ad in the collector: ``Unclaimed`` (idle) or ``Claimed``."""
        self.pool.invalidate(f'{PILOT_ID} == "{pilot.pilot_id}"')
        ad = classad2.ClassAd()
        ad["Name"] = f"slot1@{pilot.pilot_id}"
        ad["State"] = state
        ad["Activity"] = "Idle" if state == "Unclaimed" else "Busy"
        ad["Cpus"] = 4
        ad["TotalSlotCpus"] = 4
        ad[PILOT_ID] = pilot.pilot_id
        ad[PILOT_REQUEST] = UID
        ad[PILOT_ENTRY] = "site"
        self.pool.advertise([ad])

    def gone(self, pilot: CloudPilot) -> bool:
        return self.fake.pilots[pilot.cloud_id].state is PilotState.TERMINATED

    def kept_log(self, pilot: CloudPilot) -> dict[str, Any]:
        return next(x for x in self.status["pilotLogs"] if x["pilotId"] == pilot.pilot_id)

    def warnings(self, reason: str) -> list[str]:
        return [m for t, r, m in self.events if t == "Warning" and r == reason]


def _entry() -> CloudEntrySpec:
    return CloudEntrySpec.model_validate(
        {
            "type": "grid",
            "trustDomain": "osg",
            "site": "site",
            "grid": {
                "ceType": "condor",
                "endpoint": "ce.example.org:9619",
                "submitter": {
                    "collector": "submit.example.org",
                    "schedd": "glidein-submitter",
                    "tokenSecretRef": {"name": "submit-key"},
                },
            },
            "instanceTypes": [{"name": "4c", "cpus": 4, "memory": "8Gi"}],
        }
    )


def test_a_pilot_still_pending_after_the_registration_timeout_is_reaped_with_its_log() -> None:
    # A Nova server stuck in BUILD, a pod left Pending, a grid job idle at the CE: it
    # used to live until its lifetime plus 15 minutes.
    rig = Rig()
    stuck, fine = rig.launch(2, jobs_stay=True)  # not cancelled: their jobs still wait
    rig.fake.consoles[stuck.cloud_id] = "waiting in the CE's queue: no slot matches"
    rig.clock.advance(minutes=10)
    rig.run(fine)  # started, booting: it has until the timeout to register
    rig.cycle()
    assert not rig.gone(stuck)
    rig.clock.advance(minutes=6)
    rig.cycle()
    assert rig.gone(stuck)
    kept = rig.kept_log(stuck)
    assert kept["reason"] == "still pending past registrationTimeout"
    assert "no slot matches" in kept["log"]
    [warning] = [w for w in rig.warnings("PilotStuck") if stuck.pilot_id in w]
    assert "still pending past registrationTimeout" in warning
    assert "no slot matches" in warning
    # The one that started is judged by registration, like any booting pilot.
    assert rig.gone(fine)
    assert rig.kept_log(fine)["reason"] == "never registered"


def test_a_pilot_idle_past_its_idle_timeout_is_terminated_with_an_event() -> None:
    rig = Rig()
    idle, busy = rig.launch(2)
    for p in (idle, busy):
        rig.run(p)
    rig.register(idle, "Unclaimed")
    rig.register(busy, "Claimed")
    rig.cycle()  # first seen idle now
    rig.clock.advance(minutes=24)  # past idleTimeout, within its grace
    rig.cycle()
    assert not rig.gone(idle)
    rig.clock.advance(minutes=2)
    rig.cycle()
    assert rig.gone(idle)
    [warning] = rig.warnings("PilotIdleTooLong")
    assert idle.pilot_id in warning
    assert "idleTimeout" in warning
    assert not rig.gone(busy)  # a pilot running a job is never touched for idleness


def test_idle_time_restarts_when_the_pilot_takes_a_job() -> None:
    rig = Rig()
    [p] = rig.launch(1)
    rig.run(p)
    rig.register(p, "Unclaimed")
    rig.cycle()
    rig.clock.advance(minutes=20)
    rig.register(p, "Claimed")
    rig.cycle()
    rig.clock.advance(minutes=1)
    rig.register(p, "Unclaimed")
    rig.cycle()
    rig.clock.advance(minutes=20)
    rig.cycle()
    assert not rig.gone(p)  # idle 20 minutes since its job, not 41
    assert rig.warnings("PilotIdleTooLong") == []


def test_a_pilot_past_its_lifetime_and_the_grace_is_reaped_even_running_a_job() -> None:
    rig = Rig()
    [p] = rig.launch(1)
    rig.run(p)
    rig.register(p, "Claimed")
    rig.clock.advance(hours=6, minutes=14)
    rig.cycle()
    assert not rig.gone(p)
    rig.clock.advance(minutes=2)
    out = rig.cycle()
    assert rig.gone(p)
    assert out.terminated == 1
    assert any(r == "Reaped" and "1 outlived its lifetime" in m for _t, r, m in rig.events), (
        rig.events
    )


def test_vms_stopped_without_terminating_are_reaped() -> None:
    # OpenStack SHUTOFF and OpenNebula POWEROFF: a VM that ignored terminate-on-shutdown
    # still holds its quota (and, on some clouds, its cost).
    rig = Rig()
    shutoff, poweroff = rig.launch(2)
    rig.fake.set_state(shutoff.cloud_id, PilotState.SHUTDOWN, raw_state="SHUTOFF")
    rig.fake.set_state(poweroff.cloud_id, PilotState.SHUTDOWN, raw_state="POWEROFF/0")
    rig.cycle()
    assert rig.gone(shutoff)
    assert rig.gone(poweroff)
    assert any(r == "Reaped" and "2 stopped without terminating" in m for _t, r, m in rig.events), (
        rig.events
    )


def test_the_log_ends_a_failed_pilot_printed_are_kept_each_under_its_name() -> None:
    from glidein_operator.pilot import bundle

    rig = Rig()
    [p] = rig.launch(1)
    noise = "".join(f"[   {i}.000] kernel: boot noise\n" for i in range(3000))
    rig.fake.consoles[p.cloud_id] = "\n".join(
        [
            noise,
            *bundle.frame("MasterLog", "** condor_master STARTING UP", 8),
            *bundle.frame("StartLog", "ERROR: AUTHENTICATE:1003:Failed", 15),
            *bundle.frame("glidein-pilot.log", "glidein-pilot: FATAL: startd gone", 25),
        ]
    )
    rig.fake.set_state(p.cloud_id, PilotState.ERROR, raw_state="ERROR: boot failed")
    rig.cycle()
    kept = rig.kept_log(p)["log"]
    assert len(kept) <= 4000
    for line in ("--- MasterLog", "STARTING UP", "--- StartLog", "AUTHENTICATE:1003"):
        assert line in kept
    assert kept.endswith("glidein-pilot: FATAL: startd gone")
