"""Find, or build from upstream source, the control-plane binaries.

Order of search, first hit wins:

1. ``$KUBEBUILDER_ASSETS`` (the envtest convention: a folder holding ``etcd`` and
   ``kube-apiserver``; ``kube-controller-manager`` is used when present).
2. The cache folder ``$GLIDEIN_ASSETS_DIR`` (default ``~/.cache/glidein-operator/assets``),
   one sub-folder per pinned version.
3. Otherwise the binaries are built there with the machine's Go toolchain, from the
   published modules on the Go module proxy: no prebuilt binary is downloaded, and the
   build happens once per machine.

Building Kubernetes outside its repository needs a wrapper module: ``k8s.io/kubernetes``
points each staging module (``k8s.io/api``, ``k8s.io/apiserver``, ...) at a local
``./staging`` folder, which a module download does not have, so the wrapper replaces each
one by its published ``v0.X.Y`` twin, read from upstream's own go.mod.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
HELM_VERSION = "3.22.0"

REQUIRED = ("etcd", "kube-apiserver")
OPTIONAL = ("kube-controller-manager",)


class AssetsError(RuntimeError):
    """The binaries could not be found or built; the message says what to do."""


@dataclass(frozen=True)
class Assets:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None
    origin: str

    @classmethod
    def from_dir(cls, directory: Path, origin: str) -> Assets | None:
        if not all(_executable(directory / name) for name in REQUIRED):
            return None
        kcm = directory / "kube-controller-manager"
        return cls(
            etcd=directory / "etcd",
            kube_apiserver=directory / "kube-apiserver",
            kube_controller_manager=kcm if _executable(kcm) else None,
            origin=origin,
        )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def cache_root() -> Path:
    env = os.environ.get("GLIDEIN_ASSETS_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "glidein-operator" / "assets"


def cache_dir() -> Path:
    return cache_root() / f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"


def find() -> Assets | None:
    """Binaries already on this machine, or None."""
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if env:
        found = Assets.from_dir(Path(env), f"KUBEBUILDER_ASSETS={env}")
        if found is None:
            raise AssetsError(
                f"KUBEBUILDER_ASSETS={env} lacks one of {', '.join(REQUIRED)} (or they are "
                "not executable); unset it to use the cache or build from source"
            )
        return found
    d = cache_dir()
    if (d / ".complete").exists():
        return Assets.from_dir(d, f"cache {d}")
    return None


def ensure(log: bool = True) -> Assets:
    """Find the binaries, building them once per machine when absent."""
    found = find()
    if found:
        return found
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f"{target.name}.lock"):
        # Another process may have finished the build while we waited for the lock.
        if (target / ".complete").exists():
            found = Assets.from_dir(target, f"cache {target}")
            if found:
                return found
        build(target, log=log)
    found = Assets.from_dir(target, f"built into {target}")
    if found is None:
        raise AssetsError(f"build finished but {target} lacks the binaries")
    return found


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Held by one process at a time (builds and unpacks into a shared cache)."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if not go:
        raise AssetsError(
            "no control-plane binaries found and no Go toolchain to build them: install Go "
            "(1.26+), or set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver "
            "(e.g. from setup-envtest), or run the tests against a cluster with "
            "GLIDEIN_TEST_KUBECONFIG"
        )
    return go


def _run(cmd: list[str], cwd: Path, log: bool) -> str:
    if log:
        print(f"[controlplane build] {' '.join(cmd)}", flush=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssetsError(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def go_build(
    go: str,
    cwd: Path,
    out: str,
    packages: list[str],
    log: bool,
    *,
    ldflags: str = "-s -w",
    tags: str = "",
) -> None:
    """``go build -trimpath`` of ``packages`` (static: CGO off) into ``out``, a file or a
    folder ending in ``/``."""
    tagging = ["-tags", tags] if tags else []
    _run([go, "build", "-trimpath", *tagging, "-ldflags", ldflags, "-o", out, *packages], cwd, log)


def staging_replacements(upstream_go_mod: str, version: str) -> list[tuple[str, str]]:
    """(module, published version) for every staging module upstream's go.mod replaces."""
    minor_patch = version.split(".", 1)[1]
    mods = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/", upstream_go_mod, re.M)
    return [(m, f"v0.{minor_patch}") for m in mods]


CONTROL_PLANE_COMMANDS = ("kube-apiserver", "kube-controller-manager")


