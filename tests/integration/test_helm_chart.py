"""The Helm chart: rendered and linted by a real helm, applied to a real kube-apiserver,
and the operator run with the chart's ServiceAccount token, through the whole flow.
Then `kubectl auth can-i` proves the RBAC is minimal."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("logging.level=LOUD", "level"),
        ("logging.format=xml", "format"),
        ("image.digest=latest", "digest"),
        ("priorityClassName=Not_A_Name", "priorityClassName"),
        ("extraEnv[0].value=x", "name"),
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


def test_teardown_empties_the_clouds_of_the_namespaces_named_and_no_other(env: Env) -> None:
    # The explicit teardown an admin runs before uninstalling, if they want the clouds
    # emptied: only the namespaces named, and it waits until the pilots are gone.
    namespaces = [f"td-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    uids = []
    for ns in namespaces:
        submit(env, ns, 4)
        request(env, ns)
        uids.append(env.uid(ns, "vo"))
    for uid in uids:
        eventually(lambda uid=uid: len(env.instances(uid)) == 1, what="a pilot per request")
    named, spared = namespaces[:2], namespaces[2]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glidein_operator",
            "teardown",
            *(f"--namespace={ns}" for ns in named),
            "--timeout",
            "120",
        ],
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "those GlideinRequests are gone" in proc.stderr
    for ns, uid in zip(named, uids[:2], strict=True):
        assert env.k("get", "greq", "-n", ns, "-o", "name").stdout.strip() == ""
        assert env.instances(uid) == []
    assert env.k("get", "greq", "vo", "-n", spared, "-o", "name").stdout.strip()
    assert len(env.instances(uids[2])) == 1
    # Without a namespace it refuses: emptying every cloud is said explicitly.
    refused = subprocess.run(
        [sys.executable, "-m", "glidein_operator", "teardown"],
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
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
