"""A real node for the local control plane: kube-scheduler, a kubelet and containerd.

Pods really run here, and only with the host's network: containerd has no pod network
(its one CNI network is ``loopback``), there is no kube-proxy, and the node's address is
127.0.0.1. What that took, and why each setting is there:

* **The node is named 127.0.0.1.** The kubelet refuses a loopback ``--node-ip`` ("nodeIP
  can't be loopback address"), and otherwise takes the address of the interface with the
  default route. A hostname override that is an IP is used as the node's address as is
  (``nodestatus.NodeAddress``), so the node's InternalIP, every host-network pod's IP, the
  Services' endpoints and the API server's connections to the kubelet are all 127.0.0.1.
* **cgroup v1.** This machine mounts the v1 hierarchies (no hugetlb). The kubelet refuses
  v1 by default since 1.35 (``failCgroupV1: false`` allows it), drives cgroups itself
  (``cgroupDriver: cgroupfs``, no systemd), and containerd's runc shim is told the same
  (``SystemdCgroup = false``). Pods' cgroups live under ``/kubepods`` in each hierarchy,
  so one node runs per machine at a time (a file lock).
* **Pods reach the API server** at 127.0.0.1: their charts set KUBERNETES_SERVICE_HOST and
  _PORT, which override what the kubelet injects from the ``kubernetes`` Service (whose
  ClusterIP routes nowhere here).
* **Images** are imported into containerd (``import_images``); nothing is ever pulled,
  the sandbox (pause) image included.
* Eviction thresholds are lowered so a test machine's busy disk does not evict pods, and
  swap is tolerated.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import yaml

from glidein_devkit.controlplane import assets as cp_assets
from glidein_devkit.controlplane.cluster import (
    ControlPlaneError,
    LocalControlPlane,
    _http_ok,
    _Proc,
    _terminate,
    free_port,
    healthz_ok,
    spawn,
    wait_for,
    write_kubeconfig,
)
from glidein_devkit.kube import kubectl
from glidein_devkit.node import assets as node_assets

NODE_NAME = "127.0.0.1"
CNI_CONFIG = {
    "cniVersion": "1.0.0",
    "name": "glidein-loopback",
    "plugins": [{"type": "loopback"}],
}


class NodeUnavailable(RuntimeError):
    """This machine cannot run a node; the message says what is missing."""


def check_machine() -> None:
    """What a node needs from the machine, checked before anything starts."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the kubelet and containerd mount and make cgroups)")
    if not Path("/sys/fs/cgroup").exists():
        missing.append("a cgroup file system at /sys/fs/cgroup")
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        filesystems = ""
    if "overlay" not in filesystems:
        missing.append("the overlay file system (modprobe overlay)")
    if missing:
        raise NodeUnavailable("a local node needs " + "; ".join(missing))


def cgroup_version() -> int:
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


@contextlib.contextmanager
def _machine_lock(timeout: float) -> Iterator[None]:
    path = cp_assets.cache_root() / "node-running.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("w")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise NodeUnavailable(
                    f"another local node runs on this machine ({path} is held)"
                ) from None
            time.sleep(1)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass
