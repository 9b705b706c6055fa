"""The node tier: a control plane of its own with a real node (kube-scheduler, kubelet,
containerd; ``glidein_devkit.node``), the project's images built here from its own
Dockerfiles and imported into the node, and a real HTCondor pool on 127.0.0.1.

A machine that cannot run a node (not root, no overlay file system, no apt-get for
buildah) skips these tests with a message naming what to install, except under CI
(``CI=true``), where that is a failure: CI always runs them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.cluster import Cluster

from glidein_devkit.condor_pool import CondorInstall, CondorNotFound, CondorPool, find_condor
from glidein_devkit.controlplane import LocalControlPlane
from glidein_devkit.node.images import BuiltImages, ImagesUnavailable, ensure_images
from glidein_devkit.node.node import LocalNode, NodeUnavailable, check_machine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.htcondor)
            # The first test of a fresh machine builds the images (minutes).
            item.add_marker(pytest.mark.timeout(1800))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the node tier: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class NodeCluster:
    """The control plane, its node and the images imported there."""

    cp: LocalControlPlane
    node: LocalNode
    images: BuiltImages

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.cp.kubeconfig, local=True)

    @property
    def api_port(self) -> int:
        return int(self.cp.server.rsplit(":", 1)[1])


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[NodeCluster]:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("the node tier runs its own control plane and node")
    try:
        check_machine()
        images = ensure_images()
    except (NodeUnavailable, ImagesUnavailable) as exc:
        _unavailable(str(exc))
    with LocalControlPlane() as cp:
        node = LocalNode(cp).start()
        try:
            node.import_images(list(images.archives.values()))
            print(
                f"\nnode {cp.server} up in {node.startup_seconds:.1f}s (control plane "
                f"{cp.startup_seconds:.1f}s); images: {images.summary()}"
            )
            yield NodeCluster(cp, node, images)
        finally:
            node.stop()


@pytest.fixture(scope="session")
def condor() -> CondorInstall:
    try:
        return find_condor()
    except CondorNotFound as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture(scope="session")
def node_pool(condor: CondorInstall) -> Iterator[CondorPool]:
    """The user pool the pod pilots join: collector, negotiator, schedd; READ needs a
    token."""
    # Not pytest's tmp_path: its folders are mode 700, and the daemons run as 'condor'.
    folder = Path(tempfile.mkdtemp(prefix="glidein-node-pool-"))
    folder.chmod(0o755)
    pool = CondorPool(condor, folder / "pool", read_needs_auth=True)
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()
        shutil.rmtree(folder, ignore_errors=True)
