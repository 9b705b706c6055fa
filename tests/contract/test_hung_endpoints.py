"""An endpoint that accepts connections and never answers: the entry behind it fails its
calls as Unavailable (retryable) within the driver's timeouts, and holds only its own
threads meanwhile; a healthy entry (the moto EC2 server) and the event loop's default
executor carry on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from glidein_operator.api.cloudentry import Ec2Settings, OpenNebulaSettings, OpenStackSettings
from glidein_operator.clouds.base import Driver, DriverError, Unavailable
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.clouds.instrumented import DriverMetrics, InstrumentedDriver
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from glidein_operator.clouds.openstack import OpenStackDriver
from tests.relay import Relay
from tests.support.harness import ec2_harness

TIMEOUT = 0.5  # the hung driver's connect and read timeouts
THREADS = 2  # the hung entry's own threads
DEFAULT_THREADS = 4  # the loop's default executor, in these tests
HUNG_CALLS = 6  # more than the default executor holds
MARGIN = 1.0

# What one call to a silent endpoint costs, in timeouts: OpenStack asks Keystone for its
# versions, then for a token (each times out once; keystoneauth does not retry them).
ROUNDS = {"ec2": 1, "openstack": 2, "opennebula": 1}


@pytest.fixture
def silent() -> Iterator[Relay]:
    """A 127.0.0.1 listener that accepts connections, reads nothing and answers nothing."""
    relay = Relay()
    yield relay
    relay.close()


def _hung_driver(kind: str, address: str) -> Driver:
    if kind == "ec2":
        return Ec2Driver(
            "hung",
            Ec2Settings(region="us-east-1", endpoint_url=f"http://{address}"),
            access_key_id="testing",
            secret_access_key="testing",
            operator_id="op-test",
            max_attempts=1,
            connect_timeout=TIMEOUT,
            read_timeout=TIMEOUT,
        )
    if kind == "openstack":
        settings = OpenStackSettings(
            authUrl=f"http://{address}/v3", region="RegionOne", projectName="glidein-project"
        )
        return OpenStackDriver(
            "hung",
            settings,
            credentials={"username": "glidein", "password": "secret"},
            operator_id="op-test",
            timeout=TIMEOUT,
        )
    return OpenNebulaDriver(
        "hung",
        OpenNebulaSettings(endpoint=f"http://{address}/RPC2", templateId=42),
        username="glidein",
        password="secret",
        operator_id="op-test",
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
    )


@pytest.mark.parametrize("kind", ["ec2", "openstack", "opennebula"])
def test_a_hung_entry_holds_back_nobody_else(kind: str, silent: Relay, ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    registry = CollectorRegistry()
    metrics = DriverMetrics(registry)
    hung = InstrumentedDriver(
        _hung_driver(kind, silent.address),
        launches_per_minute=600,
        metrics=metrics,
        max_threads=THREADS,
    )
    healthy = InstrumentedDriver(h.make(entry="healthy"), launches_per_minute=600, metrics=metrics)
    per_call = ROUNDS[kind] * TIMEOUT

    async def timed(call: Awaitable[Any], t0: float) -> tuple[float, BaseException | None]:
        try:
            await call
        except DriverError as exc:
            return time.monotonic() - t0, exc
        return time.monotonic() - t0, None

    async def run() -> tuple[list[tuple[float, BaseException | None]], dict[str, float]]:
        loop = asyncio.get_running_loop()
        # A small default executor, the same on every machine: the hung calls would fill
        # it, were they on it.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=DEFAULT_THREADS))
        t0 = time.monotonic()
        calls: list[Callable[[], Awaitable[Any]]] = [
            hung.list_pilots,
            lambda: hung.launch(h.batch(1, entry="hung")),
        ]
        in_flight = [asyncio.create_task(timed(calls[i % 2](), t0)) for i in range(HUNG_CALLS)]
        await asyncio.sleep(0.1)
        took: dict[str, float] = {}
        for name, call in (
            ("list", healthy.list_pilots),
            ("launch", lambda: healthy.launch(h.batch(2, entry="healthy"))),
            ("list again", healthy.list_pilots),
            ("to_thread", lambda: asyncio.to_thread(time.sleep, 0)),
        ):
            started = time.monotonic()
            await call()
            took[name] = time.monotonic() - started
        # Meaningful only while the hung calls still hold their threads.
        took["hung calls still in flight"] = float(not any(t.done() for t in in_flight))
        return list(await asyncio.gather(*in_flight)), took

    try:
        ended, took = asyncio.run(run())
    finally:
        hung.close()
        healthy.close()

    assert took.pop("hung calls still in flight") == 1.0, took
    assert max(took.values()) < 1.0, took
    assert all(isinstance(exc, Unavailable) and exc.retryable for _, exc in ended), ended
    times = sorted(t for t, _ in ended)
    # THREADS calls at a time, each over within its timeouts.
    assert times[THREADS - 1] < per_call + MARGIN, times
    assert times[-1] < -(-HUNG_CALLS // THREADS) * per_call + MARGIN, times
    assert (
        registry.get_sample_value(
            "glidein_cloud_errors_total",
            {"entry": "hung", "operation": "list", "reason": "Unavailable"},
        )
        == HUNG_CALLS // 2
    )
