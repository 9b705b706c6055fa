"""The schedd grid pilots are submitted to: the interface, and the real one.

A small interface, so the grid driver is also tested against a fake that keeps real
classad2 job ads (``glidein_devkit.fake_grid``, outside the product); in production it is a
remote schedd, reached through its collector with an IDTOKEN (``HTCondorGridSchedd``).
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
        """Queue ``count`` jobs, their input files spooled; return the cluster id. Raises
        SubmitRefused / CondorError."""
        ...

    def query(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]: ...

    def remove(self, constraint: str, reason: str) -> int:
        """Remove matching jobs; return how many were affected."""
        ...

    def retrieve(self, constraint: str) -> None:
        """Fetch the spooled output of finished jobs into their submit folders."""
        ...


def _refusal(exc: Exception) -> CondorError:
    text = str(exc)
    if "MAX_JOBS" in text or "refused" in text.lower():
        return SubmitRefused(text)
    return CondorError(text)


class HTCondorGridSchedd:
    """A schedd reached from afar, through the bindings. Every method blocks."""

    def __init__(self, schedd: htcondor2.Schedd, name: str) -> None:
        self._schedd = schedd
        self.name = name

    def submit(self, description: dict[str, str], count: int) -> int:
        # Spooled: the operator's files are not on the schedd's host. The jobs wait, held
        # ("Spooling input data files"), until spool() has sent them, then go.
        try:
            result = self._schedd.submit(htcondor2.Submit(description), count=count, spool=True)
        except Exception as exc:  # the bindings raise HTCondorException subclasses
            raise _refusal(exc) from exc
        try:
            self._schedd.spool(result)
        except Exception as exc:
            # Held for spooling forever: the listing shows them held, and the operator
            # reaps them with this reason; the batch key keeps a retry from doubling them.
            raise CondorError(f"spooling the pilot's files to {self.name} failed: {exc}") from exc
        return int(result.cluster())

    def query(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        try:
            return list(self._schedd.query(constraint=constraint, projection=list(projection)))
        except Exception as exc:
            raise CondorError(f"query of schedd {self.name!r} failed: {exc}") from exc

    def remove(self, constraint: str, reason: str) -> int:
        try:
            ad = self._schedd.act(htcondor2.JobAction.Remove, constraint, reason=reason)
        except Exception as exc:
            raise CondorError(f"remove at schedd {self.name!r} failed: {exc}") from exc
        return int(ad.get("TotalSuccess", 0))

    def retrieve(self, constraint: str) -> None:
        try:
            self._schedd.retrieve(constraint)
        except Exception as exc:
            raise CondorError(f"fetching output from schedd {self.name!r} failed: {exc}") from exc
