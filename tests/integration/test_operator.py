"""The operator end to end on a real kube-apiserver: idle jobs -> EC2 pilots (moto server,
AWS-faithful) -> registered -> status and Events -> deletion terminates everything."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import yaml

from glidein_devkit.resources import cloud_entry, trust_domain, vm_image
from glidein_operator.controller import runtime
from tests.integration.operator_env import (
    COLLECTOR,
    SCHEDD,
    Env,
    advertise,
    delete_and_wait,
    env_fixture,
    eventually,
    moto_entry,
    request,
    start,
    submit,
)
from tests.support.documents import credential, glidein_request, secret

env = env_fixture(webhook=True)


def test_idle_jobs_launch_pilots_which_register_and_leave_on_delete(env: Env) -> None:
    ns = f"vo-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    uid = start(env, ns, 20, cpus=1, memory=2000)
    # 20 one-core jobs on 4-core pilots: 5 pilots.
    launched = eventually(
        lambda: len(env.instances(uid)) == 5 and env.instances(uid), what="5 EC2 pilots"
    )
    reaction = time.monotonic() - started
    for inst in launched:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["glidein.dev/entry"] == "moto-east"
        assert tags["glidein.dev/operator"] == "op-it"
        assert inst["KeyName"].startswith("glidein-")
    status = eventually(
        lambda: (s := env.status(ns, "vo")).get("totals", {}).get("launching") == 5 and s,
        what="status launching=5",
    )
    assert status["totals"]["idleJobs"] == 20
    [row] = status["entries"]
    assert row["name"] == "moto-east"
    ready = {c["type"]: c for c in status["conditions"]}
    assert ready["Ready"]["status"] == "True"
    assert ready["Degraded"]["status"] == "False"
    events = env.k("get", "events", "-n", ns, "-o", "json").stdout
    assert "ScaledUp" in events
    registry = runtime.get().registry
    assert registry.get_sample_value("glidein_idle_jobs", {"namespace": ns, "name": "vo"}) == 20
    assert registry.get_sample_value("glidein_pilots_launched_total", {"entry": "moto-east"}) >= 5
    assert (
        registry.get_sample_value(
            "glidein_reconcile_duration_seconds_count", {"namespace": ns, "name": "vo"}
        )
        >= 1
    )
    print(f"\nreaction: idle jobs -> 5 pilots launched in {reaction:.1f}s")

    # Pilots register and take the jobs: no more launches, running in status.
    advertise(env, launched, uid, claimed=True)
    env.pool.set_status(SCHEDD, f'Owner == "{ns}"', 2)
    eventually(lambda: env.status(ns, "vo").get("totals", {}).get("running") == 5, what="running=5")
    assert len(env.instances(uid)) == 5

    # Deleting the request terminates every pilot and key pair before the object goes.
    delete_and_wait(env, ns)
    assert env.instances(uid) == []
    keys = env.boto.describe_key_pairs(
        Filters=[{"Name": "tag:glidein.dev/request-uid", "Values": [uid]}]
    )
    assert keys["KeyPairs"] == []


def test_a_broken_request_names_its_problem_and_others_keep_working(env: Env) -> None:
    bad, good = f"bad-{uuid.uuid4().hex[:6]}", f"good-{uuid.uuid4().hex[:6]}"
    for ns in (bad, good):
        submit(env, ns, 4)
    request(env, bad, secret=False)
    request(env, good)
    status = eventually(
        lambda: (s := env.status(bad, "vo")).get("conditions") and s, what="bad status"
    )
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "NoUsableEntry"
    assert f"Secret 'aws' not found in namespace '{bad}'" in conds["Ready"]["message"]
    good_uid = env.uid(good, "vo")
    eventually(lambda: len(env.instances(good_uid)) == 1, what="the good request's pilot")
    assert env.instances(env.uid(bad, "vo")) == []
    for ns in (bad, good):
        env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def test_classad_expressions_are_checked_at_apply_by_the_webhook(env: Env) -> None:
    """What CEL cannot parse, the operator's admission webhook does, with the real ClassAd
    parser: a bad expression is refused at kubectl apply, naming the field; one bad
    CloudEntry attribute never reaches the requests that could use the entry."""
    ns = f"hook-{uuid.uuid4().hex[:6]}"
    env.k("create", "namespace", ns)
    bad = glidein_request(
        ns,
        COLLECTOR,
        SCHEDD,
        [credential("aws-test")],
        token=False,
        jobConstraint='Owner == "unterminated',
    )
    refused = env.k("apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert refused.returncode != 0
    assert "admission webhook" in refused.stderr, refused.stderr
    assert "spec.jobConstraint" in refused.stderr, refused.stderr
    entry = moto_entry("hook-entry", env.ec2.url, site="HOOK", attributes={"HAS_X": "true &&"})
    refused = env.k("apply", "-f", "-", stdin=yaml.safe_dump(entry), check=False)
    assert refused.returncode != 0
    assert "spec.attributes" in refused.stderr, refused.stderr
    # Well-formed ones pass.
    bad["spec"]["jobConstraint"] = f'Owner == "{ns}"'
    env.k("apply", "-f", "-", stdin=yaml.safe_dump(bad))
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def test_no_pool_credential_means_no_launch_and_says_why(env: Env) -> None:
    ns = f"notok-{uuid.uuid4().hex[:6]}"
    start(env, ns, 4, token=False)
    status = eventually(lambda: (s := env.status(ns, "vo")).get("conditions") and s, what="status")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["reason"] == "NoPoolCredential"
    assert "pool-key" in ready["message"]
    assert env.instances(env.uid(ns, "vo")) == []
    # The admin hears of it once, from the operator by its own name, not once per cycle.
    warning = eventually(
        lambda: [e for e in _events(env, ns) if e["reason"] == "NoPoolCredential"],
        what="a NoPoolCredential Event",
    )
    time.sleep(4)  # four more reconciles
    warnings = [e for e in _events(env, ns) if e["reason"] == "NoPoolCredential"]
    assert len(warnings) == 1, warnings
    assert warnings[0].get("count", 1) == 1, warnings
    assert warning[0]["type"] == "Warning"
    assert warning[0]["source"]["component"] == "op-it"
    assert "pool-key" in warning[0]["message"]
    # The operator's lines about this request name it; a timer's success is not news.
    assert any(f"[{ns}/vo]" in line for line in env.logs), "no log line names the request"
    assert not any("Timer 'reconcile_request' succeeded" in line for line in env.logs)
    # Deleting it does not wait on the Secret that never came.
    started = time.monotonic()
    env.k("delete", "greq", "vo", "-n", ns, "--timeout=30s")
    assert time.monotonic() - started < 10


def test_entry_status_reports_a_missing_image(env: Env) -> None:
    env.apply(
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "CloudEntry",
            "metadata": {"name": "no-image"},
            "spec": {
                "type": "ec2",
                "trustDomain": "aws-test",
                "site": "X",
                "vmImage": "absent",
                "ec2": {"region": "us-east-1", "endpointUrl": env.ec2.url},
                "instanceTypes": [{"name": "m5.large", "cpus": 2, "memory": "8Gi"}],
            },
        }
    )

    def ready() -> Any:
        obj = json.loads(env.k("get", "gentry", "no-image", "-o", "json").stdout)
        return next(
            (c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"),
            None,
        )

    cond = eventually(ready, what="entry condition")
    assert cond["status"] == "False"
    assert cond["reason"] == "ImageMissing"
    printed = env.k("get", "gentry", "no-image").stdout
    assert "False" in printed
    env.k("delete", "gentry", "no-image")


def _entry_ready(env: Env, name: str) -> dict[str, Any] | None:
    obj = json.loads(env.k("get", "gentry", name, "-o", "json").stdout)
    conds = (obj.get("status") or {}).get("conditions", [])
    return next((c for c in conds if c["type"] == "Ready"), None)


def test_an_image_the_cloud_does_not_have_is_named_on_the_entry(env: Env) -> None:
    """The VMImage says where an image is staged; only the cloud knows whether it is.
    Once a request holds a credential for the entry, the operator asks the cloud (once
    per entry generation and image id) and the entry names the image id it lacks."""
    ns, ghost = f"ghost-{uuid.uuid4().hex[:6]}", "ami-0badc0ffee0000000"
    entry = moto_entry("ghost", env.ec2.url, site="GHOST")
    entry["spec"]["vmImage"] = "ghost-img"
    env.apply(
        vm_image("ghost-img", [{"cloud": "ec2", "region": "us-east-1", "imageId": ghost}]),
        entry,
    )
    # No jobs: the request only gives the operator a credential for both entries.
    request(env, ns, spec={"entries": {"names": ["ghost", "moto-east"]}})
    cond = eventually(
        lambda: (c := _entry_ready(env, "ghost")) and c["reason"] == "ImageMissing" and c,
        timeout=90,
        what="ImageMissing on the entry",
    )
    assert cond["status"] == "False"
    assert ghost in cond["message"], cond
    assert "ghost-img" in cond["message"], cond
    assert "False" in env.k("get", "gentry", "ghost").stdout
    # The entry whose image the cloud has was asked too, and stays usable.
    registry = runtime.get().registry

    def asked() -> bool:
        labels = {"entry": "moto-east", "operation": "image_exists"}
        count = registry.get_sample_value("glidein_cloud_call_duration_seconds_count", labels)
        return bool(count)

    eventually(asked, timeout=60, what="moto-east's image looked up")
    eventually(
        lambda: (c := _entry_ready(env, "moto-east")) and c["reason"] == "Valid",
        timeout=40,
        what="moto-east still Valid",
    )
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")
    env.k("delete", "gentry", "ghost", "--wait=false")
    env.k("delete", "gvmi", "ghost-img", "--wait=false")


def test_failing_cloud_marks_degraded_backs_off_and_converges(env: Env) -> None:
    ns = f"flaky-{uuid.uuid4().hex[:6]}"
    env.ec2.clear_faults()
    # Capacity errors on every attempt of the next two launches (botocore retries 4 times).
    env.ec2.fail("RunInstances", "InsufficientInstanceCapacity", times=8, status=500)
    uid = start(env, ns, 8, cpus=1, memory=1000)

    def degraded() -> Any:
        conds = {c["type"]: c for c in env.status(ns, "vo").get("conditions", [])}
        return conds.get("Degraded", {}).get("status") == "True" and conds["Degraded"]

    cond = eventually(degraded, what="Degraded while the cloud fails")
    assert "moto-east" in cond["message"]
    assert "InsufficientCapacity" in cond["message"]
    # It backs off (no call storm) and gets there once the cloud recovers.
    eventually(
        lambda: len(env.instances(uid)) == 2, timeout=90, what="converged after the failures"
    )
    eventually(lambda: not degraded(), what="Degraded cleared")
    calls = env.ec2.calls().get("RunInstances", 0)
    assert calls < 40, f"{calls} RunInstances calls: no backoff"
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def test_operator_recovers_from_an_apiserver_restart(env: Env) -> None:
    env.restart_apiserver()
    ns = f"after-{uuid.uuid4().hex[:6]}"
    uid = start(env, ns, 4, cpus=1, memory=1000)
    eventually(lambda: len(env.instances(uid)) == 1, timeout=90, what="a launch after the restart")
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def test_pilots_on_openstack_opennebula_grid_and_pods_then_nothing_left(env: Env) -> None:
    from glidein_devkit.opennebula_fake import FakeOpenNebula
    from glidein_devkit.openstack_fake import FakeOpenStack
    from glidein_operator.condor.grid import REMOVED

    ns, pods_ns = f"multi-{uuid.uuid4().hex[:6]}", f"pilots-{uuid.uuid4().hex[:6]}"
    kubeconfig_text = env.kubeconfig.read_text()
    with FakeOpenStack() as nova, FakeOpenNebula() as one:

        def entry(
            name: str, typ: str, td_name: str, section: dict[str, Any], image: bool
        ) -> dict[str, Any]:
            spec: dict[str, Any] = {
                "type": typ,
                "trustDomain": td_name,
                "site": name.upper(),
                typ: section,
                # Priced alike (an unpriced VM cloud would rank last under placement: cost).
                "instanceTypes": [
                    {"name": "m5.large", "cpus": 2, "memory": "8Gi", "pricePerHour": 0}
                ],
            }
            if image:
                spec["vmImage"] = "multi-img"
            return cloud_entry(name, spec)

        env.k("create", "namespace", pods_ns)
        env.apply(
            trust_domain("td-os", ["openstack-password"]),
            trust_domain("td-one", ["opennebula-user-password"]),
            trust_domain("td-grid", ["scitoken"]),
            trust_domain("td-k8s", ["kubeconfig"]),
            vm_image(
                "multi-img",
                [
                    {"cloud": "openstack", "region": "RegionOne", "imageId": nova.image_id},
                    {"cloud": "opennebula", "region": "default", "imageId": "1342"},
                ],
            ),
            entry(
                "e-os",
                "openstack",
                "td-os",
                {"authUrl": nova.auth_url, "region": "RegionOne", "projectName": "glidein-project"},
                True,
            ),
            entry(
                "e-one", "opennebula", "td-one", {"endpoint": one.endpoint, "templateId": 42}, True
            ),
            entry(
                "e-grid",
                "grid",
                "td-grid",
                {
                    "ceType": "condor",
                    "endpoint": "ce.test:9619",
                    "submitter": {
                        "collector": "submit.test",
                        "schedd": "glidein-submitter",
                        "tokenSecretRef": {"name": "submit-token"},
                    },
                },
                False,
            ),
            entry(
                "e-pods",
                "kubernetes",
                "td-k8s",
                {"namespace": pods_ns, "pilotImage": "example.org/pilot:1"},
                False,
            ),
        )
        env.k("create", "namespace", ns)
        secrets = {
            "os": {"username": "glidein", "password": "secret"},
            "one": {"username": "glidein", "password": "secret"},
            "tok": {"token": "valid-token"},
            "kube": {"kubeconfig": kubeconfig_text},
            "pool-key": {"signingKey": env.pool_key},
        }
        env.apply(*(secret(ns, n, d) for n, d in secrets.items()))
        creds = [
            credential("td-os", "openstack-password", "os"),
            credential("td-one", "opennebula-user-password", "one"),
            credential("td-grid", "scitoken", "tok"),
            credential("td-k8s", "kubeconfig", "kube"),
        ]
        env.apply(
            glidein_request(
                ns,
                COLLECTOR,
                SCHEDD,
                creds,
                jobConstraint=f'Owner == "{ns}"',
                entries={"names": ["e-os", "e-one", "e-grid", "e-pods"]},
            )
        )
        # Four two-core jobs, split over the four entries: one pilot each.
        submit(env, ns, 4, cpus=2)

        def pods() -> list[str]:
            return env.k("get", "pods", "-n", pods_ns, "-o", "name").stdout.split()

        def grid_jobs() -> int:
            return sum(1 for ad in env.grid.jobs.values() if ad["JobStatus"] != REMOVED)

        eventually(
            lambda: (
                len(nova.state.servers) == 1
                and len(one.live()) == 1
                and grid_jobs() == 1
                and len(pods()) == 1
            ),
            timeout=90,
            what="one pilot on each of OpenStack, OpenNebula, grid and pods",
        )
        # The status is written after the cycle's cloud calls: it may trail them a moment.
        expected = {"e-grid": 1, "e-one": 1, "e-os": 1, "e-pods": 1}
        eventually(
            lambda: (
                {r["name"]: r["launching"] for r in env.status(ns, "vo").get("entries", [])}
                == expected
            ),
            timeout=30,
            what=f"status launching {expected}",
        )

        env.k("delete", "greq", "vo", "-n", ns, "--wait=false")
        eventually(
            lambda: (
                env.k(
                    "get", "greq", "vo", "-n", ns, "--ignore-not-found", "-o", "name"
                ).stdout.strip()
                == ""
            ),
            timeout=90,
            what="request gone",
        )
        assert nova.state.servers == {}
        assert nova.state.keypairs == {}
        assert one.live() == []
        assert grid_jobs() == 0
        assert pods() == []


def test_secrets_never_appear_in_logs_events_or_status(env: Env) -> None:
    # Last in this module: after launches, failures (auth, capacity), an API-server restart,
    # reaping and deletions on five back ends.
    ns = f"scan-{uuid.uuid4().hex[:6]}"
    uid = start(env, ns, 4, cpus=1, memory=1000)
    eventually(lambda: len(env.instances(uid)) == 1, what="a pilot")
    events = env.k("get", "events", "-A", "-o", "json").stdout
    statuses = env.k("get", "glidein", "-A", "-o", "json").stdout
    logs = "\n".join(env.logs)
    assert env.logs, "no operator log captured: the scan would prove nothing"
    for haystack, where in ((logs, "logs"), (events, "Events"), (statuses, "status")):
        assert env.cloud_secret not in haystack, f"cloud secret in {where}"
        assert env.pool_key not in haystack, f"pool signing key in {where}"
        assert "eyJ" not in haystack, f"a JWT (pilot token) in {where}"
    env.k("delete", "greq", "vo", "-n", ns, "--wait=false")


def _events(env: Env, ns: str) -> list[dict[str, Any]]:
    return list(json.loads(env.k("get", "events", "-n", ns, "-o", "json").stdout)["items"])


def _reasons(env: Env, ns: str) -> set[str]:
    return {e["reason"] for e in _events(env, ns)}


def test_spot_fallback_interruption_accounting_and_kill_switch(env: Env) -> None:
    ns = f"spot-{uuid.uuid4().hex[:6]}"
    env.ec2.clear_faults()
    # No spot capacity for the first launch: on-demand instead, said in an Event.
    env.ec2.fail("RunInstances", "InsufficientInstanceCapacity", when="MarketType=spot")
    budget = {"limit": 100, "warnAt": 0.9}
    uid = start(
        env,
        ns,
        8,
        cpus=1,
        memory=1000,
        spec={"entries": {"names": ["moto-spot"]}, "budget": budget},
    )
    first = eventually(lambda: len(env.instances(uid)) == 2 and env.instances(uid), what="2 pilots")
    assert all(i.get("InstanceLifecycle") != "spot" for i in first)
    eventually(lambda: "SpotFallback" in _reasons(env, ns), what="SpotFallback Event")

    # The cloud takes one back: reported, and the demand gets a new (spot) pilot.
    env.ec2.interrupt([first[0]["InstanceId"]])
    eventually(lambda: "SpotInterrupted" in _reasons(env, ns), what="SpotInterrupted Event")
    after = eventually(
        lambda: (
            len(now := env.instances(uid)) == 2
            and first[0]["InstanceId"] not in {i["InstanceId"] for i in now}
            and now
        ),
        what="the interrupted pilot replaced",
    )
    assert any(i.get("InstanceLifecycle") == "spot" for i in after)

    # Accounting in status, on the printer columns, and exported.
    spend = eventually(
        lambda: (s := env.status(ns, "vo").get("spend", {})).get("spent", 0) > 0 and s,
        timeout=90,
        what="spend accounted",
    )
    assert spend["limit"] == 100
    assert spend["left"] < 100
    assert spend["committed"] > 0  # what the 2 pilots may cost until their 2 h are up
    assert [e["name"] for e in spend["entries"]] == ["moto-spot"]
    assert spend["entries"][0]["coreHours"] > 0
    wide = env.k("get", "greq", "vo", "-n", ns, "-o", "wide").stdout
    assert "SPENT" in wide.splitlines()[0]
    assert "BUDGET LEFT" in wide.splitlines()[0]
    conds = {c["type"]: c for c in env.status(ns, "vo")["conditions"]}
    assert conds["BudgetWarning"]["status"] == "False"
    assert conds["BudgetKill"]["status"] == "False"

    # "Kill all cloud pilots, we are going over budget": none left, none launched after.
    env.k(
        "patch",
        "greq",
        "vo",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"budget": {**budget, "killSwitch": True}}}),
    )
    eventually(lambda: env.instances(uid) == [], what="kill switch empties the cloud")
    kill = {c["type"]: c for c in env.status(ns, "vo")["conditions"]}["BudgetKill"]
    assert kill["status"] == "True"
    assert "BudgetKill" in _reasons(env, ns)
    time.sleep(3)
    assert env.instances(uid) == []
    delete_and_wait(env, ns)


def test_pilots_that_never_register_are_reaped_with_their_console_log_kept(env: Env) -> None:
    ns = f"stuck-{uuid.uuid4().hex[:6]}"
    uid = start(
        env,
        ns,
        4,
        cpus=1,
        memory=1000,
        spec={
            "pilot": {
                "tokenSecretRef": {"name": "pool-key"},
                "lifetime": "2h",
                "retireBeforeEnd": "10m",
                "registrationTimeout": "3s",
            }
        },
    )
    [first] = eventually(
        lambda: len(env.instances(uid)) == 1 and env.instances(uid), what="a pilot"
    )
    # What the machine printed (the boot emulator posts a real pilot's boot log this way).
    printed = "glidein-pilot: FATAL: payload checksum mismatch: truncated or altered on the way"
    env.ec2.set_console(first["InstanceId"], printed + "\n")
    # Nothing registers it in the collector: after 3 s it is stuck, its log kept, it goes.
    logs = eventually(
        lambda: env.status(ns, "vo").get("pilotLogs"), timeout=60, what="pilot log in status"
    )
    kept = next(x for x in logs if x["cloudId"] == first["InstanceId"])
    assert kept["reason"] == "never registered"
    assert kept["entry"] == "moto-east"
    assert printed in kept["log"]
    eventually(
        lambda: first["InstanceId"] not in {i["InstanceId"] for i in env.instances(uid)},
        what="the stuck pilot terminated",
    )
    assert "PilotStuck" in _reasons(env, ns)
    # kubectl reads it back after the VM is gone.
    out = env.k("get", "greq", "vo", "-n", ns, "-o", "jsonpath={.status.pilotLogs[0].reason}")
    assert out.stdout == "never registered"

    # No launch-then-reap churn: reaped stuck pilots back the entry's launches off, and
    # the request says so.
    def degraded() -> str | None:
        for c in env.status(ns, "vo").get("conditions", []):
            if c["type"] == "Degraded" and "PilotsNotRegistering" in c.get("message", ""):
                return str(c["message"])
        return None

    assert "registrationTimeout" in eventually(degraded, what="launches backing off, said")
    time.sleep(20)
    launched = env.boto.describe_instances(
        Filters=[{"Name": "tag:glidein.dev/request-uid", "Values": [uid]}]
    )["Reservations"]
    count = sum(len(r["Instances"]) for r in launched)
    # One pilot wanted, 3 s to register: without the back-off a pilot every ~4 s (7 or
    # more in this time); with it, waits of 1, 2, 4, 8 s... between launches.
    assert count <= 6, f"{count} pilots launched for one wanted"
    delete_and_wait(env, ns)


def test_twenty_percent_cloud_failures_and_throttling_still_converge(env: Env) -> None:
    ns = f"chaos-{uuid.uuid4().hex[:6]}"
    # One launch per cycle: 30 pilots take 30 RunInstances, so the random faults cannot all
    # miss them (0.8^30: one run in a thousand sees no launch failure).
    env.apply(
        moto_entry(
            "moto-chaos",
            env.ec2.url,
            site="MOTO-CHAOS",
            instance_types=[{"name": "t3.medium", "cpus": 1, "memory": "4Gi"}],
            limits={"maxPilots": 100, "maxLaunchPerCycle": 1},
        )
    )
    env.ec2.clear_faults()
    calls_before = env.ec2.calls()
    # A fifth of every call fails: launches for lack of capacity (not retried by botocore:
    # the operator's backoff handles it), listings and terminations throttled or
    # unavailable (botocore retries, some still get through to the operator). Only the
    # operator's calls (they name its id, op-it): this test's own look must stay clear.
    env.ec2.fail("RunInstances", "InsufficientInstanceCapacity", rate=0.2, when="op-it")
    env.ec2.fail("DescribeInstances", "RequestLimitExceeded", rate=0.2, status=503, when="op-it")
    env.ec2.fail("TerminateInstances", "ServiceUnavailable", rate=0.2, status=503)
    try:
        uid = start(env, ns, 30, cpus=1, memory=1000, spec={"entries": {"names": ["moto-chaos"]}})
        seen_degraded = []

        def converged() -> bool:
            conds = {c["type"]: c for c in env.status(ns, "vo").get("conditions", [])}
            if conds.get("Degraded", {}).get("status") == "True":
                seen_degraded.append(conds["Degraded"]["message"])
            return len(env.instances(uid)) >= 30

        eventually(converged, timeout=240, what="30 pilots despite the failures")
        time.sleep(3)
        assert len(env.instances(uid)) == 30, "launched more than the plan: a duplicate"
        launches = env.ec2.calls()["RunInstances"] - calls_before.get("RunInstances", 0)
        assert launches < 60, f"{launches} RunInstances for 30 pilots: no backoff"
        assert seen_degraded, "never marked Degraded while failing"
        assert all("moto-chaos" in m for m in seen_degraded)
        print(
            f"\n20% faults: {launches} RunInstances for 30 pilots, Degraded seen: {seen_degraded[0]}"
        )
        # Teardown goes through the failures too: nothing left.
        env.pool.remove_jobs(SCHEDD, f'Owner == "{ns}"')
        delete_and_wait(env, ns)
        assert env.instances(uid) == []
    finally:
        env.ec2.clear_faults()
        env.k("delete", "cloudentry", "moto-chaos", "--wait=false")
