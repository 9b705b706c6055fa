"""Build the project's container images on this machine, from Debian packages.

No container registry is reachable here, so the bases the project's Dockerfiles name are
made locally and tagged exactly as those Dockerfiles spell them; the Dockerfiles then build
unedited with ``--pull=never``:

* ``docker.io/library/python:3.11-slim-bookworm``: Debian bookworm's own python3 (3.11),
  pip, ``useradd``, CA certificates (what ``images/operator/Dockerfile`` uses).
* ``docker.io/htcondor/execute:24-el9``: bookworm, python3 and HTCondor's execute side (master,
  startd, starter, procd, the tools) from the test tarball (``glidein_devkit.condor_pool``),
  laid out as HTCondor's execute image offers it to the pilot: the ``condor`` user (uid/gid
  64), the daemons on ``PATH``, ``/etc/condor/condor_config`` with ``LOCAL_CONFIG_DIR =
  /etc/condor/config.d``, and ``config.d``, ``tokens.d`` and ``LOCAL_DIR`` writable by uid 64.
  It stands in for the real one in tests only: it is not HTCondor's image.

Each base is ``mmdebstrap --variant=minbase`` to a tar, added to an empty ``buildah``
container and committed. The project's images are then ``buildah build --layers`` from the
repository root, and exported as OCI archives for ``ctr images import``. Everything lives
under ``<cache_root>/node/images/``; a base is rebuilt only when its recipe changes (the
recipe's hash is a label of the image) and an image only when its inputs (Dockerfile, the
files it copies, its base) change (their hash is stored beside the archive).

Needs root and Debian's ``buildah`` and ``mmdebstrap`` (installed when missing). RUN steps
use buildah's chroot isolation on the host's network, so no OCI runtime (crun, runc) and no
network namespace are needed. The storage driver is overlay where it works, else vfs
(``GLIDEIN_BUILDAH_DRIVER`` forces one).

Importing (``ctr -n k8s.io images import <archive>``) needs no naming option: each archive's
``index.json`` names the image in full in both ``io.containerd.image.name`` and
``org.opencontainers.image.ref.name``, and containerd takes a name holding ``/`` or ``:`` as
it is. ``--base-name ghcr.io/glidein-operator/operator`` (the reference without its tag) may be
passed to refuse anything else; it must then match the archive's repository. containerd 2's
``ctr images import`` goes through the transfer service and prints ``<name> saved``; only
with ``--local`` does it print the ``unpacking <name> (...)...done`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from glidein_devkit import condor_pool
from glidein_devkit.controlplane.assets import cache_root, file_lock

REPO = Path(__file__).resolve().parents[3]
# Part of every hash: bump it when this module changes how an image is made.
RECIPE_VERSION = "1"
RECIPE_LABEL = "io.glidein-devkit.recipe"

APT_PACKAGES = ("buildah", "mmdebstrap", "uidmap")
SUITE = "bookworm"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# Images are for running, not reading: no manuals or translations (licences stay).
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)
# bookworm's init-system-helpers would otherwise pull in usrmerge, and with it perl (45 MB).
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PYTHON_BASE = "docker.io/library/python:3.11-slim-bookworm"
CONDOR_BASE = "docker.io/htcondor/execute:24-el9"

CONDOR_UID = 64
CONDOR_PREFIX = "/opt/htcondor"
# The execute side only: no collector, negotiator, schedd, shadow or grid daemons.
CONDOR_SBIN = (
    "condor_master",
    "condor_startd",
    "condor_starter",
    "condor_procd",
    "condor_on",
    "condor_off",
    "condor_restart",
    "condor_reconfig",
    "condor_set_shutdown",
)
CONDOR_DIRS = ("bin", "lib", "libexec")
CONDOR_FILES = ("BUILD-INFO.txt",)
# From `readelf -d` (NEEDED) and the libraries HTCondor dlopen()s (ssl, krb5, munge,
# scitokens) on the tarball's binaries.
CONDOR_LIBRARIES = (
    "libstdc++6",
    "libgcc-s1",
    "libgomp1",
    "libssl3",
    "libpcre2-8-0",
    "libsqlite3-0",
    "libuuid1",
    "libexpat1",
    "zlib1g",
    "libcurl4",
    "libkrb5-3",
    "libgssapi-krb5-2",
    "libmunge2",
    "libscitokens0",
)

CONDOR_CONFIG = f"""\
# HTCondor's base configuration in the devkit's stand-in for htcondor/execute
# (glidein_devkit.node.images): the layout HTCondor's packages give, from {CONDOR_PREFIX}.
RELEASE_DIR = {CONDOR_PREFIX}
LOCAL_DIR = /var/lib/condor
LOG = /var/log/condor
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
# Not under /run as the packages have them: some runtimes mount an empty tmpfs there.
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
LOCAL_CONFIG_DIR = /etc/condor/config.d
LOCAL_CONFIG_FILE =
REQUIRE_LOCAL_CONFIG_FILE = False
"""
CONDOR_CONFIG_D = {
    "00-security.conf": (
        "# As HTCondor's packages install it: local root and condor may administer.\n"
        "use SECURITY : recommended\n"
    ),
    "01-execute.conf": (
        "# As HTCondor's execute image: a startd that reaches its pool through CCB.\n"
        "use ROLE : Execute\n"
        "CCB_ADDRESS = $(COLLECTOR_HOST)\n"
        "# The tarball has only these plugins; the default list names more.\n"
        "FILETRANSFER_PLUGINS = $(LIBEXEC)/curl_plugin, $(LIBEXEC)/data_plugin\n"
    ),
}
CONDOR_WRITABLE = (
    "/var/log/condor",
    "/var/lib/condor",
    "/var/lib/condor/spool",
    "/var/lib/condor/execute",
    "/var/lib/condor/lock",
    "/var/lib/condor/run",
    "/etc/condor/config.d",
    "/etc/condor/tokens.d",
)
# $1 is the root file system mmdebstrap is making.
CONDOR_HOOK = f"""\
set -eu
root="$1"
chroot "$root" groupadd --system --gid {CONDOR_UID} condor
chroot "$root" useradd --system --uid {CONDOR_UID} --gid {CONDOR_UID} --no-create-home \\
    --home-dir /var/lib/condor --shell /usr/sbin/nologin --comment "Owner of HTCondor Daemons" condor
