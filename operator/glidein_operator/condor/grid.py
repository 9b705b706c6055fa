"""The schedd HTCondor-G pilots are submitted to (the operator's own, or a remote one).

A small interface, so the grid driver is tested against a fake that keeps real classad2
job ads, and runs on the htcondor2 bindings in production.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import classad2
import htcondor2

from glidein_operator.condor.classads import evaluates_true
from glidein_operator.condor.interface import CondorError

# JobStatus numbers
IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING, SUSPENDED = 1, 2, 3, 4, 5, 6, 7


class SubmitRefused(CondorError):
    """The schedd refused the submit (limits such as MAX_JOBS_PER_OWNER, bad description)."""


class GridSchedd(Protocol):
    def submit(self, description: dict[str, str], count: int) -> int:
        """Queue ``count`` jobs; return the cluster id. Raises SubmitRefused / CondorError."""
        ...

    def query(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]: ...

    def remove(self, constraint: str, reason: str) -> int:
        """Remove matching jobs; return how many were affected."""
        ...


class HTCondorGridSchedd:
    """A real schedd through htcondor2 (``name`` None: the local one)."""

    def __init__(self, name: str | None = None, collector: str | None = None) -> None:
        if name:
            ad = htcondor2.Collector(collector).locate(htcondor2.DaemonType.Schedd, name)
            self._schedd = htcondor2.Schedd(ad)
        else:
            self._schedd = htcondor2.Schedd()

    def submit(self, description: dict[str, str], count: int) -> int:
        try:
            result = self._schedd.submit(htcondor2.Submit(description), count=count)
        except htcondor2.HTCondorException as exc:
            text = str(exc)
            if "MAX_JOBS" in text or "refused" in text.lower():
                raise SubmitRefused(text) from exc
            raise CondorError(text) from exc
        return int(result.cluster())

    def query(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        try:
            return list(self._schedd.query(constraint=constraint, projection=list(projection)))
        except htcondor2.HTCondorException as exc:
            raise CondorError(str(exc)) from exc

    def remove(self, constraint: str, reason: str) -> int:
        try:
            ad = self._schedd.act(htcondor2.JobAction.Remove, constraint, reason=reason)
        except htcondor2.HTCondorException as exc:
            raise CondorError(str(exc)) from exc
        return int(ad.get("TotalSuccess", 0))


@dataclass
class FakeGridSchedd:
    """A schedd in memory. Grid jobs go idle -> running as the "CE" accepts them; a CE
    that rejects the token holds them, as the gridmanager does."""

    max_jobs: int = 100_000
    accepted_tokens: set[str] = field(default_factory=lambda: {"valid-token"})
    jobs: dict[tuple[int, int], classad2.ClassAd] = field(default_factory=dict)
    unreachable: bool = False
    calls: list[str] = field(default_factory=list)
    _clusters: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self) -> None:
        if self.unreachable:
            raise CondorError("Failed to connect to schedd: connection refused")

    def submit(self, description: dict[str, str], count: int) -> int:
        self.calls.append("submit")
        self._check()
        with self._lock:
            live = sum(1 for j in self.jobs.values() if j["JobStatus"] not in (REMOVED, COMPLETED))
            if live + count > self.max_jobs:
                raise SubmitRefused(
                    f"Number of submitted jobs would exceed MAX_JOBS_PER_OWNER ({self.max_jobs})"
                )
            if description.get("universe") != "grid" or not description.get("grid_resource"):
                raise SubmitRefused("grid universe jobs need a grid_resource")
            cluster = next(self._clusters)
            token = ""
            if description.get("scitokens_file"):
                with open(description["scitokens_file"]) as handle:
                    token = handle.read().strip()
            for proc in range(count):
                ad = classad2.ClassAd()
                ad["ClusterId"], ad["ProcId"], ad["JobStatus"] = cluster, proc, IDLE
                ad["JobUniverse"] = 9
                ad["GridResource"] = description["grid_resource"]
                ad["QDate"] = 1_700_000_000 + cluster
                for key, value in description.items():
                    if key.startswith("+"):
                        ad[key[1:]] = classad2.ExprTree(value)
                    elif key in ("request_cpus", "request_memory", "request_disk"):
                        ad["Request" + key.split("_")[1].capitalize()] = int(value)
                if token not in self.accepted_tokens:
                    ad["JobStatus"] = HELD
                    ad["HoldReason"] = (
                        "Error from CE: SCITOKENS:2:Failed to verify token: authentication failed"
                    )
                    ad["HoldReasonCode"] = 2
                self.jobs[(cluster, proc)] = ad
            return cluster

    def query(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        self.calls.append("query")
        self._check()
        expr = classad2.ExprTree(constraint)
        with self._lock:
            for ad in self.jobs.values():
                if ad["JobStatus"] == IDLE:
                    ad["JobStatus"] = RUNNING  # the CE took it
                    ad["GridJobStatus"] = "RUNNING"
            return [ad for ad in self.jobs.values() if evaluates_true(expr, ad)]

    def remove(self, constraint: str, reason: str) -> int:
        self.calls.append("remove")
        self._check()
        expr = classad2.ExprTree(constraint)
        n = 0
        with self._lock:
            for ad in self.jobs.values():
                if ad["JobStatus"] not in (REMOVED, COMPLETED) and evaluates_true(expr, ad):
                    ad["JobStatus"] = REMOVED
                    ad["RemoveReason"] = reason
                    n += 1
        return n

    def hold(self, cluster: int, proc: int, reason: str) -> None:
        with self._lock:
            ad = self.jobs[(cluster, proc)]
            ad["JobStatus"], ad["HoldReason"] = HELD, reason
