"""``glidein-operator demo``: the operator, for real, on one machine with nothing to set up.

Starts the local control plane (real etcd + kube-apiserver + controller manager) and the
EC2 test server (moto, AWS-faithful), applies a TrustDomain, a VMImage, two CloudEntries
on the local EC2 server and a GlideinRequest, runs the operator (the same handlers as in
production), and shows a live table while the pool grows, runs the jobs, and shrinks back
to nothing.

With HTCondor (found as the tests find it: glidein_devkit/condor_pool.py) everything is real: a
pool on 127.0.0.1 (collector, negotiator, schedd), real jobs, and every instance the
operator launches boots the real glidein-pilot (glidein_devkit/boot.py), which joins the pool
with the operator's token, runs jobs, and powers off when idle; EC2 then terminates it.

Without HTCondor the demo says so in its first line and runs on a simulated pool instead:
a schedd whose workload arrives in waves, and a negotiator that hands idle jobs to slots
that "boot" when an instance starts and "power off" when idle.
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import classad2
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from glidein_devkit.boot import Ec2BootEmulator
from glidein_devkit.condor_pool import (
    CondorInstall,
    CondorNotFound,
    CondorPool,
    find_condor,
    job,
)
from glidein_devkit.controlplane import LocalControlPlane
from glidein_devkit.ec2server import Ec2Server
from glidein_devkit.fake_pool import FakePool
from glidein_devkit.kube import OPERATOR_NAMESPACE, install_crds, kubectl
from glidein_devkit.resources import ec2_entry, trust_domain, vm_image
from glidein_operator.condor.pilots import PILOT_ENTRY, PILOT_ID, PILOT_REQUEST
from glidein_operator.controller import runtime

SCHEDD = "schedd@submit.demo"
NS = "demo-vo"
REQUIREMENTS = "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"
JOB_SECONDS = 4.0
IDLE_SHUTDOWN = 4.0


SIM_TYPES = {
    "east": [
        {"name": "m5.xlarge", "cpus": 4, "memory": "16Gi", "pricePerHour": 0.192},
        {"name": "r5.2xlarge", "cpus": 8, "memory": "64Gi", "pricePerHour": 0.504},
    ],
    "west": [{"name": "c5.2xlarge", "cpus": 8, "memory": "16Gi", "pricePerHour": 0.34}],
}
# Real pilots are real processes on this machine: small instance types, so that a pilot's
# slot (never more than the host) is what the planner counted on.
REAL_TYPES = {
    "east": [{"name": "m5.large", "cpus": 2, "memory": "8Gi", "pricePerHour": 0.096}],
    "west": [{"name": "c5.large", "cpus": 2, "memory": "4Gi", "pricePerHour": 0.085}],
}


def resources(
    ec2_url: str,
    image: str,
    *,
    collector: str = "pool.demo:9618",
    schedd: str = SCHEDD,
    signing_key: bytes | None = None,
    types: dict[str, list[dict[str, Any]]] = SIM_TYPES,
    idle_timeout: str = "4s",
    max_pilots: int = 60,
) -> list[dict[str, Any]]:
    key = signing_key if signing_key is not None else os.urandom(64)

    def entry(name: str, region: str, site: str, types: list[dict[str, Any]]) -> dict[str, Any]:
        return ec2_entry(
            name,
            endpoint=ec2_url,
            trust_domain="demo-aws",
            image="demo-image",
            site=site,
            region=region,
            instance_types=types,
            limits={"maxPilots": 40, "maxLaunchPerCycle": 20},
        )

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        trust_domain("demo-aws", ["ec2-access-key"], "the local EC2 test server"),
        vm_image(
            "demo-image",
            [{"cloud": "ec2", "region": r, "imageId": image} for r in ("us-east-1", "us-west-2")],
            owner="demo",
            version="1.0",
        ),
        entry("east", "us-east-1", "DEMO_EAST", types["east"]),
        entry("west", "us-west-2", "DEMO_WEST", types["west"]),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aws", "namespace": NS},
            "stringData": {"accessKeyId": "demo", "secretAccessKey": "demo-secret"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pool-key", "namespace": NS},
            # The POOL key file's bytes, binary as HTCondor writes it.
            "data": {"signingKey": base64.b64encode(key).decode()},
        },
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "GlideinRequest",
            "metadata": {"name": "demo", "namespace": NS},
            "spec": {
                "collector": collector,
                "schedds": [{"name": schedd}],
                "credentials": [
                    {
                        "trustDomain": "demo-aws",
                        "type": "ec2-access-key",
                        "secretRef": {"name": "aws"},
                    }
                ],
                "pilot": {
                    "tokenSecretRef": {"name": "pool-key"},
                    "lifetime": "2h",
                    "idleTimeout": idle_timeout,
                    "retireBeforeEnd": "10m",
                },
                "limits": {"maxPilots": max_pilots, "maxIdlePilots": max(1, max_pilots // 2)},
            },
        },
    ]


@dataclass
class Pool:
    """The simulated user pool: schedd queue, startd ads, and a negotiator."""

    fake: FakePool
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance id -> slot state
    jobs_done: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(3))  # noqa: S311

    def submit_wave(self) -> None:
        for cpus, memory, n in [
            (1, 2000, self.rng.randint(30, 60)),
            (4, 8000, self.rng.randint(5, 10)),
            (8, 40000, self.rng.randint(2, 4)),
        ]:
            self.fake.submit(
                SCHEDD,
                n,
                RequestCpus=cpus,
                RequestMemory=memory,
                RequestDisk=1_000_000,
                Requirements=classad2.ExprTree(REQUIREMENTS),
            )

    def step(self, instances: list[dict[str, Any]], now: float) -> list[str]:
        """Boot, negotiate, finish jobs; return instance ids whose pilot powers off."""
        live = {i["InstanceId"]: i for i in instances}
        for iid, inst in live.items():
            if iid not in self.slots and now - inst["LaunchTime"].timestamp() > 1.0:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                cpus = {"m5.xlarge": 4, "r5.2xlarge": 8, "c5.2xlarge": 8}.get(
                    inst["InstanceType"], 4
                )
                mem = {"m5.xlarge": 16000, "r5.2xlarge": 64000, "c5.2xlarge": 16000}.get(
                    inst["InstanceType"], 8000
                )
                self.slots[iid] = {
                    "pilot": f"{tags['glidein.dev/batch']}-{inst['AmiLaunchIndex']}",
                    "uid": tags["glidein.dev/request-uid"],
                    "entry": tags["glidein.dev/entry"],
                    "cpus": cpus,
                    "free": cpus,
                    "mem": mem,
                    "jobs": [],
                    "idle_since": now,
                }
        queue = self.fake.schedds[SCHEDD]
        for slot in self.slots.values():
            done = [j for j in slot["jobs"] if now - j[1] >= JOB_SECONDS]
            for ad, _started in done:
                slot["jobs"].remove((ad, _started))
                slot["free"] += int(ad["RequestCpus"])
                queue.remove(ad)
                self.jobs_done += 1
            for ad in queue:
                if (
                    ad["JobStatus"] == 1
                    and int(ad["RequestCpus"]) <= slot["free"]
                    and int(ad["RequestMemory"]) <= slot["mem"]
                ):
                    ad["JobStatus"] = 2
                    slot["free"] -= int(ad["RequestCpus"])
                    slot["jobs"].append((ad, now))
            if slot["jobs"]:
                slot["idle_since"] = None
            elif slot["idle_since"] is None:
                slot["idle_since"] = now
        leaving = [
            iid
            for iid, s in self.slots.items()
            if s["idle_since"] is not None and now - s["idle_since"] > IDLE_SHUTDOWN
        ]
        for iid in [*leaving, *(i for i in self.slots if i not in live)]:
            self.slots.pop(iid, None)
        self.fake.slots = [self._ad(s) for s in self.slots.values()]
        return leaving

    @staticmethod
    def _ad(slot: dict[str, Any]) -> classad2.ClassAd:
        ad = classad2.ClassAd()
        ad[PILOT_ID] = slot["pilot"]
        ad[PILOT_REQUEST] = slot["uid"]
        ad[PILOT_ENTRY] = slot["entry"]
        ad["PartitionableSlot"] = True
        ad["TotalSlotCpus"] = slot["cpus"]
        ad["Cpus"] = slot["free"]
        return ad


@contextmanager
def _operator() -> Iterator[None]:
    import asyncio

    import kopf

    import glidein_operator.controller.handlers  # noqa: F401

    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(
            kopf.operator(clusterwide=True, standalone=True, stop_flag=stop)
        ),
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def run(
    timeout: float = 180.0,
    console: Console | None = None,
    waves: int = 2,
    simulated: bool | None = None,
) -> dict[str, Any]:
    """The demo on real HTCondor when it is found (or ``simulated=False`` demands it), on
    the simulated pool otherwise; the summary."""
    console = console or Console()
    if simulated is None:
        try:
            install = find_condor()
        except CondorNotFound as exc:
            console.print(f"{exc}: the demo runs on a simulated pool.")
            return run_simulated(timeout, console, waves)
        console.print(f"HTCondor from {install.origin}: the demo runs a real pool and real pilots.")
        return run_real(install, timeout, console, waves)
    if simulated:
        console.print("The demo runs on a simulated pool (asked for).")
        return run_simulated(timeout, console, waves)
    install = find_condor()
    console.print(f"HTCondor from {install.origin}: the demo runs a real pool and real pilots.")
    return run_real(install, timeout, console, waves)


def run_simulated(timeout: float, console: Console, waves: int) -> dict[str, Any]:
    started = time.monotonic()
    with console.status("starting the local control plane and the EC2 test server..."):
        cp = LocalControlPlane().start()
        ec2 = Ec2Server().start()
    try:
        console.print(
            f"control plane ready in {cp.startup_seconds:.1f}s at {cp.server}; EC2 at {ec2.url}"
        )
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        install_crds(cp.kubeconfig)
        clients = {r: ec2.client(r) for r in ("us-east-1", "us-west-2")}
        image = ec2.image_id()
        pool = Pool(FakePool(schedds={SCHEDD: []}))
        assert cp.directory is not None
        runtime.install(
            runtime.Runtime(
                settings=runtime.Settings(
                    operator_id="demo",
                    namespace=OPERATOR_NAMESPACE,
                    reconcile_interval=1.0,
                    credential_dir=cp.directory / "creds",
                ),
                pool_factory=lambda _collector, _token: pool.fake,
            )
        )
        kubectl(
            cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(resources(ec2.url, image))
        )
        submitted = 0
        launched: set[str] = set()
        peak = 0
        with _operator(), Live(console=console, refresh_per_second=4) as live:
            wave_at = [time.monotonic() + 1 + 25 * w for w in range(waves)]
            while time.monotonic() - started < timeout:
                now = time.time()
                if wave_at and time.monotonic() >= wave_at[0]:
                    wave_at.pop(0)
                    before = len(pool.fake.schedds[SCHEDD])
                    pool.submit_wave()
                    submitted += len(pool.fake.schedds[SCHEDD]) - before
                instances = _instances(clients)
                launched |= {i["InstanceId"] for i in instances}
                peak = max(peak, len(instances))
                by_id = {i["InstanceId"]: i for i in instances}
                for iid in pool.step(instances, now):
                    # The pilot powered off: EC2 terminates the instance (terminate-on-shutdown).
                    if iid in by_id:
                        clients[by_id[iid]["_region"]].terminate_instances(InstanceIds=[iid])
                live.update(_view(cp.kubeconfig, pool, instances, submitted))
                if (
                    not wave_at
                    and not pool.fake.schedds[SCHEDD]
                    and not instances
                    and not _key_pairs(clients)
                ):
                    break
                time.sleep(0.5)
        left = _instances(clients)
        summary = {
            "seconds": round(time.monotonic() - started, 1),
            "jobs_submitted": submitted,
            "jobs_done": pool.jobs_done,
            "pilots_launched": len(launched),
            "peak_pilots": peak,
            "idle_jobs_left": len(pool.fake.schedds[SCHEDD]),
            "instances_left": len(left),
            "key_pairs_left": _key_pairs(clients),
            "spent": _spent(cp.kubeconfig),
        }
        print_summary(console, summary)
        return summary
    finally:
        ec2.stop()
        cp.stop()


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    console.print()
    t = Table(title="Demo summary", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    labels = {
        "seconds": "wall time (s)",
        "jobs_submitted": "jobs submitted",
        "jobs_done": "jobs done",
        "first_job_running_seconds": "first job running after (s)",
        "pilots_launched": "pilots launched",
        "peak_pilots": "most pilots at once",
        "idle_jobs_left": "idle jobs left",
        "instances_left": "instances left in the cloud",
        "key_pairs_left": "key pairs left in the cloud",
        "spent": "spent (entries' currency)",
    }
    for key, label in labels.items():
        if key in summary:
            value = summary[key]
            t.add_row(label, f"{value:.4f}" if key == "spent" else str(value))
    console.print(t)
    ok = not (summary["idle_jobs_left"] or summary["instances_left"] or summary["key_pairs_left"])
    console.print(
        "Every job ran and nothing is left running." if ok else "Not finished: see above."
    )


def _spent(kubeconfig: Path) -> float:
    """What the operator accounted for the demo's pilots (in the entries' currency)."""
    obj = json.loads(kubectl(kubeconfig, "get", "greq", "demo", "-n", NS, "-o", "json").stdout)
    return float(((obj.get("status") or {}).get("spend") or {}).get("spent", 0))


def _key_pairs(clients: dict[str, Any]) -> int:
    return sum(len(c.describe_key_pairs()["KeyPairs"]) for c in clients.values())


def _instances(clients: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for region, c in clients.items():
        reply = c.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )
        for r in reply["Reservations"]:
            for i in r["Instances"]:
                i["_region"] = region
                out.append(i)
    return out


def _request_table(kubeconfig: Path) -> Table:
    """The request as ``kubectl get greq`` sees it, per entry, with the spend."""
    obj = json.loads(kubectl(kubeconfig, "get", "greq", "demo", "-n", NS, "-o", "json").stdout)
    status = obj.get("status") or {}
    spend = status.get("spend") or {}
    t = Table(
        title=f"GlideinRequest {NS}/demo   spent {spend.get('spent', 0):.4f} "
        f"({spend.get('pilotHours', 0):.3f} pilot-hours)",
        title_justify="left",
    )
    for col in (
        "Entry",
        "Idle jobs",
        "Wanted",
        "Launching",
        "Running",
        "Idle",
        "Spent",
        "Bound by",
    ):
        t.add_column(col)
    spent = {e["name"]: e.get("spent", 0) for e in spend.get("entries", [])}
    for e in status.get("entries", []):
        t.add_row(
            e["name"],
            str(e["idleJobs"]),
            str(e["wanted"]),
            str(e["launching"]),
            str(e["running"]),
            str(e["idle"]),
            f"{spent.get(e['name'], 0):.4f}",
            e["boundBy"],
        )
    return t


def _view(kubeconfig: Path, pool: Pool, instances: list[dict[str, Any]], submitted: int) -> Group:
    queue = pool.fake.schedds[SCHEDD]
    running = sum(1 for j in queue if j["JobStatus"] == 2)
    line = (
        f"jobs: {submitted} submitted, {len(queue) - running} idle, {running} running, {pool.jobs_done} done"
        f"   EC2 instances alive: {len(instances)}   registered pilots: {len(pool.slots)}"
    )
    return Group(_request_table(kubeconfig), line)


REAL_JOB_SECONDS = 8
REAL_WAVE = 12  # one-core jobs a wave: a handful of real pilots on two cores


def run_real(
    install: CondorInstall, timeout: float, console: Console, waves: int
) -> dict[str, Any]:
    """The demo with a real pool and real pilots (see the module docstring)."""
    import tempfile

    from glidein_operator.condor.isolated import IsolatedPool

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="glidein-demo-"))
    work.chmod(0o755)
    with console.status("starting the control plane, the EC2 test server and an HTCondor pool..."):
        cp = LocalControlPlane().start()
        ec2 = Ec2Server().start()
        pool = CondorPool(install, work / "pool").start()
        boot = Ec2BootEmulator(ec2, install, work / "vms", max_vms=12).start()
    try:
        console.print(
            f"control plane ready in {cp.startup_seconds:.1f}s at {cp.server}; EC2 at {ec2.url}; "
            f"HTCondor pool at {pool.collector} ready in {pool.ready_seconds:.1f}s"
        )
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        install_crds(cp.kubeconfig)
        clients = {r: ec2.client(r) for r in ("us-east-1", "us-west-2")}
        token_dir = work / "operator-tokens"
        runtime.install(
            runtime.Runtime(
                settings=runtime.Settings(
                    operator_id="demo",
                    namespace=OPERATOR_NAMESPACE,
                    reconcile_interval=1.0,
                    credential_dir=work / "creds",
                ),
                pool_factory=lambda collector, token: IsolatedPool(collector, token, token_dir),
            )
        )
        docs = resources(
            ec2.url,
            ec2.image_id(),
            collector=pool.collector,
            schedd=pool.schedd_name,
            signing_key=pool.signing_key(),
            types=REAL_TYPES,
            idle_timeout="15s",
            max_pilots=8,
        )
        kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        clusters: list[int] = []
        launched: set[str] = set()
        peak = 0
        first_running: float | None = None
        jobs = JobCounts()
        with _operator(), Live(console=console, refresh_per_second=2) as live:
            wave_at = [time.monotonic() + 1 + 40 * w for w in range(waves)]
            while time.monotonic() - started < timeout:
                if wave_at and time.monotonic() >= wave_at[0]:
                    wave_at.pop(0)
                    clusters.append(pool.submit(job(arguments=str(REAL_JOB_SECONDS)), REAL_WAVE))
                instances = _instances(clients)
                launched |= {i["InstanceId"] for i in instances}
                peak = max(peak, len(instances))
                jobs = JobCounts.read(pool, clusters)
                if first_running is None and (jobs.running or jobs.done):
                    first_running = time.monotonic() - started
                live.update(_real_view(cp.kubeconfig, jobs, instances, boot))
                # Done when the jobs are, and the cloud is empty: instances and key pairs
                # (a batch's key pair goes at the operator's next look after its last VM).
                if (
                    not wave_at
                    and jobs.done == jobs.submitted
                    and not instances
                    and not _key_pairs(clients)
                ):
                    break
                time.sleep(1.0)
        left = _instances(clients)
        summary = {
            "seconds": round(time.monotonic() - started, 1),
            "jobs_submitted": jobs.submitted,
            "jobs_done": jobs.done,
            "first_job_running_seconds": round(first_running or 0.0, 1),
            "pilots_launched": len(launched),
            "peak_pilots": peak,
            "idle_jobs_left": jobs.idle,
            "instances_left": len(left),
            "key_pairs_left": _key_pairs(clients),
            "spent": _spent(cp.kubeconfig),
        }
        print_summary(console, summary)
        return summary
    finally:
        boot.stop()
        pool.stop()
        ec2.stop()
        cp.stop()


@dataclass
class JobCounts:
    submitted: int = 0
    idle: int = 0
    running: int = 0
    done: int = 0

    @classmethod
    def read(cls, pool: CondorPool, clusters: list[int]) -> JobCounts:
        if not clusters:
            return cls()
        q = pool.tool("condor_q", "-allusers", "-af", "JobStatus", check=False).stdout.split()
        done = pool.tool("condor_history", "-af", "JobStatus", check=False).stdout.split()
        idle, running = q.count("1"), q.count("2")
        finished = done.count("4")
        return cls(REAL_WAVE * len(clusters), idle, running, finished)


def _real_view(
    kubeconfig: Path, jobs: JobCounts, instances: list[dict[str, Any]], boot: Ec2BootEmulator
) -> Group:
    table = _request_table(kubeconfig)
    line = (
        f"jobs: {jobs.submitted} submitted, {jobs.idle} idle, {jobs.running} running, "
        f"{jobs.done} done   EC2 instances alive: {len(instances)}   "
        f"pilot VMs running: {len(boot.alive)}"
    )
    return Group(table, line)
