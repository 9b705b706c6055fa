"""examples/ as shipped, on a real API server: applied to a fresh cluster, the request says
exactly which Secrets the admin must add; once they are there, the operator's first
decision is what `glidein-operator plan` says for the same files and jobs.

The example entries name real clouds, so their pilots go to a simulated cloud
(glidein_devkit/simcloud) and their jobs come from the example job dump through an in-memory
schedd: nothing leaves this machine. Everything else is the operator as it runs: kopf,
the real API server, the request's real Secrets, the planner, the money step.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from glidein_devkit.controlplane import LocalControlPlane
from glidein_devkit.fake_pool import FakePool
from glidein_devkit.kube import OPERATOR_NAMESPACE, install_crds, kubectl
from glidein_devkit.simcloud import SimCloud
from glidein_operator.cli_plan import dry_run_files, read_jobs
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.controller import runtime
from tests.integration.operator_env import eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JOBS = EXAMPLES / "jobs" / "idle-jobs.json"
# The Secrets examples/40-glideinrequest.yaml names, with the keys each needs.
SECRETS = {
    "cms-pool-key": {"signingKey": "example-pool-signing-key"},
    "cms-aws": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "example-secret"},
    "cms-fermicloud": {"username": "cms", "password": "example-password"},
    "cms-hlt-openstack": {
        "applicationCredentialId": "example-id",
        "applicationCredentialSecret": "example-secret",
    },
    "cms-scitoken": {"token": "example.scitoken.value"},
}


class World:
    def __init__(self, kubeconfig: Path, cloud: SimCloud) -> None:
        self.kubeconfig, self.cloud = kubeconfig, cloud

    def k(self, *args: str, stdin: str | None = None) -> Any:
        return kubectl(self.kubeconfig, *args, stdin=stdin)

    def status(self) -> dict[str, Any]:
        out = self.k("get", "greq", "cms-production", "-n", "cms", "-o", "json").stdout
        return dict(json.loads(out).get("status") or {})

    def condition(self, type_: str) -> dict[str, Any]:
        conds = {c["type"]: c for c in self.status().get("conditions", [])}
        return dict(conds.get(type_) or {})

    def launched(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.cloud.alive():
            out[p.entry] = out.get(p.entry, 0) + 1
        return out


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
    with LocalControlPlane() as cp:
        install_crds(cp.kubeconfig)
        cloud = SimCloud(lambda: dt.datetime.now(dt.UTC))
        pool = FakePool(
            schedds={
                "schedd@submit1.cms.example.org": read_jobs(JOBS),
                "schedd@submit2.cms.example.org": [],
            }
        )
        rt = runtime.Runtime(
            settings=runtime.Settings(
                operator_id="op-examples",
                namespace=OPERATOR_NAMESPACE,
                credential_dir=cp.directory / "creds",
            ),  # type: ignore[call-arg]
            pool_factory=lambda _collector, _token: pool,
        )
        drivers: dict[str, InstrumentedDriver] = {}

        def driver(entry: str, *_: Any) -> InstrumentedDriver:
            if entry not in drivers:
                drivers[entry] = InstrumentedDriver(
                    cloud.driver(entry), launches_per_minute=10**6, metrics=rt.metrics
                )
            return drivers[entry]

        rt.driver = driver  # type: ignore[method-assign]
        runtime.install(rt)
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        w = World(cp.kubeconfig, cloud)
        # What the README says to do, to the letter.
        w.k("apply", "-f", str(EXAMPLES))
        logging.getLogger().setLevel(logging.INFO)
        with KopfRunner(
            ["run", "-A", "--standalone", "-m", "glidein_operator.controller.handlers"],
            timeout=60,
        ) as runner:
            yield w
            w.k("delete", "greq", "cms-production", "-n", "cms", "--timeout=60s")
        assert runner.exception is None, runner.output


def test_applied_as_shipped_the_request_names_each_secret_to_add(world: World) -> None:
    ready = eventually(
        lambda: (c := world.condition("Ready")).get("reason") == "NoPoolCredential" and c,
        what="Ready=False NoPoolCredential",
    )
    assert "cms-pool-key" in ready["message"], ready
    assert "kubectl -n cms create secret generic cms-pool-key" in ready["message"], ready
    blocked = eventually(
        lambda: (c := world.condition("EntriesBlocked")).get("status") == "True" and c,
        what="EntriesBlocked naming the cloud credentials",
    )
    for name in ("cms-aws", "cms-fermicloud", "cms-hlt-openstack", "cms-scitoken"):
        assert f"Secret {name!r} not found in namespace 'cms'" in blocked["message"], blocked
        assert f"kubectl -n cms create secret generic {name}" in blocked["message"], blocked
    # Pods need no Secret: that entry is usable as shipped.
    assert "local-pods" not in blocked["message"]
    assert world.launched() == {}


def test_with_the_secrets_the_first_decision_is_what_plan_says(world: World) -> None:
    for name, values in SECRETS.items():
        literals = [f"--from-literal={k}={v}" for k, v in values.items()]
        world.k("-n", "cms", "create", "secret", "generic", name, *literals)
    (run,) = dry_run_files([EXAMPLES], JOBS)
    expected = {e.entry: e.launch for e in run.plan.entries if e.launch}
    assert sum(expected.values()) > 0, "the example jobs must start something"
    eventually(lambda: world.condition("Ready").get("status") == "True", what="Ready")
    eventually(lambda: world.launched() == expected, what=f"launches {expected}")
    rows = {row["name"]: row for row in world.status()["entries"]}
    for e in run.plan.entries:
        assert rows[e.entry]["wanted"] == e.wanted, (e.entry, rows[e.entry], e)
        assert rows[e.entry]["idleJobs"] == e.idle_jobs, (e.entry, rows[e.entry], e)
    # And it stays that decision: pending pilots cover the jobs, nothing more starts.
    with pytest.raises(AssertionError):
        eventually(lambda: world.launched() != expected, timeout=4)
