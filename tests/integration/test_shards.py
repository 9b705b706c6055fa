"""Two shards on one cluster, each an active/standby pair with a Lease of its own, each
owning the requests its label selector picks: each reconciles only its own requests and
never lists, reaps, accounts or collects the other's pilots (nor its key pairs), also
across a failover of one shard."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from glidein_devkit.kube import OPERATOR_NAMESPACE, kubectl
from tests.integration.operator_env import eventually
from tests.integration.process_world import OperatorProcess, World, live_instances, world_fixture

pytestmark = pytest.mark.integration

DURATION, DEADLINE, RETRY = 6, 4, 1

world = world_fixture("shard-vo", "op-shard-a", {"maxPilots": 200})


def _replica(w: World, shard: str, name: str) -> OperatorProcess:
    env = {
        **w.operator.env,
        "GLIDEIN_OPERATOR_ID": f"op-shard-{shard}",
        "GLIDEIN_SHARD": shard,
        "GLIDEIN_REQUEST_SELECTOR": f"glidein.dev/shard={shard}",
        "GLIDEIN_LEASE_DURATION": str(DURATION),
        "GLIDEIN_LEASE_RENEW_DEADLINE": str(DEADLINE),
        "GLIDEIN_LEASE_RETRY": str(RETRY),
    }
    log = w.cp.kubeconfig.parent / f"shard-{shard}-{name}.log"
    return OperatorProcess(env, log, ("--lease", f"glidein-shard-{shard}"))


def _holder(w: World, shard: str) -> str:
    out = kubectl(
        w.cp.kubeconfig,
        "get",
        "lease",
        f"glidein-shard-{shard}",
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def _holds(w: World, shard: str, op: OperatorProcess) -> bool:
    assert op.proc is not None
    return _holder(w, shard).endswith(f"-{op.proc.pid}")


def _pilots(w: World) -> dict[str, set[str]]:
    """Alive instances by the operator that owns them: the request uids they serve."""
    out: dict[str, set[str]] = {}
    for i in live_instances(w.boto):
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        out.setdefault(tags.get("glidein.dev/operator", ""), set()).add(
            tags.get("glidein.dev/request-uid", "")
        )
    return out


def _count(w: World, operator: str) -> int:
    return sum(
        1
        for i in live_instances(w.boto)
        if {"Key": "glidein.dev/operator", "Value": operator} in i.get("Tags", [])
    )


def _request(w: World, ns: str) -> dict[str, Any]:
    out = kubectl(w.cp.kubeconfig, "get", "greq", "vo", "-n", ns, "-o", "json")
    return dict(json.loads(out.stdout))


def _key_pairs(w: World, operator: str) -> list[str]:
    reply = w.boto.describe_key_pairs(
        Filters=[{"Name": "tag:glidein.dev/operator", "Values": [operator]}]
    )
    return [k["KeyName"] for k in reply["KeyPairs"]]


def test_two_shards_each_reconcile_only_their_own_requests_across_a_failover(
    world: World,
) -> None:
    w = world
    a1, a2 = _replica(w, "a", "1"), _replica(w, "a", "2")
    b1, b2 = _replica(w, "b", "1"), _replica(w, "b", "2")
    everyone = (a1, a2, b1, b2)
    try:
        a1.start()
        eventually(lambda: _holds(w, "a", a1), 30, "shard a's first replica holding its lease")
        a2.start()
        uid_a = w.add_request("vo-a", "east", 6)
        uid_b = w.add_request("vo-b", "east", 4)
        for ns, shard in (("vo-a", "a"), ("vo-b", "b")):
            kubectl(w.cp.kubeconfig, "label", "greq", "vo", "-n", ns, f"glidein.dev/shard={shard}")
        eventually(lambda: _count(w, "op-shard-a") == 6, 60, "shard a's 6 pilots")
        time.sleep(3)  # shard b is not running: nobody else acts on vo-b
        assert _pilots(w) == {"op-shard-a": {uid_a}}
        assert "status" not in _request(w, "vo-b") or not _request(w, "vo-b")["status"]

        # Shard b starts (its orphan collector runs at once) beside shard a's pilots.
        b1.start()
        eventually(lambda: _holds(w, "b", b1), 30, "shard b's first replica holding its lease")
        b2.start()
        eventually(lambda: _count(w, "op-shard-b") == 4, 60, "shard b's 4 pilots")
        assert _pilots(w) == {"op-shard-a": {uid_a}, "op-shard-b": {uid_b}}

        # Shard a fails over: its standby's orphan collector runs beside shard b's pilots.
        a1.kill()
        eventually(lambda: _holds(w, "a", a2), DURATION + 3 * RETRY + 5, "shard a's standby")
        w.pool.submit(
            "schedd@process.test",
            2,
            Owner="vo-a",
            RequestCpus=1,
            RequestMemory=1000,
        )
        eventually(lambda: _count(w, "op-shard-a") == 8, 60, "2 more pilots by shard a")
        time.sleep(3)
        assert _pilots(w) == {"op-shard-a": {uid_a}, "op-shard-b": {uid_b}}
        assert _count(w, "op-shard-b") == 4
        assert _holds(w, "b", b1)  # the other shard's pair never noticed

        for ns, mine, theirs in (("vo-a", "a", "b"), ("vo-b", "b", "a")):
            got = _request(w, ns)
            assert f"glidein.dev/finalizer-{mine}" in got["metadata"]["finalizers"]
            assert f"glidein.dev/finalizer-{theirs}" not in got["metadata"]["finalizers"]
            assert "glidein.dev/finalizer" not in got["metadata"]["finalizers"]
            totals = got["status"]["totals"]
            assert totals["launching"] + totals["running"] + totals["idle"] == (
                8 if mine == "a" else 4
            ), totals

        # Each shard's finalizer empties its own request's pilots and key pairs.
        for ns in ("vo-a", "vo-b"):
            kubectl(w.cp.kubeconfig, "delete", "greq", "vo", "-n", ns, "--timeout=90s")
        eventually(lambda: not _pilots(w) or None, 60, "no pilot left")
        for operator in ("op-shard-a", "op-shard-b"):
            eventually(lambda op=operator: not _key_pairs(w, op) or None, 60, "no key pair")
    finally:
        for op in everyone:
            op.stop()