for d in {" ".join(CONDOR_WRITABLE)}; do
    mkdir -p "$root$d"
    chown {CONDOR_UID}:{CONDOR_UID} "$root$d"
done
chmod 700 "$root/etc/condor/tokens.d"
for kind in bin sbin; do
    for f in "$root{CONDOR_PREFIX}/$kind"/*; do
        ln -s "{CONDOR_PREFIX}/$kind/${{f##*/}}" "$root/usr/$kind/${{f##*/}}"
    done
done
"""
# The official image's interpreter is its own build, without PEP 668's marker, and the
# operator's Dockerfile pip-installs into it. Removing Debian's marker gives that here; an
# ENV PIP_BREAK_SYSTEM_PACKAGES=1 would do it too, but would also ride along into every
# container of every image built on this base.
PYTHON_HOOK = """\
set -eu
rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED
"""


class ImagesUnavailable(RuntimeError):
    """The images cannot be built here; the message says what to install or change."""


@dataclass(frozen=True)
class Base:
    ref: str
    packages: tuple[str, ...]
    hook: str
    env: tuple[tuple[str, str], ...]
    cmd: tuple[str, ...]
    with_condor: bool = False


BASES = (
    Base(
        PYTHON_BASE,
        ("python3", "python3-pip", "python-is-python3", "passwd", "ca-certificates"),
        PYTHON_HOOK,
        (("PATH", STANDARD_PATH), ("LANG", "C.UTF-8")),
        ("python3",),
    ),
    Base(
        CONDOR_BASE,
        ("python3", "passwd", "ca-certificates", *CONDOR_LIBRARIES),
        CONDOR_HOOK,
        (
            ("PATH", STANDARD_PATH),
            ("LANG", "C.UTF-8"),
            ("CONDOR_CONFIG", "/etc/condor/condor_config"),
        ),
        ("condor_master", "-f"),
        with_condor=True,
    ),
)


@dataclass(frozen=True)
class Image:
    name: str  # the repository, e.g. ghcr.io/glidein-operator/operator
    dockerfile: str  # relative to the repository root, which is the build context
    base: str

    def ref(self, version: str) -> str:
        return f"{self.name}:{version}"


IMAGES = (
    Image("ghcr.io/glidein-operator/operator", "images/operator/Dockerfile", PYTHON_BASE),
    Image("ghcr.io/glidein-operator/pilot", "images/pilot-pod/Dockerfile", CONDOR_BASE),
)


@dataclass(frozen=True)
class Built:
    ref: str
    seconds: float  # this run's; near zero when cached
    size_bytes: int  # uncompressed layers
    cached: bool
    archive: Path | None = None  # bases are not exported
    archive_bytes: int = 0


@dataclass
class BuiltImages:
    images: dict[str, Built]  # by reference
    bases: dict[str, Built]
    tools: dict[str, str]  # tool: its version line
    storage: Path
    driver: str

    @property
    def archives(self) -> dict[str, Path]:
        return {ref: b.archive for ref, b in self.images.items() if b.archive is not None}

    def summary(self) -> str:
        """One line for a log: each image, whether it was built this time, its size."""
        said = []
        for b in [*self.bases.values(), *self.images.values()]:
            how = "cached" if b.cached else f"built in {b.seconds:.0f}s"
            said.append(f"{b.ref.rsplit('/', 1)[-1]} ({how}, {b.size_bytes / 1e6:.0f} MB)")
        return ", ".join(said)


def images_dir() -> Path:
    return cache_root() / "node" / "images"


def app_version(repo: Path = REPO) -> str:
    """The tag the chart's defaults and the examples use for the project's images."""
    chart = yaml.safe_load((repo / "helm/glidein-operator/Chart.yaml").read_text())
    return str(chart["appVersion"])


def refs(version: str | None = None) -> list[str]:
    v = version or app_version()
    return [image.ref(v) for image in IMAGES]


# --- inputs and their hash -------------------------------------------------------------


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """A Dockerfile's instructions, continuation lines joined, comments left out."""
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        yield keyword.upper(), rest.strip()
        current = ""
    if current.strip():
        keyword, _, rest = current.strip().partition(" ")
        yield keyword.upper(), rest.strip()


def copy_sources(dockerfile_text: str) -> list[str]:
    """The context paths (patterns) a Dockerfile's COPY and ADD take; not those copied
    from another stage."""
    sources: list[str] = []
    for keyword, rest in _instructions(dockerfile_text):
        if keyword not in ("COPY", "ADD"):
            continue
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [a for a in args if not a.startswith("--")]
        sources += paths[:-1]
    return sources


def _skipped(rel: Path) -> bool:
    # Byte code follows from the sources hashed beside it and changes with every
    # interpreter that imports them; it must not make an image look changed.
    return "__pycache__" in rel.parts or rel.suffix in (".pyc", ".pyo")


def input_files(dockerfile: Path, context: Path) -> list[Path]:
    """Every file the build reads from the context (relative paths, sorted), directories
    walked."""
    found: set[Path] = set()
    for pattern in copy_sources(dockerfile.read_text()):
        cleaned = pattern.strip("/")
        matches = sorted(context.glob(cleaned)) if cleaned not in ("", ".") else [context]
        if not matches:
            raise ImagesUnavailable(f"{dockerfile}: COPY source {pattern!r} not in {context}")
        for match in matches:
            if match.is_dir():
                for sub in match.rglob("*"):
                    rel = sub.relative_to(context)
                    if (sub.is_file() or sub.is_symlink()) and not _skipped(rel):
                        found.add(rel)
            elif not _skipped(match.relative_to(context)):
                found.add(match.relative_to(context))
    return sorted(found)


def inputs_hash(dockerfile: Path, context: Path, extra: Mapping[str, str] | None = None) -> str:
    """What an image is made from, as one hash: the Dockerfile, each file it copies (path,
    executable bit, content) and ``extra`` (the base's id)."""
    h = hashlib.sha256()
    h.update(f"recipe {RECIPE_VERSION}\0".encode())
    h.update(b"dockerfile\0" + dockerfile.read_bytes() + b"\0")
    for rel in input_files(dockerfile, context):
        path = context / rel
        if path.is_symlink():
            h.update(f"link {rel}\0{os.readlink(path)}\0".encode())
            continue
        executable = os.access(path, os.X_OK)
        h.update(f"file {rel}\0{int(executable)}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for key, value in sorted((extra or {}).items()):
        h.update(f"extra {key}\0{value}\0".encode())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- tools -----------------------------------------------------------------------------


def _say(log: bool, line: str) -> None:
    if log:
        print(f"[images] {line}", flush=True)


def ensure_tools(log: bool = True) -> dict[str, str]:
    """buildah and mmdebstrap, installed from Debian's packages when missing; their
    version lines."""
    if os.geteuid() != 0:
        raise ImagesUnavailable(
            "building the images needs root (mmdebstrap --mode=root, buildah with chroot "
            f"isolation); as root, with {' '.join(APT_PACKAGES)} installed from Debian "
            f"(apt-get install --no-install-recommends {' '.join(APT_PACKAGES)})"
        )
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise ImagesUnavailable(
                f"{', '.join(missing)} not found and no apt-get to install them: install "
                f"the Debian packages {' '.join(APT_PACKAGES)} (or your distribution's "
                "buildah and mmdebstrap)"
            )
        install = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _say(log, " ".join(install))
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # Stale package lists are the usual reason; refreshing them costs a minute.
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImagesUnavailable(
                f"{' '.join(install)} failed: {done.stderr.strip()[-2000:]}; install "
                f"{' '.join(APT_PACKAGES)} by hand"
            )
    versions = {}
    for tool, flag in (("buildah", "--version"), ("mmdebstrap", "--version")):
        out = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
        versions[tool] = (out.stdout or out.stderr).strip().splitlines()[0]
    return versions


# --- buildah ---------------------------------------------------------------------------


class Buildah:
    """buildah on storage of our own, RUN steps chroot-isolated on the host's network."""

    def __init__(self, root: Path, driver: str | None = None) -> None:
        self.driver = driver or self._probe_driver(root)
        # A storage folder belongs to one driver; a fallback must not reuse overlay's.
        self.storage = root / f"storage-{self.driver}"
        self.runroot = root / f"run-{self.driver}"
        self.env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}

    @staticmethod
    def _probe_driver(root: Path) -> str:
        forced = os.environ.get("GLIDEIN_BUILDAH_DRIVER")
        if forced:
            return forced
        # containers/storage mounts a test overlay when it starts: `info` fails where
        # overlay does not work (an overlay root, an old kernel), and vfs always works.
        probe = [
            "buildah",
            "--root",
            str(root / "storage-overlay"),
            "--runroot",
            str(root / "run-overlay"),
            "--storage-driver",
            "overlay",
            "info",
        ]
        done = subprocess.run(probe, capture_output=True, check=False)
        return "overlay" if done.returncode == 0 else "vfs"

    def cmd(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.storage),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            self.driver,
            *args,
        ]

    def run(self, *args: str, timeout: float = 3600, cwd: Path | None = None) -> str:
        done = subprocess.run(
            self.cmd(*args),
            capture_output=True,
            text=True,
            check=False,
            env=self.env,
            timeout=timeout,
            cwd=cwd,
        )
        if done.returncode != 0:
            raise ImagesUnavailable(
                f"buildah {' '.join(args)} failed ({done.returncode}):\n"
                f"{(done.stdout + done.stderr)[-6000:]}"
            )
        return done.stdout

    def inspect(self, ref: str) -> dict[str, object] | None:
        done = subprocess.run(
            self.cmd("inspect", "--type", "image", ref),
            capture_output=True,
            text=True,
            check=False,
            env=self.env,
        )
        if done.returncode != 0:
            return None
        found: dict[str, object] = json.loads(done.stdout)
        return found

    def image_id(self, ref: str) -> str | None:
        found = self.inspect(ref)
        return str(found["FromImageID"]) if found else None

    def label(self, ref: str, key: str) -> str | None:
        found = self.inspect(ref)
        if not found:
            return None
        oci = found.get("OCIv1")
        config = oci.get("config", {}) if isinstance(oci, dict) else {}
        labels = config.get("Labels") or {}
        value = labels.get(key)
        return str(value) if value is not None else None

    def size(self, ref: str) -> int:
        """Uncompressed bytes of an image's layers, as containers/storage counted them."""
        found = self.inspect(ref)
        if not found:
            return 0
        oci = found.get("OCIv1")
        rootfs = oci.get("rootfs", {}) if isinstance(oci, dict) else {}
        diff_ids = set(rootfs.get("diff_ids") or [])
        layers = json.loads((self.storage / f"{self.driver}-layers/layers.json").read_text())
        sizes = {
            layer["diff-digest"]: int(layer.get("diff-size", 0))
            for layer in layers
            if "diff-digest" in layer
        }
        return sum(sizes.get(d, 0) for d in diff_ids)

    @contextlib.contextmanager
    def container(self, image: str) -> Iterator[str]:
        """A working container, removed afterwards whatever happens."""
        ctr = self.run("from", "--pull=never", "--quiet", image).strip()
        try:
            yield ctr
        finally:
            subprocess.run(self.cmd("rm", ctr), capture_output=True, check=False, env=self.env)


# --- bases -----------------------------------------------------------------------------


def _condor_source() -> tuple[str, Path]:
    """The HTCondor build the pilot base takes its execute side from: the tests' tarball,
    else a relocatable install ``condor_pool`` finds; with a fingerprint for the recipe."""
    tarballs = condor_pool._tarballs()
    if tarballs:
        return f"sha256:{_file_sha256(tarballs[-1])}", tarballs[-1]
    try:
        install = condor_pool.find_condor()
    except condor_pool.CondorNotFound as exc:
        raise ImagesUnavailable(f"the pilot's base needs HTCondor: {exc}") from exc
    if not list((install.root / "lib").glob("libcondor_utils*.so")):
        raise ImagesUnavailable(
            f"HTCondor at {install.root} ({install.origin}) is not a relocatable prefix "
            "(lib/libcondor_utils*.so beside sbin/): put the test tarball htcondor-*.tar.gz "
            "in shared/htcondor/ or set GLIDEIN_CONDOR_TARBALL_DIR"
        )
    h = hashlib.sha256()
    for path in sorted(install.root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            h.update(str(path.relative_to(install.root)).encode() + b"\0")
            h.update(_file_sha256(path).encode())
    return f"tree:{h.hexdigest()}", install.root


def _condor_wanted(rel: str) -> bool:
    """Whether a path of the HTCondor prefix (relative to it) belongs in the execute base."""
    top, _, rest = rel.partition("/")
    if top in CONDOR_DIRS:
        return True
    if top == "sbin":
        return rest == "" or rest in CONDOR_SBIN
    return rel in CONDOR_FILES


def stage_condor(source: Path, target: Path) -> None:
    """The execute side of an HTCondor prefix (a tarball with top folder ``htcondor/``, or
    the unpacked folder) copied to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        with tarfile.open(source) as tar:
            members = []
            for member in tar.getmembers():
                top, _, rel = member.name.lstrip("./").partition("/")
                if top != "htcondor" or not rel or not _condor_wanted(rel):
                    continue
                member.name = rel
                if member.islnk():
                    member.linkname = member.linkname.lstrip("./").partition("/")[2]
                members.append(member)
            tar.extractall(target, members=members, filter="tar")
        return
    for path in sorted(source.rglob("*")):
        rel = str(path.relative_to(source))
        if not _condor_wanted(rel):
            continue
        dest = target / rel
        if path.is_symlink():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(os.readlink(path))
        elif path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def base_recipe(base: Base, condor_fingerprint: str | None) -> str:
    """The hash of everything a base is made from (Debian's packages are taken as they are
    on the day it is built: a new point release alone does not rebuild it)."""
    recipe = {
        "version": RECIPE_VERSION,
        "ref": base.ref,
        "suite": SUITE,
        "mirrors": MIRRORS,
        "dpkg": DPKG_OPTIONS,
        "packages": base.packages,
        "hook": base.hook,
        "env": base.env,
        "cmd": base.cmd,
        "condor": condor_fingerprint,
        "condor_config": CONDOR_CONFIG if base.with_condor else None,
        "condor_config_d": CONDOR_CONFIG_D if base.with_condor else None,
        "condor_sbin": CONDOR_SBIN if base.with_condor else None,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _mmdebstrap(base: Base, work: Path, condor: Path | None, log: bool) -> Path:
    """The base's root file system as a tar."""
    overlay = work / "overlay"
    if condor is not None:
        stage_condor(condor, overlay / CONDOR_PREFIX.lstrip("/"))
        etc = overlay / "etc/condor"
        (etc / "config.d").mkdir(parents=True, exist_ok=True)
        (etc / "condor_config").write_text(CONDOR_CONFIG)
        for name, text in CONDOR_CONFIG_D.items():
            (etc / "config.d" / name).write_text(text)
    hook = work / "hook.sh"
    hook.write_text(base.hook)
    rootfs = work / "rootfs.tar"
    cmd = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--include=" + ",".join(base.packages),
        *(f"--dpkgopt={opt}" for opt in DPKG_OPTIONS),
    ]
    if MERGED_USR_HOOKS.is_dir():
        cmd.append(f"--hook-dir={MERGED_USR_HOOKS}")
    if overlay.exists():
        cmd.append(f'--customize-hook=cp -a {shlex.quote(str(overlay))}/. "$1"/')
    cmd += [f'--customize-hook=sh {shlex.quote(str(hook))} "$1"', SUITE, str(rootfs), *MIRRORS]
    _say(log, f"mmdebstrap {base.ref}: {' '.join(base.packages)}")
    env = {**os.environ, "TMPDIR": str(work)}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=work)
    if done.returncode != 0:
        raise ImagesUnavailable(
            f"mmdebstrap for {base.ref} failed ({done.returncode}):\n{done.stderr[-6000:]}"
        )
    return rootfs


