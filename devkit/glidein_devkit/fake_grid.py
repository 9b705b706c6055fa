"""A grid schedd in memory (the GridSchedd interface of ``glidein_operator.condor.grid``),
holding real classad2 job ads, for the grid driver's tests and the operator's."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import classad2

from glidein_operator.api.cloudentry import GridSubmitter
from glidein_operator.clouds.grid import STDERR, STDOUT, credential_id
from glidein_operator.condor.classads import evaluates_true
from glidein_operator.condor.grid import (
    COMPLETED,
    HELD,
    IDLE,
    REMOVED,
    RUNNING,
    SubmitRefused,
)
from glidein_operator.condor.interface import CondorError


@dataclass
class FakeGridSchedd:
    """A schedd in memory. Grid jobs go idle -> running as the "CE" accepts them; a CE
    that rejects the token holds them, as the gridmanager does."""

    max_jobs: int = 100_000
    # The entrypoint's credentials it accepts, by the name the driver gives them
    # (``credential_id``: a hash): the job says which it was sent with.
    accepted: set[str] = field(default_factory=lambda: {credential_id(b"valid-token")})
    jobs: dict[tuple[int, int], classad2.ClassAd] = field(default_factory=dict)
    unreachable: bool = False
    calls: list[str] = field(default_factory=list)
    # What finished jobs left (folder, stdout, stderr), and each cluster's initialdir.
    outputs: dict[tuple[int, int], tuple[Path, str, str]] = field(default_factory=dict)
    initialdirs: dict[int, str] = field(default_factory=dict)
    output_names: tuple[str, str] = (STDOUT, STDERR)
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
            self.initialdirs[cluster] = description.get("initialdir", ".")
            sent = classad2.ExprTree(description.get("+GlideinCredential", '""')).eval()
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
                if sent not in self.accepted:
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

    def retrieve(self, constraint: str) -> None:
        """The output of finished jobs into their initialdir, as the schedd's spool
        transfer writes it."""
        self.calls.append("retrieve")
        self._check()
        expr = classad2.ExprTree(constraint)
        with self._lock:
            done = [
                (key, self.outputs[key])
                for key, ad in self.jobs.items()
                if key in self.outputs and evaluates_true(expr, ad)
            ]
        for (_cluster, proc), (folder, out, err) in done:
            (folder / f"{self.output_names[0]}.{proc}").write_text(out)
            (folder / f"{self.output_names[1]}.{proc}").write_text(err)

    def finish(self, cluster: int, proc: int, stdout: str, stderr: str = "") -> None:
        """The pilot job ended at the site and left this output."""
        with self._lock:
            ad = self.jobs[(cluster, proc)]
            ad["JobStatus"] = COMPLETED
            folder = Path(str(self.initialdirs[cluster]))
            self.outputs[(cluster, proc)] = (folder, stdout, stderr)

    def hold(self, cluster: int, proc: int, reason: str) -> None:
        with self._lock:
            ad = self.jobs[(cluster, proc)]
            ad["JobStatus"], ad["HoldReason"] = HELD, reason


@dataclass
class FakeSubmitters:
    """The operator's link to submitting schedds (``clouds.grid.Submitters``), all of them
    one FakeGridSchedd; what the operator published for them is kept by name."""

    schedd_: FakeGridSchedd
    published: dict[str, bytes] = field(default_factory=dict)

    def schedd(self, submitter: GridSubmitter) -> FakeGridSchedd:
        return self.schedd_

    def publish(self, name: str, content: bytes) -> None:
        self.published[name] = content
