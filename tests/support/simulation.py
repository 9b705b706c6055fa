"""The real reconcile driven through simulated weeks: a simulated clock, an emulated EC2
(``glidein_devkit.simcloud``), an in-memory schedd, status kept as kopf keeps it. Used by the
money tests and by ``python -m tests.benchmarks.budget_month``."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from glidein_devkit.fake_pool import FakePool
from glidein_devkit.simcloud import SimCloud
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import load
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.condor.reader import PoolReader
from glidein_operator.controller.reconcile import Outcome, World, reconcile
from glidein_operator.controller.runtime import Runtime, Settings
from glidein_operator.provisioning import status as st

ROOT = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SCHEDD = "schedd@sim.example.org"
UID = "5e1d0b3c-sim0-4000-8000-000000000001"
# Secrets are bytes, as the API server holds them; the signing key binary, as HTCondor writes it.
SECRET = {
    "accessKeyId": b"AKIASIMULATED",
    "secretAccessKey": b"simulated-secret",
    "signingKey": bytes(range(256))[::-5],
}


class Rig(Protocol):
    """What a reconcile is run with: the runtime, the world it sees, the request's spec,
    its status as stored and the Events emitted so far."""

    rt: Runtime
    world: World
    spec: GlideinRequestSpec
    status: dict[str, Any]
    events: list[tuple[str, str, str]]


def reconcile_once(rig: Rig, name: str, uid: str) -> Outcome:
    """One reconcile of the rig's request ``name`` (in the namespace of that name, its
    first generation), as kopf calls it; what it emits goes to ``rig.events``."""
    return asyncio.run(
        reconcile(
            rig.rt,
            name=name,
            namespace=name,
            uid=uid,
            generation=1,
            spec=rig.spec,
            old_status=dict(rig.status),
            world=rig.world,
            emit=lambda *e: rig.events.append(e),
        )
    )


def entry_spec(region: str, price: Decimal) -> CloudEntrySpec:
    return CloudEntrySpec.model_validate(
        {
            "type": "ec2",
            "trustDomain": "aws",
            "site": "T3_US_AWS",
            "vmImage": "glidein-el9-2026.11",
            "ec2": {"region": region},
            "instanceTypes": [
                {
                    "name": "m5.xlarge",
                    "cpus": 4,
                    "memory": "16Gi",
                    "disk": "100Gi",
                    "pricePerHour": price,
                }
            ],
            "limits": {"maxPilots": 100, "maxLaunchPerCycle": 100},
        }
    )


def request_spec(budget: dict[str, Any] | None) -> GlideinRequestSpec:
    return GlideinRequestSpec.model_validate(
        {
            "collector": "pool.sim.example.org:9618",
            "schedds": [{"name": SCHEDD}],
            "credentials": [
                {"trustDomain": "aws", "type": "ec2-access-key", "secretRef": {"name": "aws"}}
            ],
            "pilot": {
                "lifetime": "24h",
                "retireBeforeEnd": "1h",
                # Simulated pilots never join the pool: booting is their whole life.
                "registrationTimeout": "48h",
                "tokenSecretRef": {"name": "pool"},
            },
            "limits": {"maxPilots": 200},
            **({"budget": budget} if budget else {}),
        }
    )


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - START).total_seconds()


@dataclass
class Sim:
    """One request, two EC2 regions, a workload that comes and goes, prices that move."""

    budget: dict[str, Any] | None
    step: dt.timedelta = dt.timedelta(minutes=10)
    seed: int = 7
    clock: Clock = field(default_factory=lambda: Clock(START))
    pool: FakePool = field(default_factory=FakePool)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    writes: int = 0
    cycles: int = 0
    prices: dict[str, Decimal] = field(
        default_factory=lambda: {"east": Decimal("0.192"), "west": Decimal("0.25")}
    )

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.cloud = SimCloud(self.clock, seed=self.seed)
        self.spec = request_spec(self.budget)
        resources = load([ROOT / "examples"])
        self.world = World(
            entries={},
            domains={r.name: r.spec for r in resources if r.kind.kind == "TrustDomain"},  # type: ignore[misc]
            images={r.name: r.spec for r in resources if r.kind.kind == "VMImage"},  # type: ignore[misc]
        )
        self.generation = 0
        self._set_entries()
        self.restart()

    def _set_entries(self) -> None:
        self.generation += 1
        regions = {"east": "us-east-1", "west": "us-west-2"}
        self.world.entries = {
            n: (entry_spec(regions[n], p), {}, self.generation) for n, p in self.prices.items()
        }

    def restart(self) -> None:
        """A new operator process: nothing kept but the cloud and the status."""
        rt = Runtime(
            Settings(reconcile_interval=self.step.total_seconds()),
            pool_factory=lambda _c, _t: self.pool,
            clock=self.clock,
        )
        drivers: dict[str, InstrumentedDriver] = {}

        async def secret(_ns: str, _name: str) -> tuple[dict[str, bytes], str]:
            return dict(SECRET), "1"

        def driver(entry: str, *_a: Any) -> InstrumentedDriver:
            if entry not in drivers:
                drivers[entry] = InstrumentedDriver(
                    self.cloud.driver(entry),
                    launches_per_minute=10**6,
                    metrics=rt.metrics,
                    clock=self.clock.monotonic,
                )
            return drivers[entry]

        reader = PoolReader(self.pool, ttl=0)
        rt.secret = secret  # type: ignore[method-assign]
        rt.driver = driver  # type: ignore[method-assign]
        rt.reader = lambda *_a: reader  # type: ignore[method-assign]
        self.rt = rt

    def set_idle_jobs(self, n: int) -> None:
        self.pool.schedds[SCHEDD] = []
        if n:
            self.pool.submit(
                SCHEDD,
                n,
                RequestCpus=4,
                RequestMemory=4000,
                RequestDisk=1000,
                Requirements=_requirements(),
            )

    def workload(self) -> int:
        """Idle jobs now: a daily wave with noise, quiet at weekends."""
        t = self.clock.now
        hours = (t - START).total_seconds() / 3600
        wave = 40 + 35 * math.sin(2 * math.pi * hours / 24)
        if t.weekday() >= 5:
            wave *= 0.3
        return max(0, int(wave + self.rng.gauss(0, 5)))

    def change_prices(self) -> None:
        for n in self.prices:
            self.prices[n] = (self.prices[n] * Decimal(str(self.rng.uniform(0.6, 1.5)))).quantize(
                Decimal("0.001")
            )
        self._set_entries()

    def cycle(self) -> None:
        out = reconcile_once(self, "sim", UID)
        self.cycles += 1
        patch = st.changes(self.status, out.status)  # what kopf's patch would write
        if patch:
            self.status.update(patch)
            self.writes += 1

    def run(
        self,
        days: float,
        *,
        price_every: dt.timedelta | None = dt.timedelta(hours=72),
        restart_at: dt.datetime | None = None,
    ) -> None:
        end = self.clock.now + dt.timedelta(days=days)
        next_price = self.clock.now + price_every if price_every else None
        while self.clock.now < end:
            if next_price and self.clock.now >= next_price:
                self.change_prices()
                next_price += price_every  # type: ignore[operator]
            if restart_at and self.clock.now >= restart_at:
                self.restart()
                restart_at = None
            self.set_idle_jobs(self.workload())
            self.cycle()
            self.clock.now += self.step


def _requirements() -> Any:
    import classad2

    return classad2.ExprTree("TARGET.Cpus >= RequestCpus && TARGET.Memory >= RequestMemory")


def spent(status: dict[str, Any]) -> Decimal:
    return Decimal(str(status["spend"]["spent"]))
