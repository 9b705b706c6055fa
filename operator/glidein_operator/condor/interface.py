"""The two things the operator asks HTCondor, behind one small interface.

The real implementation (``htcondor.py``) uses the htcondor2 bindings; the fake
(``fake.py``) holds real classad2 ads and evaluates constraints with classad2, for tests
and the demo (the PyPI wheel ships bindings but no daemons).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import classad2


class CondorError(RuntimeError):
    """A schedd or collector could not be queried (unreachable, refused, timed out)."""


class Pool(Protocol):
    """A user pool: its collector, and the schedds it can locate."""

    def idle_jobs(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        """Ads of idle jobs (JobStatus == 1) matching ``constraint``, only ``projection``'s
        attributes. Raises CondorError when the schedd cannot be reached."""
        ...

    def slot_ads(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        """Startd ads from the collector matching ``constraint``."""
        ...
