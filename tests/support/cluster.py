"""The API server the tests run against (the ``cluster`` fixture of tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glidein_devkit.kube import Result, kubectl


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    local: bool

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        return kubectl(self.kubeconfig, *args, stdin=stdin, check=check)
