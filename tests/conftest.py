"""Shared fixtures: one real API server per session, a fresh namespace per test.

By default the session starts a local control plane (etcd + kube-apiserver +
kube-controller-manager, built from upstream source once per machine). Set
GLIDEIN_TEST_KUBECONFIG to run the same tests against any cluster instead (kind on a
laptop, a dev cluster): the tests create what they need and remove it afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from glidein_devkit.kube import install_crds
from tests.support.cluster import Cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("GLIDEIN_TEST_KUBECONFIG")
    if external:
        c = Cluster(Path(external), local=False)
        install_crds(c.kubeconfig)
        yield c
        return
    from glidein_devkit.controlplane import LocalControlPlane

    with LocalControlPlane() as cp:
        print(f"\nlocal control plane up in {cp.startup_seconds:.1f}s at {cp.server}")
        c = Cluster(cp.kubeconfig, local=True)
        install_crds(c.kubeconfig)
        yield c


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    # Pods are refused until the service-account controller has made 'default'.
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no default service account in {name} after 30 s")
        time.sleep(0.1)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The leak check: a cloud double that still held machines or key pairs when it was
    stopped fails the run, naming the test that left them (glidein_devkit/leakcheck.py)."""
    from glidein_devkit import leakcheck

    if not leakcheck.LEFT:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.section("leak check: left in the cloud doubles", red=True)
        for line in leakcheck.LEFT:
            reporter.line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
