"""Find, or build once per machine, what a node adds to the local control plane.

A kubelet and kube-scheduler from the same upstream release as the control plane's
kube-apiserver (``k8s.io/kubernetes`` on the Go module proxy), containerd 2 from the Go
module proxy, runc from Debian's package, a CNI ``loopback`` plugin and a pause image built
here. Nothing is a prebuilt binary from a download site, and no container registry is
asked for anything.

Why containerd is built rather than taken from Debian: bookworm ships containerd 1.6, and
Kubernetes 1.36 supports containerd 2 only. Why runc comes from Debian instead: runc's
seccomp support needs cgo and libseccomp's headers, and Debian's build has both (pods run
with ``seccompProfile: RuntimeDefault``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from glidein_devkit.controlplane import assets as cp_assets
from glidein_devkit.controlplane.assets import AssetsError

CONTAINERD_VERSION = "2.4.2"
CNI_PLUGINS_VERSION = "1.9.1"
RUNC_PACKAGE = "runc"
# The sandbox image containerd 2.4 pins by default; ours is built here (``pause.go``).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"
KUBE_COMMANDS = ("kubelet", "kube-scheduler")
CONTAINERD_COMMANDS = ("containerd", "ctr", "containerd-shim-runc-v2")
BINARIES = (*KUBE_COMMANDS, *CONTAINERD_COMMANDS, "runc", "cni/loopback")

# The pause container: holds the pod's namespaces, reaps what it inherits, ends on a
# signal. A Go program, so it is static and needs no C toolchain in the image.
PAUSE_GO = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""


@dataclass(frozen=True)
class NodeAssets:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def kubelet(self) -> Path:
        return self.directory / "kubelet"

    @property
    def kube_scheduler(self) -> Path:
        return self.directory / "kube-scheduler"

    @property
    def containerd(self) -> Path:
        return self.directory / "containerd"

    @property
    def ctr(self) -> Path:
        return self.directory / "ctr"

    @property
    def runc(self) -> Path:
        return self.directory / "runc"

    @property
    def cni_bin(self) -> Path:
        return self.directory / "cni"

    @property
    def pause_archive(self) -> Path:
        return self.directory / "pause.oci.tar"

    def build_info(self) -> dict[str, object]:
        info: dict[str, object] = json.loads((self.directory / ".complete").read_text())
        return info


def cache_dir() -> Path:
    return cp_assets.cache_root() / (
        f"node-k8s-{cp_assets.KUBERNETES_VERSION}-containerd-{CONTAINERD_VERSION}"
    )


def find() -> NodeAssets | None:
    d = cache_dir()
    if (d / ".complete").exists() and all(os.access(d / b, os.X_OK) for b in BINARIES):
        return NodeAssets(d)
    return None


def ensure(log: bool = True) -> NodeAssets:
    """The node's binaries and pause image, built once per machine (a few minutes the
    first time; the Go build cache makes the kubelet cheap after the control plane)."""
    found = find()
    if found:
        return found
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with cp_assets.file_lock(target.parent / f"{target.name}.lock"):
        found = find()
        if found:
            return found
        build(target, log=log)
    found = find()
    if found is None:
        raise AssetsError(f"node build finished but {target} lacks its binaries")
    return found


def _module(work: Path, name: str, require: str, imports: list[str]) -> Path:
    folder = work / name
    folder.mkdir()
    (folder / "go.mod").write_text(
        f"module glidein.dev/node-build/{name}\n\ngo 1.26.0\n\nrequire {require}\n"
    )
    lines = "".join(f'\t_ "{i}"\n' for i in imports)
    (folder / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{lines})\n")
    return folder


def build(target: Path, log: bool = True) -> None:
    go = cp_assets._go()
    started = time.monotonic()
    target.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="glidein-node-build-") as tmp:
        work = Path(tmp)

        t0 = time.monotonic()
        k8s = work / "kubernetes"
        k8s.mkdir()
        version = cp_assets.KUBERNETES_VERSION
        info = json.loads(
            cp_assets._run(
                [go, "mod", "download", "-json", f"k8s.io/kubernetes@v{version}"], work, log
            )
        )
        go_mod, tools = cp_assets.kubernetes_wrapper(
            Path(info["GoMod"]).read_text(), version, KUBE_COMMANDS
        )
        (k8s / "go.mod").write_text(go_mod)
        (k8s / "tools.go").write_text(tools)
        cp_assets._run([go, "mod", "tidy"], k8s, log)
        minor = version.split(".")[1]
        ldflags = (
            f"-s -w -X k8s.io/component-base/version.gitVersion=v{version} "
            f"-X k8s.io/component-base/version.gitMajor=1 "
            f"-X k8s.io/component-base/version.gitMinor={minor} "
            "-X k8s.io/component-base/version.gitTreeState=clean"
        )
        cp_assets.go_build(
            go,
            k8s,
            f"{target}/",
            [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS],
            log,
            ldflags=ldflags,
        )
        seconds["kubelet+kube-scheduler"] = time.monotonic() - t0

        t0 = time.monotonic()
        ctd_pkgs = [f"github.com/containerd/containerd/v2/cmd/{c}" for c in CONTAINERD_COMMANDS]
        ctd = _module(
            work,
            "containerd",
            f"github.com/containerd/containerd/v2 v{CONTAINERD_VERSION}",
            ctd_pkgs,
        )
        cp_assets._run([go, "mod", "tidy"], ctd, log)
        # Static: the snapshotters needing C libraries are left out by tag.
        cp_assets.go_build(
            go, ctd, f"{target}/", ctd_pkgs, log, tags="no_btrfs no_devmapper no_zfs"
        )
        seconds["containerd"] = time.monotonic() - t0

        t0 = time.monotonic()
        loopback = "github.com/containernetworking/plugins/plugins/main/loopback"
        cni = _module(
            work,
            "cni",
            f"github.com/containernetworking/plugins v{CNI_PLUGINS_VERSION}",
            [loopback],
        )
        cp_assets._run([go, "mod", "tidy"], cni, log)
        (target / "cni").mkdir(exist_ok=True)
        cp_assets.go_build(go, cni, str(target / "cni" / "loopback"), [loopback], log)
        pause = work / "pause"
        pause.mkdir()
        (pause / "go.mod").write_text("module glidein.dev/node-build/pause\n\ngo 1.26.0\n")
        (pause / "main.go").write_text(PAUSE_GO)
        cp_assets.go_build(go, pause, str(work / "pause-bin"), ["."], log)
        write_single_file_image(
            target / "pause.oci.tar", PAUSE_IMAGE, work / "pause-bin", "/pause", ["/pause"]
        )
        seconds["cni+pause"] = time.monotonic() - t0

        t0 = time.monotonic()
        _debian_binary(RUNC_PACKAGE, "usr/sbin/runc", target / "runc", work, log)
        seconds["runc"] = time.monotonic() - t0
    (target / ".complete").write_text(
        json.dumps(
            {
                "kubernetes": cp_assets.KUBERNETES_VERSION,
                "containerd": CONTAINERD_VERSION,
                "cni_plugins": CNI_PLUGINS_VERSION,
                "runc": _runc_version(target / "runc"),
                "seconds": {k: round(v, 1) for k, v in seconds.items()},
                "build_seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    if log:
        print(f"[node build] done in {time.monotonic() - started:.0f}s -> {target}", flush=True)


def _runc_version(runc: Path) -> str:
    out = subprocess.run([str(runc), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _debian_binary(package: str, member: str, dest: Path, work: Path, log: bool) -> None:
    """One file of a Debian package, unpacked, nothing installed: ``apt-get download``
    (refreshing the package lists once if the first try fails) and ``dpkg-deb -x``."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise AssetsError(f"{package} comes from Debian's packages here: apt-get is needed")
    folder = work / f"deb-{package}"
    folder.mkdir()
    # _apt downloads into a folder it can write; root would otherwise warn and go on.
    folder.chmod(0o777)
    cmd = ["apt-get", "download", "-q", package]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise AssetsError(f"apt-get download {package} failed:\n{proc.stderr[-2000:]}")
    unpacked = folder / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
    shutil.copy2(unpacked / member, dest)
    if log:
        print(f"[node build] {package}: {debs[0].name}", flush=True)


def write_single_file_image(
    archive: Path, reference: str, binary: Path, path_in_image: str, entrypoint: list[str]
) -> None:
    """An OCI image archive of one static binary, as ``ctr images import`` reads it: an
    OCI layout whose index names the image (``io.containerd.image.name``)."""
    layer_raw = io.BytesIO()
    with tarfile.open(fileobj=layer_raw, mode="w") as tar:
        info = tarfile.TarInfo(path_in_image.lstrip("/"))
        data = binary.read_bytes()
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    raw = layer_raw.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        }
    ).encode()
    manifest_desc = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    manifest_desc["annotations"] = {
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1],
    }
    index = json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}).encode()
    blobs = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": index,
    }
    for blob in (layer, config, manifest):
        blobs[f"blobs/sha256/{_digest(blob).split(':')[1]}"] = blob
    with tarfile.open(archive, "w") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}
