"""One active replica, by a ``coordination.k8s.io`` Lease (what Kubernetes' own
controllers use), instead of kopf's peering.

kopf's peering pauses every replica that sees a peer of the same priority, and two
replicas of one Deployment have the same priority: ``replicas: 2`` meant no operator. A
Lease says who acts: the holder renews it every ``retry`` seconds; a standby takes it
once it has gone ``duration`` seconds without renewal (the holder died or was cut off).
The holder stops acting when it could not renew for ``renew_deadline`` seconds, which is
shorter than ``duration``, so two replicas never act at once: a replica cut off from the
API server ends its operator (and its process) before anyone may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from glidein_operator.controller import health as probes
from glidein_operator.controller.health import Health

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTimes:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError("lease times must satisfy 0 < retry < renew_deadline < duration")


def identity() -> str:
    # The pod name in a cluster (HOSTNAME), unique per process elsewhere.
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Lease:
    def __init__(
        self,
        api: k8s.CoordinationV1Api,
        name: str,
        namespace: str,
        holder: str,
        times: LeaseTimes,
    ) -> None:
        self.api, self.name, self.namespace, self.holder, self.times = (
            api,
            name,
            namespace,
            holder,
            times,
        )

    def _spec(self, transitions: int, acquired: dt.datetime) -> k8s.V1LeaseSpec:
        return k8s.V1LeaseSpec(
            holder_identity=self.holder,
            lease_duration_seconds=max(1, round(self.times.duration)),
            acquire_time=acquired,
            renew_time=_now(),
            lease_transitions=transitions,
        )

    def try_hold(self) -> bool:
        """Take or renew the Lease; False while someone else holds it. Blocking; the
        request is bounded by ``retry`` so a cut-off replica notices in time."""
        timeout = self.times.retry
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except k8s.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            body = k8s.V1Lease(
                metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(0, _now()),
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            except k8s.exceptions.ApiException as exc2:
                if exc2.status == 409:
                    return False  # another replica created it first
                raise
            return True
        spec = lease.spec or k8s.V1LeaseSpec()
        mine = spec.holder_identity == self.holder
        if not mine and spec.holder_identity:
            renewed = spec.renew_time or spec.acquire_time
            duration = spec.lease_duration_seconds or self.times.duration
            if renewed is not None and _now() - renewed < dt.timedelta(seconds=duration):
                return False
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        acquired = spec.acquire_time if mine and spec.acquire_time else _now()
        lease.spec = self._spec(transitions, acquired)
        try:
            # resourceVersion in the body: a replace that lost a race gets 409, not the Lease.
            self.api.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=timeout
            )
        except k8s.exceptions.ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Hand over at once on a clean shutdown (the standby need not wait it out)."""
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.times.retry
            )
            if lease.spec and lease.spec.holder_identity == self.holder:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, lease, _request_timeout=self.times.retry
                )
        except Exception as exc:  # best effort: the Lease expires anyway
            log.warning("could not release the lease %s: %s", self.name, exc)


def _exit_now() -> None:
    # Not sys.exit: cloud calls still running in threads would hold the interpreter's
    # shutdown, and the process must stop acting before another replica may start.
    logging.shutdown()
    os._exit(1)


async def hold_and_run(
    lease: Lease,
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    clock: Callable[[], float],
    on_lost: Callable[[], None] = _exit_now,
    health: Health | None = None,
) -> None:
    """Wait to hold the Lease, run the operator while it is held. When the Lease is lost
    or not renewed within the deadline, ask the operator to stop, give it what time is
    left before anyone may take over, then ``on_lost`` (the process ends; Kubernetes
    starts a fresh one, which waits as a standby). ``health`` hears which it is and
    whether the Lease could be read (the replica's /readyz: health.py)."""
    times = lease.times
    health = health or Health()
    health.standing_by(times.duration)
    while True:
        try:
            held = await asyncio.to_thread(lease.try_hold)
            health.lease_checked()
            if held:
                break
        except Exception as exc:
            log.warning("lease %s: %s", lease.name, exc)
        await asyncio.sleep(times.retry)
    log.info("holding lease %s/%s as %s: acting", lease.namespace, lease.name, lease.holder)
    health.acting()
    stop = asyncio.Event()
    operator = asyncio.create_task(run(stop))
    renewed = clock()
    lost = ""
    while not operator.done():
        done, _ = await asyncio.wait({operator}, timeout=times.retry)
        if done:
            break
        try:
            if await asyncio.to_thread(lease.try_hold):
                renewed = clock()
                continue
            lost = "another replica holds the lease"
        except Exception as exc:
            log.warning("lease %s not renewed: %s", lease.name, exc)
            if clock() - renewed < times.renew_deadline:
                continue
            lost = f"not renewed for {clock() - renewed:.0f}s"
        break
    if lost:
        log.error("lost lease %s (%s): stopping", lease.name, lost)
        health.stopping = True
        stop.set()
        grace = max(0.5, (times.duration - times.renew_deadline) / 2)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(operator, timeout=grace)
        on_lost()
        return
    await asyncio.to_thread(lease.release)
    await operator


async def run_replica(
    run: Callable[[asyncio.Event | None], Coroutine[Any, Any, None]],
    lease: Lease | None,
    *,
    probe_address: str | None = None,
    standby_webhook: Callable[[], Coroutine[Any, Any, None]] | None = None,
    health: Health = probes.STATE,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """One replica's life, its probes served throughout (/healthz, /readyz: health.py).
    With a Lease: a standby (answering admission reviews, if given ``standby_webhook``)
    until it holds the Lease, then the operator; without one, the operator at once."""
    runner = await probes.serve(probe_address, health) if probe_address else None
    hook = asyncio.create_task(standby_webhook()) if standby_webhook and lease else None

    async def acting(stop: asyncio.Event | None) -> None:
        if hook is not None:  # its port is kopf's from now on
            hook.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hook
        await run(stop)

    try:
        if lease is None:
            health.acting()
            await acting(None)
        else:
            await hold_and_run(lease, acting, clock, health=health)
    finally:
        if hook is not None:
            hook.cancel()
        if runner is not None:
            await runner.cleanup()
