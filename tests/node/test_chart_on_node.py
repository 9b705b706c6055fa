"""The chart installed for real on a real node, and pilots as pods that run real jobs.

`helm install` puts the operator's image (built here from images/operator) on the node:
its pod becomes Ready through its probes, as uid 10001 on a read-only root file system,
and reconciles the examples. A `kubernetes` CloudEntry then launches pilot pods (the image
from images/pilot-pod) that size their startd from their container's limits, join the
real HTCondor pool, run the jobs and leave when idle; a pod the scheduler cannot place is
reaped with the scheduler's reason kept. `helm upgrade` rolls the operator, and `helm
uninstall` (with the teardown hook on) leaves no pilot behind.

The tests are one story, in order: each starts from what the one before left."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.condor.support import eventually
from tests.node.conftest import NodeCluster
from tests.support.documents import credential, glidein_request, namespace_doc, pool_key

from glidein_devkit.condor_pool import CondorPool, job
from glidein_devkit.controlplane.assets import ensure_helm
from glidein_devkit.controlplane.cluster import free_port
from glidein_devkit.node.node import NODE_NAME
from glidein_devkit.resources import cloud_entry, trust_domain
from glidein_operator.ground import Tag

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm/glidein-operator"
EXAMPLES = ROOT / "examples"
RELEASE, NS = "glidein", "glidein-system"
FULLNAME = f"{RELEASE}-glidein-operator"
PILOTS_NS = "glidein-pilots"  # examples/00-namespace.yaml makes it
COMMUNITY = "pods-vo"
OPERATOR_IMAGE = "ghcr.io/glidein-operator/operator:0.1.0"
PILOT_IMAGE = "ghcr.io/glidein-operator/pilot:0.1.0"
# A pilot pod's size: smaller than the node (2 cores, 24 GiB), so the startd advertising
# exactly this proves it read its container's limits.
POD_SHAPE = {"name": "pod-1c", "cpus": 1, "memory": "768Mi", "disk": "2Gi"}
HUGE_SHAPE = {"name": "pod-huge", "cpus": 1, "memory": "512Gi", "disk": "2Gi"}
JOBS = 3
HUGE = "node-pods-huge"


@dataclass
class Release:
    nc: NodeCluster
    values: dict[str, Any]
    health_port: int
    metrics_port: int

    def k(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        return self.nc.cluster.kubectl(*args, check=check, stdin=stdin).stdout

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump(self.values, f)
            f.flush()
            values = ["--values", f.name] if args[0] in ("install", "upgrade") else []
            return subprocess.run(
                [
                    str(ensure_helm()),
                    f"--kubeconfig={self.nc.cp.kubeconfig}",
                    *args,
                    *values,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )

    def operator_pods(self) -> list[dict[str, Any]]:
        out = self.k(
            "get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=glidein-operator", "-o", "json"
        )
        return list(json.loads(out)["items"])

    def ready_pod(self) -> dict[str, Any] | None:
        for pod in self.operator_pods():
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
                return pod
        return None

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        pod = self.ready_pod()
        assert pod, "no Ready operator pod"
        return subprocess.run(
            [
                *self.kubectl_argv(),
                "exec",
                "-n",
                NS,
                pod["metadata"]["name"],
                "--",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def kubectl_argv(self) -> list[str]:
        from glidein_devkit.kube import kubectl_binary

        return [kubectl_binary(), f"--kubeconfig={self.nc.cp.kubeconfig}"]

    def operator_log(self) -> str:
        pod = self.ready_pod() or (self.operator_pods() or [None])[0]
        if not pod:
            return "(no operator pod)"
        return self.k("logs", "-n", NS, pod["metadata"]["name"], "--tail=60", check=False)

    def pilot_pods(self) -> list[dict[str, Any]]:
        out = self.k("get", "pods", "-n", PILOTS_NS, "-o", "json")
        return list(json.loads(out)["items"])


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster) -> Iterator[Release]:
    nc = node_cluster
    health, metrics = free_port(), free_port()
    values = {
        "image": {"pullPolicy": "Never"},
        # One node, host networking: a second replica would wait for the same ports.
        "replicas": 1,
        "hostNetwork": True,
        "healthPort": health,
        "metrics": {"port": metrics},
        # No kube-proxy here: the `kubernetes` Service's ClusterIP routes nowhere.
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(nc.api_port)},
        ],
        "pilotNamespaces": [PILOTS_NS],
        "uninstall": {"teardown": {"enabled": True, "timeoutSeconds": 180}},
    }
    r = Release(nc, values, health, metrics)
    # The pilot namespace is the admin's, made before install (values.yaml says so).
    r.k("apply", "-f", str(EXAMPLES / "00-namespace.yaml"))
    yield r
    # Whatever a failed test left: the release (no hooks: the story's last test ran
    # them), then the story's resources.
    r.helm("uninstall", RELEASE, "-n", NS, "--no-hooks", "--wait")
    r.k("delete", "pods,secrets", "--all", "-n", PILOTS_NS, "--wait=false", check=False)


def test_helm_install_the_operator_pod_becomes_ready_as_non_root_read_only(
    release: Release,
) -> None:
    r = release
    t0 = time.monotonic()
    done = r.helm("install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "--wait")
    assert done.returncode == 0, done.stderr
    pod = eventually(r.ready_pod, 120, "the operator pod Ready", interval=1)
    ready_after = time.monotonic() - t0
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"], status
    assert status["image"].endswith(OPERATOR_IMAGE), status
    assert pod["spec"]["nodeName"] == NODE_NAME
    # Ready means its readiness probe answered; the probes are the chart's.
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The image's user, not root; and a root file system it cannot write.
    uid = r.exec("id", "-u")
    assert uid.stdout.strip() == "10001", uid.stderr
    touched = r.exec("touch", "/probe")
    assert touched.returncode != 0, touched
    assert "Read-only file system" in touched.stderr, touched
    # Its probes answer on the node's address, as the kubelet asks them.
    with urllib.request.urlopen(f"http://127.0.0.1:{r.health_port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    print(f"\nhelm install → operator pod Ready in {ready_after:.1f}s")


def test_it_reconciles_the_examples(release: Release) -> None:
    r = release
    r.k("apply", "-f", str(EXAMPLES))

    def ready_condition() -> dict[str, Any] | None:
        out = r.k("get", "greq", "cms-production", "-n", "cms", "-o", "json", check=False)
        if not out:
            return None
        conditions = json.loads(out).get("status", {}).get("conditions", [])
        ready = next((c for c in conditions if c["type"] == "Ready"), None)
        return ready if ready and ready.get("reason") == "NoPoolCredential" else None

    try:
        ready = eventually(ready_condition, 60, "the examples' request reconciled", interval=1)
    except TimeoutError:
        print(r.k("get", "greq", "cms-production", "-n", "cms", "-o", "yaml", check=False))
        print(r.operator_log())
        raise
    assert "kubectl -n cms create secret generic cms-pool-key" in ready["message"], ready
    # The example entries are the operator's to judge: each has a Ready condition.
    entries = json.loads(r.k("get", "cloudentries", "-o", "json"))["items"]
    assert entries
    assert all(
        any(c["type"] == "Ready" for c in e.get("status", {}).get("conditions", []))
        for e in entries
    ), [e["metadata"]["name"] for e in entries]
    # Without the pool's key nothing is launched, and the examples' collector (not the
    # tests' to contact) is not asked.
    assert r.pilot_pods() == []
    assert "CollectorUnreachable" not in r.k("get", "greq", "-n", "cms", "-o", "yaml")
    r.k("delete", "greq", "cms-production", "-n", "cms", "--timeout=60s")
    r.k("delete", "-f", str(EXAMPLES / "30-cloudentries.yaml"), "--timeout=60s")


def test_the_metrics_service_answers(release: Release) -> None:
    """Followed as kube-proxy would: the Service's selector to its Ready pods, its
    targetPort to their named port. (No kube-proxy here, and no EndpointSlice either: the
    API server refuses endpoint addresses in 127.0.0.0/8, and this node's pods have
    127.0.0.1.)"""
    r = release
    service = json.loads(r.k("get", "service", f"{FULLNAME}-metrics", "-n", NS, "-o", "json"))
    selector = ",".join(f"{k}={v}" for k, v in service["spec"]["selector"].items())
    (port_spec,) = service["spec"]["ports"]
    pods = json.loads(r.k("get", "pods", "-n", NS, "-l", selector, "-o", "json"))["items"]
    ready = [
        p
        for p in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
    ]
    assert len(ready) == 1, [p["metadata"]["name"] for p in pods]
    (pod,) = ready
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    port = ports[port_spec["targetPort"]]
    assert (pod["status"]["podIP"], port) == ("127.0.0.1", r.metrics_port)
    with urllib.request.urlopen(
        f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5
    ) as resp:
        text = resp.read().decode()
    assert "glidein_" in text


# --- Pilots as pods -------------------------------------------------------------------


def _story_docs(
    pool: CondorPool, registration_timeout: str = "3m", huge: bool = False
) -> list[dict[str, Any]]:
    """The request ``vo`` for the pool's ``+Story = "pods"`` jobs on the entry of pods
    that fit this node (and ``huge``: one whose pods cannot fit), with its Secrets."""
    settings = {
        "namespace": PILOTS_NS,
        "pilotImage": PILOT_IMAGE,
        "hostNetwork": True,
    }
    request = glidein_request(
        COMMUNITY,
        pool.collector,
        pool.schedd_name,
        [credential("node-pods", "in-cluster", "unused")],
        pilot={
            "idleTimeout": "20s",
            "registrationTimeout": registration_timeout,
            "lifetime": "2h",
            "retireBeforeEnd": "10m",
            "extraConfig": {
                # This machine's rule: nothing but loopback (the devkit's pools run so).
                "NETWORK_INTERFACE": "127.0.0.1",
                "ENABLE_IPV6": "False",
                # The pool's daemons and the pilot's share this host and its address, so
                # the pilot's take the collector for one of their own family and offer it
                # their family session; refused, the startd's first ad is lost and the
                # next goes UPDATE_INTERVAL (5 min) later. Apart, as pilots and pools
                # are, this never arises (HTCondor's own one-host tests turn it off too).
                "SEC_USE_FAMILY_SESSION": "False",
            },
        },
        jobConstraint='Story =?= "pods"',
        entries={"names": ["node-pods", *([HUGE] if huge else [])]},
        limits={"maxPilots": 4, "maxIdlePilots": 4},
    )
    request["spec"]["credentials"][0].pop("secretRef")
    entry = {"type": "kubernetes", "trustDomain": "node-pods", "kubernetes": settings}
    return [
        namespace_doc(COMMUNITY),
        trust_domain("node-pods", ["in-cluster"]),
        cloud_entry(
            "node-pods",
            {**entry, "site": "NODE", "instanceTypes": [POD_SHAPE], "limits": {"maxPilots": 4}},
        ),
        *(
            [
                cloud_entry(
                    HUGE,
                    {
                        **entry,
                        "site": "NODE-HUGE",
                        "instanceTypes": [HUGE_SHAPE],
                        "limits": {"maxPilots": 1},
                    },
                )
            ]
            if huge
            else []
        ),
        pool_key(COMMUNITY, pool.signing_key()),
        request,
    ]


def _pods_story(r: Release, seen: dict[str, dict[str, Any]]) -> str:
    """What a failed story needs said of its pilot pods: each one's phase, container
    state and log (for those still there), and the request's kept logs."""
    lines = []
    for name, pod in seen.items():
        statuses = pod["status"].get("containerStatuses") or [{}]
        lines.append(f"{name}: {pod['status'].get('phase')} {statuses[0].get('state')}")
        got = r.nc.cluster.kubectl("logs", "-n", PILOTS_NS, name, "--tail=60", check=False)
        lines.append(got.stdout or got.stderr)
        if pod["status"].get("phase") == "Running":
            tails = r.nc.cluster.kubectl(
                "exec",
                "-n",
                PILOTS_NS,
                name,
                "--",
                "sh",
                "-c",
                "tail -n 40 /var/log/condor/MasterLog /var/log/condor/StartLog",
                check=False,
            )
            lines.append(tails.stdout or tails.stderr)
    lines.append(json.dumps(_status(r).get("pilotLogs"), indent=1)[:6000])
    return "\n".join(lines)


