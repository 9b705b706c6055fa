"""The local control plane behaves like a cluster: RBAC enforced, controllers running."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.cluster import Cluster


def _eventually(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_rbac_is_enforced(cluster: Cluster, namespace: str) -> None:
    # A service account with no bindings may do nothing; the admin may do anything.
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    who = f"system:serviceaccount:{namespace}:nobody"
    assert (
        cluster.kubectl(
            "auth", "can-i", "list", "secrets", "-n", namespace, f"--as={who}", check=False
        ).stdout.strip()
        == "no"
    )
    assert (
        cluster.kubectl("auth", "can-i", "list", "secrets", "-n", namespace).stdout.strip() == "yes"
    )


def test_controller_manager_runs_namespace_and_serviceaccount_controllers(
    cluster: Cluster,
) -> None:
    if not cluster.local:
        pytest.skip("checks the local control plane's own controller manager")
    cluster.kubectl("create", "namespace", "cp-probe")
    # The service-account controller makes 'default' in every new namespace ...
    assert _eventually(
        lambda: (
            cluster.kubectl("get", "sa", "default", "-n", "cp-probe", check=False).returncode == 0
        )
    ), "no default service account: kube-controller-manager is not working"
    cluster.kubectl("create", "configmap", "x", "-n", "cp-probe")
    # ... and the namespace controller finishes deletion (without it, Terminating forever).
    cluster.kubectl("delete", "namespace", "cp-probe", "--wait=false")
    assert _eventually(
        lambda: (
            cluster.kubectl(
                "get", "namespace", "cp-probe", "--ignore-not-found", "-o", "name"
            ).stdout.strip()
            == ""
        )
    ), "namespace stuck terminating"


def test_garbage_collector_follows_owner_references(cluster: Cluster, namespace: str) -> None:
    if not cluster.local:
        pytest.skip("checks the local control plane's own controller manager")
    owner = json.loads(
        cluster.kubectl("create", "configmap", "owner", "-n", namespace, "-o", "json").stdout
    )
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(child))
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    assert _eventually(
        lambda: (
            cluster.kubectl(
                "get", "configmap", "child", "-n", namespace, "--ignore-not-found", "-o", "name"
            ).stdout.strip()
            == ""
        )
    ), "owned object survived its owner"


def test_server_version_is_the_pinned_one(cluster: Cluster) -> None:
    if not cluster.local:
        pytest.skip("the pinned version applies to the local control plane")
    from glidein_devkit.controlplane.assets import KUBERNETES_VERSION

    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == f"v{KUBERNETES_VERSION}"
