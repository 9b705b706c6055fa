"""The schedd HTCondor-G pilots are submitted to (the operator's own, or a remote one).

A small interface, so the grid driver is tested against a fake that keeps real classad2
job ads (``glidein_devkit.fake_grid``, outside the product), and runs on the htcondor2
bindings in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import classad2
import htcondor2

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
