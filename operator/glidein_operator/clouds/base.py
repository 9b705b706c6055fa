"""The one small interface every back end implements, and the words they share.

Drivers do what they are told and report what exists; they never decide (that is the
planner's job). Their methods block (the SDKs do): the controller calls them through
``instrumented.InstrumentedDriver``, which moves them off the event loop, rate-limits
and counts them.

What each method promises when the thing is already there or already gone:

* ``launch(batch)``: idempotent on ``batch.key``. Asked twice (a retry, a restart
  between "asked" and "recorded"), it returns the pilots of the first call and starts
  nothing new. May start fewer than asked (capacity), never more.
* ``list_pilots()``: every pilot this operator owns on this back end, found by our ownership
  marks (tags, metadata, labels), never from memory. Terminated ones may still appear
  (state TERMINATED) for a while, as the clouds keep them.
* ``terminate(pilots)``: a pilot already gone counts as done; its key pair goes with it.
* ``console_log(pilot)``: the boot log, or "" when the back end has none yet.
* ``image_exists(image_id)``: whether the image is registered there.
* ``collect(request_uid, min_age_seconds)``: delete what a batch leaves besides its pilots
  (key pairs, payload Secrets) once no pilot of that batch is alive, for one request or
  all, sparing anything younger than ``min_age_seconds`` (a launch may be in flight).
  A crash between creating a key pair and launching, or between terminating and
  deleting it, leaves such things; this is what finds them.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

# Ownership marks, written atomically at creation on every back end.
TAG_OPERATOR = "glidein.dev/operator"
TAG_REQUEST_UID = "glidein.dev/request-uid"
TAG_REQUEST = "glidein.dev/request"
TAG_ENTRY = "glidein.dev/entry"
TAG_BATCH = "glidein.dev/batch"
TAG_PILOT_ID = "glidein.dev/pilot-id"
TAG_INSTANCE_TYPE = "glidein.dev/instance-type"
TAG_SPOT = "glidein.dev/spot"
# The hourly price the pilot was launched at: accounting survives a restart and a later
# price change in the CloudEntry without remembering anything.
TAG_PRICE = "glidein.dev/price-per-hour"


class PilotState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SHUTDOWN = "shutdown"  # stopped without terminating (OpenStack SHUTOFF, OpenNebula POWEROFF)
    TERMINATED = "terminated"
    ERROR = "error"
    UNKNOWN = "unknown"


# --- errors -------------------------------------------------------------------------------


class DriverError(Exception):
    """A back-end failure, already sorted into what the controller does about it."""

    retryable: bool = False
    reason: str = "DriverError"

    def __init__(self, message: str, *, entry: str = "") -> None:
        super().__init__(message)
        self.entry = entry


class AuthError(DriverError):
    reason = "AuthFailed"


class QuotaExceeded(DriverError):
    reason = "QuotaExceeded"
    retryable = True


class InsufficientCapacity(DriverError):
    reason = "InsufficientCapacity"
    retryable = True


class Throttled(DriverError):
    reason = "Throttled"
    retryable = True


class NotFound(DriverError):
    reason = "NotFound"


class InvalidConfig(DriverError):
    reason = "InvalidConfig"


class Unavailable(DriverError):
    """The endpoint did not answer or answered 5xx: try again later."""

    reason = "Unavailable"
    retryable = True


def old_enough(created: dt.datetime | None, min_age_seconds: float) -> bool:
    if not min_age_seconds or created is None:
        return True
    return (dt.datetime.now(dt.UTC) - created).total_seconds() >= min_age_seconds


ALIVE_STATES = frozenset({PilotState.PENDING, PilotState.RUNNING, PilotState.SHUTDOWN})


def for_http_status(status: int, text: str, entry: str) -> DriverError:
    """The common reading of an HTTP status from a REST back end. Callers refine what
    their service says differently first (a 403 that means quota, say)."""
    if status in (401, 403):
        return AuthError(text, entry=entry)
    if status == 404:
        return NotFound(text, entry=entry)
    if status in (413, 429):  # 413: Nova's overLimit before microversion 2.x
        return Throttled(text, entry=entry)
    if status in (0, 408, 410) or status >= 500:  # 410: an expired list continuation
        return Unavailable(text, entry=entry)
    return InvalidConfig(text, entry=entry)


# --- what drivers take and give ----------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """The instance type to launch, as the entry describes it."""

    name: str
    cpus: int
    memory_mb: int
    disk_gb: int
    gpus: int = 0
    price_per_hour: Decimal | None = None  # None: unknown (no price tag is written)


@dataclass(frozen=True)
class LaunchBatch:
    """Pilots of one request, one entry and one instance type, started in one call.

    ``key`` is deterministic (request uid, entry, a per-request sequence number): a
    retry after a crash uses the same key, so the back end can tell it is a retry. Pilot
    ids are ``{key}-{index}``: each pilot learns its index at boot (EC2's AMI launch
    index, or its own name elsewhere), so both sides agree without per-pilot user data.
    """

    key: str
    request_uid: str
    request: str  # namespace/name, for people reading tags
    entry: str
    shape: Shape
    count: int
    image_id: str | None
    user_data: bytes
    spot: bool = False
    spot_max_price: Decimal | None = None
    spot_fallback: bool = False  # on-demand when spot capacity is lacking (EC2)

    def pilot_id(self, index: int) -> str:
        return f"{self.key}-{index}"

    def tags(self) -> dict[str, str]:
        price = (
            self.spot_max_price if self.spot and self.spot_max_price else self.shape.price_per_hour
        )
        tags = {
            TAG_REQUEST_UID: self.request_uid,
            TAG_REQUEST: self.request.replace("/", "."),
            TAG_ENTRY: self.entry,
            TAG_BATCH: self.key,
            TAG_INSTANCE_TYPE: self.shape.name,
            TAG_SPOT: "true" if self.spot else "false",
        }
        if price is not None:
            tags[TAG_PRICE] = str(price)
        return tags


@dataclass(frozen=True)
class CloudPilot:
    """A pilot as the back end reports it."""

    pilot_id: str
    cloud_id: str
    entry: str
    request_uid: str
    batch: str
    instance_type: str
    state: PilotState
    launched_at: dt.datetime | None = None
    spot: bool = False
    raw_state: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # What it costs per hour, where the back end says (the price tag written at launch,
    # or the spot price actually charged); None: the entry's price applies.
    price_per_hour: Decimal | None = None
    # When it stopped, where the back end keeps terminated pilots and says when.
    ended_at: dt.datetime | None = None
    # A spot pilot the cloud took back (EC2 Server.SpotInstanceTermination).
    interrupted: bool = False
    # It powered itself off (EC2 Client.InstanceInitiatedShutdown, OpenStack SHUTOFF,
    # OpenNebula POWEROFF): it ended by its own decision, not the operator's or the cloud's.
    shut_itself_down: bool = False


def price_from_tags(tags: dict[str, str]) -> Decimal | None:
    try:
        return Decimal(tags[TAG_PRICE])
    except (KeyError, ArithmeticError, ValueError):
        return None


class Driver(Protocol):
    entry: str

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]: ...

    def list_pilots(self) -> list[CloudPilot]: ...

    def terminate(self, pilots: Sequence[CloudPilot]) -> None: ...

    def console_log(self, pilot: CloudPilot) -> str: ...

    def image_exists(self, image_id: str) -> bool: ...

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int: ...
