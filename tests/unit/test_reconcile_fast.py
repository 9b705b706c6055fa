"""The whole reconcile (observe, decide, act, report) against programmable fake drivers
and an in-memory schedd: what a user sees when a cloud fails, in milliseconds."""

from __future__ import annotations

from typing import Any

import classad2
import pytest

from glidein_devkit.fake_driver import FakeDriver
from glidein_devkit.fake_pool import FakePool
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.clouds.base import InsufficientCapacity
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.condor.reader import PoolReader
from glidein_operator.controller.reconcile import Outcome, World
from glidein_operator.controller.runtime import Runtime, Settings
from glidein_operator.ground import PilotState
from tests.support.planning import grid_spec
from tests.support.simulation import reconcile_once

SCHEDD = "schedd@submit.test"
UID = "0fa57e57-0000-4000-8000-000000000001"
SECRETS = {"token": b"scitoken-value", "signingKey": bytes(range(64))}


def _entry(name: str) -> tuple[CloudEntrySpec, dict[str, str], int]:
    return grid_spec(name, types=[{"name": "4c", "cpus": 4, "memory": "8Gi"}]), {}, 1


class Rig:
    def __init__(self, entries: list[str]) -> None:
        self.pool = FakePool(schedds={SCHEDD: []})
        self.fakes = {e: FakeDriver(e) for e in entries}
        self.events: list[tuple[str, str, str]] = []
        self.status: dict[str, Any] = {}
        rt = Runtime(
            Settings(reconcile_interval=5.0),  # type: ignore[call-arg]
            pool_factory=lambda _c, _t: self.pool,
        )
        wrapped = {
            e: InstrumentedDriver(f, launches_per_minute=10**6, metrics=rt.metrics)
            for e, f in self.fakes.items()
        }

        async def secret(_ns: str, _name: str) -> tuple[dict[str, bytes], str]:
            return dict(SECRETS), "1"

        reader = PoolReader(self.pool, ttl=0)
        rt.secret = secret  # type: ignore[method-assign]
        rt.driver = lambda entry, *_: wrapped[entry]  # type: ignore[method-assign]
        rt.reader = lambda *_: reader  # type: ignore[method-assign]
        self.rt = rt
        self.world = World(
            entries={e: _entry(e) for e in entries},
            domains={"osg": _domain()},
        )
        self.spec = GlideinRequestSpec.model_validate(
            {
                "collector": "pool.example.org:9618",
                "schedds": [{"name": SCHEDD}],
                "credentials": [
                    {"trustDomain": "osg", "type": "scitoken", "secretRef": {"name": "tok"}}
                ],
                "pilot": {"tokenSecretRef": {"name": "pool"}},
            }
        )

    def submit(self, n: int) -> None:
        self.pool.submit(
            SCHEDD,
            n,
            RequestCpus=4,
            RequestMemory=4000,
            RequestDisk=1000,
            Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
        )

    def cycle(self) -> Outcome:
        out = reconcile_once(self, "vo", UID)
        self.status.update(out.status)
        return out

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)


def _domain() -> Any:
    from glidein_operator.api.trustdomain import TrustDomainSpec

    return TrustDomainSpec.model_validate({"credentialTypes": ["scitoken"]})


def test_a_cloud_without_capacity_is_degraded_and_the_other_entry_carries_on() -> None:
    rig = Rig(["a", "b"])
    rig.submit(8)
    rig.fakes["a"].fail_next("launch", InsufficientCapacity("no 4c left in the zone"))
    out = rig.cycle()
    assert out.launched == len(rig.fakes["b"].alive()) > 0
    assert rig.fakes["a"].alive() == []
    degraded = rig.condition("Degraded")
    assert degraded["status"] == "True"
    assert "a: InsufficientCapacity: no 4c left in the zone" in degraded["message"]
    assert ("Warning", "LaunchFailed", "a: InsufficientCapacity: no 4c left in the zone") in (
        rig.events
    )
    # While it backs off nothing is asked of it, and the jobs it would have taken go to
    # the entry that works.
    rig.cycle()
    assert len(rig.fakes["a"].called("launch")) == 1
    rows = {r["name"]: r for r in rig.status["entries"]}
    assert rows["a"]["boundBy"] == "backoff"
    assert rows["b"]["wanted"] == 8
    assert len(rig.fakes["b"].alive()) == 8


def test_a_bug_in_a_driver_fails_the_reconcile_loudly_not_as_a_degraded_entry() -> None:
    rig = Rig(["a"])
    rig.submit(2)
    rig.fakes["a"].fail_next("list", TypeError("'NoneType' object is not subscriptable"))
    with pytest.raises(TypeError):
        rig.cycle()


def test_pilots_that_never_start_are_cancelled_when_the_jobs_go() -> None:
    rig = Rig(["a"])
    rig.submit(4)
    rig.cycle()
    assert len(rig.fakes["a"].alive()) == 4  # a 4-core job per 4-core pilot
    rig.pool.schedds[SCHEDD] = []
    out = rig.cycle()
    assert out.terminated == 4
    assert all(p.state is PilotState.TERMINATED for p in rig.fakes["a"].pilots.values())
    assert any(e[1] == "ScaledDown" for e in rig.events)
