"""The chart as tests render and install it: `helm template` with the helm the project
builds, and a kubeconfig holding the operator's own ServiceAccount token."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from glidein_devkit.controlplane.assets import ensure_helm
from glidein_devkit.kube import OPERATOR_NAMESPACE, kubectl

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm/glidein-operator"
# The release goes where the operators under test keep their credential copies (made
# with the CRDs by install_crds).
RELEASE, NS = "glidein", OPERATOR_NAMESPACE
SA = f"system:serviceaccount:{NS}:{RELEASE}-glidein-operator"


def helm(*args: str) -> str:
    proc = subprocess.run([str(ensure_helm()), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render(*sets: str, values: dict[str, Any] | None = None) -> list[dict[str, object]]:
    """The chart's manifests with these ``--set``s, and ``values`` as a values file."""
    args = ["template", RELEASE, str(CHART), "-n", NS, "--kube-version", "1.36.3", "--include-crds"]
    for s in sets:
        args += ["--set", s]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        if values is not None:
            yaml.safe_dump(values, f)
            f.flush()
            args += ["--values", f.name]
        return [d for d in yaml.safe_load_all(helm(*args)) if d]


def sa_kubeconfig(admin: Path, account: str = f"{RELEASE}-glidein-operator") -> Path:
    """A kubeconfig next to ``admin`` that acts as one of the chart's ServiceAccounts (the
    operator's unless named)."""
    token = kubectl(admin, "create", "token", account, "-n", NS, "--duration=2h").stdout.strip()
    cfg = yaml.safe_load(admin.read_text())
    cfg["users"][0]["user"] = {"token": token}
    path = admin.parent / (
        "operator-sa.kubeconfig"
        if account == f"{RELEASE}-glidein-operator"
        else f"{account}.kubeconfig"
    )
    path.write_text(yaml.safe_dump(cfg))
    return path
