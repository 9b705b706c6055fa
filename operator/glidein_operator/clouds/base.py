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

Failures. A method lets its SDK's exceptions out as they are, and ``map_error(exc)``
sorts them into the errors below (the one place each driver does): ``InstrumentedDriver``
applies it to every call. A method catches an SDK error itself only where the error *is*
the answer (a pilot already gone is terminated, a key pair already there is ours, an
image the cloud does not know does not exist), and raises one of the errors below itself
only for what it refuses before asking (user data too large, no image).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from glidein_operator.ground import CloudPilot, LaunchBatch

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


class Driver(Protocol):
    entry: str

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]: ...

    def list_pilots(self) -> list[CloudPilot]: ...

    def terminate(self, pilots: Sequence[CloudPilot]) -> None: ...

    def console_log(self, pilot: CloudPilot) -> str: ...

    def image_exists(self, image_id: str) -> bool: ...

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int: ...

    def map_error(self, exc: BaseException) -> DriverError | None:
        """``exc`` (raised by one of the methods above) as one of the errors here, if it is
        a failure of this back end: its SDK's errors, its transport's (refused, timed out,
        reset). None for anything else: a bug of ours (a TypeError, a KeyError ...) is not
        a cloud failure and must not pass for one. ``InstrumentedDriver`` applies it, once,
        to whatever a method raises; the methods themselves do not map."""
        ...
