"""Helpers for the HTCondor tier: polling with a deadline (daemons answer in their own
time), the operator's own token, the operator process over a story's resources."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from glidein_devkit.boot import BootEmulator, Vm
from glidein_devkit.condor_pool import CondorPool
from glidein_devkit.kube import OPERATOR_NAMESPACE
from glidein_devkit.resources import G
from glidein_operator.credentials import idtokens
from tests.integration.process_world import OperatorProcess
from tests.support.cluster import Cluster

T = TypeVar("T")


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


def operator_token(pool: CondorPool) -> str:
    """The READ token the operator mints itself from the pool's signing key."""
    return idtokens.mint(
        pool.signing_key(),
        identity=idtokens.operator_identity(pool.trust_domain),
        issuer=pool.trust_domain,
        lifetime=600,
        now=int(time.time()),
        scope="condor:/READ",
    )


def story_operator_id(namespace: str) -> str:
    return f"story-{namespace}"


@contextmanager
def operator_on(
    cluster: Cluster,
    namespace: str,
    condor_tmp: Path,
    docs: list[dict[str, Any]],
    env: dict[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """Apply ``docs`` and run the operator as its own process. On the way out every
    resource of ours among them is deleted while the operator still runs (so its
    finalizers let go: other tests count what is in the session's cluster), then it stops."""
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    operator = OperatorProcess(
        {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "GLIDEIN_OPERATOR_ID": story_operator_id(namespace),
            "GLIDEIN_NAMESPACE": OPERATOR_NAMESPACE,
            "GLIDEIN_RECONCILE_INTERVAL": "1",
            "GLIDEIN_CREDENTIAL_DIR": str(condor_tmp / f"creds-{namespace}"),
            **(env or {}),
        },
        condor_tmp / f"operator-{namespace}.log",
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


def diagnose(
    cluster: Cluster, namespace: str, operator_log: Path, cloud: str, boot: BootEmulator
) -> None:
    """What a reader of a failed story needs: the request's status, the operator's last
    words, the cloud's machines (``cloud``, already said), and each VM's boot log."""
    print(cluster.kubectl("get", "greq", "vo", "-n", namespace, "-o", "yaml", check=False).stdout)
    print("--- operator log (tail)")
    print("\n".join(operator_log.read_text(errors="replace").splitlines()[-60:]))
    print("---", cloud)
    print("--- boot emulator errors", boot.errors)
    for vm in boot.vms.values():
        print(vm.machine.logs()[-3000:])
        pilot_out = vm.machine.folder / "pilot.out"
        if pilot_out.exists():
            print(pilot_out.read_text(errors="replace")[-1500:])