@contextlib.contextmanager
def _work_dir(parent: Path) -> Iterator[Path]:
    """A scratch folder, removed afterwards unless something is still mounted in it: a
    failed mmdebstrap can leave the chroot's /proc or /sys mounted, and removing the tree
    would then reach into the host's."""
    work = Path(tempfile.mkdtemp(dir=parent, prefix="base-"))
    try:
        yield work
    finally:
        mounts = Path("/proc/self/mounts").read_text().split("\n")
        inside = [m.split()[1] for m in mounts if m and m.split()[1].startswith(f"{work}/")]
        if inside:
            raise ImagesUnavailable(f"{work} left in place: still mounted there: {inside}")
        shutil.rmtree(work, ignore_errors=True)


def build_base(buildah: Buildah, base: Base, work_root: Path, log: bool = True) -> Built:
    start = time.monotonic()
    fingerprint, condor = _condor_source() if base.with_condor else (None, None)
    recipe = base_recipe(base, fingerprint)
    if buildah.label(base.ref, RECIPE_LABEL) == recipe:
        _say(log, f"{base.ref}: recipe unchanged, kept")
        return Built(base.ref, time.monotonic() - start, buildah.size(base.ref), cached=True)
    work_root.mkdir(parents=True, exist_ok=True)
    with _work_dir(work_root) as work:
        rootfs = _mmdebstrap(base, work, condor, log)
        with buildah.container("scratch") as ctr:
            buildah.run("add", ctr, str(rootfs), "/")
            config = ["config"]
            for key, value in base.env:
                config += ["--env", f"{key}={value}"]
            config += [
                "--cmd",
                json.dumps(list(base.cmd)),
                "--workingdir",
                "/",
                "--user",
                "0:0",
                "--os",
                "linux",
                "--label",
                f"{RECIPE_LABEL}={recipe}",
                "--label",
                "org.opencontainers.image.description=Built locally by glidein_devkit.node."
                f"images from Debian {SUITE} packages; a test stand-in, not the upstream image",
                ctr,
            ]
            buildah.run(*config)
            buildah.run("commit", "--quiet", "--rm", ctr, base.ref)
    seconds = time.monotonic() - start
    _say(log, f"{base.ref}: built in {seconds:.1f}s")
    return Built(base.ref, seconds, buildah.size(base.ref), cached=False)


