"""An entry's maxPilots held across every request that launches there.

Each request plans from its own listing of the entry. Two requests that reconcile at the
same moment each see the same free room, and each would fill it (two requests of 6 at an
entry of 8 made 12). So launches at an entry go through one ledger per process: a
request may launch what the entry's limit leaves after the pilots its listing saw AND
every launch made at the entry since that listing began, by any request. Whatever the
listing cannot show yet is counted; a restart starts from a listing that shows it all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Launches older than this are in any listing taken since (clouds show a launch at once;
# EC2's eventual consistency is seconds).
REMEMBER_SECONDS = 300.0


@dataclass
class EntryClaims:
    clock: Callable[[], float] = time.monotonic
    _launched: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, entry: str) -> asyncio.Lock:
        return self._locks.setdefault(entry, asyncio.Lock())

    def since(self, entry: str, listed_at: float) -> int:
        """Pilots launched at the entry since a listing began (that it may not show)."""
        now = self.clock()
        kept = [(t, n) for t, n in self._launched.get(entry, []) if now - t < REMEMBER_SECONDS]
        self._launched[entry] = kept
        return sum(n for t, n in kept if t >= listed_at)

    def room(self, entry: str, max_pilots: int | None, alive: int, listed_at: float) -> int | None:
        """What the entry's limit still allows (None: no limit). Call with the lock held,
        and ``record`` what is launched before letting it go."""
        if max_pilots is None:
            return None
        return max(0, max_pilots - alive - self.since(entry, listed_at))

    def record(self, entry: str, count: int) -> None:
        if count > 0:
            self._launched.setdefault(entry, []).append((self.clock(), count))
