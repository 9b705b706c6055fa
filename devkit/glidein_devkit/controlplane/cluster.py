"""A real, local Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager.

What envtest gives Go operators, for ours: real admission, real CRD validation (OpenAPI
and CEL), real RBAC, and (with the controller manager) namespaces that finish deleting
and garbage collection by owner references. No kubelet: pods are accepted but never run,
which is what our pod-driver tests need from the API; ``glidein_devkit.node`` adds a real
node (scheduler, kubelet, containerd) beside it when pods must run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from glidein_devkit.controlplane import assets as assets_mod
from glidein_devkit.controlplane.pki import KeyPair, Pki

SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(client.cert),
                    "client-key": str(client.key),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalControlPlane:
    """Start with ``start()`` (or as a context manager); ``kubeconfig`` is then an admin
    kubeconfig. ``directory`` holds certificates, data and logs; a temporary one is made
    and removed when none is given."""

    directory: Path | None = None
    with_controller_manager: bool = True
    startup_timeout: float = 60.0
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    startup_seconds: float = field(init=False, default=0.0)
    _procs: list[_Proc] = field(init=False, default_factory=list)
    _owns_dir: bool = field(init=False, default=False)
    pki: Pki = field(init=False)

    def start(self) -> LocalControlPlane:
        binaries = assets_mod.ensure()
        started = time.monotonic()
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="glidein-cp-"))
            self._owns_dir = True
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        self.pki = Pki(d / "pki")
        try:
            self._start_etcd(binaries.etcd, d)
            self._start_apiserver(binaries.kube_apiserver, d)
            if self.with_controller_manager and binaries.kube_controller_manager:
                self._start_controller_manager(binaries.kube_controller_manager, d)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    # --- components -----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], d: Path) -> _Proc:
        proc = spawn(name, argv, d)
        self._procs.append(proc)
        return proc

    def _start_etcd(self, binary: Path, d: Path) -> None:
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn(
            "etcd",
            [
                str(binary),
                "--name=glidein-test",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=glidein-test=http://127.0.0.1:{peer}",
                # Test data is thrown away: fsync buys nothing and costs seconds.
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
            d,
        )
        self._wait(proc, lambda: _http_ok(f"{self._etcd_url}/health"))

    def _start_apiserver(self, binary: Path, d: Path) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        serving = self.pki.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", KUBERNETES_SERVICE_IP),
        )
        admin = self.pki.issue("admin", "glidein-admin", "system:masters")
        # For a node's kubelet (glidein_devkit.node): pod logs go through the API server.
        kubelet_client = self.pki.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
        )
        sa = self.pki.service_account_keys()
        self._sa = sa
        proc = self._spawn(
            "kube-apiserver",
            [
                str(binary),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={d / 'apiserver-certs'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.pki.ca.cert}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            d,
        )
        self.kubeconfig = write_kubeconfig(
            d / "admin.kubeconfig", self.server, self.pki.ca.cert, admin, "admin"
        )
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        self._ssl = context
        self._wait(proc, lambda: _http_ok(f"{self.server}/readyz", context))

    def _start_controller_manager(self, binary: Path, d: Path) -> None:
        kcm = self.pki.issue("kube-controller-manager", "system:kube-controller-manager")
        kubeconfig = write_kubeconfig(
            d / "controller-manager.kubeconfig", self.server, self.pki.ca.cert, kcm, "kcm"
        )
        port = free_port()
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={d / 'kcm-certs'}",
                f"--service-account-private-key-file={self._sa.key}",
                f"--root-ca-file={self.pki.ca.cert}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--v=1",
            ],
            d,
        )
        self._wait(proc, lambda: healthz_ok(port))

    def _wait(self, proc: _Proc, ready: Callable[[], bool]) -> None:
        wait_for(proc, ready, self.startup_timeout)

    # --- lifecycle ------------------------------------------------------------------

    def restart_apiserver(self) -> None:
        """Kill kube-apiserver and start it again on the same port and data (for
        recovery tests)."""
        api = next(p for p in self._procs if p.name == "kube-apiserver")
        argv = [str(a) for a in api.popen.args]  # type: ignore[union-attr]
        _terminate(api.popen)
        self._procs.remove(api)
        assert self.directory is not None
        proc = self._spawn("kube-apiserver", argv, self.directory)
        self._wait(proc, lambda: _http_ok(f"{self.server}/readyz", self._ssl))

    def stop(self) -> None:
        for proc in reversed(self._procs):
            _terminate(proc.popen)
        self._procs.clear()
        if self._owns_dir and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def logs(self) -> dict[str, str]:
        return {p.name: p.tail(200) for p in self._procs}

    def __enter__(self) -> LocalControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spawn(name: str, argv: list[str], directory: Path, env: dict[str, str] | None = None) -> _Proc:
    """``argv`` started with its output appended to ``directory/<name>.log``, in its own
    process group: a Ctrl-C in the demo reaches us, and we stop the children in order
    rather than have them race."""
    log = directory / f"{name}.log"
    with log.open("ab") as handle:
        popen = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return _Proc(name, popen, log)


def wait_for(proc: _Proc, ready: Callable[[], bool], timeout: float) -> None:
    """Until ``ready()``; a ControlPlaneError with the end of its log if ``proc`` exits or
    ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise ControlPlaneError(
                f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}"
            )
        if ready():
            return
        time.sleep(0.05)
    raise ControlPlaneError(f"{proc.name} not ready after {timeout:.0f}s:\n{proc.tail()}")


def _terminate(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()


def healthz_ok(port: int) -> bool:
    """A control-plane component's ``/healthz`` on 127.0.0.1 answers 200. Not verified:
    its serving certificate is one it made itself."""
    no_verify = ssl.create_default_context()
    no_verify.check_hostname = False
    no_verify.verify_mode = ssl.CERT_NONE
    return _http_ok(f"https://127.0.0.1:{port}/healthz", no_verify)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False