def kubernetes_wrapper(
    upstream_go_mod: str, version: str, commands: tuple[str, ...] = CONTROL_PLANE_COMMANDS
) -> tuple[str, str]:
    """(go.mod, tools.go) of the wrapper module that builds Kubernetes' ``commands`` (its
    ``cmd/`` folders) from the proxy."""
    go_line = re.search(r"^go (\S+)$", upstream_go_mod, re.M)
    replaces = "\n".join(
        f"\t{m} => {m} {v}" for m, v in staging_replacements(upstream_go_mod, version)
    )
    go_mod = (
        "module glidein.dev/controlplane-build/kubernetes\n\n"
        f"go {go_line.group(1) if go_line else '1.26.0'}\n\n"
        f"require k8s.io/kubernetes v{version}\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    imports = "".join(f'\t_ "k8s.io/kubernetes/cmd/{c}/app"\n' for c in commands)
    tools = f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"
    return go_mod, tools


def build(target: Path, log: bool = True) -> None:
    """Build etcd, kube-apiserver and kube-controller-manager into ``target``."""
    go = _go()
    started = time.monotonic()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glidein-cp-build-") as tmp:
        work = Path(tmp)

        k8s = work / "kubernetes"
        k8s.mkdir()
        info = json.loads(
            _run(
                [go, "mod", "download", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
                work,
                log,
            )
        )
        go_mod, tools = kubernetes_wrapper(Path(info["GoMod"]).read_text(), KUBERNETES_VERSION)
        (k8s / "go.mod").write_text(go_mod)
        (k8s / "tools.go").write_text(tools)
        _run([go, "mod", "tidy"], k8s, log)
        minor = KUBERNETES_VERSION.split(".")[1]
        ldflags = " ".join(
            [
                "-s -w",
                f"-X k8s.io/component-base/version.gitVersion=v{KUBERNETES_VERSION}",
                "-X k8s.io/component-base/version.gitMajor=1",
                f"-X k8s.io/component-base/version.gitMinor={minor}",
                "-X k8s.io/component-base/version.gitTreeState=clean",
            ]
        )
        go_build(
            go,
            k8s,
            f"{target}/",
            [
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
            ],
            log,
            ldflags=ldflags,
        )

        etcd = work / "etcd"
        etcd.mkdir()
        (etcd / "go.mod").write_text(
            "module glidein.dev/controlplane-build/etcd\n\ngo 1.26.0\n\n"
            f"require go.etcd.io/etcd/server/v3 v{ETCD_VERSION}\n"
        )
        (etcd / "tools.go").write_text(
            '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n'
        )
        _run([go, "mod", "tidy"], etcd, log)
        go_build(go, etcd, str(target / "etcd"), ["go.etcd.io/etcd/server/v3"], log)
    (target / ".complete").write_text(
        json.dumps(
            {
                "kubernetes": KUBERNETES_VERSION,
                "etcd": ETCD_VERSION,
                "build_seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    if log:
        print(
            f"[controlplane build] done in {time.monotonic() - started:.0f}s -> {target}",
            flush=True,
        )


def _helm_ldflags(go: str, env: dict[str, str], cwd: str) -> str:
    """What helm's own release build stamps (its Makefile), and a plain ``go install``
    leaves out: its version, and the Kubernetes version ``helm template`` and ``helm
    lint`` assume without a cluster, from the client-go in helm's go.mod (v0.N: 1.N).
    Unstamped, that is 1.20, and a chart's ``kubeVersion: >=1.28.0-0`` fails to render."""
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"helm.sh/helm/v3@v{HELM_VERSION}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssetsError(f"downloading helm failed:\n{proc.stderr[-4000:]}")
    gomod = Path(json.loads(proc.stdout)["GoMod"]).read_text()
    found = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", gomod, re.MULTILINE)
    if found is None:
        raise AssetsError(f"no k8s.io/client-go in helm {HELM_VERSION}'s go.mod")
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version=v{HELM_VERSION}"]
    for pkg in ("pkg/chartutil", "pkg/lint/rules"):
        flags += [
            f"-X helm.sh/helm/v3/{pkg}.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/{pkg}.k8sVersionMinor={found.group(1)}",
        ]
    return " ".join(flags)


HELM_STAMP = "build.json"  # how the cached helm was built; a binary without it is rebuilt


def ensure_helm(log: bool = True) -> Path:
    """A helm binary: $GLIDEIN_HELM, else the cache, else built once from the Go module
    proxy (helm.sh/helm/v3 at the pinned version), like the control plane, stamped as
    helm's release build is (``_helm_ldflags``)."""
    env = os.environ.get("GLIDEIN_HELM")
    if env:
        return Path(env)
    target = cache_root() / f"helm-{HELM_VERSION}"
    binary, stamp = target / "helm", target / HELM_STAMP
    if _executable(binary) and stamp.exists():
        return binary
    target.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f"helm-{HELM_VERSION}.lock"):
        if not (_executable(binary) and stamp.exists()):
            go = _go()
            # Built next to the binary, then renamed over it: a helm running now (a test
            # of another session) keeps its file, the next one starts the new one.
            with tempfile.TemporaryDirectory(prefix="build-", dir=target) as tmp:
                env_vars = {**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"}
                ldflags = _helm_ldflags(go, env_vars, tmp)
                cmd = [
                    go,
                    "install",
                    "-trimpath",
                    "-ldflags",
                    ldflags,
                    f"helm.sh/helm/v3/cmd/helm@v{HELM_VERSION}",
                ]
                if log:
                    print(f"[helm build] {' '.join(cmd)}", flush=True)
                proc = subprocess.run(
                    cmd, cwd=tmp, env=env_vars, capture_output=True, text=True, check=False
                )
                if proc.returncode != 0:
                    raise AssetsError(f"building helm failed:\n{proc.stderr[-4000:]}")
                os.replace(Path(tmp) / "helm", binary)
            stamp.write_text(json.dumps({"version": HELM_VERSION, "ldflags": ldflags}) + "\n")
    return binary
