"""Many requests on a few entries, reconciled together as kopf's timers do, against fake
drivers kept per entry and credential as ``Runtime.driver`` keeps the real ones, on a
clock the test moves. The cloud calls are read from the drivers' own metrics."""

from __future__ import annotations

import asyncio
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
from glidein_operator.controller.keeper import Credential
from glidein_operator.controller.reconcile import World, reconcile
from glidein_operator.controller.runtime import Runtime, Settings
from glidein_operator.ground import PilotState
from tests.support.planning import grid_spec

START = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
SIGNING_KEY = bytes(range(64))


def grid_entry(name: str) -> tuple[CloudEntrySpec, dict[str, str], int]:
    types = [{"name": "4c", "cpus": 4, "memory": "8Gi"}]
    limits = {"maxPilots": 100_000, "maxLaunchPerCycle": 10_000}
    return grid_spec(name, types=types, limits=limits), {}, 1


def request_spec(schedd: str, secret: str = "tok") -> GlideinRequestSpec:  # noqa: S107
    return GlideinRequestSpec.model_validate(
        {
            "collector": "pool.example.org:9618",
            "schedds": [{"name": schedd}],
            "credentials": [
                {"trustDomain": "osg", "type": "scitoken", "secretRef": {"name": secret}}
            ],
            "pilot": {"tokenSecretRef": {"name": "pool"}},
            "limits": {"maxPilots": 100_000, "maxPilotsPerEntry": 100_000},
        }
    )


class World_:
    """``requests`` requests (namespace r{i}) on ``entries`` grid entries."""

    def __init__(
        self,
        requests: int,
        entries: int,
        *,
        secrets: dict[int, str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.now = START
        self.names = [f"e{i}" for i in range(entries)]
        self.pool = FakePool(schedds={f"schedd{r}@submit.test": [] for r in range(requests)})
        self.fakes: dict[tuple[str, str], FakeDriver] = {}
        self.wrapped: dict[tuple[str, str], InstrumentedDriver] = {}
        self.rt = Runtime(
            Settings(**{"reconcile_interval": 1.0, **(settings or {})}),  # type: ignore[arg-type]
            pool_factory=lambda _c, _t: self.pool,
            clock=lambda: self.now,
        )
        # Shared by all requests for a cycle, as Runtime.reader's is.
        reader = PoolReader(self.pool, ttl=0.8, clock=lambda: self.now.timestamp())
        self.rt.reader = lambda *_: reader  # type: ignore[method-assign]

        async def secret(_ns: str, _name: str) -> tuple[dict[str, bytes], str]:
            # One credential value per Secret name: Secrets of one name are one account.
            return {"token": f"scitoken-{_name}".encode(), "signingKey": SIGNING_KEY}, "1"

        self.rt.secret = secret  # type: ignore[method-assign]

        def driver(entry: str, _spec: Any, _gen: int, cred: Credential) -> InstrumentedDriver:
            # As Runtime.driver: one per entry and credential.
            key = (entry, cred.values["token"].decode())
            if key not in self.wrapped:
                self.fakes[key] = FakeDriver(entry, clock=lambda: self.now)
                self.wrapped[key] = InstrumentedDriver(
                    self.fakes[key], launches_per_minute=10**6, metrics=self.rt.metrics
                )
            return self.wrapped[key]

        self.rt.driver = driver  # type: ignore[method-assign]
        self.world = World(
            entries={e: grid_entry(e) for e in self.names},
            domains={"osg": TrustDomainSpec.model_validate({"credentialTypes": ["scitoken"]})},
        )
        self.requests = [
            (
                f"r{r}",
                f"{r:08x}-0fa5-4000-8000-000000000000",
                request_spec(f"schedd{r}@submit.test", (secrets or {}).get(r, "tok")),
            )
            for r in range(requests)
        ]
        self.status: dict[str, dict[str, Any]] = {uid: {} for _n, uid, _s in self.requests}
        self.events: list[tuple[str, str, str]] = []

    def submit(self, request: int, jobs: int) -> None:
        self.pool.submit(
            f"schedd{request}@submit.test",
            jobs,
            RequestCpus=4,
            RequestMemory=4000,
            RequestDisk=1000,
            Requirements=classad2.ExprTree("TARGET.Cpus >= RequestCpus"),
        )

    def calls(self, operation: str) -> int:
        """Calls of ``operation`` at every entry, as the drivers' metrics count them."""
        return sum(
            int(sample.value)
            for family in self.rt.metrics.calls.collect()
            for sample in family.samples
            if sample.name.endswith("_count") and sample.labels["operation"] == operation
        )

    async def reconcile_one(self, request: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reconcile request number ``request`` once, as its kopf timer does; its status
        before and after (kept for its next reconcile)."""
        name, uid, spec = self.requests[request]
        old = dict(self.status[uid])
        out = await reconcile(
            self.rt,
            name=name,
            namespace=name,
            uid=uid,
            generation=1,
            spec=spec,
            old_status=old,
            world=self.world,
            emit=lambda *e: self.events.append(e),
        )
        self.status[uid].update(out.status)
        return old, out.status

    async def cycle(self, seconds: float = 1.0) -> int:
        """Move the clock, reconcile every request at once; the listings this made."""
        self.now += dt.timedelta(seconds=seconds)
        before = self.calls("list")
        await asyncio.gather(*(self.reconcile_one(i) for i in range(len(self.requests))))
        return self.calls("list") - before

    def start_all(self) -> None:
        """Every pilot booted an hour ago and runs a job: the clouds have settled."""
        ads = []
        for fake in self.fakes.values():
            for p in list(fake.pilots.values()):
                if p.state is PilotState.PENDING:
                    fake.set_state(
                        p.cloud_id, PilotState.RUNNING, launched_at=self.now - dt.timedelta(hours=1)
                    )
                    ad = classad2.ClassAd()
                    ad[PILOT_ID] = p.pilot_id
                    ad[PILOT_REQUEST] = p.request_uid
                    ad[PILOT_ENTRY] = p.entry
                    ad["Name"] = f"slot1@{p.pilot_id}"
                    ad["State"], ad["Activity"] = "Claimed", "Busy"
                    ad["Cpus"], ad["TotalSlotCpus"] = 4, 4
                    ads.append(ad)
        self.pool.advertise(ads)
        for schedd in self.pool.schedds:
            self.pool.set_status(schedd, "true", 2)  # their jobs run

    def alive(self) -> int:
        return sum(len(f.alive()) for f in self.fakes.values())
