"""A request's reconcile has a time budget; this keeps its clock and says what took the time.

Requests reconcile concurrently on one event loop: one request with bad input at scale
(200 entries, a million idle jobs, a collector with 50,000 slots) must neither hold the
loop (its CPU-bound parts run off it: ``reconcile.py``, ``condor/reader.py``) nor run
unbounded. Each step is timed (``observe`` and within it each listing and pool query,
``decide``, ``act``) and the budget is spent at two kinds of points, both
level-based-safe (docs/design.md, "A time budget per reconcile"):

* a cloud listing not in when the budget is spent is not waited for: it goes on, shared,
  and serves the next cycle; meanwhile the entry's last listing stands in if this request
  has changed nothing there since, else the entry waits a cycle (``ListingOverBudget``);
* a launch batch not started when the budget is spent is not started: the next cycle,
  from the clouds' listings, decides it again under the same batch key.

Nothing begun is cut: a launch, a termination, a pool query (bounded by its own deadline,
``condor_query_deadline``: a schedd's answer cut short would be asked for again and never
arrive), the decision. A reconcile that ran over writes its status, with the
``ReconcileSlow`` condition naming its slowest steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# Steps named in the condition's message, slowest first, besides the three phases.
SHOWN_STEPS = 3


@dataclass
class Stopwatch:
    budget: float  # seconds
    clock: Callable[[], float] = time.perf_counter
    started: float = field(init=False)
    # Phase -> seconds (observe, decide, act, report), in the order they ran.
    phases: dict[str, float] = field(default_factory=dict)
    # Step of observe ("listing e7", "schedd s@host", "collector c:9618") -> seconds.
    steps: dict[str, float] = field(default_factory=dict)
    # What the budget cut: launches not started, per entry; entries with no listing in
    # time (nothing launched or cancelled there this cycle).
    launches_cut: dict[str, int] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)
    # Entries whose listing was not in time and whose last listing stood in.
    stood_in: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "decide ran off the event loop"

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        """Seconds of the budget left, never below 0."""
        return max(0.0, self.budget - self.elapsed())

    def timeout(self) -> float | None:
        """``left()`` for ``asyncio.wait_for``: None when there is no budget."""
        return None if math.isinf(self.budget) else self.left()

    def spent(self) -> bool:
        return self.elapsed() >= self.budget

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = self.clock()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + self.clock() - began

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = self.clock()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + self.clock() - began

    def over(self) -> bool:
        cut = self.launches_cut or self.unlisted or self.stood_in
        return bool(cut) or self.elapsed() > self.budget

    def message(self, setting: str = "GLIDEIN_RECONCILE_BUDGET") -> str:
        """What took the time: ``took 14s of a 10s budget (...): observe 12s (listing e7
        11s, ...), decide 1.5s, act 0.3s; cut: ...``."""
        total = self.elapsed()
        parts = []
        for name, seconds in self.phases.items():
            text = f"{name} {_seconds(seconds)}"
            if name == "observe" and self.steps:
                slowest = sorted(self.steps.items(), key=lambda kv: -kv[1])[:SHOWN_STEPS]
                text += " (" + ", ".join(f"{s} {_seconds(t)}" for s, t in slowest) + ")"
            parts.append(text)
        out = (
            f"the reconcile took {_seconds(total)}, over its time budget of "
            f"{_seconds(self.budget)} ({setting}): " + ", ".join(parts)
        )
        if self.notes:
            out += "; " + "; ".join(self.notes)
        if self.stood_in:
            out += f"; listings not in time, their last ones stood in: {_names(self.stood_in)}"
        if self.unlisted:
            out += (
                f"; no listing in time, nothing launched or cancelled there this cycle: "
                f"{_names(self.unlisted)}"
            )
        if self.launches_cut:
            out += (
                f"; {sum(self.launches_cut.values())} launch(es) at "
                f"{len(self.launches_cut)} entries left to the next cycle: "
                f"{_names(list(self.launches_cut))}"
            )
        return out[:1000]


def _seconds(s: float) -> str:
    return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s" if s >= 0.1 else f"{s * 1000:.0f}ms"


def _names(names: list[str], shown: int = 5) -> str:
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
