"""Pilot jobs on grid compute elements through HTCondor-G.

A batch is one grid-universe cluster of ``count`` jobs; the pilot id is
``{key}-{ProcId}``. Ownership lives in job attributes (``GlideinOperator``,
``GlideinEntry``, ``GlideinBatch`` ...) set in the submit itself. A schedd submit is a
transaction, so "list before submit" makes a batch idempotent across a crash.

A CE that refuses the credential does not fail the submit: the gridmanager holds the
job with a HoldReason. Held pilots are reported as ERROR with the reason (also their
"console log"), for the controller to remove.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import classad2
import htcondor2

from glidein_operator.api.cloudentry import GridSettings
from glidein_operator.clouds.base import DriverError, InvalidConfig, QuotaExceeded, Unavailable
from glidein_operator.condor.grid import (
    COMPLETED,
    HELD,
    IDLE,
    REMOVED,
    RUNNING,
    SUSPENDED,
    TRANSFERRING,
    GridSchedd,
    SubmitRefused,
)
from glidein_operator.condor.interface import CondorError
from glidein_operator.ground import CloudPilot, LaunchBatch, PilotState

PROJECTION = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "GridJobStatus",
    "HoldReason",
    "QDate",
    "GlideinOperator",
    "GlideinEntry",
    "GlideinRequestUid",
    "GlideinBatch",
    "GlideinInstanceType",
)
DEFAULT_EXECUTABLE = "/usr/libexec/glidein-operator/glidein-pilot"
_STATES = {
    IDLE: PilotState.PENDING,
    RUNNING: PilotState.RUNNING,
    TRANSFERRING: PilotState.RUNNING,
    REMOVED: PilotState.TERMINATED,
    COMPLETED: PilotState.TERMINATED,
    HELD: PilotState.ERROR,
    SUSPENDED: PilotState.SHUTDOWN,
}


def grid_resource(settings: GridSettings) -> str:
    host = settings.endpoint.split(":")[0]
    if settings.ce_type == "condor":
        port = settings.endpoint if ":" in settings.endpoint else f"{settings.endpoint}:9619"
        return f"condor {host} {port}"
    if settings.ce_type == "arc":
        return f"arc https://{settings.endpoint}/arex"
    return f"batch {settings.batch_system} {settings.endpoint}"


def map_sdk_error(exc: BaseException, entry: str) -> DriverError | None:
    """The schedd's refusals and failures (``condor.grid``'s SubmitRefused and
    CondorError, an HTCondorException the bindings let out, socket errors) -> the domain
    taxonomy; None for anything else (a ClassAd expression of ours that does not parse is
    a bug, not a sick schedd)."""
    if isinstance(exc, SubmitRefused):
        if "MAX_JOBS" in str(exc):
            return QuotaExceeded(str(exc), entry=entry)
        return InvalidConfig(str(exc), entry=entry)
    if isinstance(exc, CondorError | htcondor2.HTCondorException | OSError):
        return Unavailable(f"schedd: {exc}", entry=entry)
    return None


def _q(value: str) -> str:
    return classad2.quote(value)  # type: ignore[no-any-return]


class GridDriver:
    def __init__(
        self,
        entry: str,
        settings: GridSettings,
        *,
        schedd: GridSchedd,
        operator_id: str,
        credential_file: Path | None,
        credential_type: str = "scitoken",
        executable: str = DEFAULT_EXECUTABLE,
    ) -> None:
        self.entry = entry
        self.settings = settings
        self.schedd = schedd
        self.operator_id = operator_id
        self.credential_file = credential_file
        self.credential_type = credential_type
        self.executable = executable

    def map_error(self, exc: BaseException) -> DriverError | None:
        return map_sdk_error(exc, self.entry)

    def _mine(self) -> str:
        return f"GlideinOperator == {_q(self.operator_id)} && GlideinEntry == {_q(self.entry)}"

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        mine = f"{self._mine()} && GlideinBatch == {_q(batch.key)}"
        existing = self.schedd.query(mine, PROJECTION)
        if not existing:
            self.schedd.submit(self._description(batch), batch.count)
            existing = self.schedd.query(mine, PROJECTION)
        return [self._pilot(ad) for ad in existing]

    def _description(self, batch: LaunchBatch) -> dict[str, str]:
        s, shape = self.settings, batch.shape
        desc = {
            "universe": "grid",
            "grid_resource": grid_resource(s),
            "executable": self.executable,
            "transfer_executable": "true",
            "environment": f'"GLIDEIN_PILOT_ID={batch.key}-$(ProcId) '
            f'GLIDEIN_PAYLOAD={base64.b64encode(batch.user_data).decode()}"',
            "request_cpus": str(shape.cpus),
            "request_memory": str(shape.memory_mb),
            "request_disk": str(shape.disk_gb * 1024 * 1024),
            "+GlideinOperator": _q(self.operator_id),
            "+GlideinEntry": _q(self.entry),
            "+GlideinRequestUid": _q(batch.request_uid),
            "+GlideinRequest": _q(batch.request),
            "+GlideinBatch": _q(batch.key),
            "+GlideinInstanceType": _q(shape.name),
            # A pilot job that is held or idle forever must not linger at the CE.
            "periodic_remove": "(JobStatus == 5 && (time() - EnteredCurrentStatus) > 3600)",
        }
        if s.queue:
            desc["batch_queue"] = s.queue
        if self.credential_file is not None:
            key = "scitokens_file" if self.credential_type == "scitoken" else "x509userproxy"
            desc[key] = str(self.credential_file)
        for key, value in s.submit_attributes.items():
            desc[key] = value
        return desc

    def list_pilots(self) -> list[CloudPilot]:
        return [self._pilot(ad) for ad in self.schedd.query(self._mine(), PROJECTION)]

    def _pilot(self, ad: classad2.ClassAd) -> CloudPilot:
        status = int(ad.get("JobStatus", 0))
        raw = {
            1: "Idle",
            2: "Running",
            3: "Removed",
            4: "Completed",
            5: "Held",
            6: "Transferring",
            7: "Suspended",
        }
        text = raw.get(status, str(status))
        if status == HELD and ad.get("HoldReason"):
            text = f"Held: {ad['HoldReason']}"
        qdate = ad.get("QDate")
        return CloudPilot(
            pilot_id=f"{ad.get('GlideinBatch', '')}-{ad.get('ProcId', 0)}",
            cloud_id=f"{ad.get('ClusterId')}.{ad.get('ProcId')}",
            entry=str(ad.get("GlideinEntry", self.entry)),
            request_uid=str(ad.get("GlideinRequestUid", "")),
            batch=str(ad.get("GlideinBatch", "")),
            instance_type=str(ad.get("GlideinInstanceType", "")),
            state=_STATES.get(status, PilotState.UNKNOWN),
            launched_at=dt.datetime.fromtimestamp(int(qdate), dt.UTC)
            if isinstance(qdate, int)
            else None,
            raw_state=text,
        )

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        ids = [p.cloud_id for p in pilots if p.state is not PilotState.TERMINATED]
        if not ids:
            return
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            expr = " || ".join(
                f"(ClusterId == {c} && ProcId == {p})" for c, p in (i.split(".") for i in chunk)
            )
            self.schedd.remove(f"{self._mine()} && ({expr})", "glidein-operator: no longer needed")

    def console_log(self, pilot: CloudPilot) -> str:
        cluster, proc = pilot.cloud_id.split(".")
        ads = self.schedd.query(
            f"ClusterId == {int(cluster)} && ProcId == {int(proc)}",
            ("HoldReason", "GridJobStatus", "JobStatus", "LastRemoteStatus"),
        )
        if not ads:
            return ""
        ad = ads[0]
        return "\n".join(
            f"{k} = {ad[k]}" for k in ("JobStatus", "GridJobStatus", "HoldReason") if k in ad
        )

    def image_exists(self, image_id: str) -> bool:
        return True  # grid pilots bring their own software: nothing to check

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        return 0  # a batch leaves nothing but its pilots here

    def leftovers(self) -> list[str]:
        return []
