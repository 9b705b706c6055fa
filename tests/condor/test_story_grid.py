"""The story on a grid site, real: three roles of real HTCondor on 127.0.0.1.

* the user pool (collector, negotiator, schedd) where the community's jobs wait;
* the submitting schedd with its gridmanager (``glidein_devkit.grid_site.Submitter``), to
  which the operator (its own process, a real kube-apiserver) submits grid pilots with a
  token it mints from the submitter's signing key, and hands the site's token through the
  grid-credentials Secret (synced into the gridmanager's token directory, as the chart's
  submitter does);
* a site (``Site``): a schedd the pilots reach by HTCondor-C with the site's IDTOKEN, and
  the startd of its batch system.

The pilots bring everything: the bootstrap and the zipapp come with the job, HTCondor is
fetched by the site's curl plugin from a web server on 127.0.0.1. Each pilot's startd
joins the user pool, runs the user jobs, and exits when idle; nothing is left at the
submitter or the site."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glidein_devkit.condor_pool import CondorPool, job
from glidein_devkit.grid_site import Site, Submitter, grid_settings, place_tokens, served
from glidein_devkit.kube import OPERATOR_NAMESPACE
from glidein_devkit.resources import cloud_entry, trust_domain
from tests.condor.support import (
    STORY_PILOT,
    Stage,
    degraded,
    eventually,
    operator_on,
    wait_for_jobs,
)
from tests.support.documents import credential, glidein_request, pool_key, secret

pytestmark = pytest.mark.integration

ONE_CORE = {"name": "1core", "cpus": 1, "memory": "512Mi", "disk": "1Gi"}
# The pilots' own HTCondor binds where the test's daemons do: loopback only. (On a real
# worker node the pilot binds where HTCondor's defaults say.)
LOOPBACK = {
    "NETWORK_INTERFACE": "127.0.0.1",
    "BIND_ALL_INTERFACES": "False",
    "ENABLE_IPV6": "False",
    "UPDATE_INTERVAL": "5",
    "UPDATE_OFFSET": "0",
    "MASTER_UPDATE_INTERVAL": "5",
}


def _tarball() -> Path:
    from glidein_devkit.condor_pool import _tarballs

    found = _tarballs()
    if not found:
        pytest.skip("no HTCondor tarball in shared/htcondor/ to send with grid pilots")
    return found[0]


@dataclass
class CredentialSync:
    """What the kubelet and the chart's submitter do together: the grid-credentials
    Secret's ``*.idtoken`` keys become token files of the submitter's gridmanager."""

    stage: Stage
    submitter: Submitter
    secret: str
    stop: threading.Event
    synced: int = 0

    def once(self) -> None:
        out = self.stage.cluster.kubectl(
            "get", "secret", self.secret, "-n", OPERATOR_NAMESPACE, "-o", "json", check=False
        )
        if out.returncode != 0:
            return
        data = json.loads(out.stdout).get("data") or {}
        tokens = {k: base64.b64decode(v) for k, v in data.items() if k.endswith(".idtoken")}
        place_tokens(self.submitter.token_dir, tokens, self.submitter.user)
        self.synced = len(tokens)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.once()


@dataclass
class GridStory:
    stage: Stage
    pool: CondorPool
    submitter: Submitter
    site: Site
    entry: str
    operator: Any

    @property
    def namespace(self) -> str:
        return self.stage.namespace

    def submit(self, count: int, seconds: int = 5) -> int:
        return self.pool.submit(
            job(
                arguments=str(seconds),
                extra=['+Story = "grid"', "job_machine_attrs = GLIDEIN_Entry_Name"],
            ),
            count,
        )

    def status(self) -> dict[str, Any]:
        out = self.stage.cluster.kubectl("get", "greq", "vo", "-n", self.namespace, "-o", "json")
        return dict(json.loads(out.stdout).get("status", {}))

    def pilot_jobs(self) -> list[dict[str, Any]]:
        """The grid pilot jobs at the submitting schedd, as dicts of their attributes."""
        out = self.submitter.tool(
            "condor_q",
            "-allusers",
            "-json",
            "-attributes",
            "ClusterId,ProcId,JobStatus,GridJobStatus,GridJobId,HoldReason,GlideinBatch,"
            "GridResourceUnavailableTime,Owner",
        ).stdout
        return list(json.loads(out)) if out.strip() else []

    def report(self) -> str:
        log = self.operator.log.read_text(errors="replace").splitlines()[-60:]
        return "\n".join(
            [
                "--- request status",
                json.dumps(self.status(), indent=1)[-3000:],
                "--- operator log (tail)",
                *log,
                "--- submitter queue",
                *self.submitter.queue(),
                "--- site queue",
                *self.site.queue(),
                "--- submitter logs",
                self.submitter.logs()[-4000:],
                "--- site logs",
                self.site.logs()[-4000:],
            ]
        )


@contextmanager
def grid_story(
    stage: Stage, pool: CondorPool, *, site_token: str | None = None, limits: dict[str, int]
) -> Iterator[GridStory]:
    ns = stage.namespace
    submitter = Submitter(stage.condor, stage.tmp / f"submit-{ns}").start()
    site = Site(stage.condor, stage.tmp / f"site-{ns}")
    try:
        site.start()
        token = site_token or site.entrypoint_token(submitter.user)
        creds_secret, key_secret = f"{ns}-grid-credentials", f"{ns}-submitter-key"
        stage.cluster.kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        secret(OPERATOR_NAMESPACE, creds_secret, {}),
                        secret(
                            OPERATOR_NAMESPACE,
                            key_secret,
                            data={"signingKey": base64.b64encode(submitter.signing_key()).decode()},
                        ),
                    ],
                }
            ),
        )
        stop = threading.Event()
        sync = CredentialSync(stage, submitter, creds_secret, stop)
        syncer = threading.Thread(target=sync.run, daemon=True)
        syncer.start()
        with served(_tarball()) as (_server, url):
            entry, td = f"{ns}-site", f"{ns}-osg"
            docs = [
                trust_domain(td, ["idtoken"]),
                cloud_entry(
                    entry,
                    {
                        "type": "grid",
                        "trustDomain": td,
                        "site": "SITE",
                        "grid": grid_settings(site, submitter, key_secret, url),
                        "instanceTypes": [ONE_CORE],
                        "limits": {"maxPilots": 10},
                    },
                ),
                secret(ns, "site-token", {"token": token}),
                pool_key(ns, pool.signing_key()),
                glidein_request(
                    ns,
                    pool.collector,
                    pool.schedd_name,
                    [credential(td, "idtoken", "site-token")],
                    pilot={**STORY_PILOT, "extraConfig": LOOPBACK},
                    jobConstraint='Story =?= "grid"',
                    entries={"names": [entry]},
                    limits=limits,
                ),
            ]
            env = {"GLIDEIN_GRID_CREDENTIALS_SECRET": creds_secret}
            try:
                with operator_on(stage, docs, env) as operator:
                    story = GridStory(stage, pool, submitter, site, entry, operator)
                    try:
                        yield story
                    except BaseException:
                        print(story.report())
                        raise
            finally:
                stop.set()
                syncer.join(5)
                for name in (creds_secret, key_secret):
                    stage.cluster.kubectl(
                        "delete", "secret", name, "-n", OPERATOR_NAMESPACE, check=False
                    )
    finally:
        site.stop()
        submitter.stop()


def _nothing_left(s: GridStory, site_up: bool = True) -> None:
    """Once the request is gone (its cleanup runs while the operator does): no pilot job
    at the submitting schedd, and none at the site."""
    s.stage.cluster.kubectl("delete", "greq", "vo", "-n", s.namespace, "--timeout=180s")
    eventually(
        lambda: not s.submitter.queue() and not (site_up and s.site.queue()),
        120,
        "no pilot job left at the submitter or the site",
        interval=2,
    )


def test_jobs_run_on_grid_pilots_that_bring_their_own_htcondor_and_leave_nothing(
    stage: Stage, own_pool: CondorPool
) -> None:
    jobs = 3
    with grid_story(stage, own_pool, limits={"maxPilots": 3, "maxIdlePilots": 3}) as s:
        t0 = time.monotonic()
        cluster_id = s.submit(jobs)
        run = wait_for_jobs(s.pool, cluster_id, jobs, 300)
        # Every user job ran, through a grid pilot of the entry, and exited 0.
        assert run.rows == [["4", "0", s.entry]] * jobs
        pilots = s.pilot_jobs()
        assert 1 <= len(pilots) <= 3
        # Submitted as the identity the operator minted at the submitter; forwarded to
        # the site by HTCondor-C (the GridJobId names the site's schedd).
        assert {p["Owner"] for p in pilots} == {s.submitter.user}
        assert all(s.site.schedd_name in str(p.get("GridJobId", "")) for p in pilots)
        print(
            f"\ngrid: first user job running {run.first_running:.1f}s after submission, "
            f"all {jobs} done in {run.all_done:.1f}s, {len(pilots)} pilot(s) "
            f"({time.monotonic() - t0:.1f}s)"
        )
        # The pilots leave when idle: their jobs complete at the site and the submitter.
        eventually(
            lambda: all(p["JobStatus"] == 4 for p in s.pilot_jobs()) or not s.pilot_jobs(),
            240,
            "every grid pilot finished (idle, it exited)",
            interval=3,
        )
        # Finished pilots are let go at the submitter, their output kept in the status:
        # the pilot's own log, and its startd's, as the bootstrap printed them.
        finished = eventually(
            lambda: [x for x in s.status().get("pilotLogs", []) if x["reason"] == "finished"],
            120,
            "the finished pilots' output in .status.pilotLogs",
            interval=3,
        )
        for kept in finished:
            said = str(kept["log"])
            assert said.startswith("Completed"), finished
            assert "--- StartLog" in said
            assert "--- glidein-pilot.log" in said
            assert "idle for" in said  # why it left
        eventually(
            lambda: not s.submitter.queue() and not s.site.queue(),
            120,
            "finished pilot jobs removed from the submitter and the site",
            interval=2,
        )
        _nothing_left(s)


def test_deleting_the_request_removes_running_pilots_at_the_site_too(
    stage: Stage, own_pool: CondorPool
) -> None:
    with grid_story(stage, own_pool, limits={"maxPilots": 2, "maxIdlePilots": 2}) as s:
        s.submit(2, seconds=600)
        # Pilots run at the site: their startds are in the user pool, running the jobs.
        eventually(
            lambda: (
                len(
                    s.pool.tool(
                        "condor_status", "-const", "PartitionableSlot =!= True", "-af", "Name"
                    ).stdout.split()
                )
                >= 1
            ),
            300,
            "a grid pilot's slot claimed in the user pool",
            interval=3,
        )
        assert s.site.queue(), "the pilot jobs run at the site"
        _nothing_left(s)
        s.pool.tool("condor_rm", "-all", check=False)


def test_a_site_that_refuses_the_token_holds_the_pilot_and_the_request_says_why(
    stage: Stage, own_pool: CondorPool, condor_tmp: Path
) -> None:
    # A token the site did not sign: the right identity, another site's key.
    other = Site(stage.condor, condor_tmp / f"other-{stage.namespace}")
    with other:
        forged = other.token_create(f"glidein-submit@{other.uid_domain}", "WRITE")
    with grid_story(
        stage, own_pool, site_token=forged, limits={"maxPilots": 1, "maxIdlePilots": 1}
    ) as s:
        s.submit(1)
        logs = eventually(
            lambda: [x for x in s.status().get("pilotLogs", []) if "Held" in str(x.get("log", ""))],
            240,
            "a held pilot's reason kept in .status.pilotLogs",
            interval=3,
        )
        said = str(logs[0]["log"])
        assert "Held:" in said
        # The request's condition says it too, and the entry backs off.
        message = eventually(
            lambda: degraded(s.status(), "PilotsFailing"),
            60,
            "the request Degraded: pilots failing at the entry",
            interval=2,
        )
        assert s.entry in message
        assert "AUTHENTICATE" in message
        assert "back off" in message
        print(f"\nrefused: {message[:400]}")
        s.pool.tool("condor_rm", "-all", check=False)
        _nothing_left(s)


def test_the_operator_killed_mid_submission_submits_no_batch_twice(
    stage: Stage, own_pool: CondorPool
) -> None:
    with grid_story(stage, own_pool, limits={"maxPilots": 2, "maxIdlePilots": 2}) as s:
        s.submit(2, seconds=30)
        eventually(lambda: s.pilot_jobs(), 120, "the first pilot job at the submitter", 0.2)
        s.operator.kill()
        s.operator.start()
        time.sleep(20)
        batches: dict[str, int] = {}
        for p in s.pilot_jobs():
            batches[p["GlideinBatch"]] = batches.get(p["GlideinBatch"], 0) + 1
        live = [p for p in s.pilot_jobs() if p["JobStatus"] in (1, 2)]
        # No batch submitted twice, and no more pilots alive than the request's limit.
        assert all(n <= 2 for n in batches.values()), batches
        assert len(live) <= 2, live
        s.pool.tool("condor_rm", "-all", check=False)
        _nothing_left(s)


def test_a_site_that_is_down_degrades_the_entry_and_its_launches_back_off(
    stage: Stage, own_pool: CondorPool
) -> None:
    with grid_story(stage, own_pool, limits={"maxPilots": 3, "maxIdlePilots": 3}) as s:
        s.site.stop()
        s.submit(1)
        eventually(
            lambda: any(p.get("GridResourceUnavailableTime") for p in s.pilot_jobs()),
            180,
            "the submitting schedd's gridmanager finding the site unreachable",
            interval=3,
        )
        s.submit(2)  # more jobs: the operator would launch, and must not
        message = eventually(
            lambda: degraded(s.status(), "unreachable"),
            120,
            "the request Degraded: the site is unreachable",
            interval=2,
        )
        assert s.entry in message
        assert "back off" in message
        assert len(s.pilot_jobs()) == 1, "no pilot launched while the site is down"
        print(f"\nsite down: {message[:300]}")
        s.pool.tool("condor_rm", "-all", check=False)
        _nothing_left(s, site_up=False)
