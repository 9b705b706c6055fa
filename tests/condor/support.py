"""Helpers for the HTCondor tier: polling with a deadline (daemons answer in their own
time), the operator's and the pilots' tokens, the documents a request on the real pool
needs, the operator process over a story's resources, and what every story shares."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from glidein_devkit.boot import BootEmulator, Vm
from glidein_devkit.condor_pool import CondorInstall, CondorPool, job
from glidein_devkit.ec2server import Ec2Server
from glidein_devkit.kube import OPERATOR_NAMESPACE
from glidein_devkit.resources import G
from glidein_operator.credentials import idtokens
from tests.integration.process_world import OperatorProcess
from tests.support.cluster import Cluster
from tests.support.documents import (
    CREDENTIAL_TYPE,
    Doc,
    Names,
    credential,
    entry_docs,
    glidein_request,
    pool_key,
)

T = TypeVar("T")
B = TypeVar("B", bound=BootEmulator)


def eventually(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
) -> T:
    """The first truthy value ``probe`` returns within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:.0f}s: {what}")
        time.sleep(interval)


# A trust domain no pool of the tests signs for.
WRONG_DOMAIN = "cm.wrong.example.org"


def token(pool: CondorPool, identity: str, issuer: str = "", **claims: Any) -> str:
    """A token for ``identity`` minted from the pool's signing key (``issuer``: the pool's
    trust domain unless said), good for ten minutes."""
    return idtokens.mint(
        pool.signing_key(),
        identity=identity,
        issuer=issuer or pool.trust_domain,
        lifetime=600,
        now=int(time.time()),
        **claims,
    )


def operator_token(pool: CondorPool) -> str:
    """The READ token the operator mints itself from the pool's signing key."""
    return token(pool, idtokens.operator_identity(pool.trust_domain), scope="condor:/READ")


def pilot_token(pool: CondorPool, batch: str = "bclient") -> str:
    """The token a pilot of ``batch`` advertises its startd with."""
    return token(pool, idtokens.pilot_identity(batch, pool.trust_domain))


def wrong_domain_token(pool: CondorPool) -> str:
    """The operator's READ token as it would be were the pool's trust domain WRONG_DOMAIN:
    the right key, an issuer the collector does not sign for."""
    identity = idtokens.operator_identity(WRONG_DOMAIN)
    return token(pool, identity, WRONG_DOMAIN, scope="condor:/READ")


def story_operator_id(namespace: str) -> str:
    return f"story-{namespace}"


@dataclass(frozen=True)
class Stage:
    """Where a story plays: the session's cluster, the test's namespace, HTCondor and the
    scratch folder its daemons may read (the ``stage`` fixture)."""

    cluster: Cluster
    namespace: str
    condor: CondorInstall
    tmp: Path

    def emulator(self, kind: type[B], cloud: Any, broken_image: str | None = None) -> B:
        """A boot emulator of ``kind`` on ``cloud``, its VMs' folders here; VMs of
        ``broken_image`` do not boot."""
        return kind(
            cloud,
            self.condor,
            self.tmp / f"vms-{self.namespace}",
            broken_images=frozenset({broken_image} if broken_image else ()),
        )


