"""One request from 0 to N pilots and back to 0 through a real driver, wrapped as the
controller wraps it (InstrumentedDriver), against a cloud double running in a child
process, so that the memory measured is the operator side's alone (driver, SDK, the
pilots it holds). Used by openstack_scale.py and opennebula_scale.py.

Each cycle does what a reconcile does at one entry: one listing, then launches (up to
``per_cycle`` pilots, in one batch, as ``maxLaunchPerCycle``) or terminations. Cycles run
back to back: the figures are the cloud's and the driver's cost, not the reconcile
interval's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from glidein_operator.clouds.base import Driver
from glidein_operator.clouds.instrumented import DriverMetrics, InstrumentedDriver
from glidein_operator.ground import LaunchBatch, PilotState, Shape

SHAPE = Shape("m5.large", 2, 8192, 20)


def _status(field_name: str) -> float:
    """A /proc/self/status figure, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> bool:
    """Start VmHWM (peak resident memory) over from the current RSS (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Child:
    """A cloud double in a child process. ``serve(conn)`` runs there: it starts the double,
    sends its address, then answers ``(command, args)`` messages until ``stop``."""

    def __init__(self, serve: Callable[[multiprocessing.connection.Connection], None]) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve, args=(child,), daemon=True)
        self._proc.start()
        self.info: dict[str, Any] = self._conn.recv()

    def ask(self, command: str, *args: Any) -> Any:
        self._conn.send((command, args))
        return self._conn.recv()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.ask("stop")
        self._proc.join(10)


@dataclass
class Phase:
    cycles: int = 0
    seconds: float = 0.0
    list_seconds: list[float] = field(default_factory=list)


def calls_by_kind(metrics: DriverMetrics) -> dict[str, int]:
    """Driver calls by operation, as the operator's metrics count them."""
    return {
        sample.labels["operation"]: int(sample.value)
        for family in metrics.calls.collect()
        for sample in family.samples
        if sample.name.endswith("_count")
    }


async def ramp(
    driver: Driver,
    image_id: str,
    pilots: int,
    per_cycle: int,
    terminate_per_cycle: int,
    user_data: bytes,
) -> tuple[Phase, Phase, DriverMetrics, int]:
    metrics = DriverMetrics(CollectorRegistry())
    wrapped = InstrumentedDriver(driver, launches_per_minute=10**6, metrics=metrics)
    up, down = Phase(), Phase()
    most = 0
    started = time.perf_counter()
    seq = 0
    while True:  # 0 -> N, every pilot running
        up.cycles += 1
        t = time.perf_counter()
        listed = await wrapped.list_pilots()
        up.list_seconds.append(time.perf_counter() - t)
        alive = [p for p in listed if p.state is not PilotState.TERMINATED]
        most = max(most, len(alive))
        if len(alive) >= pilots and all(p.state is PilotState.RUNNING for p in alive):
            break
        n = min(per_cycle, pilots - len(alive))
        if n > 0:
            seq += 1
            batch = LaunchBatch(
                f"bench{seq:04d}", "uid-bench", "ns/bench", "bench", SHAPE, n, image_id, user_data
            )
            await wrapped.launch(batch)
    up.seconds = time.perf_counter() - started
    started = time.perf_counter()
    while True:  # N -> 0
        down.cycles += 1
        t = time.perf_counter()
        listed = await wrapped.list_pilots()
        down.list_seconds.append(time.perf_counter() - t)
        alive = [p for p in listed if p.state is not PilotState.TERMINATED]
        if not alive:
            break
        await wrapped.terminate(alive[: terminate_per_cycle or len(alive)])
    down.seconds = time.perf_counter() - started
    wrapped.close()
    return up, down, metrics, most


def run(
    name: str,
    child: Child,
    make_driver: Callable[[], Driver],
    image_id: str,
    *,
    pilots: int,
    per_cycle: int,
    terminate_per_cycle: int,
    user_data_bytes: int,
    trace: bool,
) -> dict[str, Any]:
    driver = make_driver()
    user_data = b"#!/bin/sh\n" + b"#" * max(0, user_data_bytes - 10)
    child.ask("reset")
    rss_before = _status("VmRSS")
    exact = reset_peak_rss()
    if trace:
        tracemalloc.start()
    up, down, metrics, most = asyncio.run(
        ramp(driver, image_id, pilots, per_cycle, terminate_per_cycle, user_data)
    )
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    return {
        "cloud": name,
        "pilots": most,
        "up_s": round(up.seconds, 1),
        "up_cycles": up.cycles,
        "down_s": round(down.seconds, 1),
        "down_cycles": down.cycles,
        "total_s": round(up.seconds + down.seconds, 1),
        "slowest_listing_s": round(max(up.list_seconds + down.list_seconds), 2),
        "driver_calls": calls_by_kind(metrics),
        "api_calls": child.ask("calls"),
        "rss_mib_before": round(rss_before, 1),
        "peak_rss_mib": round(_status("VmHWM"), 1),
        "peak_rss_is_of_the_run": exact,
        "tracemalloc_peak_mib": None if traced is None else round(traced, 1),
        "double_peak_rss_mib": round(child.rss_mb(), 1),
    }


def show(result: dict[str, Any]) -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"  {key}:")
            for k, v in sorted(value.items()):
                print(f"    {k:<40} {v}")
        else:
            print(f"  {key:<24} {value}")
