"""One query per schedd per cycle, shared by every request that reads it (async side).

Requests differ in their jobConstraint; rather than one schedd query per request, the
schedd is asked once for all idle jobs, projected on the union of the attributes any
request needs, and clustered. Each request then filters *clusters* with its own
constraint, which is exact because every attribute the constraint reads is part of the
cluster key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import classad2

from glidein_operator.condor.interface import Pool
from glidein_operator.condor.jobs import JobCluster, cluster_jobs, significant_attributes
from glidein_operator.condor.jobs import select as select  # pure: lives with the clusters
from glidein_operator.condor.pilots import (
    PILOT_ID,
    STARTD_PROJECTION,
    RegisteredPilot,
    pilot_from_ad,
)

# Slot ads read into pilots off the event loop above this many (about 40 us each): one
# pool's large answer must not hold every other request's reconcile.
OFF_LOOP = 1_000


def _pilots(ads: Sequence[classad2.ClassAd], now_epoch: float) -> list[RegisteredPilot]:
    return [p for ad in ads if (p := pilot_from_ad(ad, now_epoch)) is not None]


@runtime_checkable
class AsyncQueries(Protocol):
    """A Pool that waits for its answers itself, off the event loop and off the loop's
    shared default executor (``isolated.IsolatedPool``): a pool that hangs then holds
    only threads of its own."""

    async def idle_jobs_async(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]: ...

    async def slot_ads_async(
        self, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]: ...


@dataclass
class _Entry:
    fetched: float
    attributes: frozenset[str]
    clusters: list[JobCluster]


class PoolReader:
    """Caches each schedd's clusters for ``ttl`` seconds (about one reconcile period)."""

    def __init__(
        self, pool: Pool, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool = pool
        self.token: str | None = None  # what the pool was made with (Runtime.reader)
        self.ttl = ttl
        self.clock = clock
        self._jobs: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots: tuple[float, list[RegisteredPilot]] | None = None
        self._by_id: tuple[list[RegisteredPilot], dict[str, RegisteredPilot]] | None = None
        self._slots_lock = asyncio.Lock()

    async def clusters(self, schedd: str, expressions: tuple[str, ...]) -> list[JobCluster]:
        needed = frozenset(significant_attributes(expressions))
        lock = self._locks.setdefault(schedd, asyncio.Lock())
        async with lock:
            cached = self._jobs.get(schedd)
            now = self.clock()
            if cached and now - cached.fetched < self.ttl and needed <= cached.attributes:
                return cached.clusters
            attributes = needed | (cached.attributes if cached else frozenset())
            significant = tuple(sorted(attributes))
            if isinstance(self.pool, AsyncQueries):
                ads = await self.pool.idle_jobs_async(schedd, "true", significant)
            else:
                ads = await asyncio.to_thread(self.pool.idle_jobs, schedd, "true", significant)
            clusters = await asyncio.to_thread(cluster_jobs, schedd, ads, significant)
            self._jobs[schedd] = _Entry(now, attributes, clusters)
            return clusters

    async def registered(self, now_epoch: float) -> dict[str, RegisteredPilot]:
        """``pilots`` by pilot id: one dict for every request reading this pool while the
        answer is fresh (each request building its own was a dict of every pilot each)."""
        pilots = await self.pilots(now_epoch)
        if self._by_id is None or self._by_id[0] is not pilots:
            self._by_id = (pilots, {p.pilot_id: p for p in pilots})
        return self._by_id[1]

    async def pilots(self, now_epoch: float) -> list[RegisteredPilot]:
        async with self._slots_lock:
            if self._slots and self.clock() - self._slots[0] < self.ttl:
                return self._slots[1]
            constraint = f"{PILOT_ID} =!= undefined"
            if isinstance(self.pool, AsyncQueries):
                ads = await self.pool.slot_ads_async(constraint, STARTD_PROJECTION)
            else:
                ads = await asyncio.to_thread(self.pool.slot_ads, constraint, STARTD_PROJECTION)
            if len(ads) > OFF_LOOP:  # a collector of 50,000 slots: 2 s of CPU
                pilots = await asyncio.to_thread(_pilots, ads, now_epoch)
            else:
                pilots = _pilots(ads, now_epoch)
            self._slots = (self.clock(), pilots)
            return pilots