@contextmanager
def operator_on(
    stage: Stage, docs: list[Doc], env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    """Apply ``docs`` and run the operator as its own process. On the way out every
    resource of ours among them is deleted while the operator still runs (so its
    finalizers let go: other tests count what is in the session's cluster), then it stops."""
    cluster, namespace = stage.cluster, stage.namespace
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    operator = OperatorProcess(
        {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "GLIDEIN_OPERATOR_ID": story_operator_id(namespace),
            "GLIDEIN_NAMESPACE": OPERATOR_NAMESPACE,
            "GLIDEIN_RECONCILE_INTERVAL": "1",
            "GLIDEIN_CREDENTIAL_DIR": str(stage.tmp / f"creds-{namespace}"),
            **(env or {}),
        },
        stage.tmp / f"operator-{namespace}.log",
    )
    operator.start()
    try:
        yield operator
    finally:
        for doc in reversed(docs):
            if doc.get("apiVersion") != G:
                continue  # Secrets go with the namespace
            meta = doc["metadata"]
            where = ["-n", meta["namespace"]] if meta.get("namespace") else []
            kind = doc["kind"].lower()
            cluster.kubectl("delete", kind, meta["name"], *where, "--timeout=60s", check=False)
        operator.stop()


# --- What a request on the real pool needs ------------------------------------------

MAX_PILOTS = 4  # a story's request's limit (and its idle pilots')
# The story requests' pilots: they leave soon when idle, and have a while to register.
STORY_PILOT = {
    "idleTimeout": "20s",
    "registrationTimeout": "3m",
    "lifetime": "2h",
    "retireBeforeEnd": "10m",
}
T3_SMALL = {"name": "t3.small", "cpus": 1, "memory": "2Gi", "disk": "10Gi"}


def ec2_names(namespace: str) -> Names:
    return Names(f"{namespace}-east", f"{namespace}-aws", f"{namespace}-img")


def story_entry(
    cloud: str,
    names: Names,
    location: tuple[str, str],
    settings: Doc,
    instance_type: Doc,
    site: str,
) -> list[Doc]:
    """A story's entry (up to ten pilots) with its trust domain and image: ``entry_docs``."""
    limits = {"maxPilots": 10}
    return entry_docs(cloud, names, location, settings, instance_type, site=site, limits=limits)


def ec2_docs(names: Names, ec2: Ec2Server, instance_type: Doc = T3_SMALL) -> list[Doc]:
    """An EC2 entry at the test server, with its trust domain and image."""
    settings = {"region": "us-east-1", "endpointUrl": ec2.url}
    return story_entry("ec2", names, ("us-east-1", ec2.image_id()), settings, instance_type, "EAST")


def story_request(
    ns: str, pool: CondorPool, names: Names, cloud: str, cloud_secret: Doc, refused: bool = False
) -> list[Doc]:
    """The request ``vo`` on the entry ``names`` of ``cloud``, whose credential is
    ``cloud_secret``, for the jobs of ``+Story = "<cloud>"`` on the pool's schedd; and its
    Secrets. ``refused``: the admin wrote the wrong TRUST_DOMAIN, so every token the
    operator mints names an issuer the collector does not sign for (and the pilots give
    up registering sooner)."""
    secret_name = cloud_secret["metadata"]["name"]
    wrong = {"poolTrustDomain": WRONG_DOMAIN} if refused else {}
    request = glidein_request(
        ns,
        pool.collector,
        pool.schedd_name,
        [credential(names.trust_domain, CREDENTIAL_TYPE[cloud], secret_name)],
        pilot={**STORY_PILOT, **({"registrationTimeout": "40s"} if refused else {})},
        jobConstraint=f'Story =?= "{cloud}"',
        entries={"names": [names.entry]},
        limits={"maxPilots": MAX_PILOTS, "maxIdlePilots": MAX_PILOTS},
        **wrong,
    )
    return [cloud_secret, pool_key(ns, pool.signing_key()), request]


# --- What every story shares ----------------------------------------------------------


@dataclass
class Story:
    """A story on one cloud: the request ``vo`` of the stage's namespace on ``pool``, for
    its ``+Story = "<cloud>"`` jobs, on one entry; the boot emulator and the operator
    process. Each cloud's story is a subclass (``class Ec2Story(Story, cloud="ec2")``)
    that adds its cloud, and says what is there (``machines``)."""

    cloud: ClassVar[str]
    stage: Stage
    pool: CondorPool
    entry: str
    boot: BootEmulator
    operator: OperatorProcess
    registrations: Registrations = field(init=False)

    def __init_subclass__(cls, cloud: str = "", **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.cloud = cloud

    def __post_init__(self) -> None:
        self.registrations = Registrations(self.pool)

    @property
    def cluster(self) -> Cluster:
        return self.stage.cluster

    @property
    def namespace(self) -> str:
        return self.stage.namespace

    @property
    def operator_id(self) -> str:
        return story_operator_id(self.namespace)

    def machines(self) -> str:
        """The cloud's machines, for the report of a failed story."""
        raise NotImplementedError

    def submit(self, count: int, *extra: str) -> int:
        """``count`` jobs of five seconds for the story's request; their cluster id."""
        return self.pool.submit(
            job(arguments="5", extra=[f'+Story = "{self.cloud}"', *extra]), count
        )

    def run_jobs(
        self, count: int, timeout: float, each: Callable[[], None] | None = None
    ) -> JobsRun:
        """Submit ``count`` jobs and wait until they are done (``wait_for_jobs``: calling
        ``each`` every look), seeing the pilots register meanwhile: every job ran, on a
        pilot of the story's entry."""
        cluster_id = self.submit(count, "job_machine_attrs = GLIDEIN_Entry_Name")

        def look() -> None:
            self.registrations.look()
            if each:
                each()

        run = wait_for_jobs(self.pool, cluster_id, count, timeout, look)
        assert run.rows == [["4", "0", self.entry]] * count
        return run

    def registered(self) -> str:
        """How soon the pilots registered after their VM booted."""
        return self.registrations.summary(list(self.boot.vms.values()))

    def status(self) -> dict[str, Any]:
        return request_status(self.cluster, self.namespace)

    def degraded(self, reason: str) -> str | None:
        return degraded(self.status(), reason)

    def wait_degraded(self, reason: str, timeout: float, interval: float) -> str:
        """The request's Degraded message naming ``reason``, once it does."""
        return eventually(
            lambda: self.degraded(reason),
            timeout,
            f"a Degraded condition naming {reason}",
            interval=interval,
        )

    def refused(self) -> str:
        """What the request says once the collector has refused its pilots: in the
        collector's words."""
        message = self.wait_degraded("PilotsRefused", 180, interval=2)
        assert "Failed to authenticate using IDTOKENS" in message
        return message

    def judged(self, event: str, said: str = "") -> list[dict[str, Any]]:
        """The console logs of the pilots judged for ending without registering, each
        saying ``said``; an Event ``event`` said so."""
        logs = unregistered_logs(self.status())
        assert all(said in x["log"] for x in logs)
        assert event in event_reasons(self.cluster, self.namespace)
        return logs


S = TypeVar("S", bound=Story)


def told(
    story: type[S],
    stage: Stage,
    pool: CondorPool,
    boot: BootEmulator,
    names: Names,
    entry: list[Doc],
    cloud_secret: Doc,
    *cloud: Any,
    refused: bool = False,
) -> Iterator[S]:
    """Tell a ``story`` (a story's context manager ends in ``yield from told(...)``):
    apply the ``entry`` documents and the story's request on it (``story_request``), run
    the operator, and make the story of what is there (``cloud``: the story's own
    fields). When the story fails, its report says what a reader needs: the request's
    status, the operator's last words, the cloud's machines and each VM's boot log."""
    request = story_request(stage.namespace, pool, names, story.cloud, cloud_secret, refused)
    with operator_on(stage, [*entry, *request]) as operator:
        s = story(stage, pool, names.entry, boot, operator, *cloud)
        try:
            yield s
        except BaseException:
            _diagnose(s)
            raise


@dataclass
class JobsRun:
    first_running: float  # seconds from the start of the wait
    all_done: float
    rows: list[list[str]]  # condor_history: JobStatus ExitCode MachineAttrGLIDEIN_Entry_Name0


def wait_for_jobs(
    pool: CondorPool,
    cluster_id: int,
    count: int,
    timeout: float,
    each: Callable[[], None] = lambda: None,
) -> JobsRun:
    """Wait until ``count`` jobs of the cluster are in the history (calling ``each`` every
    look, e.g. to watch the request's status); when the first ran, when all were done,
    and where each ran (submit them with ``job_machine_attrs = GLIDEIN_Entry_Name``)."""
    t0 = time.monotonic()
    first: float | None = None

    def done() -> bool:
        nonlocal first
        each()
        out = pool.tool("condor_history", str(cluster_id), "-af", "JobStatus").stdout.split()
        q = pool.tool("condor_q", str(cluster_id), "-af", "JobStatus").stdout.split()
        if first is None and ("2" in q or out):
            first = time.monotonic() - t0
        return len(out) == count

    eventually(done, timeout, f"{count} jobs done", interval=2)
    all_done = time.monotonic() - t0
    history = pool.tool(
        "condor_history",
        str(cluster_id),
        "-af",
        "JobStatus",
        "ExitCode",
        "MachineAttrGLIDEIN_Entry_Name0",
    ).stdout.split("\n")
    rows = [line.split() for line in history if line.strip()]
    return JobsRun(first or all_done, all_done, rows)


def request_status(cluster: Cluster, namespace: str, name: str = "vo") -> dict[str, Any]:
    out = cluster.kubectl("get", "greq", name, "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout).get("status", {}))


def degraded(status: dict[str, Any], reason: str) -> str | None:
    """The request's Degraded message when it names ``reason``."""
    for c in status.get("conditions", []):
        if c["type"] == "Degraded" and reason in c.get("message", ""):
            return str(c["message"])
    return None


def event_reasons(cluster: Cluster, namespace: str) -> list[str]:
    return cluster.kubectl(
        "get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}"
    ).stdout.split()


@dataclass
class Registrations:
    """When each VM's startd first showed in the collector (looked at every ``look``),
    against when its VM booted: the pilot's boot-to-registration time, to within the
    looking interval."""

    pool: CondorPool
    first_seen: dict[str, float] = field(default_factory=dict)  # slot Name -> monotonic

    def look(self) -> None:
        now = time.monotonic()
        for name in self.pool.tool("condor_status", "-af", "Name").stdout.split():
            self.first_seen.setdefault(name, now)

    def seconds(self, vms: list[Vm]) -> list[float]:
        out = []
        for vm in vms:
            # slot1@<STARTD_NAME>@<host>: HTCondor adds the host to a name without one.
            mark = f"@{vm.machine.name}@"
            seen = [t for n, t in self.first_seen.items() if mark in f"{n}@"]
            if seen:
                out.append(min(seen) - vm.booted)
        return out

    def summary(self, vms: list[Vm]) -> str:
        got = self.seconds(vms)
        if not got:
            return "boot to registration: not seen"
        return (
            f"boot to registration median {statistics.median(got):.1f}s "
            f"(max {max(got):.1f}s, {len(got)} pilots)"
        )


def unregistered_logs(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The console logs kept for pilots judged for ending without registering: there
    are some, and they are all of that kind."""
    logs = list(status.get("pilotLogs", []))
    assert logs, "no pilot log kept"
    assert {x["reason"] for x in logs} == {"ended without registering"}
    return logs


def _diagnose(s: Story) -> None:
    print(
        s.cluster.kubectl("get", "greq", "vo", "-n", s.namespace, "-o", "yaml", check=False).stdout
    )
    print("--- operator log (tail)")
    print("\n".join(s.operator.log.read_text(errors="replace").splitlines()[-60:]))
    print("---", s.machines())
    print("--- boot emulator errors", s.boot.errors)
    for vm in s.boot.vms.values():
        print(vm.machine.logs()[-3000:])
        pilot_out = vm.machine.folder / "pilot.out"
        if pilot_out.exists():
            print(pilot_out.read_text(errors="replace")[-1500:])
