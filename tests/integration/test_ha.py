"""Two replicas, one acting: leader election by a coordination.k8s.io Lease, on the real
API server with the operator as its own processes. The standby takes over within one
lease period when the active one is killed, without a duplicate pilot; a replica cut off
from the API server stops acting (its process ends) before anyone may take over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from glidein_devkit.kube import OPERATOR_NAMESPACE, kubectl
from tests.integration.operator_env import eventually
from tests.integration.process_world import OperatorProcess, World, world_fixture
from tests.relay import Relay

pytestmark = pytest.mark.integration

LEASE = "glidein-operator"
# Short for the test; the chart's are 15/10/2.
DURATION, DEADLINE, RETRY = 6, 4, 1


world = world_fixture("ha-vo", "op-ha", {"maxPilots": 200})


def _replica(w: World, name: str, kubeconfig: Path | None = None) -> OperatorProcess:
    env = {
        **w.operator.env,
        "GLIDEIN_LEASE_DURATION": str(DURATION),
        "GLIDEIN_LEASE_RENEW_DEADLINE": str(DEADLINE),
        "GLIDEIN_LEASE_RETRY": str(RETRY),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return OperatorProcess(env, w.cp.kubeconfig.parent / f"{name}.log", ("--lease", LEASE))


def _holder(w: World) -> str:
    out = kubectl(
        w.cp.kubeconfig,
        "get",
        "lease",
        LEASE,
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def _empty_the_cloud(w: World) -> None:
    """Delete the request while a replica acts, so its pilots go (the leak check)."""
    kubectl(w.cp.kubeconfig, "delete", "greq", "vo", "-n", w.namespace, "--timeout=60s")
    eventually(lambda: not w.pilot_ids() or None, 60, "no pilot left")
    eventually(lambda: not w.key_pairs_left() or None, 60, "no key pair left")


def _pid(op: OperatorProcess) -> int:
    assert op.proc is not None
    return op.proc.pid


def _holds(w: World, op: OperatorProcess) -> bool:
    return _holder(w).endswith(f"-{_pid(op)}")


def test_the_standby_takes_over_within_a_lease_period_without_duplicates(world: World) -> None:
    w = world
    a, b = _replica(w, "a"), _replica(w, "b")
    a.start()
    eventually(lambda: _holds(w, a), 30, "replica a holding the lease")
    b.start()
    try:
        w.submit(20)
        w.request(max_pilots=100)
        eventually(lambda: sum(w.pilot_ids().values()) == 20, 60, "20 pilots by replica a")
        assert not _holds(w, b)
        a.kill()
        killed = time.monotonic()
        w.submit(10)
        eventually(lambda: _holds(w, b), DURATION + 3 * RETRY + 5, "replica b holding the lease")
        took_over = time.monotonic() - killed
        eventually(lambda: sum(w.pilot_ids().values()) == 30, 30, "10 more pilots by replica b")
        reacted = time.monotonic() - killed
        ids = w.pilot_ids()
        assert max(ids.values()) == 1, "a pilot launched twice across the handover"
        print(
            f"\nfailover: lease taken {took_over:.1f}s after the kill (lease {DURATION}s), "
            f"new jobs served {reacted:.1f}s after it"
        )
        assert took_over <= DURATION + 2 * RETRY + 2
        _empty_the_cloud(w)
    finally:
        b.stop()
        a.stop()


def test_a_replica_cut_off_from_the_api_server_stops_acting_before_the_takeover(
    world: World,
) -> None:
    w = world
    relay = Relay(w.cp.server.removeprefix("https://"))
    config = yaml.safe_load(w.cp.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://{relay.address}"
    cut_off = w.cp.kubeconfig.parent / "through-relay.kubeconfig"
    cut_off.write_text(yaml.safe_dump(config))
    a, b = _replica(w, "a", cut_off), _replica(w, "b")
    a.start()
    try:
        eventually(lambda: _holds(w, a), 30, "replica a holding the lease")
        b.start()
        w.submit(5)
        w.request(max_pilots=100)
        eventually(lambda: sum(w.pilot_ids().values()) == 5, 60, "5 pilots by replica a")
        relay.cut()
        partitioned = time.monotonic()
        assert a.proc is not None
        eventually(lambda: a.proc is not None and a.proc.poll() is not None, 30, "replica a ending")
        stopped = time.monotonic() - partitioned
        eventually(lambda: _holds(w, b), 30, "replica b holding the lease")
        taken = time.monotonic() - partitioned
        print(f"\npartition: a stopped after {stopped:.1f}s, b took over after {taken:.1f}s")
        assert stopped < taken, "the cut-off replica was still running when b took over"
        assert stopped <= DEADLINE + RETRY + DURATION / 2 + 2
        # b carries on where a left off: the same pilots, no duplicate.
        w.submit(3)
        eventually(lambda: sum(w.pilot_ids().values()) == 8, 30, "3 more pilots by replica b")
        assert max(w.pilot_ids().values()) == 1
        _empty_the_cloud(w)
    finally:
        relay.close()
        b.stop()
        a.stop()
