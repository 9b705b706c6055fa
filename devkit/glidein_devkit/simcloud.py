"""A cloud in simulated time, for month-long runs of the real reconcile in seconds.

It behaves like EC2 where accounting cares: launches are idempotent on the batch key,
pilots carry the price tag of their launch, pilots end by themselves after a run time
of their own (their jobs done), terminated pilots stay listed for an hour with the time
they ended, then vanish. It keeps the ground truth (every pilot that ever lived) for
the tests to compare the operator's accounting against.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from glidein_operator.ground import CloudPilot, LaunchBatch, PilotState, price_from_tags

_US_PER_HOUR = Decimal(3_600_000_000)


@dataclass
class _Record:
    pilot: CloudPilot
    ends_by_itself: dt.datetime


class SimCloud:
    def __init__(
        self,
        clock: Callable[[], dt.datetime],
        *,
        seed: int = 1,
        run_time: tuple[dt.timedelta, dt.timedelta] = (
            dt.timedelta(hours=1),
            dt.timedelta(hours=30),
        ),
        keep_terminated: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311  (simulation, not secrets)
        self.run_time = run_time
        self.keep_terminated = keep_terminated
        self.history: dict[str, _Record] = {}  # every pilot ever, never purged
        self.launch_calls = 0

    def driver(self, entry: str) -> SimDriver:
        return SimDriver(self, entry)

    def advance(self) -> None:
        now = self.clock()
        for r in self.history.values():
            if r.pilot.state is not PilotState.TERMINATED and r.ends_by_itself <= now:
                r.pilot = replace(r.pilot, state=PilotState.TERMINATED, ended_at=r.ends_by_itself)

    def alive(self, entry: str | None = None) -> list[CloudPilot]:
        self.advance()
        return [
            r.pilot
            for r in self.history.values()
            if r.pilot.state is not PilotState.TERMINATED and entry in (None, r.pilot.entry)
        ]

    def cost(self, start: dt.datetime, end: dt.datetime) -> Decimal:
        """The ground truth: each pilot's price times its life within [start, end)."""
        self.advance()
        total = Decimal(0)
        for r in self.history.values():
            p = r.pilot
            assert p.launched_at is not None
            assert p.price_per_hour is not None
            stop = p.ended_at or self.clock()
            a, b = max(p.launched_at, start), min(stop, end)
            if b > a:
                total += p.price_per_hour * Decimal((b - a) // dt.timedelta(microseconds=1))
        return total / _US_PER_HOUR

    def most_expensive_price(self) -> Decimal:
        return max(
            (r.pilot.price_per_hour or Decimal(0) for r in self.history.values()),
            default=Decimal(0),
        )


class SimDriver:
    def __init__(self, cloud: SimCloud, entry: str) -> None:
        self.cloud = cloud
        self.entry = entry

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        self.cloud.launch_calls += 1
        again = [r.pilot for r in self.cloud.history.values() if r.pilot.batch == batch.key]
        if again:
            return again
        now = self.cloud.clock()
        lo, hi = self.cloud.run_time
        out = []
        for i in range(batch.count):
            p = CloudPilot(
                pilot_id=batch.pilot_id(i),
                cloud_id=f"sim-{len(self.cloud.history)}",
                entry=self.entry,
                request_uid=batch.request_uid,
                batch=batch.key,
                instance_type=batch.shape.name,
                state=PilotState.RUNNING,
                launched_at=now,
                spot=batch.spot,
                raw_state="running",
                price_per_hour=price_from_tags(batch.tags()),
            )
            run = lo + (hi - lo) * self.cloud.rng.random()
            self.cloud.history[p.cloud_id] = _Record(p, now + run)
            out.append(p)
        return out

    def list_pilots(self) -> list[CloudPilot]:
        self.cloud.advance()
        now = self.cloud.clock()
        return [
            r.pilot
            for r in self.cloud.history.values()
            if r.pilot.entry == self.entry
            and (r.pilot.ended_at is None or now - r.pilot.ended_at < self.cloud.keep_terminated)
        ]

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        now = self.cloud.clock()
        for p in pilots:
            r = self.cloud.history.get(p.cloud_id)
            if r is not None and r.pilot.state is not PilotState.TERMINATED:
                r.pilot = replace(r.pilot, state=PilotState.TERMINATED, ended_at=now)

    def console_log(self, pilot: CloudPilot) -> str:
        return ""

    def image_exists(self, image_id: str) -> bool:
        return True

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        return 0

    def map_error(self, exc: BaseException) -> None:
        return None  # it fails at nothing: whatever it raises is a bug
