"""Pilot jobs at a site's compute entrypoint, through a submitting schedd (HTCondor-G).

A batch is one grid-universe cluster of ``count`` jobs on the submitting schedd (the
chart's, or the site admins': ``GridSubmitter``); its gridmanager forwards each to the
entrypoint (``grid_resource = condor <schedd> <collector>``: HTCondor-C, which is what
HTCondor-CE speaks). The pilot id is ``{key}-{ProcId}``. Ownership lives in job
attributes (``GlideinOperator``, ``GlideinEntry``, ``GlideinBatch`` ...) set in the submit
itself; a schedd submit is a transaction, so "look up the batch key, then submit" makes a
batch idempotent across a crash.

The job carries everything the worker node lacks (``pilot/bundle.py``): a shell bootstrap
as its executable, the pilot as a zipapp, the payload as a file (never in the job's
environment: a job ad is readable by anyone with READ at the schedd), and, where the
entry names one, an HTCondor tarball the site's curl plugin fetches. The operator submits
from afar, so the input files are spooled with the submit.

States: idle at the submitting schedd (no ``GridJobStatus`` yet), idle at the site, running,
held (the entrypoint refused the credential, or anything else the gridmanager holds a job
for: the HoldReason is its "console log"), completed (its stdout and stderr, spooled back,
are its console log). A completed job stays in the submitting schedd's queue for an hour
(``leave_in_queue``) so that its output can be fetched; ``collect`` removes it sooner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import classad2
import htcondor2

from glidein_operator.api.cloudentry import GridSettings, GridSubmitter
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
from glidein_operator.pilot import bundle

PROJECTION = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "GridJobStatus",
    "GridJobId",
    "HoldReason",
    "QDate",
    "CompletionDate",
    "EnteredCurrentStatus",
    "GridResourceUnavailableTime",
    "GlideinOperator",
    "GlideinEntry",
    "GlideinRequestUid",
    "GlideinBatch",
    "GlideinInstanceType",
)
_STATES = {
    IDLE: PilotState.PENDING,
    RUNNING: PilotState.RUNNING,
    TRANSFERRING: PilotState.RUNNING,
    REMOVED: PilotState.TERMINATED,
    COMPLETED: PilotState.TERMINATED,
    HELD: PilotState.ERROR,
    SUSPENDED: PilotState.SHUTDOWN,
}
# Seconds a finished pilot job stays in the submitting schedd's queue for its output to be
# fetched (the operator's log of it); HTCondor drops it then, whether fetched or not.
KEEP_FINISHED = 3600
# The pilot's stdout and stderr in its sandbox (one sandbox per job: the names can repeat).
STDOUT, STDERR = "glidein-pilot.out", "glidein-pilot.err"


def credential_id(content: bytes) -> str:
    """A name for a credential that says nothing of it (the submitting schedd's copy)."""
    return hashlib.sha256(content).hexdigest()[:16]


def grid_resource(settings: GridSettings) -> str:
    host = settings.endpoint.split(":")[0]
    if settings.ce_type == "condor":
        collector = settings.endpoint if ":" in settings.endpoint else f"{settings.endpoint}:9619"
        return f"condor {settings.schedd_name or host} {collector}"
    if settings.ce_type == "arc":
        return f"arc https://{settings.endpoint}/arex"
    return f"batch {settings.batch_system} {settings.endpoint}"


class Submitters(Protocol):
    """How the driver reaches the submitting schedd and hands it the entrypoint's
    credential (``controller/gridlink.py`` in the operator; a fake schedd in tests)."""

    def schedd(self, submitter: GridSubmitter) -> GridSchedd:
        """The submitting schedd, authenticated (raises CondorError when unreachable)."""
        ...

    def publish(self, name: str, content: bytes) -> None:
        """Make ``content`` a file ``name`` on the submitting schedd's host (the chart's
        submitter syncs a Secret: ``*.idtoken`` into its gridmanager's token directory,
        ``*.scitoken`` into its credential directory)."""
        ...


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
        return Unavailable(f"submitting schedd: {exc}", entry=entry)
    return None


def _q(value: str) -> str:
    return classad2.quote(value)  # type: ignore[no-any-return]


_bundles: dict[Path, bundle.GridPilotFiles] = {}
_bundle_lock = threading.Lock()


def pilot_files(folder: Path) -> bundle.GridPilotFiles:
    """The bootstrap and the zipapp, built once per folder and process."""
    with _bundle_lock:
        found = _bundles.get(folder)
        if found is None or not found.zipapp.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            found = _bundles[folder] = bundle.write_grid_pilot(folder)
        return found


class GridDriver:
    def __init__(
        self,
        entry: str,
        settings: GridSettings,
        *,
        submitter: GridSubmitter,
        submitters: Submitters,
        operator_id: str,
        workdir: Path,
        credential: bytes | None = None,
        credential_type: str = "idtoken",
    ) -> None:
        self.entry = entry
        self.settings = settings
        self.submitter = submitter
        self.submitters = submitters
        self.operator_id = operator_id
        self.workdir = workdir
        self.credential = credential
        self.credential_type = credential_type
        # Since when the submitting schedd's gridmanager cannot reach the site (it says so
        # on every job there): new pilots would only wait with the others.
        self.site_down_since: int | None = None
        # Jobs this driver removed: a removed job may still show its last status for a
        # moment (a finished one stays "Completed" until the schedd lets it go), and must
        # not be reaped, nor its log kept, twice.
        self._removed: set[str] = set()

    @property
    def schedd(self) -> GridSchedd:
        return self.submitters.schedd(self.submitter)

    def map_error(self, exc: BaseException) -> DriverError | None:
        return map_sdk_error(exc, self.entry)

    def _mine(self) -> str:
        return f"GlideinOperator == {_q(self.operator_id)} && GlideinEntry == {_q(self.entry)}"

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        schedd = self.schedd
        mine = f"{self._mine()} && GlideinBatch == {_q(batch.key)}"
        existing = schedd.query(mine, PROJECTION)
        if not existing and self.site_down_since is not None:
            when = dt.datetime.fromtimestamp(self.site_down_since, dt.UTC)
            raise Unavailable(
                f"the site's entrypoint ({grid_resource(self.settings)}) is unreachable from "
                f"the submitting schedd since {when:%Y-%m-%d %H:%M:%S} UTC (its "
                "gridmanager says so on the pilots waiting there)",
                entry=self.entry,
            )
        if not existing:
            folder = self.workdir / "batches" / batch.key
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                schedd.submit(self._description(batch, folder), batch.count)
            finally:
                # Spooled by now (or never submitted): the pilot token leaves this disk.
                (folder / bundle.PAYLOAD_NAME).unlink(missing_ok=True)
            existing = schedd.query(mine, PROJECTION)
        return [self._pilot(ad) for ad in existing]

    def _credential(self, desc: dict[str, str]) -> None:
        content = self.credential
        if not content:
            return
        name = credential_id(content)
        desc["+GlideinCredential"] = _q(name)
        if self.credential_type == "x509-proxy":
            # HTCondor spools a proxy with the job and renews its copy; nothing to publish.
            path = self.workdir / "credentials" / f"{name}.proxy"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
            desc["x509userproxy"] = str(path)
            return
        kind = "scitoken" if self.credential_type == "scitoken" else "idtoken"
        self.submitters.publish(f"{name}.{kind}", content)
        if kind == "scitoken":
            desc["scitokens_file"] = f"{self.submitter.credential_dir}/{name}.scitoken"
        # An IDTOKEN needs no mention: the gridmanager's client picks, from its token
        # directory, the one whose issuer is the entrypoint's TRUST_DOMAIN.

    def _description(self, batch: LaunchBatch, folder: Path) -> dict[str, str]:
        s, shape = self.settings, batch.shape
        files = pilot_files(self.workdir / "pilot")
        payload = folder / bundle.PAYLOAD_NAME
        fd = os.open(payload, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(batch.user_data)
        inputs = [str(files.zipapp), str(payload)]
        tarball = "-"
        if s.condor_tarball_url:
            inputs.append(s.condor_tarball_url)
            tarball = s.condor_tarball_url.rstrip("/").rsplit("/", 1)[-1]
        desc = {
            "universe": "grid",
            "grid_resource": grid_resource(s),
            "executable": str(files.executable),
            "transfer_executable": "true",
            "arguments": tarball,
            "transfer_input_files": ", ".join(inputs),
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT_OR_EVICT",
            "initialdir": str(folder),
            "output": f"{STDOUT}.$(ProcId)",
            "error": f"{STDERR}.$(ProcId)",
            "environment": f'"GLIDEIN_PILOT_ID={batch.key}-$(ProcId)"',
            "request_cpus": str(shape.cpus),
            "request_memory": str(shape.memory_mb),
            "request_disk": str(shape.disk_gb * 1024 * 1024),
            "+GlideinOperator": _q(self.operator_id),
            "+GlideinEntry": _q(self.entry),
            "+GlideinRequestUid": _q(batch.request_uid),
            "+GlideinRequest": _q(batch.request),
            "+GlideinBatch": _q(batch.key),
            "+GlideinInstanceType": _q(shape.name),
            # A pilot job held for a day is not coming back; the operator reaps held ones
            # long before, this is for an operator that is gone.
            "periodic_remove": "(JobStatus == 5 && (time() - EnteredCurrentStatus) > 86400)",
            # EnteredCurrentStatus, not CompletionDate: a grid job's is not always set.
            "leave_in_queue": (
                f"JobStatus == 4 && (time() - EnteredCurrentStatus) < {KEEP_FINISHED}"
            ),
            # Only stdout and stderr come back: the sandbox holds the pilot's token.
            "transfer_output_files": "",
        }
        if s.queue:
            desc["batch_queue"] = s.queue
        self._credential(desc)
        for key, value in s.submit_attributes.items():
            desc[key] = value
        return desc

    def list_pilots(self) -> list[CloudPilot]:
        ads = self.schedd.query(self._mine(), PROJECTION)
        down = [
            int(t)
            for ad in ads
            if isinstance(t := ad.get("GridResourceUnavailableTime"), int)
            and int(ad.get("JobStatus", 0)) == IDLE
        ]
        self.site_down_since = min(down) if down else None
        pilots = [self._pilot(ad) for ad in ads]
        self._removed &= {p.cloud_id for p in pilots}
        return pilots

    def _pilot(self, ad: classad2.ClassAd) -> CloudPilot:
        status = int(ad.get("JobStatus", 0))
        removed = f"{ad.get('ClusterId')}.{ad.get('ProcId')}" in self._removed
        if removed and status != COMPLETED:
            status = REMOVED
        return CloudPilot(
            pilot_id=f"{ad.get('GlideinBatch', '')}-{ad.get('ProcId', 0)}",
            cloud_id=f"{ad.get('ClusterId')}.{ad.get('ProcId')}",
            entry=str(ad.get("GlideinEntry", self.entry)),
            request_uid=str(ad.get("GlideinRequestUid", "")),
            batch=str(ad.get("GlideinBatch", "")),
            instance_type=str(ad.get("GlideinInstanceType", "")),
            state=PilotState.TERMINATED if removed else _STATES.get(status, PilotState.UNKNOWN),
            launched_at=_when(ad.get("QDate")),
            ended_at=_when(ad.get("CompletionDate") or ad.get("EnteredCurrentStatus"))
            if status == COMPLETED
            else None,
            raw_state=raw_state(ad),
            # Finished, its output spooled back and waiting to be fetched: the operator
            # keeps the log, then removes the job (``terminate``).
            lingers=status == COMPLETED and not removed,
            # A pilot job ends by itself (idle, retired, or failed at start-up): its
            # "power-off". The operator only ever removes them (JobStatus 3).
            shut_itself_down=status == COMPLETED,
        )

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        """Remove the jobs at the submitting schedd; its gridmanager removes them at the
        site. Finished ones too (their output is no longer wanted); not those removed
        already, or gone by themselves."""
        ids = [
            p.cloud_id
            for p in pilots
            if p.cloud_id not in self._removed
            and (p.state is not PilotState.TERMINATED or p.lingers)
        ]
        if ids:
            self._remove(ids, "glidein-operator: no longer needed")

    def _remove(self, ids: Sequence[str], reason: str) -> None:
        self._removed |= set(ids)
        schedd = self.schedd
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            expr = " || ".join(
                f"(ClusterId == {int(c)} && ProcId == {int(p)})"
                for c, p in (i.split(".") for i in chunk)
            )
            schedd.remove(f"{self._mine()} && ({expr})", reason)

    def console_log(self, pilot: CloudPilot) -> str:
        """What the pilot said: where its job is (with the hold reason), and once it
        finished, from its output (fetched from the submitting schedd's spool): the ends
        of the pilot's own log and of its HTCondor logs, and of its stderr."""
        cluster, proc = (int(x) for x in pilot.cloud_id.split("."))
        schedd = self.schedd
        ads = schedd.query(
            f"{self._mine()} && ClusterId == {cluster} && ProcId == {proc}",
            ("JobStatus", "GridJobStatus", "GridJobId", "HoldReason", "GlideinBatch"),
        )
        if not ads:
            return ""
        ad = ads[0]
        said = [raw_state(ad)]
        if int(ad.get("JobStatus", 0)) == COMPLETED:
            folder = self.workdir / "batches" / str(ad.get("GlideinBatch", "unknown"))
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            schedd.retrieve(f"ClusterId == {cluster} && ProcId == {proc}")
            out, err = (_take(folder / f"{name}.{proc}") for name in (STDOUT, STDERR))
            said += output_summary(out, err)
        return "\n".join(said)

    def image_exists(self, image_id: str) -> bool:
        return True  # grid pilots bring their own software: nothing to check

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        """Finished pilot jobs left in the submitting schedd's queue (kept there for their
        output), older than ``min_age_seconds``; and the batch folders of gone batches."""
        mine = self._mine() + (f" && GlideinRequestUid == {_q(request_uid)}" if request_uid else "")
        ads = self.schedd.query(f"{mine} && JobStatus == {COMPLETED}", PROJECTION)
        now = dt.datetime.now(dt.UTC).timestamp()
        done = [
            f"{ad['ClusterId']}.{ad['ProcId']}"
            for ad in ads
            if now - float(ad.get("EnteredCurrentStatus") or now) >= min_age_seconds
        ]
        if done:
            self._remove(done, "glidein-operator: finished")
        live = {str(ad.get("GlideinBatch")) for ad in self.schedd.query(mine, PROJECTION)}
        batches = self.workdir / "batches"
        if batches.is_dir() and request_uid is None:
            for folder in batches.iterdir():
                if folder.name not in live:
                    shutil.rmtree(folder, ignore_errors=True)
        return len(done)

    def leftovers(self) -> list[str]:
        return []


def _when(value: object) -> dt.datetime | None:
    if isinstance(value, int) and value > 0:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return None


def raw_state(ad: classad2.ClassAd) -> str:
    """Where the pilot job is, in words: at the submitting schedd, at the site, done."""
    status = int(ad.get("JobStatus", 0))
    grid = ad.get("GridJobStatus")
    if status == IDLE:
        if isinstance(ad.get("GridResourceUnavailableTime"), int):
            return "Idle at the submitting schedd: the site is unreachable"
        if grid is None or not ad.get("GridJobId"):
            return "Idle at the submitting schedd"
        return f"Idle at the site (GridJobStatus {grid})"
    if status == RUNNING:
        return f"Running at the site (GridJobStatus {grid})" if grid else "Running"
    if status == HELD:
        return f"Held: {ad.get('HoldReason', 'no reason given')}"
    return {3: "Removed", 4: "Completed", 6: "Transferring output", 7: "Suspended"}.get(
        status, str(status)
    )


def _take(path: Path) -> str:
    """A fetched output file's text, and the file gone (it may hold what the pilot said
    of its token's claims: nothing of it stays on the operator's disk)."""
    if not path.exists():
        return ""
    text = path.read_text(errors="replace")
    path.unlink()
    return text


# Lines of each log end kept, most telling first: the status keeps the last 4,000
# characters of a pilot's log, so the pilot's own words go last.
_TAIL_LINES = (("MasterLog", 6), ("StartLog", 12), ("glidein-pilot.log", 25))


def output_summary(stdout: str, stderr: str) -> list[str]:
    """A finished pilot's output, short: the ends of the logs its bootstrap printed
    (framed, ``pilot/bundle.py``), else of its stdout and its stderr."""
    tails = bundle.log_tails(stdout)
    lines: list[str] = []
    if tails:
        for name, keep in _TAIL_LINES:
            if tails.get(name, "").strip():
                lines += [f"--- {name}", *tails[name].splitlines()[-keep:]]
    elif stdout.strip():
        lines += ["--- stdout", *stdout.splitlines()[-30:]]
    # The pilot says its log on stderr too: stderr adds only where that log is missing
    # (the bootstrap failed before the pilot ran).
    if stderr.strip() and not tails.get("glidein-pilot.log", "").strip():
        lines += ["--- stderr", *stderr.splitlines()[-15:]]
    return lines