def _status(r: Release) -> dict[str, Any]:
    out = r.k("get", "greq", "vo", "-n", COMMUNITY, "-o", "json", check=False)
    return dict(json.loads(out).get("status") or {}) if out else {}


def test_pilot_pods_join_the_pool_run_real_jobs_and_leave(
    release: Release, node_pool: CondorPool
) -> None:
    r, pool = release, node_pool
    docs = _story_docs(pool)
    r.k("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    t0 = time.monotonic()
    cluster_id = pool.submit(
        job(arguments="5", extra=['+Story = "pods"', "job_machine_attrs = GLIDEIN_Site"]),
        count=JOBS,
    )
    seen: dict[str, dict[str, Any]] = {}
    slots: dict[str, tuple[str, str]] = {}

    def first_running() -> bool:
        for pod in r.pilot_pods():
            seen[pod["metadata"]["name"]] = pod
        q = pool.tool("condor_q", str(cluster_id), "-af", "JobStatus").stdout.split()
        done = pool.tool("condor_history", str(cluster_id), "-af", "JobStatus").stdout.split()
        return "2" in q or bool(done)

    try:
        eventually(first_running, 240, "a job running on a pod pilot", interval=1)
        running_after = time.monotonic() - t0
        # The startd's slot is the container's limits, not the node's 2 cores / 24 GiB
        # (the partitionable slot: a job's dynamic slot is the job's size).
        for line in pool.tool(
            "condor_status",
            "-constraint",
            "PartitionableSlot =?= true",
            "-af",
            "Name",
            "TotalSlotCpus",
            "TotalSlotMemory",
            check=False,
        ).stdout.splitlines():
            name, cpus, memory = line.split()
            slots[name] = (cpus, memory)

        def all_done() -> bool:
            for pod in r.pilot_pods():
                seen[pod["metadata"]["name"]] = pod
            out = pool.tool("condor_history", str(cluster_id), "-af", "JobStatus").stdout
            return len(out.split()) == JOBS

        eventually(all_done, 300, f"{JOBS} jobs done", interval=2)
        done_after = time.monotonic() - t0
    except BaseException:
        print(r.operator_log())
        print(_pods_story(r, seen))
        print(pool.tool("condor_status", "-any", "-af", "MyType", "Name", check=False).stdout)
        print(pool.tool("condor_q", "-better-analyze", str(cluster_id), check=False).stdout[-3000:])
        raise
    history = pool.tool(
        "condor_history", str(cluster_id), "-af", "ExitCode", "MachineAttrGLIDEIN_Site0"
    ).stdout.split("\n")
    assert sorted(line for line in history if line.strip()) == ["0 NODE"] * JOBS
    # Pods cancelled before the scheduler placed them never ran: only those that did.
    ran = [p for p in seen.values() if p["status"].get("phase") in ("Running", "Succeeded")]
    assert ran, f"no pilot pod seen running among {list(seen)}"
    assert all(p["spec"]["nodeName"] == NODE_NAME for p in ran)
    assert all(p["spec"]["hostNetwork"] for p in ran)
    assert slots
    assert all(v == ("1", "768") for v in slots.values()), slots
    # Idle pilots leave by themselves; the operator removes their pods and payloads.
    eventually(lambda: r.pilot_pods() == [], 240, "no pilot pod left", interval=2)
    eventually(
        lambda: r.k("get", "secrets", "-n", PILOTS_NS, "-o", "name").strip() == "",
        60,
        "no payload Secret left",
        interval=1,
    )
    status = _status(r)
    logs = status.get("pilotLogs") or []
    print(
        f"\npod pilots: job submitted → running {running_after:.1f}s, {JOBS} jobs done "
        f"{done_after:.1f}s, {len(ran)} pods ran of {len(seen)} made; slots {slots}; kept "
        f"logs {len(logs)}"
    )


def test_a_pod_the_scheduler_cannot_place_is_reaped_with_its_reason(
    release: Release, node_pool: CondorPool
) -> None:
    r, pool = release, node_pool
    # Registration must happen within 40 s: a pod that never starts is judged sooner.
    docs = _story_docs(pool, registration_timeout="40s", huge=True)
    r.k("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    # Only the huge entry's pods are big enough for this job; the node is far smaller.
    cluster_id = pool.submit(
        job(arguments="1", memory_mb=400_000, extra=['+Story = "pods"']), count=1
    )

    def pending_pod() -> dict[str, Any] | None:
        pods = r.pilot_pods()
        return next((p for p in pods if p["metadata"]["labels"][Tag.ENTRY] == HUGE), None)

    try:
        pod = eventually(pending_pod, 120, "a pilot pod for the huge entry", interval=1)
        assert pod["status"].get("phase") == "Pending"

        def kept() -> list[dict[str, Any]] | None:
            logs = [x for x in _status(r).get("pilotLogs") or [] if "Unschedulable" in x["log"]]
            return logs or None

        logs = eventually(kept, 180, "the unscheduled pod's reason kept", interval=2)
    except BaseException:
        print(r.operator_log())
        raise
    finally:
        pool.tool("condor_rm", str(cluster_id), check=False)
    assert "Insufficient memory" in logs[0]["log"], logs
    eventually(lambda: r.pilot_pods() == [], 120, "the pending pod removed", interval=2)
    print(f"\nan unschedulable pilot, as kept: {logs[0]['log'][:300]}")


def test_helm_upgrade_rolls_the_operator(release: Release) -> None:
    r = release
    before = r.ready_pod()
    assert before
    r.values = {**r.values, "logging": {"level": "DEBUG", "format": "text"}}
    t0 = time.monotonic()
    done = r.helm("upgrade", RELEASE, str(CHART), "-n", NS, "--wait")
    assert done.returncode == 0, done.stderr

    def rolled() -> dict[str, Any] | None:
        pod = r.ready_pod()
        if pod and pod["metadata"]["uid"] != before["metadata"]["uid"]:
            return pod
        return None

    after = eventually(rolled, 120, "a new operator pod Ready", interval=1)
    env = {e["name"]: e.get("value") for e in after["spec"]["containers"][0]["env"]}
    assert env["GLIDEIN_LOG_LEVEL"] == "DEBUG"
    assert [p["metadata"]["uid"] for p in r.operator_pods()] == [after["metadata"]["uid"]]
    print(f"\nhelm upgrade → new operator pod Ready in {time.monotonic() - t0:.1f}s")


def test_helm_uninstall_tears_down_and_leaves_no_pilot(
    release: Release, node_pool: CondorPool
) -> None:
    r, pool = release, node_pool
    # Pilots busy with long jobs when the release goes.
    cluster_id = pool.submit(job(arguments="600", extra=['+Story = "pods"']), count=2)
    try:

        def running() -> bool:
            return "2" in pool.tool("condor_q", str(cluster_id), "-af", "JobStatus").stdout

        eventually(running, 240, "a long job running on a pod pilot", interval=2)
        assert r.pilot_pods()
        t0 = time.monotonic()
        done = r.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m")
        assert done.returncode == 0, done.stderr + done.stdout
        took = time.monotonic() - t0
    finally:
        pool.tool("condor_rm", str(cluster_id), check=False)
    # The hook deleted the requests while the operator ran; it terminated every pilot.
    assert r.pilot_pods() == [] or all(
        p["metadata"].get("deletionTimestamp") for p in r.pilot_pods()
    )
    eventually(lambda: r.pilot_pods() == [], 60, "no pilot pod left", interval=1)
    assert r.k("get", "greq", "-A", "-o", "name").strip() == ""
    assert r.k("get", "secrets", "-n", PILOTS_NS, "-o", "name").strip() == ""
    left = r.k("get", "all,sa,role,rolebinding,job", "-n", NS, "-o", "name").strip().split()
    assert [x for x in left if "glidein" in x] == [], left
    print(f"\nhelm uninstall with teardown: {took:.1f}s, no pilot left")