# --- the project's images --------------------------------------------------------------


def _build_volumes() -> list[str]:
    """The host's CA bundle for RUN steps only: PyPI may be reached through a
    TLS-inspecting proxy whose CA only the host trusts. Nothing of it stays in a layer."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    return ["--volume", f"{bundle}:{bundle}:ro"] if bundle.is_file() else []


def export_archive(buildah: Buildah, ref: str, archive: Path) -> None:
    """An OCI archive of ``ref`` that names it in full for containerd: buildah writes the
    reference to ``org.opencontainers.image.ref.name``; containerd reads its own
    ``io.containerd.image.name`` first, so both are set."""
    layout = archive.parent / f".{archive.name}.layout"
    shutil.rmtree(layout, ignore_errors=True)
    try:
        buildah.run("push", "--quiet", "--format", "oci", ref, f"oci:{layout}:{ref}")
        index_path = layout / "index.json"
        index = json.loads(index_path.read_text())
        for manifest in index.get("manifests", []):
            annotations = manifest.setdefault("annotations", {})
            annotations["io.containerd.image.name"] = ref
            annotations["org.opencontainers.image.ref.name"] = ref
        index_path.write_text(json.dumps(index, separators=(",", ":")))
        partial = archive.with_name(archive.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("oci-layout", "index.json"):
                tar.add(layout / name, arcname=name)
            for blob in sorted((layout / "blobs").rglob("*")):
                tar.add(blob, arcname=str(blob.relative_to(layout)), recursive=False)
        partial.replace(archive)
    finally:
        shutil.rmtree(layout, ignore_errors=True)


def build_image(
    buildah: Buildah, image: Image, version: str, out: Path, repo: Path = REPO, log: bool = True
) -> Built:
    start = time.monotonic()
    ref = image.ref(version)
    dockerfile = repo / image.dockerfile
    base_id = buildah.image_id(image.base)
    if base_id is None:
        raise ImagesUnavailable(f"{image.base} (the base of {ref}) is not built")
    digest = inputs_hash(dockerfile, repo, {"base": base_id, "ref": ref})
    archive = out / f"{image.name.rsplit('/', 1)[-1]}-{version}.oci.tar"
    stamp = archive.with_name(archive.name + ".inputs.sha256")
    if (
        archive.exists()
        and stamp.exists()
        and stamp.read_text().strip() == digest
        and buildah.image_id(ref) is not None
    ):
        _say(log, f"{ref}: inputs unchanged, kept {archive}")
        return Built(
            ref,
            time.monotonic() - start,
            buildah.size(ref),
            cached=True,
            archive=archive,
            archive_bytes=archive.stat().st_size,
        )
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    _say(log, f"{ref}: buildah build -f {image.dockerfile}")
    buildah.run(
        "build",
        "--layers",
        "--pull=never",
        "--isolation",
        "chroot",
        "--network",
        "host",
        *_build_volumes(),
        "--file",
        str(dockerfile),
        "--tag",
        ref,
        str(repo),
        cwd=repo,
    )
    export_archive(buildah, ref, archive)
    stamp.write_text(digest + "\n")
    seconds = time.monotonic() - start
    _say(log, f"{ref}: built and exported in {seconds:.1f}s")
    return Built(
        ref,
        seconds,
        buildah.size(ref),
        cached=False,
        archive=archive,
        archive_bytes=archive.stat().st_size,
    )


def ensure_images(log: bool = True) -> BuiltImages:
    """The bases and the project's images, built where missing or changed; the archives
    ``ctr images import`` takes."""
    tools = ensure_tools(log)
    root = images_dir()
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / "build.lock"):
        buildah = Buildah(root)
        bases = {base.ref: build_base(buildah, base, root / "work", log) for base in BASES}
        version = app_version()
        images = {
            image.ref(version): build_image(buildah, image, version, root / "archives", log=log)
            for image in IMAGES
        }
    return BuiltImages(images, bases, tools, buildah.storage, buildah.driver)


# --- checks ----------------------------------------------------------------------------

# The pilot's own path as uid 64: write to config.d, start condor_master, query the startd
# through its address file as lifecycle.py does, stop it with condor_off. No collector
# listens on port 9: the startd runs, only its updates fail.
STARTD_SMOKE = """\
set -eu
cat > /etc/condor/config.d/99-devkit-smoke.conf <<EOF
DAEMON_LIST = MASTER, STARTD
COLLECTOR_HOST = 127.0.0.1:9
CCB_ADDRESS =
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
USE_SHARED_PORT = False
RunBenchmarks = False
BASE_CGROUP =
EOF
condor_master -f &
master=$!
trap 'kill -QUIT $master 2>/dev/null || true' EXIT
address=$(condor_config_val STARTD_ADDRESS_FILE)
for _ in $(seq 120); do [ -s "$address" ] && break; sleep 0.5; done
state=$(condor_status -direct "$(head -n 1 "$address")" -af State)
echo "startd state: $state"
condor_off -graceful -daemon master >/dev/null
for _ in $(seq 60); do kill -0 $master 2>/dev/null || break; sleep 0.5; done
trap - EXIT
kill -0 $master 2>/dev/null && { kill -QUIT $master; echo "master needed SIGQUIT"; exit 1; }
ls "$(condor_config_val LOG)"
"""


@dataclass
class Check:
    name: str
    image: str
    user: str
    command: list[str]
    ok: bool = False
    output: str = ""
    seconds: float = 0.0


def checks(version: str | None = None) -> list[Check]:
    operator, pilot = refs(version)
    uid = f"{CONDOR_UID}:{CONDOR_UID}"
    return [
        Check("operator version", operator, "10001:10001", ["glidein-operator", "version"]),
        Check("operator user", operator, "10001:10001", ["id"]),
        Check("pilot user", pilot, uid, ["id"]),
        Check("condor_master -version", pilot, uid, ["condor_master", "-version"]),
        Check("condor_version", pilot, uid, ["condor_version"]),
        Check("import the pilot", pilot, uid, ["python3", "-c", "import glidein_operator.pilot"]),
        Check("pilot --help", pilot, uid, ["python3", "-m", "glidein_operator.pilot", "--help"]),
        Check("startd starts and stops", pilot, uid, ["sh", "-c", STARTD_SMOKE]),
    ]


def verify(version: str | None = None, log: bool = True) -> list[Check]:
    """Run each check in a throwaway container of its image, as the image's user."""
    buildah = Buildah(images_dir())
    done: list[Check] = []
    todo = checks(version)
    for image in dict.fromkeys(c.image for c in todo):
        with buildah.container(image) as ctr:
            for check in (c for c in todo if c.image == image):
                start = time.monotonic()
                proc = subprocess.run(
                    buildah.cmd("run", "--user", check.user, ctr, "--", *check.command),
                    capture_output=True,
                    text=True,
                    check=False,
                    env=buildah.env,
                    timeout=180,
                )
                check.seconds = time.monotonic() - start
                check.ok = proc.returncode == 0
                check.output = (proc.stdout + proc.stderr).strip()
                _say(
                    log,
                    f"{'ok' if check.ok else 'FAILED'} {check.name} ({image} as {check.user}, "
                    f"{check.seconds:.1f}s): " + " | ".join(check.output.splitlines()[:3]),
                )
                done.append(check)
    return done


# --- command line ----------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "-"


def table(built: BuiltImages) -> str:
    rows = [("image", "cached", "seconds", "size", "archive")]
    for b in [*built.bases.values(), *built.images.values()]:
        rows.append(
            (
                b.ref,
                "yes" if b.cached else "no",
                f"{b.seconds:.1f}",
                _mb(b.size_bytes),
                _mb(b.archive_bytes),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m glidein_devkit.node.images",
        description="Build the project's images from Debian packages and export them.",
    )
    p.add_argument("--no-verify", action="store_true", help="skip running checks in them")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        built = ensure_images(log=not args.quiet)
    except ImagesUnavailable as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    print(table(built))
    print(f"storage: {built.storage} ({built.driver}); tools: {'; '.join(built.tools.values())}")
    for ref, archive in built.archives.items():
        print(f"{ref}: {archive}")
    if args.no_verify:
        return 0
    failed = [c for c in verify(log=not args.quiet) if not c.ok]
    for check in failed:
        print(f"FAILED {check.name} in {check.image}:\n{check.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
