"""The two things the operator asks HTCondor, behind one small interface.

The real implementation (``htcondor.py``, run in a worker by ``isolated.py``) uses the
htcondor2 bindings. Tests and the demo inject another (``Runtime.pool_factory``): the
development kit's ``glidein_devkit.fake_pool`` holds real classad2 ads and evaluates
constraints with classad2 (the PyPI wheel ships bindings but no daemons).
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
