"""Two replicas as the chart runs them (`run --lease --health-probe-bind-address`), as
their own processes on the real API server: both answer /healthz and /readyz (a standby
is a Ready hot spare), the active one once kopf has filled its indices; and its metrics
tell the truth: a reconcile that fails is counted, and a deleted request's series, and a
deleted entry's, are gone."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from glidein_devkit.controlplane.cluster import free_port
from glidein_devkit.kube import OPERATOR_NAMESPACE, kubectl
from tests.integration.operator_env import eventually
from tests.integration.process_world import COLLECTOR, SCHEDD, OperatorProcess, World, world_fixture
from tests.support.documents import credential, glidein_request

pytestmark = pytest.mark.integration

LEASE = "glidein-operator"


world = world_fixture("probe-vo", "op-probes", {"maxPilots": 20})


class Replica:
    def __init__(self, w: World, name: str) -> None:
        self.health, self.metrics = free_port(), free_port()
        env = {
            **w.operator.env,
            "GLIDEIN_METRICS_PORT": str(self.metrics),
            "GLIDEIN_LEASE_DURATION": "6",
            "GLIDEIN_LEASE_RENEW_DEADLINE": "4",
            "GLIDEIN_LEASE_RETRY": "1",
        }
        self.process = OperatorProcess(
            env,
            w.cp.kubeconfig.parent / f"{name}.log",
            ("--lease", LEASE, "--health-probe-bind-address", f"127.0.0.1:{self.health}"),
        )

    def probe(self, path: str) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health}{path}", timeout=2) as r:
                return r.status, r.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode().strip()
        except OSError:
            return None

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=2) as r:
            text = r.read().decode()
        return [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def value(self, series: str, **labels: str) -> float | None:
        found = [v for n, ls, v in self.samples() if n == series and labels.items() <= ls.items()]
        return sum(found) if found else None

    def series_of(self, **labels: str) -> list[str]:
        return [n for n, ls, _v in self.samples() if labels.items() <= ls.items()]


def _holder(w: World) -> str:
    out = kubectl(
        w.cp.kubeconfig,
        *("get", "lease", LEASE, "-n", OPERATOR_NAMESPACE),
        *("-o", "jsonpath={.spec.holderIdentity}"),
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def _holds(w: World, r: Replica) -> bool:
    assert r.process.proc is not None
    return _holder(w).endswith(f"-{r.process.proc.pid}")


def _bad_request(w: World) -> None:
    """A request the CRD schema accepts and the operator cannot use (no webhook here):
    a jobConstraint that is no ClassAd expression."""
    doc = glidein_request(
        w.namespace,
        COLLECTOR,
        SCHEDD,
        [credential("aws")],
        name="bad",
        jobConstraint='Owner == "unterminated',
    )
    kubectl(w.cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))


def test_every_replica_answers_its_probes_and_the_metrics_forget_what_is_deleted(
    world: World,
) -> None:
    w = world
    a, b = Replica(w, "a"), Replica(w, "b")
    started = time.monotonic()
    a.process.start()
    try:
        assert eventually(lambda: a.probe("/healthz"), 30, "a's /healthz") == (200, "ok")
        eventually(lambda: _holds(w, a), 30, "a holding the lease")
        eventually(lambda: a.probe("/readyz") == (200, "active"), 30, "a ready")
        ready_after = time.monotonic() - started
        b.process.start()
        # The standby: alive, and Ready as a hot spare; its metrics are served too.
        assert eventually(lambda: b.probe("/healthz"), 30, "b's /healthz") == (200, "ok")
        eventually(
            lambda: b.probe("/readyz") == (200, "standby: waiting for the Lease"),
            30,
            "b ready as a standby",
        )
        assert not _holds(w, b)
        assert b.samples() == []  # serves, and has nothing to say of requests

        # A reconcile that cannot use its spec is counted, by namespace and name.
        _bad_request(w)
        errors = eventually(
            lambda: a.value("glidein_reconcile_errors_total", namespace=w.namespace, name="bad"),
            30,
            "the bad request's errors counted",
        )
        assert errors >= 1
        # A working request: its series, by entry.
        w.submit(2)
        w.request(max_pilots=10)
        eventually(lambda: sum(w.pilot_ids().values()) == 2, 30, "2 pilots")
        eventually(
            lambda: a.value(
                "glidein_pilots_wanted", namespace=w.namespace, name="vo", entry="east"
            ),
            30,
            "vo's rows at east",
        )
        assert a.value("glidein_idle_jobs", namespace=w.namespace, name="vo") == 2
        assert a.series_of(entry="east")

        # Deleted: the request's series go with it, every one.
        for name in ("bad", "vo"):
            kubectl(w.cp.kubeconfig, "delete", "greq", name, "-n", w.namespace, "--timeout=60s")
        assert not w.pilot_ids()
        eventually(lambda: not a.series_of(namespace=w.namespace), 10, "no series of the requests")
        # A deleted entry's too: the drivers' series (calls, launches) and any row.
        kubectl(w.cp.kubeconfig, "delete", "cloudentry", "east", "--timeout=60s")
        eventually(lambda: not a.series_of(entry="east"), 10, "no series of the entry")
        assert not w.key_pairs_left()

        # Stopped, a hands over: b becomes the active replica, and says so.
        a.process.stop()
        eventually(lambda: b.probe("/readyz") == (200, "active"), 30, "b active and ready")
        print(f"\nreplica a ready {ready_after:.1f}s after its start")
    finally:
        b.process.stop()
        a.process.stop()
