"""Every driver call goes through here: off the event loop, rate-limited, backed off
after failures, counted, and its back end's exceptions sorted into ``DriverError``s (by
the driver's ``map_error``, here and nowhere else).

The SDKs block, and a blocking call inside an ``async def`` freezes the operator,
watches included (kopf's docs/async.rst), so calls run in worker threads: each entry's
on threads of its own (``max_threads``), not on the event loop's shared default executor,
where a few calls to an endpoint that accepts and never answers would hold every thread
(six on two cores) until the SDK's timeout, and every entry and every other
``asyncio.to_thread`` user with them. A hung entry exhausts only its own threads; its
later calls queue behind them, and the drivers' connect/read timeouts end them. Launches are
rate-limited per entry (``launchesPerMinute``, a token bucket); after a retryable
failure (throttled, capacity, quota, unavailable) the entry backs off exponentially
(capped, with jitter) before the next launch, so a sick cloud is not hammered and the
operator never crash-loops on it. Listing and terminating are never held back: knowing
what exists and removing it must keep working while launches wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from glidein_operator.clouds.base import Driver, DriverError
from glidein_operator.ground import CloudPilot, LaunchBatch

T = TypeVar("T")

# Calls of one entry at once: a listing, a launch or two, a termination, console logs.
MAX_THREADS = 4


def forget(metric: MetricWrapperBase, labelnames: Iterable[str], **match: str) -> None:
    """Remove every series of ``metric`` whose labels include ``match`` (series of
    something deleted). Reads the series from the metric's own samples (public API), so
    it works whatever its other labels are."""
    names = tuple(labelnames)
    rows = {
        tuple(sample.labels[n] for n in names)
        for family in metric.collect()
        for sample in family.samples
        if all(sample.labels.get(k) == v for k, v in match.items())
    }
    for row in rows:
        metric.remove(*row)


class DriverMetrics:
    """Prometheus series for driver calls (one set per registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        self.calls = Histogram(
            "glidein_cloud_call_duration_seconds",
            "Duration of calls to cloud and grid back ends.",
            ["entry", "operation"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            **kw,  # type: ignore[arg-type]
        )
        self.errors = Counter(
            "glidein_cloud_errors_total",
            "Failed calls to back ends, by the kind of failure.",
            ["entry", "operation", "reason"],
            **kw,  # type: ignore[arg-type]
        )
        self.launched = Counter(
            "glidein_pilots_launched_total",
            "Pilots started.",
            ["entry"],
            **kw,  # type: ignore[arg-type]
        )
        self.terminated = Counter(
            "glidein_pilots_terminated_total",
            "Pilots terminated.",
            ["entry"],
            **kw,  # type: ignore[arg-type]
        )

    def forget_entry(self, entry: str) -> None:
        """Every series of a deleted CloudEntry (its finalizer is done)."""
        forget(self.calls, ("entry", "operation"), entry=entry)
        forget(self.errors, ("entry", "operation", "reason"), entry=entry)
        forget(self.launched, ("entry",), entry=entry)
        forget(self.terminated, ("entry",), entry=entry)


@dataclass
class Backoff:
    base: float = 5.0
    cap: float = 300.0
    failures: int = 0
    until: float = 0.0

    def failed(self, now: float, rng: random.Random) -> float:
        self.failures += 1
        delay: float = min(self.cap, self.base * 2.0 ** (self.failures - 1))
        delay *= 0.5 + rng.random() / 2  # jitter: entries that failed together retry apart
        self.until = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0


@dataclass
class TokenBucket:
    rate_per_minute: int
    tokens: float = field(init=False)
    stamp: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = float(self.rate_per_minute)

    def available(self, now: float) -> int:
        """Launches that may go now, without taking them."""
        return int(self._refilled(now))

    def take(self, want: int, now: float) -> int:
        """How many of ``want`` launches may go now (the rest wait for tokens)."""
        self.tokens = self._refilled(now)
        self.stamp = now
        granted = min(want, int(self.tokens))
        self.tokens -= granted
        return granted

    def _refilled(self, now: float) -> float:
        return min(
            float(self.rate_per_minute),
            self.tokens + (now - self.stamp) * self.rate_per_minute / 60,
        )


class BackingOff(DriverError):
    """Launches at this entry wait after recent failures; not an error of the cloud."""

    retryable = True
    reason = "BackingOff"


class InstrumentedDriver:
    def __init__(
        self,
        driver: Driver,
        *,
        launches_per_minute: int,
        metrics: DriverMetrics,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        max_threads: int = MAX_THREADS,
    ) -> None:
        self.driver = driver
        self.entry = driver.entry
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self.backoff = backoff or Backoff()
        self.bucket = TokenBucket(launches_per_minute)
        self.bucket.stamp = clock()
        self.last_error: DriverError | None = None
        # Batches whose leftovers (key pairs) were released after their pilots ended.
        self.released: set[str] = set()
        # Pilots that ended without ever registering (a token the pool refuses, an image
        # that does not boot): launching more would only spend more. Separate from the
        # cloud's own failures, which a successful launch call clears.
        self.boot_backoff = Backoff(base=self.backoff.base)
        # Why its pilots last failed at the back end, until one registers.
        self.pilot_failure = ""
        # Calls that change what a listing shows, counted at their start and at their end:
        # a listing that began before either is stale (controller/listings.py).
        self.mutations = 0
        self._threads = ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix=f"driver-{self.entry}"
        )

    def close(self) -> None:
        """Let this entry's threads go once their calls end (a replaced driver's). Calls
        already queued still run: their callers are waiting for them."""
        self._threads.shutdown(wait=False)

    async def _mutate(self, operation: str, fn: Callable[[], T]) -> T:
        self.mutations += 1
        try:
            return await self._call(operation, fn)
        finally:
            self.mutations += 1

    async def _call(self, operation: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        # As asyncio.to_thread does: the call sees the caller's context variables.
        call = functools.partial(contextvars.copy_context().run, fn)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except DriverError as exc:  # refused by the driver before it asked the back end
            self._failed(operation, exc)
            raise
        except Exception as exc:
            # The one place a back end's exceptions become DriverErrors. Anything the
            # driver does not know as its SDK's (a bug of ours) goes on as it is: the
            # reconcile fails loudly instead of reporting a sick cloud.
            mapped = self.driver.map_error(exc)
            if mapped is None:
                raise
            mapped.entry = mapped.entry or self.entry
            self._failed(operation, mapped)
            raise mapped from exc
        finally:
            self.metrics.calls.labels(self.entry, operation).observe(time.perf_counter() - started)
        return result

    def _failed(self, operation: str, exc: DriverError) -> None:
        self.metrics.errors.labels(self.entry, operation, exc.reason).inc()
        self.last_error = exc

    def launch_room(self) -> int:
        """Launches the rate limit lets start now (observed; ``spend_launches`` takes them)."""
        return self.bucket.available(self.clock())

    def launch_hold(self) -> str:
        """Why no launch may start now ("" when they may): a backoff after failures. The
        reconcile reads it before deciding; ``launch`` refuses with the same words."""
        now = self.clock()
        if now < self.boot_backoff.until:
            return (
                f"launches at {self.entry} wait {self.boot_backoff.until - now:.0f}s: "
                f"{self.boot_backoff.failures} time(s) in a row its pilots ended without "
                "registering"
            )
        if now < self.backoff.until:
            return (
                f"launches at {self.entry} wait {self.backoff.until - now:.0f}s after "
                f"{self.backoff.failures} failure(s)"
            )
        return ""

    def spend_launches(self, count: int) -> int:
        """Take ``count`` launches from the rate limit (as many as are left)."""
        return self.bucket.take(count, self.clock())

    def pilots_failed_to_register(self) -> float:
        """Pilots of this entry ended without registering: the wait before launching again."""
        return self.boot_backoff.failed(self.clock(), self.rng)

    def pilots_failed(self, why: str) -> float:
        """Pilots of this entry failed at the back end (a grid job held, a VM in ERROR),
        ``why``: the wait before launching again, as for pilots that never register."""
        self.pilot_failure = why
        return self.boot_backoff.failed(self.clock(), self.rng)

    def pilot_registered(self) -> None:
        self.boot_backoff.succeeded()
        self.pilot_failure = ""

    async def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        hold = self.launch_hold()
        if hold:
            raise BackingOff(hold, entry=self.entry)
        try:
            pilots = await self._mutate("launch", lambda: self.driver.launch(batch))
        except DriverError as exc:
            if exc.retryable:
                self.backoff.failed(self.clock(), self.rng)
            raise
        self.backoff.succeeded()
        self.last_error = None
        self.metrics.launched.labels(self.entry).inc(len(pilots))
        return pilots

    async def list_pilots(self) -> list[CloudPilot]:
        return await self._call("list", self.driver.list_pilots)

    async def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        if not pilots:
            return
        await self._mutate("terminate", lambda: self.driver.terminate(pilots))
        self.metrics.terminated.labels(self.entry).inc(len(pilots))

    async def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        return await self._call(
            "collect", lambda: self.driver.collect(request_uid, min_age_seconds)
        )

    async def console_log(self, pilot: CloudPilot) -> str:
        return await self._call("console_log", lambda: self.driver.console_log(pilot))

    async def image_exists(self, image_id: str) -> bool:
        return await self._call("image_exists", lambda: self.driver.image_exists(image_id))

    @property
    def degraded(self) -> bool:
        """Failing right now: the entry's Degraded condition reads this."""
        return self.backoff.failures > 0
