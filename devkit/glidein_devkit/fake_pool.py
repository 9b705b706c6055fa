"""A schedd and collector in memory, holding real classad2 ads (for tests and the demo).

Constraints are evaluated by classad2 exactly as a schedd evaluates them, projections
are honoured, and a schedd can be made unreachable to exercise error paths.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import classad2

from glidein_operator.condor.classads import evaluates_true
from glidein_operator.condor.interface import CondorError


@dataclass
class FakePool:
    schedds: dict[str, list[classad2.ClassAd]] = field(default_factory=dict)
    slots: list[classad2.ClassAd] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- programming the fake ------------------------------------------------------------

    def submit(self, schedd: str, count: int = 1, **attrs: object) -> list[int]:
        """Queue ``count`` idle jobs with these attributes (values or ExprTree); return ids."""
        cluster = next(self._ids)
        ids = []
        with self._lock:
            queue = self.schedds.setdefault(schedd, [])
            for proc in range(count):
                ad = classad2.ClassAd()
                ad["ClusterId"] = cluster
                ad["ProcId"] = proc
                ad["JobStatus"] = 1
                ad["JobUniverse"] = 5
                ad["Owner"] = "user"
                for k, v in attrs.items():
                    ad[k] = v
                queue.append(ad)
                ids.append(cluster)
        return ids

    def set_status(self, schedd: str, constraint: str, status: int) -> int:
        expr = classad2.ExprTree(constraint)
        n = 0
        with self._lock:
            for ad in self.schedds.get(schedd, []):
                if evaluates_true(expr, ad):
                    ad["JobStatus"] = status
                    n += 1
        return n

    def remove_jobs(self, schedd: str, constraint: str) -> int:
        expr = classad2.ExprTree(constraint)
        with self._lock:
            queue = self.schedds.get(schedd, [])
            keep = [ad for ad in queue if not evaluates_true(expr, ad)]
            self.schedds[schedd] = keep
            return len(queue) - len(keep)

    def advertise(self, ads: Iterable[classad2.ClassAd]) -> None:
        with self._lock:
            self.slots.extend(ads)

    def invalidate(self, constraint: str) -> int:
        expr = classad2.ExprTree(constraint)
        with self._lock:
            before = len(self.slots)
            self.slots = [ad for ad in self.slots if not evaluates_true(expr, ad)]
            return before - len(self.slots)

    # --- the Pool interface ---------------------------------------------------------------

    def idle_jobs(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        self.calls.append(("idle_jobs", schedd))
        if schedd in self.unreachable or schedd not in self.schedds:
            raise CondorError(f"cannot locate schedd {schedd!r} in the collector")
        expr = classad2.ExprTree(f"JobStatus == 1 && ({constraint})")
        with self._lock:
            jobs = list(self.schedds[schedd])
        return [_project(ad, projection) for ad in jobs if evaluates_true(expr, ad)]

    def slot_ads(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        self.calls.append(("slot_ads", constraint))
        expr = classad2.ExprTree(constraint)
        with self._lock:
            slots = list(self.slots)
        return [_project(ad, projection) for ad in slots if evaluates_true(expr, ad)]


def _project(ad: classad2.ClassAd, projection: Sequence[str]) -> classad2.ClassAd:
    if not projection:
        return ad
    out = classad2.ClassAd()
    for name in projection:
        value = ad.get(name)
        if value is not None:
            out[name] = value
    return out
