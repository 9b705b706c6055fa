"""One Kubernetes client per process for the operator's own cluster: the keeper, the lease,
kopf's login and in-cluster pod entries share ``Runtime.client``; a kubeconfig entry (another
cluster) has a client of its own."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from glidein_operator.api.objects import parse
from glidein_operator.clouds.kubernetes import KubernetesDriver
from glidein_operator.controller import runtime
from glidein_operator.controller.keeper import Credential
from tests.malformed_cases import example


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[k8s.ApiClient]:
    """Every client the runtime loads (none from a real kubeconfig)."""
    out: list[k8s.ApiClient] = []

    def load() -> k8s.ApiClient:
        cfg = k8s.Configuration(host="https://127.0.0.1:1", api_key={"BearerToken": "Bearer t0"})
        out.append(k8s.ApiClient(cfg))
        return out[-1]

    monkeypatch.setattr(runtime, "api_client", load)
    return out


def _runtime() -> runtime.Runtime:
    return runtime.Runtime(settings=runtime.Settings(), pool_factory=lambda _c, _t: None)  # type: ignore[arg-type,return-value]


def _pods_client(driver: object) -> k8s.ApiClient:
    assert isinstance(driver, KubernetesDriver)
    return driver._core.api_client  # type: ignore[no-any-return]


def test_in_cluster_pods_share_the_operators_one_client(made: list[k8s.ApiClient]) -> None:
    rt = _runtime()
    spec = parse(example("CloudEntry", "local-pods")).spec
    here = Credential("in-cluster", None, {}, "")
    first = rt.driver("local-pods", spec, 1, here).driver
    second = rt.driver("local-pods", spec, 2, here).driver
    assert first is not second
    assert _pods_client(first) is _pods_client(second) is rt.client
    assert rt.core.api_client is rt.client
    assert rt.custom.api_client is rt.client
    assert len(made) == 1

    # A kubeconfig is another cluster (or another identity): a client of its own.
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:2"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    there = Credential(
        "kubeconfig", "s", {"kubeconfig": yaml.safe_dump(kubeconfig).encode()}, "ns/s"
    )
    other = _pods_client(rt.driver("local-pods", spec, 1, there).driver)
    assert other is not rt.client
    assert other.configuration.host == "https://127.0.0.1:2"
    assert len(made) == 1


def test_kopf_logs_in_with_the_same_client(
    made: list[k8s.ApiClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from glidein_operator.controller import handlers

    rt = _runtime()
    monkeypatch.setattr(runtime, "RUNTIME", rt)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    refreshed: list[str] = []

    def refresh(cfg: k8s.Configuration) -> None:
        refreshed.append(cfg.host)
        cfg.api_key["BearerToken"] = "Bearer t1"

    rt.client.configuration.refresh_api_key_hook = refresh
    info = handlers.login(logger=logging.getLogger("test"))
    assert info is not None
    assert info.server == "https://127.0.0.1:1"
    # A re-login after a 401 gets the token as refreshed now, not the one loaded first.
    assert info.token == "t1"
    assert refreshed == ["https://127.0.0.1:1"]
    assert made == [rt.client]


def test_in_a_pod_without_a_kubeconfig_the_service_account_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What `glidein-operator teardown` runs on in the chart's uninstall hook: the pod's
    ServiceAccount token and CA, at the address the environment names (a node whose pods
    reach the API server on 127.0.0.1 sets KUBERNETES_SERVICE_HOST through extraEnv)."""
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not read until a connection is made")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    cfg = runtime.api_client().configuration
    assert cfg.host == "https://127.0.0.1:6443"
    assert cfg.api_key["BearerToken"] == "bearer sa-token"
    assert cfg.ssl_ca_cert == str(tmp_path / "ca.crt")
