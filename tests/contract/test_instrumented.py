"""Rate limits, backoff and metrics around a real driver (EC2 driver, moto server)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from glidein_operator.clouds.base import InsufficientCapacity
from glidein_operator.clouds.instrumented import BackingOff, DriverMetrics, InstrumentedDriver
from tests.support.harness import ec2_harness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wrapped(
    ec2_server: Any, per_minute: int = 60
) -> tuple[Any, InstrumentedDriver, Clock, CollectorRegistry]:
    h = ec2_harness(ec2_server)
    clock, registry = Clock(), CollectorRegistry()
    wrapped = InstrumentedDriver(
        h.make(),
        launches_per_minute=per_minute,
        metrics=DriverMetrics(registry),
        clock=clock,
        rng=random.Random(1),
    )
    return h, wrapped, clock, registry


def test_rate_limit_refills_with_time(ec2_server: Any) -> None:
    _, d, clock, _ = _wrapped(ec2_server, per_minute=60)
    assert d.launch_room() == 60
    assert d.launch_room() == 60  # looking takes nothing
    assert d.spend_launches(100) == 60
    assert d.launch_room() == 0
    assert d.spend_launches(10) == 0
    clock.now += 30
    assert d.launch_room() == 30


def test_backoff_after_capacity_errors_then_recovery(ec2_server: Any) -> None:
    h, d, clock, registry = _wrapped(ec2_server)
    h.fail("capacity")
    with pytest.raises(InsufficientCapacity):
        asyncio.run(d.launch(h.batch(2)))
    assert d.degraded
    assert "after 1 failure(s)" in d.launch_hold()
    with pytest.raises(BackingOff):
        asyncio.run(d.launch(h.batch(2)))
    assert (
        registry.get_sample_value(
            "glidein_cloud_errors_total",
            {"entry": "e1", "operation": "launch", "reason": "InsufficientCapacity"},
        )
        == 1
    )
    # A second failure waits longer (exponential), capped.
    clock.now = d.backoff.until + 1
    h.fail("capacity")
    with pytest.raises(InsufficientCapacity):
        asyncio.run(d.launch(h.batch(2)))
    assert d.backoff.failures == 2
    clock.now = d.backoff.until + 1
    pilots = asyncio.run(d.launch(h.batch(3)))
    assert len(pilots) == 3
    assert not d.degraded
    assert registry.get_sample_value("glidein_pilots_launched_total", {"entry": "e1"}) == 3


def test_listing_and_terminating_are_never_held_back(ec2_server: Any) -> None:
    h, d, _clock, registry = _wrapped(ec2_server)
    pilots = asyncio.run(d.launch(h.batch(2)))
    h.fail("capacity")
    with pytest.raises(InsufficientCapacity):
        asyncio.run(d.launch(h.batch(1)))
    assert len(asyncio.run(d.list_pilots())) == 2
    asyncio.run(d.terminate(pilots))
    assert registry.get_sample_value("glidein_pilots_terminated_total", {"entry": "e1"}) == 2
    assert (
        registry.get_sample_value(
            "glidein_cloud_call_duration_seconds_count", {"entry": "e1", "operation": "list"}
        )
        == 1
    )
