"""A programmable driver, in the style of Karpenter's fake cloud provider: pilots held in
memory, the next errors of each operation set by the test, every call recorded, reset.

It keeps the contract the real drivers keep (``clouds/base.py``): launches idempotent on
the batch key, terminating a pilot already gone is done, listings report what exists. It
lets the reconcile (observe, decide, act) run in milliseconds; the service doubles stay
for the contract suite, which proves the real drivers against them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from glidein_operator.clouds.base import DriverError
from glidein_operator.ground import CloudPilot, LaunchBatch, PilotState, price_from_tags


class FakeDriver:
    def __init__(
        self, entry: str, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    ) -> None:
        self.entry = entry
        self.clock = clock
        self.pilots: dict[str, CloudPilot] = {}  # cloud id -> pilot
        self.calls: list[tuple[str, Any]] = []
        self.next_errors: dict[str, list[BaseException]] = {}
        self.images: set[str] = set()
        self.consoles: dict[str, str] = {}  # cloud id -> console log
        self.capacity: int | None = None  # pilots a launch may start at most (None: all)

    # --- programming ------------------------------------------------------------------------

    def fail_next(self, operation: str, *errors: BaseException) -> None:
        """The next calls of ``operation`` ("launch", "list", "terminate", ...) raise these,
        in order; later calls succeed."""
        self.next_errors.setdefault(operation, []).extend(errors)

    def set_state(self, cloud_id: str, state: PilotState, **changes: Any) -> None:
        self.pilots[cloud_id] = dataclasses.replace(self.pilots[cloud_id], state=state, **changes)

    def reset(self) -> None:
        self.pilots.clear()
        self.calls.clear()
        self.next_errors.clear()
        self.consoles.clear()
        self.capacity = None

    def alive(self) -> list[CloudPilot]:
        return [p for p in self.pilots.values() if p.state is not PilotState.TERMINATED]

    def called(self, operation: str) -> list[Any]:
        return [args for op, args in self.calls if op == operation]

    def _call(self, operation: str, args: Any) -> None:
        self.calls.append((operation, args))
        queued = self.next_errors.get(operation)
        if queued:
            raise queued.pop(0)

    # --- the driver contract ------------------------------------------------------------------

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        self._call("launch", batch)
        again = [p for p in self.pilots.values() if p.batch == batch.key]
        if again:
            return again
        count = batch.count if self.capacity is None else min(batch.count, self.capacity)
        out = []
        for i in range(count):
            p = CloudPilot(
                pilot_id=batch.pilot_id(i),
                cloud_id=f"fake-{self.entry}-{len(self.pilots)}",
                entry=self.entry,
                request_uid=batch.request_uid,
                batch=batch.key,
                instance_type=batch.shape.name,
                state=PilotState.PENDING,
                launched_at=self.clock(),
                spot=batch.spot,
                raw_state="pending",
                price_per_hour=price_from_tags(batch.tags()),
            )
            self.pilots[p.cloud_id] = p
            out.append(p)
        return out

    def list_pilots(self) -> list[CloudPilot]:
        self._call("list", None)
        return list(self.pilots.values())

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        self._call("terminate", [p.cloud_id for p in pilots])
        for p in pilots:
            if p.cloud_id in self.pilots:
                self.set_state(p.cloud_id, PilotState.TERMINATED, ended_at=self.clock())

    def console_log(self, pilot: CloudPilot) -> str:
        self._call("console_log", pilot.cloud_id)
        return self.consoles.get(pilot.cloud_id, "")

    def image_exists(self, image_id: str) -> bool:
        self._call("image_exists", image_id)
        return image_id in self.images

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        self._call("collect", request_uid)
        return 0

    def map_error(self, exc: BaseException) -> DriverError | None:
        # Tests program DriverErrors directly; anything else is a bug and stays one.
        return exc if isinstance(exc, DriverError) else None
