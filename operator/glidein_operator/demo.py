"""``glidein-operator demo``: the operator, for real, on one machine with nothing to set up.

Starts the local control plane (real etcd + kube-apiserver + controller manager), the
EC2 test server (moto, AWS-faithful), and a simulated pool: a schedd whose workload
arrives in waves, a collector, and a negotiator that hands idle jobs to idle slots. It
applies a TrustDomain, a VMImage, two CloudEntries on the local EC2 server and a
GlideinRequest, runs the operator (the same handlers as in production), and shows a live
table while the pool grows, runs the jobs, and shrinks back to nothing.

The simulation plays the part of the pilots: an instance the operator launched "boots"
(its startd ad appears in the collector), takes jobs, and once idle past the timeout
"powers off" (the instance terminates, as EC2 does for a pilot that shuts down).
"""

from __future__ import annotations

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

from glidein_operator.condor.fake import FakePool
from glidein_operator.condor.pilots import PILOT_ENTRY, PILOT_ID, PILOT_REQUEST
from glidein_operator.controller import runtime
from glidein_operator.testing.controlplane import LocalControlPlane
from glidein_operator.testing.ec2server import Ec2Server
from glidein_operator.testing.kube import install_crds, kubectl
from glidein_operator.testing.resources import ec2_entry, trust_domain, vm_image

SCHEDD = "schedd@submit.demo"
NS = "demo-vo"
REQUIREMENTS = "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"
JOB_SECONDS = 4.0
IDLE_SHUTDOWN = 4.0


def resources(ec2_url: str, image: str) -> list[dict[str, Any]]:
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
        entry(
            "east",
            "us-east-1",
            "DEMO_EAST",
            [
                {"name": "m5.xlarge", "cpus": 4, "memory": "16Gi", "pricePerHour": 0.192},
                {"name": "r5.2xlarge", "cpus": 8, "memory": "64Gi", "pricePerHour": 0.504},
            ],
        ),
        entry(
            "west",
            "us-west-2",
            "DEMO_WEST",
            [{"name": "c5.2xlarge", "cpus": 8, "memory": "16Gi", "pricePerHour": 0.34}],
        ),
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
            "stringData": {"signingKey": os.urandom(16).hex()},
        },
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "GlideinRequest",
            "metadata": {"name": "demo", "namespace": NS},
            "spec": {
                "collector": "pool.demo:9618",
                "schedds": [{"name": SCHEDD}],
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
                    "idleTimeout": "4s",
                    "retireBeforeEnd": "10m",
                },
                "limits": {"maxPilots": 60, "maxIdlePilots": 30},
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


def run(timeout: float = 120.0, console: Console | None = None, waves: int = 2) -> dict[str, Any]:
    console = console or Console()
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
                if not wave_at and not pool.fake.schedds[SCHEDD] and not instances:
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
            "spent": _spent(cp.kubeconfig),
        }
        console.print(f"summary: {summary}")
        return summary
    finally:
        ec2.stop()
        cp.stop()


def _spent(kubeconfig: Path) -> float:
    """What the operator accounted for the demo's pilots (in the entries' currency)."""
    obj = json.loads(kubectl(kubeconfig, "get", "greq", "demo", "-n", NS, "-o", "json").stdout)
    return float(((obj.get("status") or {}).get("spend") or {}).get("spent", 0))


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


def _view(kubeconfig: Path, pool: Pool, instances: list[dict[str, Any]], submitted: int) -> Group:
    obj = json.loads(kubectl(kubeconfig, "get", "greq", "demo", "-n", NS, "-o", "json").stdout)
    status = obj.get("status") or {}
    t = Table(title=f"GlideinRequest {NS}/demo", title_justify="left")
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
    spend = status.get("spend") or {}
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
    queue = pool.fake.schedds[SCHEDD]
    running = sum(1 for j in queue if j["JobStatus"] == 2)
    line = (
        f"jobs: {submitted} submitted, {len(queue) - running} idle, {running} running, {pool.jobs_done} done"
        f"   EC2 instances alive: {len(instances)}   registered pilots: {len(pool.slots)}"
        f"   spent: {spend.get('spent', 0):.4f} ({spend.get('pilotHours', 0):.3f} pilot-hours)"
    )
    return Group(t, line)
