"""The real Pool, on the htcondor2 bindings. Every method blocks: call off the event loop."""

from __future__ import annotations

from collections.abc import Sequence

import classad2
import htcondor2

from glidein_operator.condor.interface import CondorError


class HTCondorPool:
    """A user pool reached through its collector (``host[:port]``)."""

    def __init__(self, collector: str) -> None:
        self.collector_address = collector
        self._collector = htcondor2.Collector(collector)

    def _schedd(self, name: str) -> htcondor2.Schedd:
        try:
            ad = self._collector.locate(htcondor2.DaemonType.Schedd, name)
        except Exception as exc:  # the bindings raise HTCondorException subclasses
            raise CondorError(
                f"cannot locate schedd {name!r} via {self.collector_address}: {exc}"
            ) from exc
        return htcondor2.Schedd(ad)

    def idle_jobs(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        # Client-side clustering after a projected query, rather than the schedd's
        # AutoCluster query: autocluster ads count running jobs too and carry only the
        # schedd's own significant attributes, so a request's constraint on, say,
        # AcctGroup could not be evaluated on them.
        try:
            return list(
                self._schedd(schedd).query(
                    constraint=f"JobStatus == 1 && ({constraint})", projection=list(projection)
                )
            )
        except CondorError:
            raise
        except Exception as exc:
            raise CondorError(f"query of schedd {schedd!r} failed: {exc}") from exc

    def slot_ads(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        try:
            return list(
                self._collector.query(
                    htcondor2.AdType.Startd, constraint=constraint, projection=list(projection)
                )
            )
        except Exception as exc:
            raise CondorError(f"query of collector {self.collector_address} failed: {exc}") from exc
