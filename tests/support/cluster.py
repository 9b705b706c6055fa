"""The API server the tests run against (the ``cluster`` fixture of tests/conftest.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from glidein_devkit.kube import Result, kubectl


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    local: bool

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        return kubectl(self.kubeconfig, *args, stdin=stdin, check=check)


def own_control_plane() -> None:
    """Skip the test when the session runs against a cluster of someone else's
    (GLIDEIN_TEST_KUBECONFIG): it runs its own control plane, where the operator may act
    cluster-wide."""
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("runs its own control plane: the operator acts cluster-wide")