class LocalNode:
    """Start with ``start()`` or as a context manager, beside a started control plane;
    ``directory`` (inside the control plane's) holds containerd's and the kubelet's state,
    configuration and logs."""

    cp: LocalControlPlane
    startup_timeout: float = 120.0
    directory: Path = field(init=False)
    socket: Path = field(init=False)
    startup_seconds: float = field(init=False, default=0.0)
    kubelet_port: int = field(init=False, default=0)
    _procs: list[_Proc] = field(init=False, default_factory=list)
    _lock: contextlib.ExitStack = field(init=False, default_factory=contextlib.ExitStack)

    def start(self) -> LocalNode:
        check_machine()
        binaries = node_assets.ensure()
        started = time.monotonic()
        assert self.cp.directory is not None
        self.directory = self.cp.directory / "node"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock.enter_context(_machine_lock(self.startup_timeout))
        try:
            _remove_kubepods()  # a node killed before its cleanup may have left some
            self._start_containerd(binaries)
            self.import_images([binaries.pause_archive])
            self._start_scheduler(binaries)
            self._start_kubelet(binaries)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    # --- components -----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> _Proc:
        proc = spawn(name, argv, self.directory, env)
        self._procs.append(proc)
        return proc

    def _wait(self, proc: _Proc, ready: Callable[[], bool]) -> None:
        wait_for(proc, ready, self.startup_timeout)

    def _start_containerd(self, binaries: node_assets.NodeAssets) -> None:
        d = self.directory
        self.socket = d / "containerd" / "containerd.sock"
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        cni_conf = d / "cni"
        cni_conf.mkdir(exist_ok=True)
        (cni_conf / "10-glidein-loopback.conflist").write_text(json.dumps(CNI_CONFIG))
        runtime = "plugins.'io.containerd.cri.v1.runtime'"
        config = f"""version = 3
root = '{d / "containerd" / "root"}'
state = '{d / "containerd" / "state"}'

[grpc]
  address = '{self.socket}'

[ttrpc]
  address = '{d / "containerd" / "containerd.sock.ttrpc"}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{node_assets.PAUSE_IMAGE}'

[{runtime}]
  # No AppArmor on this kernel's command line; cgroup v1 has no hugetlb here.
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  # This machine's processes may not lower their OOM score below what they were given
  # (the kubelet asks -998 for sandboxes): keep containers at or above containerd's.
  restrict_oom_score_adj = true
  [{runtime}.containerd]
    default_runtime_name = 'runc'
    [{runtime}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{runtime}.containerd.runtimes.runc.options]
        BinaryName = '{binaries.runc}'
        SystemdCgroup = false
        Root = '{d / "containerd" / "runc"}'
  [{runtime}.cni]
    bin_dirs = ['{binaries.cni_bin}']
    conf_dir = '{cni_conf}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""
        conf = d / "containerd.toml"
        conf.write_text(config)
        # The shim is found beside containerd or on PATH; runc is named in the config.
        env = {**os.environ, "PATH": f"{binaries.directory}:{os.environ.get('PATH', '')}"}
        proc = self._spawn("containerd", [str(binaries.containerd), "--config", str(conf)], env)
        self._ctr = [str(binaries.ctr), "--address", str(self.socket), "--namespace", "k8s.io"]
        self._wait(proc, lambda: self._ctr_ok("version"))

    def _ctr_ok(self, *args: str) -> bool:
        done = subprocess.run([*self._ctr, *args], capture_output=True, check=False)
        return done.returncode == 0

    def ctr(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [*self._ctr, *args], capture_output=True, text=True, check=False, timeout=timeout
        )
        if done.returncode != 0:
            raise ControlPlaneError(f"ctr {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def import_images(self, archives: list[Path]) -> list[str]:
        """Import image archives (OCI or docker) into the node's containerd, where the
        kubelet finds them: a pod naming one never pulls it. The images the node then has."""
        for archive in archives:
            self.ctr("images", "import", "--snapshotter", "overlayfs", str(archive))
        return sorted(self.ctr("images", "ls", "-q").split())

    def _start_scheduler(self, binaries: node_assets.NodeAssets) -> None:
        pki = self.cp.pki
        cert = pki.issue("kube-scheduler", "system:kube-scheduler")
        kubeconfig = write_kubeconfig(
            self.directory / "scheduler.kubeconfig", self.cp.server, pki.ca.cert, cert, "sched"
        )
        port = free_port()
        proc = self._spawn(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        self._wait(proc, lambda: healthz_ok(port))

    def _start_kubelet(self, binaries: node_assets.NodeAssets) -> None:
        d, pki = self.directory, self.cp.pki
        # RBAC only (no Node authorizer here): the kubelet's group gets the system:node
        # role, which is what the Node authorizer narrows on a real cluster.
        kubectl(
            self.cp.kubeconfig,
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "glidein-local-node"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "system:node",
                    },
                    "subjects": [
                        {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "Group",
                            "name": "system:nodes",
                        }
                    ],
                }
            ),
        )
        client = pki.issue("kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        serving = pki.issue(
            "kubelet-serving", NODE_NAME, server_names=("localhost",), server_ips=(NODE_NAME,)
        )
        kubeconfig = write_kubeconfig(
            d / "kubelet.kubeconfig", self.cp.server, pki.ca.cert, client, "kubelet"
        )
        self.kubelet_port, healthz = free_port(), free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki.ca.cert)},
            },
            # Only the API server (a client certificate of the cluster's CA) gets here.
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "registerNode": True,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
            "protectKernelDefaults": False,
            "logging": {"verbosity": 1},
        }
        conf = d / "kubelet.yaml"
        conf.write_text(yaml.safe_dump(config))
        proc = self._spawn(
            "kubelet",
            [
                str(binaries.kubelet),
                f"--config={conf}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--root-dir={d / 'kubelet'}",
                f"--cert-dir={d / 'kubelet-pki'}",
            ],
        )
        self._wait(proc, lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"))

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        last = ""
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}"
                    )
            out = kubectl(
                self.cp.kubeconfig,
                "get",
                "node",
                NODE_NAME,
                "--ignore-not-found",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status} "
                "{.status.conditions[?(@.type=='Ready')].message}",
                check=False,
            ).stdout
            if out.startswith("True"):
                return
            last = out
            time.sleep(0.5)
        kubelet = next((p for p in self._procs if p.name == "kubelet"), None)
        raise ControlPlaneError(
            f"node {NODE_NAME} not Ready ({last!r}):\n{kubelet.tail() if kubelet else ''}"
        )

    # --- lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the kubelet, kill every container, stop containerd and its shims, unmount
        what they mounted, and remove the pods' cgroups: nothing is left running."""
        for proc in [p for p in self._procs if p.name in ("kubelet", "kube-scheduler")]:
            _terminate(proc.popen)
            self._procs.remove(proc)
        if any(p.name == "containerd" for p in self._procs):
            with contextlib.suppress(Exception):
                self._kill_containers()
        for proc in reversed(self._procs):
            _terminate(proc.popen)
        self._procs.clear()
        if getattr(self, "directory", None) is not None:
            _kill_shims(self.directory)
            _unmount_under(self.directory)
        _remove_kubepods()
        self._lock.close()

    def _kill_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", timeout=30).split():
            subprocess.run([*self._ctr, "tasks", "kill", "-s", "SIGKILL", task], check=False)
        deadline = time.monotonic() + 20
        while self.ctr("tasks", "ls", "-q", timeout=30).split() and time.monotonic() < deadline:
            time.sleep(0.2)

    def logs(self) -> dict[str, str]:
        return {p.name: p.tail(200) for p in self._procs}

    def __enter__(self) -> LocalNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _kill_shims(directory: Path) -> None:
    """containerd's shims outlive it by design (containers survive a containerd restart);
    ours name our socket on their command line."""
    marker = str(directory).encode()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_dir.name), signal.SIGKILL)


def _unmount_under(directory: Path) -> None:
    prefix = str(directory.resolve())
    mounts = [
        line.split()[1].encode().decode("unicode_escape")
        for line in Path("/proc/mounts").read_text().splitlines()
    ]
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_kubepods() -> None:
    """The kubelet's pod cgroups (``/kubepods`` in each v1 hierarchy), deepest first,
    once no process is left in them."""
    root = Path("/sys/fs/cgroup")
    for hierarchy in root.iterdir() if root.exists() else []:
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        folders = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()
