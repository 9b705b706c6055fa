"""One listing of each entry, per credential, shared by every request that uses it.

A GlideinWMS factory asks each entry once, however many frontends use it; here every
request's reconcile used to list every entry it uses, so 50 communities on 20 entries
made 1,000 listings a cycle where 20 do, and a cloud's rate limit throttled the operator.
A listing is kept per driver (a driver is one entry with one credential: two requests
whose credentials differ at an entry get listings of their own, as their pilots are
tagged apart anyway) and handed to every request that asks while it is fresh.

Fresh means, for the request asking: the listing began after that request last launched
or terminated anything through that driver (a request never plans from a picture that
misses its own launches), and it is younger than its interval. Other requests' launches
since it began are not in it, as they were not when each request listed on its own: an
entry's maxPilots counts them under the entry's lock (controller/claims.py), and the
listing their launcher takes next, in transit and so fast, is the one everyone reads.
The interval adapts: ``fast`` while the cloud shows pilots in transit (pending, or
launched less than ``steady`` ago: booting), ``steady`` once everything there has
settled. Both are jittered downwards, so entries listed together drift apart. A listing
the cloud refused by throttling holds further listings back (its hint, else an
exponential wait) and the last listing, if nothing changed since, stands in meanwhile.

Nothing here survives a restart, and nothing needs to: the first reader lists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from glidein_operator.clouds.base import DriverError, Throttled
from glidein_operator.clouds.instrumented import Backoff, InstrumentedDriver
from glidein_operator.ground import CloudPilot, PilotState


@dataclass(frozen=True)
class Listing:
    pilots: list[CloudPilot]
    began: float  # on the claims clock: launches since then are counted by claims.py
    as_of: dt.datetime  # on the operator's clock: what accounting may count up to
    seq: int  # listings of this process are numbered as they begin
    max_age: float  # seconds it may serve, jitter included


@dataclass
class _Slot:
    lock: asyncio.Lock
    listing: Listing | None = None
    held_until: dt.datetime | None = None
    held_by: DriverError | None = None
    backoff: Backoff | None = None
    # Per request: the last listing number begun when it last changed the entry.
    acted: dict[str, int] = field(default_factory=dict)
    # Per request: its look at the entry still in flight (``begin``).
    pending: dict[str, asyncio.Task[Listing]] = field(default_factory=dict)


class SharedListings:
    def __init__(
        self,
        *,
        fast: float,
        steady: float,
        clock: Callable[[], dt.datetime],
        claims_clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.fast, self.steady = fast, max(fast, steady)
        self.clock, self.claims_clock = clock, claims_clock
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self._slots: weakref.WeakKeyDictionary[InstrumentedDriver, _Slot] = (
            weakref.WeakKeyDictionary()
        )
        self._seq = 0

    def _slot(self, d: InstrumentedDriver) -> _Slot:
        slot = self._slots.get(d)
        if slot is None:
            slot = self._slots[d] = _Slot(asyncio.Lock())
        return slot

    def acted(self, d: InstrumentedDriver, requester: str) -> None:
        """``requester`` launched or terminated through ``d``: its next look lists anew."""
        self._slot(d).acted[requester] = self._seq

    def _current(self, slot: _Slot, requester: str) -> bool:
        got = slot.listing
        return got is not None and got.seq > slot.acted.get(requester, -1)

    def begin(self, d: InstrumentedDriver, requester: str = "") -> asyncio.Task[Listing]:
        """``listing`` as a task a reader may stop waiting for (its time budget spent,
        controller/stopwatch.py): it goes on, and serves the next reader. A request has
        one such look at an entry in flight at a time: one whose cycles are shorter than
        the cloud's listing takes its next look from the same task, not a new one each."""
        slot = self._slot(d)
        task = slot.pending.get(requester)
        if task is None or task.done():
            task = slot.pending[requester] = asyncio.ensure_future(self.listing(d, requester))

            def done(t: asyncio.Task[Listing]) -> None:
                if not t.cancelled():
                    t.exception()  # a look nobody waits for may fail: not "never retrieved"
                if slot.pending.get(requester) is t:
                    del slot.pending[requester]  # nothing kept for a request that is gone

            task.add_done_callback(done)
        return task

    def last(self, d: InstrumentedDriver, requester: str = "") -> Listing | None:
        """The entry's last listing, however old, if ``requester`` has changed nothing
        there since it began (as a throttled listing's stand-in), else None. For a reader
        whose time budget ran out while a listing is in flight (controller/stopwatch.py)."""
        slot = self._slots.get(d)
        if slot is None or not self._current(slot, requester):
            return None
        return slot.listing

    async def listing(self, d: InstrumentedDriver, requester: str = "") -> Listing:
        """The entry's pilots as the cloud last showed them, listing again when stale.
        Readers that arrive while a listing is in flight wait for it and share it."""
        slot = self._slot(d)
        async with slot.lock:
            now = self.clock()
            got = slot.listing
            current = self._current(slot, requester)
            if got is not None and current and (now - got.as_of).total_seconds() < got.max_age:
                return got
            if slot.held_until is not None and now < slot.held_until:
                if got is not None and current:
                    return got
                assert slot.held_by is not None
                raise slot.held_by
            self._seq += 1
            began, as_of, seq = self.claims_clock(), now, self._seq
            try:
                pilots = await d.list_pilots()
            except Throttled as exc:
                slot.backoff = slot.backoff or Backoff(base=max(1.0, self.fast), cap=self.steady)
                wait = getattr(exc, "retry_after", None) or slot.backoff.failed(0.0, self.rng)
                slot.held_until = now + dt.timedelta(seconds=wait)
                slot.held_by = exc
                raise
            slot.held_until = slot.held_by = slot.backoff = None
            interval = self.fast if self._in_transit(pilots, as_of) else self.steady
            slot.listing = Listing(
                pilots, began, as_of, seq, interval * (0.8 + 0.2 * self.rng.random())
            )
            return slot.listing

    def _in_transit(self, pilots: list[CloudPilot], now: dt.datetime) -> bool:
        young = now - dt.timedelta(seconds=self.steady)
        return any(
            p.state in (PilotState.PENDING, PilotState.UNKNOWN)
            or (
                p.state is PilotState.RUNNING
                and p.launched_at is not None
                and p.launched_at > young
            )
            for p in pilots
        )
