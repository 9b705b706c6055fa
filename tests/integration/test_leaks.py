"""Nothing leaks, nothing stalls: deleting what pilots hang on (an entry, a namespace, a
request whatever its spec or Secrets), shared entry limits, and a lowered cap. Each case
on the real API server with the operator as its own process, against the EC2 test server;
at the end, nothing of the operator's is left in the cloud.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import classad2
import pytest
import yaml

from glidein_devkit.kube import OPERATOR_NAMESPACE, kubectl
from glidein_devkit.resources import cloud_entry
from glidein_operator.controller.keeper import ANNOTATION_ORIGIN
from tests.integration.operator_env import eventually
from tests.integration.process_world import World, live_instances, process_world

pytestmark = pytest.mark.integration

OPERATOR = "op-leaks"
# The budget for deleting a request whose pilots the operator terminates (issue #14).
DELETE_BUDGET = 20.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
    with process_world(
        tmp_path_factory.mktemp("leaks"), "leaks-base", OPERATOR, {"maxPilots": 100}
    ) as w:
        w.operator.start()
        yield w
        # The leak check: whatever the tests did, nothing of ours is left in the cloud.
        eventually(lambda: not _alive(w), 60, "no instance left at the end")
        eventually(lambda: not w.key_pairs_left(), 60, "no key pair left at the end")


def _k(w: World, *args: str, stdin: str | None = None, check: bool = True) -> Any:
    return kubectl(w.cp.kubeconfig, *args, stdin=stdin, check=check)


def _apply(w: World, *docs: dict[str, Any]) -> None:
    _k(w, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def _alive(w: World, *, entry: str | None = None, uid: str | None = None) -> list[Any]:
    out = []
    for i in live_instances(w.boto):
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        if tags.get("glidein.dev/operator") != OPERATOR:
            continue
        if entry and tags.get("glidein.dev/entry") != entry:
            continue
        if uid and tags.get("glidein.dev/request-uid") != uid:
            continue
        out.append(i)
    return out


def _entry(w: World, name: str, max_pilots: int) -> None:
    _apply(
        w,
        cloud_entry(
            name,
            {
                "type": "ec2",
                "trustDomain": "aws",
                "site": name.upper(),
                "vmImage": "img",
                "ec2": {"region": "us-east-1", "endpointUrl": w.ec2.url},
                "instanceTypes": [{"name": "t3.small", "cpus": 1, "memory": "2Gi"}],
                "limits": {"maxPilots": max_pilots},
            },
        ),
    )


def _gone(w: World, *what: str) -> bool:
    return _k(w, "get", *what, "--ignore-not-found", "-o", "name").stdout.strip() == ""


def _delete_request(w: World, ns: str) -> float:
    """Delete the request; seconds until its finalizer let it go."""
    t0 = time.monotonic()
    _k(w, "delete", "greq", "vo", "-n", ns, "--wait=false")
    eventually(lambda: _gone(w, "greq", "vo", "-n", ns), 90, f"{ns}/vo deleted")
    took = time.monotonic() - t0
    print(f"\ndeleting {ns}/vo took {took:.1f}s")
    return took


def _events(w: World, name: str) -> list[dict[str, Any]]:
    out = _k(w, "get", "events", "-A", "-o", "json").stdout
    return [e for e in json.loads(out)["items"] if e["involvedObject"].get("name") == name]


def test_deleting_an_entry_under_running_pilots_terminates_them_first(world: World) -> None:
    w = world
    _entry(w, "doomed", 10)
    uid = w.add_request("leak-entry", "doomed", 5)
    eventually(lambda: len(_alive(w, uid=uid)) == 5, 60, "5 pilots at the entry")
    _k(w, "delete", "cloudentry", "doomed", "--wait=false")
    eventually(lambda: _gone(w, "cloudentry", "doomed"), 60, "the entry deleted")
    # The entry's finalizer held it until its pilots were gone, and said why.
    assert _alive(w, entry="doomed") == []
    reasons = [(e["reason"], e["message"]) for e in _events(w, "doomed")]
    assert any(r == "Terminated" and "CloudEntry is being deleted" in m for r, m in reasons)
    # Their key pairs went with them.
    eventually(
        lambda: not [k for k in w.key_pairs_left() if "doomed" in k] or None,
        30,
        "the entry's key pairs gone",
    )
    # The request now names the entry it cannot find, and deletes promptly.
    eventually(
        lambda: (
            "CloudEntry 'doomed' does not exist"
            in _k(w, "get", "greq", "vo", "-n", "leak-entry", "-o", "json").stdout
        ),
        30,
        "the request naming the missing entry",
    )
    took = _delete_request(w, "leak-entry")
    assert took < DELETE_BUDGET, f"deleting the request took {took:.1f}s"


def test_deleting_a_namespace_waits_for_its_pilots(world: World) -> None:
    w = world
    uid = w.add_request("leak-ns", "east", 4)
    eventually(lambda: len(_alive(w, uid=uid)) == 4, 60, "4 pilots")
    t0 = time.monotonic()
    _k(w, "delete", "namespace", "leak-ns", "--wait=false")
    eventually(lambda: _gone(w, "namespace", "leak-ns"), 90, "the namespace deleted")
    took = time.monotonic() - t0
    # The request's finalizer held the namespace until its pilots were gone, though the
    # request's Secrets went at once.
    assert _alive(w, uid=uid) == []
    print(f"\nnamespace with 4 pilots deleted in {took:.1f}s")
    assert took < DELETE_BUDGET + 10  # the namespace controller's own passes add seconds


def test_a_namespace_deleted_while_the_operator_is_down_loses_no_pilot(world: World) -> None:
    """The Secrets go with the namespace before any operator could use them: the
    restarted operator terminates the pilots with its kept copy of the credential."""
    w = world
    uid = w.add_request("leak-down", "east", 3)
    eventually(lambda: len(_alive(w, uid=uid)) == 3, 60, "3 pilots")
    w.operator.stop()
    try:
        _k(w, "delete", "namespace", "leak-down", "--wait=false")
        eventually(lambda: _gone(w, "secret", "aws", "-n", "leak-down"), 60, "the Secret gone")
        assert len(_alive(w, uid=uid)) == 3
    finally:
        w.operator.start()
    eventually(lambda: _gone(w, "namespace", "leak-down"), 90, "the namespace deleted")
    assert _alive(w, uid=uid) == []


def test_orphans_of_a_request_gone_for_good_are_found_through_the_kept_credential(
    world: World,
) -> None:
    """The worst case: the request's finalizer was forced off and its namespace deleted
    while the operator was down. No request names the entry's credential any more; the
    orphan collector still lists the entry with the kept copy, terminates the pilots,
    and then drops the copy."""
    w = world
    _entry(w, "lonely", 10)
    uid = w.add_request("leak-orphan", "lonely", 2)
    eventually(lambda: len(_alive(w, uid=uid)) == 2, 60, "2 pilots")
    w.operator.stop()
    try:
        _k(
            w,
            "patch",
            "greq",
            "vo",
            "-n",
            "leak-orphan",
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
        )
        _k(w, "delete", "namespace", "leak-orphan", "--wait=true", "--timeout=60s")
        assert len(_alive(w, uid=uid)) == 2
    finally:
        w.operator.start()
    eventually(lambda: not _alive(w, uid=uid), 60, "the orphans terminated")

    def copies() -> list[str]:
        out = _k(w, "get", "secrets", "-n", OPERATOR_NAMESPACE, "-o", "json").stdout
        return [
            s["metadata"]["name"]
            for s in json.loads(out)["items"]
            if (s["metadata"].get("annotations") or {})
            .get(ANNOTATION_ORIGIN, "")
            .startswith("leak-orphan/")
        ]

    eventually(lambda: not copies() or None, 90, "the kept copy dropped")
    _k(w, "delete", "cloudentry", "lonely")


def test_an_entry_limit_holds_across_requests_launching_at_once(world: World) -> None:
    w = world
    _entry(w, "shared", 8)
    for ns in ("share-a", "share-b"):
        w.add_request(ns, "shared", 6, max_pilots=6)
    seen = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen = max(seen, len(_alive(w, entry="shared")))
        time.sleep(0.2)
    assert seen == 8, f"{seen} pilots at an entry of maxPilots 8"
    # A restarted operator sees them all, and starts nothing more.
    w.operator.kill()
    w.operator.start()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        seen = max(seen, len(_alive(w, entry="shared")))
        time.sleep(0.2)
    assert seen == 8, f"{seen} pilots at an entry of maxPilots 8 after a restart"
    for ns in ("share-a", "share-b"):
        took = _delete_request(w, ns)
        assert took < DELETE_BUDGET, f"deleting {ns}/vo took {took:.1f}s"
    _k(w, "delete", "cloudentry", "shared")


def test_a_lowered_max_pilots_cuts_pilots_running_no_job_but_never_a_busy_one(
    world: World,
) -> None:
    w = world
    uid = w.add_request("lower", "east", 15, max_pilots=15)
    eventually(lambda: len(_alive(w, uid=uid)) == 15, 60, "15 pilots")
    # Three of them run jobs.
    busy = []
    ads = []
    for inst in _alive(w, uid=uid)[:3]:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        pilot_id = f"{tags['glidein.dev/batch']}-{inst['AmiLaunchIndex']}"
        busy.append(inst["InstanceId"])
        ad = classad2.ClassAd()
        ad["Name"] = f"slot1@{inst['InstanceId']}"
        ad["GlideinPilotId"] = pilot_id
        ad["GlideinRequestUid"] = uid
        ad["GlideinEntryName"] = "east"
        ad["State"] = "Claimed"
        ad["Activity"] = "Busy"
        ad["Cpus"] = 1
        ad["TotalSlotCpus"] = 1
        ads.append(ad)
    w.pool.advertise(ads)
    time.sleep(3)  # the operator reads them claimed
    _k(
        w,
        "patch",
        "greq",
        "vo",
        "-n",
        "lower",
        "--type=merge",
        "-p",
        '{"spec":{"limits":{"maxPilots":7,"maxIdlePilots":7}}}',
    )
    eventually(lambda: len(_alive(w, uid=uid)) <= 7, 30, "down to the new cap")
    left = {i["InstanceId"] for i in _alive(w, uid=uid)}
    assert set(busy) <= left, "a pilot running a job was terminated"
    time.sleep(3)
    assert len(_alive(w, uid=uid)) == 7  # and nothing new starts over the cap
    took = _delete_request(w, "lower")
    assert took < DELETE_BUDGET, f"deleting the request took {took:.1f}s"


def test_a_binary_secret_is_named_and_the_request_still_deletes_promptly(world: World) -> None:
    w = world
    w.add_request(
        "binary",
        "east",
        2,
        secret={"data": {"accessKeyId": "dGVzdGluZw==", "secretAccessKey": "/wD+AQ=="}},
    )

    def ready_message() -> str | None:
        out = json.loads(_k(w, "get", "greq", "vo", "-n", "binary", "-o", "json").stdout)
        for c in (out.get("status") or {}).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "False":
                return str(c["message"])
        return None

    message = eventually(ready_message, 30, "the request not Ready, saying why")
    assert "Secret 'aws'" in message, message
    assert "secretAccessKey" in message, message
    took = _delete_request(w, "binary")
    assert took < DELETE_BUDGET, f"deleting the request took {took:.1f}s"
