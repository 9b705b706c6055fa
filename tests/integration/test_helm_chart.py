"""The Helm chart: rendered and linted by a real helm, applied to a real kube-apiserver,
and the operator run with the chart's ServiceAccount token, through the whole flow.
Then `kubectl auth can-i` proves the RBAC is minimal."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from glidein_devkit.controlplane import LocalControlPlane
from glidein_devkit.controlplane.assets import ensure_helm
from glidein_devkit.kube import kubectl
from tests.integration.chart import CHART, NS, RELEASE, SA, helm, render, sa_kubeconfig
from tests.integration.operator_env import (
    Env,
    delete_and_wait,
    env_fixture,
    eventually,
    request,
    start,
    submit,
)

ROOT = Path(__file__).resolve().parents[2]


def test_chart_lints_strictly() -> None:
    helm("lint", str(CHART), "--strict")


def test_values_schema_rejects_nonsense() -> None:
    proc = subprocess.run(
        [
            str(ensure_helm()),
            "template",
            RELEASE,
            str(CHART),
            "--kube-version",
            "1.36.3",
            "--set",
            "replicas=0",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "replicas" in proc.stderr


def test_deployment_is_hardened() -> None:
    [dep] = [d for d in render() if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]  # type: ignore[index]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "resources" in container
    # Two replicas, one acting by a Lease; a PodDisruptionBudget keeps one through drains.
    assert dep["spec"]["replicas"] == 2  # type: ignore[index]
    assert f"--lease={RELEASE}-glidein-operator" in container["args"]
    [pdb] = [d for d in render() if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1  # type: ignore[index]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def test_every_replica_serves_its_own_probes() -> None:
    """kopf's liveness endpoint is served by the active replica only: the standby's
    probe failed and it was killed over and over. The operator's own server answers in
    every replica; readiness is /readyz (a standby waiting for the Lease is Ready)."""
    container = _container(render())  # type: ignore[arg-type]
    assert "--health-probe-bind-address=:8080" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--liveness")]
    assert {"name": "health", "containerPort": 8080} in container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_values_users_expect() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        values={
            "image": {"repository": "registry.example/glidein", "tag": "9.9", "digest": digest},
            "imagePullSecrets": [{"name": "regcred"}],
            "serviceAccount": {
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/glidein"}
            },
            "priorityClassName": "system-cluster-critical",
            "extraEnv": [
                {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
                {"name": "NO_PROXY", "value": "10.96.0.1,.svc"},
            ],
            "extraEnvFrom": [{"secretRef": {"name": "proxy-credentials"}}],
            "logging": {"level": "debug", "format": "json"},
            "metrics": {
                "serviceMonitor": {
                    "enabled": True,
                    "namespace": "monitoring",
                    "interval": "1m",
                    "labels": {"release": "kube-prometheus-stack"},
                }
            },
        }
    )
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    container = _container(docs)
    assert container["image"] == f"registry.example/glidein@{digest}"  # the digest wins
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GLIDEIN_LOG_LEVEL"] == "DEBUG"
    assert env["GLIDEIN_LOG_FORMAT"] == "json"
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128"
    assert env["NO_PROXY"] == "10.96.0.1,.svc"
    assert container["envFrom"] == [{"secretRef": {"name": "proxy-credentials"}}]
    [sa] = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/glidein"
    }
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "1m"}]
    # It selects the metrics Service, and only it.
    services = [d for d in docs if d["kind"] == "Service"]
    selected = [
        svc
        for svc in services
        if monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ]
    assert [svc["metadata"]["name"] for svc in selected] == [f"{RELEASE}-glidein-operator-metrics"]


def test_defaults_of_those_values() -> None:
    docs: list[dict[str, Any]] = render()  # type: ignore[assignment]
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    container = _container(docs)
    assert container["image"] == "ghcr.io/glidein-operator/operator:0.1.0"  # the appVersion
    assert "imagePullSecrets" not in pod
    assert "priorityClassName" not in pod
    assert "envFrom" not in container
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["GLIDEIN_LOG_LEVEL"], env["GLIDEIN_LOG_FORMAT"]) == ("INFO", "text")
    [sa] = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert "annotations" not in sa["metadata"]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]


def test_listing_intervals_default_to_fast_reaction_and_gentle_polling() -> None:
    env = {e["name"]: e.get("value") for e in _container(render())["env"]}
    assert env["GLIDEIN_RECONCILE_INTERVAL"] == "1"
    assert (env["GLIDEIN_LISTING_INTERVAL"], env["GLIDEIN_LISTING_STEADY_INTERVAL"]) == (
        "5",
        "60",
    )
    assert "GLIDEIN_SHARD" not in env
    assert "GLIDEIN_REQUEST_SELECTOR" not in env
    assert env["GLIDEIN_OPERATOR_ID"] == "glidein-operator"


def test_the_reconcile_time_budget_reaches_the_operator() -> None:
    from glidein_operator.controller.runtime import Settings

    env = {e["name"]: e.get("value") for e in _container(render())["env"]}
    assert env["GLIDEIN_RECONCILE_BUDGET"] == "10"
    assert Settings().reconcile_budget == 10.0  # the chart's default is the operator's
    env = {
        e["name"]: e.get("value")
        for e in _container(render(values={"reconcileBudget": 2.5}))["env"]
    }
    assert env["GLIDEIN_RECONCILE_BUDGET"] == "2.5"
    assert Settings(reconcile_budget=env["GLIDEIN_RECONCILE_BUDGET"]).reconcile_budget == 2.5  # type: ignore[arg-type]


def test_a_shard_has_its_own_identity_lease_and_requests() -> None:
    from glidein_operator.controller.runtime import Settings

    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        values={
            "shard": {"name": "gold", "requestSelector": "glidein.dev/shard=gold"},
            "watchNamespaces": ["cms"],
            "listing": {"interval": 3, "steadyInterval": 120},
        }
    )
    container = _container(docs)
    env = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
    assert env["GLIDEIN_OPERATOR_ID"] == "glidein-operator-gold"  # its pilots, its key pairs
    assert env["GLIDEIN_SHARD"] == "gold"
    assert env["GLIDEIN_REQUEST_SELECTOR"] == "glidein.dev/shard=gold"
    assert (env["GLIDEIN_LISTING_INTERVAL"], env["GLIDEIN_LISTING_STEADY_INTERVAL"]) == (
        "3",
        "120",
    )
    assert f"--lease={RELEASE}-glidein-operator" in container["args"]  # the release's own
    assert "--namespace=cms" in container["args"]
    # What the chart sets, the operator reads.
    settings = Settings(
        **{
            k.removeprefix("GLIDEIN_").lower(): v
            for k, v in env.items()
            if k
            in (
                "GLIDEIN_OPERATOR_ID",
                "GLIDEIN_SHARD",
                "GLIDEIN_REQUEST_SELECTOR",
                "GLIDEIN_LISTING_INTERVAL",
                "GLIDEIN_LISTING_STEADY_INTERVAL",
            )
        }
    )
    assert (settings.shard, settings.request_selector) == ("gold", "glidein.dev/shard=gold")
    assert (settings.listing_interval, settings.listing_steady_interval) == (3.0, 120.0)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("shard.name=Gold_Shard", "name"),
        ("shard.requestSelector=tier in (gold)", "requestSelector"),
        ("listing.steadyInterval=-1", "steadyInterval"),
        ("reconcileBudget=0", "reconcileBudget"),
        ("logging.level=LOUD", "level"),
        ("logging.format=xml", "format"),
        ("image.digest=latest", "digest"),
        ("priorityClassName=Not_A_Name", "priorityClassName"),
        ("extraEnv[0].value=x", "name"),
        ("healthPort=80", "healthPort"),
        ("hostNetwork=yes", "hostNetwork"),
        ("uninstall.teardown.timeoutSeconds=0", "timeoutSeconds"),
        ("uninstall.teardown.namespaces[0]=Not_A_Namespace", "namespaces"),
        ("uninstall.teardown.wait=true", "wait"),
    ],
)
def test_values_schema_rejects_what_would_not_work(setting: str, named: str) -> None:
    proc = subprocess.run(
        [str(ensure_helm()), "template", RELEASE, str(CHART), "--set", setting],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0, setting
    assert named in proc.stderr


def test_helm_template_works_without_a_cluster() -> None:
    """The kubectl path of docs/install.md: no cluster, no --kube-version. The helm the
    project builds is stamped as helm's release build is (a plain `go install` assumes
    Kubernetes 1.20, which the chart's kubeVersion refuses)."""
    out = subprocess.run(
        [str(ensure_helm()), "template", RELEASE, str(CHART), "-n", NS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "Role", "RoleBinding"} <= kinds
    # kopf's peering CRDs are gone (a Lease elects the active replica): nothing asks for them.
    assert "KopfPeering" not in out.stdout  # nor ClusterKopfPeering
    lease_rules = [
        rule
        for d in docs
        if d["kind"] == "Role"
        for rule in d["rules"]
        if "leases" in rule["resources"]
    ]
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    assert "kopfpeering" not in (ROOT / "docs/install.md").read_text().lower()


def test_grafana_dashboard_ships_as_a_sidecar_configmap() -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap"]
    docs = render(
        "metrics.grafanaDashboard.enabled=true", "metrics.grafanaDashboard.namespace=monitoring"
    )
    [cm] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert cm["metadata"]["namespace"] == "monitoring"  # type: ignore[index]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # type: ignore[index]
    shipped = json.loads(cm["data"]["glidein-operator.json"])  # type: ignore[index]
    assert shipped == json.loads((CHART / "dashboards/glidein-operator.json").read_text())


def test_the_admission_webhook_ships_when_enabled_and_the_server_accepts_it(env: Env) -> None:
    assert not [d for d in render() if d["kind"] == "ValidatingWebhookConfiguration"]
    docs = render("webhook.enabled=true")
    [config] = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    hooks = config["webhooks"]  # type: ignore[index]
    # One per kind, each at the path of the operator's handler for it.
    assert sorted(h["clientConfig"]["service"]["path"] for h in hooks) == [
        "/validate-cloudentries",
        "/validate-glideinrequests",
        "/validate-trustdomains",
        "/validate-vmimages",
    ]
    assert {h["failurePolicy"] for h in hooks} == {"Ignore"}
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    container = dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    variables = {e["name"]: e.get("value") for e in container["env"]}
    assert variables["GLIDEIN_WEBHOOK_PORT"] == "9443"
    assert {"name": "webhook", "containerPort": 9443} in container["ports"]
    [tls] = [d for d in docs if d["kind"] == "Secret" and "webhook" in d["metadata"]["name"]]  # type: ignore[index]
    assert set(tls["data"]) == {"tls.crt", "tls.key"}  # type: ignore[index]
    webhook_docs = [
        d
        for d in docs
        if d["kind"] in ("ValidatingWebhookConfiguration", "Service", "Secret", "Deployment")
    ]
    env.k("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(webhook_docs))


def test_chart_crds_are_the_generated_ones() -> None:
    crds = {d["metadata"]["name"] for d in render() if d["kind"] == "CustomResourceDefinition"}  # type: ignore[index]
    assert {
        "glideinrequests.glidein.dev",
        "cloudentries.glidein.dev",
        "trustdomains.glidein.dev",
        "vmimages.glidein.dev",
    } == crds  # kopf's peering CRDs no more: a Lease elects the active replica


def _install(cp: LocalControlPlane) -> Path:
    """Apply the rendered chart, and return a kubeconfig holding the operator's own
    ServiceAccount token: from here on the operator has exactly the chart's RBAC."""
    docs = [
        d for d in render() if d["kind"] != "CustomResourceDefinition"
    ]  # CRDs are already installed
    kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    return sa_kubeconfig(cp.kubeconfig)


env = env_fixture(prepare=_install)


def test_operator_works_with_only_the_charts_rbac(env: Env) -> None:
    ns = f"vo-{uuid.uuid4().hex[:6]}"
    uid = start(env, ns, 8, cpus=1, memory=2000)
    eventually(
        lambda: len(env.instances(uid)) == 2, what="2 pilots launched under the chart's RBAC"
    )
    status = eventually(lambda: (s := env.status(ns, "vo")).get("conditions") and s, what="status")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert "ScaledUp" in env.k("get", "events", "-n", ns, "-o", "json").stdout
    delete_and_wait(env, ns)
    assert env.instances(uid) == []


@pytest.mark.parametrize(
    ("verb", "resource", "where", "allowed"),
    [
        ("patch", "glideinrequests.glidein.dev/status", "-n=default", "yes"),
        ("watch", "cloudentries.glidein.dev", "", "yes"),
        ("create", "events", "-n=default", "yes"),
        ("get", "secrets", "-n=default", "yes"),  # by name, to read a request's credentials
        ("list", "secrets", "--all-namespaces", "no"),
        # Copies of credentials, for cleanup: in its own namespace only.
        ("create", "secrets", f"-n={NS}", "yes"),
        ("create", "secrets", "-n=default", "no"),
        ("update", "secrets", "-n=default", "no"),
        ("watch", "secrets", "-n=default", "no"),
        ("create", "pods/exec", "-n=default", "no"),
        ("create", "pods", "-n=default", "no"),  # only in pilotNamespaces
        ("delete", "glideinrequests.glidein.dev", "-n=default", "no"),
        ("create", "cloudentries.glidein.dev", "", "no"),
        ("update", "customresourcedefinitions", "", "no"),
        ("create", "clusterroles", "", "no"),
        ("impersonate", "serviceaccounts", "", "no"),
        ("delete", "nodes", "", "no"),
        ("get", "configmaps", "-n=kube-system", "no"),
        ("update", "leases.coordination.k8s.io", f"-n={NS}", "yes"),
        ("update", "leases.coordination.k8s.io", "-n=kube-system", "no"),
    ],
)
def test_can_i_matrix(env: Env, verb: str, resource: str, where: str, allowed: str) -> None:
    args = ["auth", "can-i", verb, resource, f"--as={SA}"]
    if where:
        args.append(where)
    out = env.k(*args, check=False).stdout.strip()
    assert out == allowed, f"{SA} can-i {verb} {resource} {where}: {out}"


def _glidein_operator(
    kubeconfig: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The operator's command line, acting as ``kubeconfig`` says."""
    return subprocess.run(
        [sys.executable, "-m", "glidein_operator", *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _three_requests(env: Env, prefix: str) -> tuple[list[str], list[str]]:
    """Three namespaces with a request each, each with its one pilot up; and their uids."""
    namespaces = [f"{prefix}-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    uids = []
    for ns in namespaces:
        submit(env, ns, 4)
        request(env, ns)
        uids.append(env.uid(ns, "vo"))
    for uid in uids:
        eventually(lambda uid=uid: len(env.instances(uid)) == 1, what="a pilot per request")
    return namespaces, uids


def _assert_only_named_emptied(
    env: Env,
    proc: subprocess.CompletedProcess[str],
    named: list[str],
    spared: str,
    uids: list[str],
) -> None:
    """Teardown succeeded: the ``named`` namespaces' requests and pilots (the first two of
    ``_three_requests``) are gone, ``spared``'s (the third) are untouched."""
    assert proc.returncode == 0, proc.stderr
    assert "those GlideinRequests are gone" in proc.stderr
    for ns, uid in zip(named, uids[:2], strict=True):
        assert env.k("get", "greq", "-n", ns, "-o", "name").stdout.strip() == ""
        assert env.instances(uid) == []
    assert env.k("get", "greq", "vo", "-n", spared, "-o", "name").stdout.strip()
    assert len(env.instances(uids[2])) == 1


def test_teardown_empties_the_clouds_of_the_namespaces_named_and_no_other(env: Env) -> None:
    # The explicit teardown an admin runs before uninstalling, if they want the clouds
    # emptied: only the namespaces named, and it waits until the pilots are gone.
    namespaces, uids = _three_requests(env, "td")
    named, spared = namespaces[:2], namespaces[2]
    proc = _glidein_operator(
        env.kubeconfig, "teardown", *(f"--namespace={ns}" for ns in named), "--timeout", "120"
    )
    _assert_only_named_emptied(env, proc, named, spared, uids)
    # Without a namespace it refuses: emptying every cloud is said explicitly.
    refused = _glidein_operator(env.kubeconfig, "teardown", timeout=60)
    assert refused.returncode == 2
    delete_and_wait(env, spared)


def test_the_chart_has_no_hook_that_deletes_anything() -> None:
    docs = render()
    hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]  # type: ignore[union-attr]
    assert hooks == []
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            for rule in d["rules"]:  # type: ignore[index]
                if "delete" in rule["verbs"]:
                    # Only what the operator itself makes: pilot pods, payload Secrets and
                    # its kept credential copies, all in namespaces it owns.
                    assert d["kind"] == "Role", d["metadata"]


# --- Host networking (hostNetwork, healthPort) ----------------------------------------


def _pod(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [d] = [d for d in docs if d["kind"] == kind]
    return dict(d["spec"]["template"]["spec"])


def test_host_network_is_opt_in_and_reaches_the_teardown_hook_too() -> None:
    off = _pod(render("uninstall.teardown.enabled=true"), "Deployment")  # type: ignore[arg-type]
    assert "hostNetwork" not in off
    assert "dnsPolicy" not in off
    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        "hostNetwork=true", "replicas=1", "uninstall.teardown.enabled=true"
    )
    for kind in ("Deployment", "Job"):
        pod = _pod(docs, kind)
        assert pod["hostNetwork"] is True, kind
        # The node's resolver does not know the cluster's Services; this policy keeps them.
        assert pod["dnsPolicy"] == "ClusterFirstWithHostNet", kind
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 1


def test_health_port_moves_the_probe_address_and_the_port() -> None:
    container = _container(render("healthPort=18080"))  # type: ignore[arg-type]
    assert "--health-probe-bind-address=:18080" in container["args"]
    assert not [a for a in container["args"] if a.endswith(":8080")]
    assert {"name": "health", "containerPort": 18080} in container["ports"]
    # The probes follow by the port's name.
    assert container["livenessProbe"]["httpGet"]["port"] == "health"
    assert container["readinessProbe"]["httpGet"]["port"] == "health"


def test_with_host_network_every_port_is_the_users_choice() -> None:
    container = _container(
        render(  # type: ignore[arg-type]
            "hostNetwork=true",
            "healthPort=18081",
            "metrics.port=19090",
            "webhook.enabled=true",
            "webhook.port=19443",
        )
    )
    assert {p["containerPort"] for p in container["ports"]} == {18081, 19090, 19443}


def test_chart_with_host_network_and_the_teardown_hook_lints_strictly() -> None:
    helm(
        "lint",
        str(CHART),
        "--strict",
        "--set",
        "hostNetwork=true,replicas=1,uninstall.teardown.enabled=true",
    )


# --- The opt-in teardown on uninstall (uninstall.teardown) -----------------------------

TEARDOWN = f"{RELEASE}-glidein-operator-teardown"
HOOK_SA = f"system:serviceaccount:{NS}:{TEARDOWN}"
ONLY_REQUESTS = [
    {
        "apiGroups": ["glidein.dev"],
        "resources": ["glideinrequests"],
        "verbs": ["get", "list", "delete"],
    }
]


def _hooks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]


def test_teardown_hook_is_off_by_default() -> None:
    default: list[dict[str, Any]] = render()  # type: ignore[assignment]
    assert _hooks(default) == []
    assert _names(default) == _names(render("uninstall.teardown.enabled=false"))  # type: ignore[arg-type]
    assert not [d for d in default if d["kind"] == "Job"]


def test_teardown_hook_renders_when_enabled_with_only_the_rbac_it_needs() -> None:
    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        values={
            "uninstall": {"teardown": {"enabled": True, "timeoutSeconds": 200}},
            "imagePullSecrets": [{"name": "regcred"}],
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
            ],
            "extraEnvFrom": [{"secretRef": {"name": "proxy-credentials"}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "image": {"repository": "registry.example/glidein", "tag": "9.9"},
        }
    )
    hooks = _hooks(docs)
    # The hook and nothing else is new; the operator's own resources and RBAC are as they were.
    assert _names(hooks) == {
        ("ServiceAccount", TEARDOWN),
        ("ClusterRole", TEARDOWN),
        ("ClusterRoleBinding", TEARDOWN),
        ("Job", TEARDOWN),
    }
    assert _names([d for d in docs if d not in hooks]) == _names(render())  # type: ignore[arg-type]
    weights = {}
    for d in hooks:
        notes = d["metadata"]["annotations"]
        assert notes["helm.sh/hook"] == "pre-delete", d["kind"]
        assert notes["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        weights[d["kind"]] = int(notes["helm.sh/hook-weight"])
    # Helm creates hooks by weight: the account and its rights exist before the Job runs.
    assert weights["ServiceAccount"] <= weights["ClusterRole"] < weights["ClusterRoleBinding"]
    assert weights["ClusterRoleBinding"] < weights["Job"]
    [role] = [d for d in hooks if d["kind"] == "ClusterRole"]
    assert role["rules"] == ONLY_REQUESTS
    [binding] = [d for d in hooks if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": TEARDOWN,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": TEARDOWN, "namespace": NS}]
    [job] = [d for d in hooks if d["kind"] == "Job"]
    assert job["metadata"]["namespace"] == NS
    assert job["spec"]["backoffLimit"] <= 2
    assert 200 < job["spec"]["activeDeadlineSeconds"] <= 300  # above teardown's, within helm's
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == TEARDOWN
    assert pod["restartPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    operator_pod = _pod(docs, "Deployment")
    assert pod["securityContext"] == operator_pod["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 10001
    [container] = pod["containers"]
    assert container["image"] == "registry.example/glidein:9.9"  # the operator's image
    assert container["args"] == ["teardown", "--all-namespaces", "--timeout=200"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["env"] == [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
    ]
    assert container["envFrom"] == [{"secretRef": {"name": "proxy-credentials"}}]
    assert "limits" in container["resources"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # No selector of the operator's (Deployment, PodDisruptionBudget, Services) picks the
    # hook's pod: it is not a replica.
    labels = job["spec"]["template"]["metadata"]["labels"]
    for d in docs:
        selector = (d.get("spec") or {}).get("selector")
        if d["kind"] in ("Service", "PodDisruptionBudget", "Deployment") and selector:
            assert not selector.get("matchLabels", selector).items() <= labels.items(), d["kind"]


def test_teardown_hook_of_listed_namespaces_gets_roles_there_only() -> None:
    # The chart's watched namespaces by default; the hook's own list when given.
    for listed, namespaces in (([], ["cms", "atlas"]), (["cms"], ["cms"])):
        values = {
            "watchNamespaces": ["cms", "atlas"],
            "uninstall": {"teardown": {"enabled": True, "namespaces": listed}},
        }
        hooks = _hooks(render(values=values))  # type: ignore[arg-type]
        assert not [d for d in hooks if d["kind"].startswith("Cluster")]
        roles = {d["metadata"]["namespace"]: d for d in hooks if d["kind"] == "Role"}
        bindings = {d["metadata"]["namespace"]: d for d in hooks if d["kind"] == "RoleBinding"}
        assert sorted(roles) == sorted(bindings) == sorted(namespaces)
        for ns in namespaces:
            assert roles[ns]["rules"] == ONLY_REQUESTS
            assert bindings[ns]["roleRef"]["name"] == TEARDOWN
            assert bindings[ns]["subjects"] == [
                {"kind": "ServiceAccount", "name": TEARDOWN, "namespace": NS}
            ]
        [job] = [d for d in hooks if d["kind"] == "Job"]
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args == ["teardown", *(f"--namespace={ns}" for ns in namespaces), "--timeout=240"]


def test_teardown_hook_refuses_a_shard_by_label() -> None:
    # teardown deletes every request of its namespaces: other shards' too.
    proc = subprocess.run(
        [
            str(ensure_helm()),
            "template",
            RELEASE,
            str(CHART),
            "--set",
            "uninstall.teardown.enabled=true,shard.name=gold,shard.requestSelector=tier=gold",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "shard.requestSelector" in proc.stderr


def _apply_hook_rbac(env: Env, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rbac = [d for d in _hooks(docs) if d["kind"] != "Job"]
    env.k("apply", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    return rbac


def test_the_teardown_hooks_rbac_is_minimal(env: Env) -> None:
    docs: list[dict[str, Any]] = render("uninstall.teardown.enabled=true", "hostNetwork=true")  # type: ignore[assignment]
    # The server takes the hook as rendered (the Job with the node's network included).
    env.k("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(_hooks(docs)))
    rbac = _apply_hook_rbac(env, docs)
    try:
        for verb, resource, where, allowed in [
            ("list", "glideinrequests.glidein.dev", "--all-namespaces", "yes"),
            ("delete", "glideinrequests.glidein.dev", "-n=default", "yes"),
            ("get", "glideinrequests.glidein.dev", "-n=default", "yes"),
            ("create", "glideinrequests.glidein.dev", "-n=default", "no"),
            ("patch", "glideinrequests.glidein.dev", "-n=default", "no"),
            ("patch", "glideinrequests.glidein.dev/status", "-n=default", "no"),
            ("delete", "cloudentries.glidein.dev", "", "no"),
            ("get", "secrets", "-n=default", "no"),
            ("delete", "pods", "-n=default", "no"),
            ("delete", "customresourcedefinitions", "", "no"),
        ]:
            args = ["auth", "can-i", verb, resource, f"--as={HOOK_SA}"]
            out = env.k(*args, *([where] if where else []), check=False).stdout.strip()
            assert out == allowed, f"{HOOK_SA} can-i {verb} {resource} {where}: {out}"
    finally:
        env.k("delete", "-f", "-", "--wait=true", stdin=yaml.safe_dump_all(rbac))


def test_the_teardown_hook_empties_the_clouds_with_its_own_rbac_only(env: Env) -> None:
    """The hook's Job, as rendered, run under the hook's ServiceAccount token against the
    running operator: its namespaces' requests and pilots go, another namespace's stay."""
    namespaces, uids = _three_requests(env, "hk")
    named, spared = namespaces[:2], namespaces[2]
    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        values={
            "uninstall": {"teardown": {"enabled": True, "namespaces": named, "timeoutSeconds": 120}}
        }
    )
    rbac = _apply_hook_rbac(env, docs)
    try:
        [job] = [d for d in _hooks(docs) if d["kind"] == "Job"]
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        proc = _glidein_operator(sa_kubeconfig(env.kubeconfig, TEARDOWN), *args)
        _assert_only_named_emptied(env, proc, named, spared, uids)
    finally:
        env.k("delete", "-f", "-", "--wait=true", stdin=yaml.safe_dump_all(rbac))
    delete_and_wait(env, spared)


def test_teardown_fails_loudly_when_requests_remain(env: Env) -> None:
    # A request that does not go (here a finalizer no one removes; in life an operator
    # that cannot terminate its pilots) fails the hook, and with it `helm uninstall`,
    # naming it, rather than uninstalling over live pilots.
    ns = f"stuck-{uuid.uuid4().hex[:6]}"
    request(env, ns)
    eventually(
        lambda: (
            env.k("get", "greq", "vo", "-n", ns, "-o", "jsonpath={.metadata.finalizers}").stdout
        ),
        what="the operator's finalizer",
    )
    hold = '[{"op": "add", "path": "/metadata/finalizers/-", "value": "test.glidein.dev/hold"}]'
    env.k("patch", "greq", "vo", "-n", ns, "--type=json", "-p", hold)
    try:
        proc = _glidein_operator(
            env.kubeconfig, "teardown", f"--namespace={ns}", "--timeout=3", timeout=60
        )
        assert proc.returncode == 1, proc.stderr
        assert f"{ns}/vo" in proc.stderr
    finally:
        finalizers = json.loads(
            env.k("get", "greq", "vo", "-n", ns, "-o", "jsonpath={.metadata.finalizers}").stdout
            or "[]"
        )
        kept = [f for f in finalizers if f != "test.glidein.dev/hold"]
        env.k(
            "patch",
            "greq",
            "vo",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"metadata": {"finalizers": kept}}),
        )
    eventually(
        lambda: (
            not env.k(
                "get", "greq", "vo", "-n", ns, "--ignore-not-found", "-o", "name"
            ).stdout.strip()
        ),
        timeout=90,
        what=f"{ns}/vo gone",
    )


# The grid submitter (gridSubmitter.enabled): a schedd whose gridmanager sends grid pilots.
GRID_SUBMITTER = f"{RELEASE}-glidein-operator-grid-submitter"
GRID_CREDENTIALS = f"{RELEASE}-glidein-operator-grid-credentials"
GRID_KEY = f"{RELEASE}-glidein-operator-grid-submitter-key"


def _names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def test_grid_submitter_is_off_by_default_and_renders_nothing() -> None:
    default: list[dict[str, Any]] = render()  # type: ignore[assignment]
    assert _names(default) == _names(render("gridSubmitter.enabled=false"))  # type: ignore[arg-type]
    assert not [d for d in default if d["kind"] in ("StatefulSet", "PersistentVolumeClaim")]
    assert not [n for _, n in _names(default) if "grid" in n]
    assert not [e for e in _container(default)["env"] if e["name"].startswith("GLIDEIN_GRID")]


def test_grid_submitter_renders_a_hardened_statefulset_with_its_service_and_secrets() -> None:
    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        "gridSubmitter.enabled=true",
        "gridSubmitter.persistence.size=20Gi",
        "gridSubmitter.persistence.storageClass=fast",
    )
    added = _names(docs) - _names(render())  # type: ignore[arg-type]
    assert added == {
        ("StatefulSet", GRID_SUBMITTER),
        ("Service", GRID_SUBMITTER),
        ("Secret", GRID_KEY),
        ("Secret", GRID_CREDENTIALS),
        ("Role", f"{RELEASE}-glidein-operator-grid-submitter"),
        ("RoleBinding", f"{RELEASE}-glidein-operator-grid-submitter"),
    }
    [sts] = [d for d in docs if d["kind"] == "StatefulSet"]
    assert sts["metadata"]["namespace"] == NS
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == GRID_SUBMITTER
    pod = sts["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 64
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["image"] == "ghcr.io/glidein-operator/grid-submitter:0.1.0"
    assert "limits" in container["resources"]
    assert {"name": "condor", "containerPort": 9618} in container["ports"]
    assert container["livenessProbe"]["tcpSocket"] == {"port": "condor"}
    assert "condor_who" in " ".join(container["readinessProbe"]["exec"]["command"])
    # Writable where HTCondor writes: LOCAL_DIR on the claim (the spool: grid jobs live
    # there), its run directory and /tmp (the gridmanager's scratch) on emptyDirs.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/lib/condor"]["name"] == "state"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/run/condor"]["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert mounts["/etc/glidein/grid-credentials"]["readOnly"] is True
    assert volumes[mounts["/etc/glidein/grid-credentials"]["name"]]["secret"]["secretName"] == (
        GRID_CREDENTIALS
    )
    assert volumes[mounts["/etc/glidein/signing-key"]["name"]]["secret"] == {
        "secretName": GRID_KEY,
        "items": [{"key": "signingKey", "path": "signingKey"}],
        "defaultMode": 0o440,
    }
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    env = {e["name"]: e["value"] for e in container["env"]}
    schedd = f"glidein-submitter@{GRID_SUBMITTER}.{NS}.svc"
    domain = f"{GRID_SUBMITTER}.{NS}.svc"
    assert env["GRID_SUBMITTER_SCHEDD_NAME"] == schedd
    assert env["GRID_SUBMITTER_TRUST_DOMAIN"] == domain
    assert env["GRID_SUBMITTER_OPERATOR_IDENTITY"] == f"glidein@{domain}"
    assert env["GRID_SUBMITTER_LOCAL_DIR"] == "/var/lib/condor"
    assert env["GRID_SUBMITTER_CREDENTIALS_DIR"] == "/etc/glidein/grid-credentials"
    # The Service: the collector port, to the submitter's pod only; and none of the
    # operator's selectors (metrics Service, PodDisruptionBudget) picks the submitter.
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    for d in docs:
        selector = (d.get("spec") or {}).get("selector")
        if d["kind"] in ("Service", "PodDisruptionBudget", "Deployment") and selector:
            labels = selector.get("matchLabels", selector)
            picks = labels.items() <= pod_labels.items()
            assert picks == (d["kind"] == "Service" and d["metadata"]["name"] == GRID_SUBMITTER)
    [svc] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == GRID_SUBMITTER]
    assert svc["spec"]["ports"] == [{"name": "condor", "port": 9618, "targetPort": "condor"}]
    # The signing key: generated (64 characters), kept through uninstall; the credentials
    # Secret carries no data, so an upgrade leaves the operator's keys alone.
    [key] = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == GRID_KEY]
    assert len(base64.b64decode(key["data"]["signingKey"])) == 64
    assert key["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    [creds] = [
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == GRID_CREDENTIALS
    ]
    assert "data" not in creds
    assert "stringData" not in creds
    # The operator is told both, the submitter as a CloudEntry's spec.grid.submitter.
    op_env = {e["name"]: e.get("value") for e in _container(docs)["env"]}
    assert op_env["GLIDEIN_GRID_CREDENTIALS_SECRET"] == GRID_CREDENTIALS
    assert json.loads(op_env["GLIDEIN_GRID_SUBMITTER"]) == {
        "collector": f"{GRID_SUBMITTER}.{NS}.svc:9618",
        "schedd": schedd,
        "trustDomain": domain,
        "user": "glidein",
        "tokenSecretRef": {"name": GRID_KEY, "key": "signingKey"},
    }


def test_grid_submitter_rbac_names_its_two_secrets_and_nothing_else() -> None:
    docs: list[dict[str, Any]] = render("gridSubmitter.enabled=true")  # type: ignore[assignment]
    [role] = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-grid-submitter")
    ]
    assert role["metadata"]["namespace"] == NS
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [GRID_CREDENTIALS],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [GRID_KEY],
            "verbs": ["get"],
        },
    ]
    [binding] = [
        d
        for d in docs
        if d["kind"] == "RoleBinding" and d["metadata"]["name"] == role["metadata"]["name"]
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-glidein-operator", "namespace": NS}
    ]

    # Nothing else changed in the operator's RBAC, and nothing binds the submitter's pod
    # (it mounts no token).
    def rbac(d: list[dict[str, Any]]) -> list[Any]:
        return [
            x
            for x in d
            if x["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
            and x["metadata"]["name"] != role["metadata"]["name"]
        ]

    assert rbac(docs) == rbac(render())  # type: ignore[arg-type]


def test_grid_submitter_values() -> None:
    docs: list[dict[str, Any]] = render(  # type: ignore[assignment]
        values={
            "gridSubmitter": {
                "enabled": True,
                "scheddName": "factory@submit.example.org",
                "trustDomain": "submit.example.org",
                "operatorUser": "pilots",
                "signingKeySecret": "my-submitter-key",
                "extraConfig": "GRIDMANAGER_JOB_PROBE_INTERVAL = 30\n",
                "persistence": {"storageClass": "-"},
                "image": {"repository": "registry.example/submitter", "tag": "1.2"},
            }
        }
    )
    # A Secret of the user's: none generated, and it is the one mounted and granted.
    assert ("Secret", GRID_KEY) not in _names(docs)
    [sts] = [d for d in docs if d["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "registry.example/submitter:1.2"
    [key] = [v for v in pod["volumes"] if v["name"] == "signing-key"]
    assert key["secret"]["secretName"] == "my-submitter-key"
    [role] = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-grid-submitter")
    ]
    assert role["rules"][1]["resourceNames"] == ["my-submitter-key"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GRID_SUBMITTER_SCHEDD_NAME"] == "factory@submit.example.org"  # kept as given
    assert env["GRID_SUBMITTER_OPERATOR_IDENTITY"] == "pilots@submit.example.org"
    assert env["GRID_SUBMITTER_EXTRA_CONFIG"] == "GRIDMANAGER_JOB_PROBE_INTERVAL = 30\n"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == ""
    submitter = json.loads(
        {e["name"]: e.get("value") for e in _container(docs)["env"]}["GLIDEIN_GRID_SUBMITTER"]
    )
    assert submitter["schedd"] == "factory@submit.example.org"
    assert submitter["trustDomain"] == "submit.example.org"
    assert submitter["user"] == "pilots"
    assert submitter["tokenSecretRef"] == {"name": "my-submitter-key", "key": "signingKey"}


def test_chart_with_the_grid_submitter_lints_strictly() -> None:
    helm("lint", str(CHART), "--strict", "--set", "gridSubmitter.enabled=true")


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("gridSubmitter.scheddName=two words", "scheddName"),
        ("gridSubmitter.scheddName=a@b@c", "scheddName"),
        ("gridSubmitter.operatorUser=Root!", "operatorUser"),
        ("gridSubmitter.persistence.size=lots", "size"),
        ("gridSubmitter.syncIntervalSeconds=0", "syncIntervalSeconds"),
        ("gridSubmitter.replicas=2", "replicas"),
    ],
)
def test_grid_submitter_values_schema_rejects(setting: str, named: str) -> None:
    proc = subprocess.run(
        [str(ensure_helm()), "template", RELEASE, str(CHART), "--set", setting],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0, setting
    assert named in proc.stderr


def test_the_api_server_accepts_the_grid_submitter(env: Env) -> None:
    docs = [
        d
        for d in render("gridSubmitter.enabled=true")
        if d["kind"] in ("StatefulSet", "Service", "Secret", "Role", "RoleBinding", "Deployment")
    ]
    env.k("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs))
