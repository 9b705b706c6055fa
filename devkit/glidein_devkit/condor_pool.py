"""A real HTCondor pool on 127.0.0.1 for tests and the demo, and "machines" that run the
real ``glidein-pilot`` against it.

HTCondor is found, in this order: ``$GLIDEIN_CONDOR_ROOT`` (a folder with ``sbin/`` and
``bin/``); ``condor_master`` on ``PATH``; the tarball ``htcondor-*.tar.gz`` in the folder
``$GLIDEIN_CONDOR_TARBALL_DIR`` (default: ``shared/htcondor/`` beside this repository),
unpacked once into ``~/.cache/glidein-operator/`` (``/var/cache/glidein-operator/`` as root:
the daemons' own user must be able to reach the binaries). The HTCondor tarball is a test
dependency only: the project does not ship HTCondor.

The pool is what a community runs: collector, negotiator and schedd (a startd on request),
IDTOKENS for everything that is not a local daemon, the POOL signing key made by the
collector itself (64 random bytes, scrambled, binary), ``TRUST_DOMAIN`` left to HTCondor's
default (``$(COLLECTOR_HOST)``, ``127.0.0.1:<port>``: the port is part of the issuer), every
socket on 127.0.0.1. As root, the daemons run as an unprivileged ``condor`` user and jobs
are submitted by ``glidein-submit``; both are created when missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glidein_devkit.controlplane.assets import file_lock
from glidein_devkit.controlplane.cluster import free_port

REPO = Path(__file__).resolve().parents[2]
CONDOR_USER = "condor"
SUBMIT_USER = "glidein-submit"
INSTALL_HINT = (
    "HTCondor not found: install HTCondor 24+ (its packages put condor_master on PATH), set "
    "GLIDEIN_CONDOR_ROOT to a folder with its sbin/ and bin/, or put the test tarball "
    "htcondor-*.tar.gz in shared/htcondor/ beside this repository"
)


class CondorNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class CondorInstall:
    root: Path  # has sbin/condor_master and bin/condor_q
    origin: str

    @property
    def sbin(self) -> Path:
        return self.root / "sbin"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def path(self, base: str | None = None) -> str:
        base = os.environ.get("PATH", "") if base is None else base
        return f"{self.bin}:{self.sbin}:{base}"

    def version(self) -> str:
        out = subprocess.run(
            [str(self.bin / "condor_version")], capture_output=True, text=True, check=False
        )
        return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _cache() -> Path:
    if is_root():
        # The daemons run as the condor user, which cannot enter /root (mode 700).
        return Path("/var/cache/glidein-operator")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "glidein-operator"


def _install_at(root: Path, origin: str) -> CondorInstall | None:
    if (root / "sbin" / "condor_master").exists() and (root / "bin" / "condor_q").exists():
        return CondorInstall(root, origin)
    return None


def _tarballs() -> list[Path]:
    folder = Path(os.environ.get("GLIDEIN_CONDOR_TARBALL_DIR", REPO.parent / "shared/htcondor"))
    return sorted(folder.glob("htcondor-*.tar.gz")) if folder.is_dir() else []


def find_condor() -> CondorInstall:
    """The HTCondor to test with (see the module docstring), or CondorNotFound saying what
    to install."""
    env_root = os.environ.get("GLIDEIN_CONDOR_ROOT")
    if env_root:
        found = _install_at(Path(env_root), "GLIDEIN_CONDOR_ROOT")
        if found is None:
            raise CondorNotFound(
                f"GLIDEIN_CONDOR_ROOT={env_root} has no sbin/condor_master and bin/condor_q"
            )
        return found
    master = shutil.which("condor_master")
    if master:
        root = Path(master).resolve().parent.parent
        found = _install_at(root, "PATH")
        if found:
            return found
    for tarball in reversed(_tarballs()):
        target = _cache() / tarball.name.removesuffix(".tar.gz")
        found = _install_at(target / "htcondor", f"{tarball} (unpacked in {target})")
        if found:
            return found
        target.mkdir(parents=True, exist_ok=True)
        with file_lock(target / ".lock"):
            if not (target / "htcondor" / "sbin" / "condor_master").exists():
                partial = target / "unpacking"
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir()
                with tarfile.open(tarball) as tar:
                    tar.extractall(partial, filter="tar")
                (partial / "htcondor").rename(target / "htcondor")
                shutil.rmtree(partial, ignore_errors=True)
        found = _install_at(target / "htcondor", f"{tarball} (unpacked in {target})")
        if found:
            return found
    raise CondorNotFound(INSTALL_HINT)


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def condor_ids() -> str:
    """``uid.gid`` the daemons run as: the ``condor`` user as root, else ourselves."""
    if is_root():
        u = ensure_user(CONDOR_USER)
        return f"{u.pw_uid}.{u.pw_gid}"
    return f"{os.getuid()}.{os.getgid()}"


def chown_to_daemons(*paths: Path) -> None:
    if is_root():
        uid, gid = (int(x) for x in condor_ids().split("."))
        for p in paths:
            os.chown(p, uid, gid)


# Knobs every daemon here gets: loopback only, nothing that touches the host, fast cycles.
BASE_KNOBS = """
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
USE_SHARED_PORT = False
LOCAL_CONFIG_FILE =
REQUIRE_LOCAL_CONFIG_FILE = False
CONDOR_ADMIN =
MAIL = /bin/true
DOCKER =
JAVA =
BASE_CGROUP =
RunBenchmarks = False
BENCHMARKS_JOBLIST =
FILETRANSFER_PLUGINS = $(LIBEXEC)/curl_plugin, $(LIBEXEC)/data_plugin
UPDATE_INTERVAL = 5
UPDATE_OFFSET = 0
MASTER_UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
SHADOW_QUEUE_UPDATE_INTERVAL = 5
JOB_START_DELAY = 0
SUSPEND = False
CONTINUE = True
PREEMPT = False
KILL = False
WANT_SUSPEND = False
WANT_VACATE = False
"""


def local_dirs(local: Path) -> None:
    for sub in ("log", "spool", "execute", "lock", "run"):
        (local / sub).mkdir(parents=True, exist_ok=True)
        chown_to_daemons(local / sub)
    for sub in ("passwords.d", "tokens.d"):
        (local / sub).mkdir(parents=True, exist_ok=True)
        (local / sub).chmod(0o700)
    local.chmod(0o755)
    (local / "execute").chmod(0o755)


def condor_env(
    install: CondorInstall, config: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment for HTCondor commands of one configuration: none of our
    own HTCondor or payload settings leak in, the binaries find their libraries by RUNPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("_CONDOR_", "GLIDEIN_PAYLOAD", "AWS_EC2_METADATA"))
    }
    env.pop("LD_LIBRARY_PATH", None)
    env.update(CONDOR_CONFIG=str(config), PATH=install.path())
    env.update(extra or {})
    return env


def show_logs(*folders: Path, lines: int = 25) -> str:
    """The end of every daemon log under ``folders`` (for a failing test's report)."""
    out = []
    for folder in folders:
        for log in sorted(folder.rglob("*Log*")):
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log}\n" + "\n".join(tail))
    return "\n".join(out)


@dataclass
class Master:
    """One condor_master and what it started, stopped by process group."""

    install: CondorInstall
    config: Path
    local: Path
    process: subprocess.Popen[bytes] | None = None

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return condor_env(self.install, self.config, extra)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.install.sbin / "condor_master"), "-f"],
            env=self.env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def tool(
        self, *args: str, check: bool = True, timeout: float = 60, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        binary = self.install.bin / args[0]
        if not binary.exists():
            binary = self.install.sbin / args[0]
        cmd = [str(binary), *args[1:]]
        if user and is_root():
            cmd = ["runuser", "-u", user, "--", *cmd]
        return subprocess.run(
            cmd, env=self.env(), capture_output=True, text=True, check=check, timeout=timeout
        )

    def stop(self, timeout: float = 20) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        # Each daemon runs in a session of its own: remember them before the master goes.
        daemons = descendants(proc.pid)
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGQUIT)  # the master's fast shutdown of its children
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        kill_all(daemons)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_all(pids: Sequence[int]) -> None:
    """SIGKILL what is left of ``pids``: nothing a test started may outlive it."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class CondorPool:
    """A user pool: collector, negotiator, schedd (and a startd when asked)."""

    install: CondorInstall
    workdir: Path
    with_startd: bool = False
    read_needs_auth: bool = False
    port: int = field(default_factory=free_port)
    uid_domain: str = "glidein.test"
    trust_domain_setting: str | None = None  # None: $(COLLECTOR_HOST)
    master: Master | None = None
    ready_seconds: float = 0.0
    cpus: int = 1  # the startd's NUM_CPUS
    memory_mb: int | None = None  # the startd's MEMORY; None: what the host has
    extra_config: str = ""  # appended to the configuration

    @property
    def collector(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def trust_domain(self) -> str:
        return self.trust_domain_setting or self.collector

    @property
    def local(self) -> Path:
        return self.workdir / "pool"

    @property
    def signing_key_file(self) -> Path:
        return self.local / "passwords.d" / "POOL"

    def signing_key(self) -> bytes:
        """The POOL key file's bytes, as ``kubectl create secret --from-file`` stores them."""
        return self.signing_key_file.read_bytes()

    @property
    def schedd_name(self) -> str:
        return f"schedd@{self.uid_domain}"

    def config_text(self) -> str:
        daemons = "MASTER COLLECTOR NEGOTIATOR SCHEDD" + (" STARTD" if self.with_startd else "")
        read = (
            f"SEC_READ_AUTHENTICATION = REQUIRED\nALLOW_READ = *@{self.uid_domain}, glidein-*@*\n"
            if self.read_needs_auth
            else "SEC_READ_AUTHENTICATION = OPTIONAL\nALLOW_READ = *\n"
        )
        return f"""# Written by glidein_devkit.condor_pool
RELEASE_DIR = {self.install.root}
LOCAL_DIR = {self.local}
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
LOCAL_CONFIG_DIR =
CONDOR_IDS = {condor_ids()}
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = {self.collector}
UID_DOMAIN = {self.uid_domain}
FILESYSTEM_DOMAIN = {self.uid_domain}
TRUST_DOMAIN = {self.trust_domain_setting or "$(COLLECTOR_HOST)"}
DAEMON_LIST = {daemons}
SCHEDD_NAME = schedd@{self.uid_domain}
{BASE_KNOBS}
NUM_CPUS = {self.cpus}
{f"MEMORY = {self.memory_mb}" if self.memory_mb else ""}
START = True
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
NEGOTIATOR_UPDATE_INTERVAL = 5

# Security: local daemons and tools by FS; everything from outside (pilots, the operator)
# by IDTOKENS signed with the POOL key the collector creates on first start.
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION = OPTIONAL
SEC_DEFAULT_INTEGRITY = REQUIRED
SEC_DEFAULT_ENCRYPTION = OPTIONAL
SEC_PASSWORD_DIRECTORY = $(LOCAL_DIR)/passwords.d
SEC_TOKEN_POOL_SIGNING_KEY_FILE = $(SEC_PASSWORD_DIRECTORY)/POOL
SEC_TOKEN_SYSTEM_DIRECTORY = $(LOCAL_DIR)/tokens.d
SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d
{read}DAEMON_IDS = root@{self.uid_domain}, {CONDOR_USER}@{self.uid_domain}, {pwd.getpwuid(os.getuid()).pw_name}@{self.uid_domain}
ALLOW_WRITE = *@{self.uid_domain}
ALLOW_DAEMON = $(DAEMON_IDS)
ALLOW_NEGOTIATOR = $(DAEMON_IDS)
ALLOW_ADMINISTRATOR = $(DAEMON_IDS)
ALLOW_ADVERTISE_SCHEDD = $(DAEMON_IDS)
# Pilots: the operator mints glidein-<batch>@<domain>; one pattern admits them all.
ALLOW_ADVERTISE_MASTER = $(DAEMON_IDS), glidein-*@*
ALLOW_ADVERTISE_STARTD = $(DAEMON_IDS), glidein-*@*
# Startds that advertise through a token ask the collector to keep the identity.
COLLECTOR_DEBUG = D_SECURITY
{self.extra_config}
"""

    def start(self, timeout: float = 120) -> CondorPool:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> CondorPool:
        t0 = time.monotonic()
        if is_root():
            ensure_user(SUBMIT_USER)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        local_dirs(self.local)
        config = self.workdir / "condor_config"
        config.write_text(self.config_text())
        self.master = Master(self.install, config, self.local)
        self.master.start()
        self.wait_ready(timeout)
        self.ready_seconds = time.monotonic() - t0
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.master and self.master.process and self.master.process.poll() is not None:
                raise RuntimeError(
                    f"condor_master exited ({self.master.process.returncode})\n"
                    + show_logs(self.local / "log")
                )
            schedds = self.tool("condor_status", "-schedd", "-af", "Name", check=False)
            key = self.signing_key_file.exists()
            slots = (
                self.tool("condor_status", "-af", "Name", check=False).stdout.strip()
                if self.with_startd
                else "-"
            )
            if schedds.returncode == 0 and schedds.stdout.strip() and key and slots:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"pool at {self.collector} not ready in {timeout:.0f}s\n"
                    + show_logs(self.local / "log")
                )
            time.sleep(0.5)

    def tool(
        self, *args: str, check: bool = True, timeout: float = 60, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert self.master is not None
        return self.master.tool(*args, check=check, timeout=timeout, user=user)

    def token_create(self, identity: str, *authz: str, lifetime: int = 3600) -> str:
        """A token from ``condor_token_create`` (HTCondor's own signer)."""
        args = ["condor_token_create", "-identity", identity, "-key", "POOL"]
        args += [a for z in authz for a in ("-authz", z)]
        args += ["-lifetime", str(lifetime)]
        return self.tool(*args).stdout.strip()

    def submit(self, description: str, count: int = 1, directory: Path | None = None) -> int:
        """Queue ``count`` jobs as the submitter; the cluster id."""
        folder = directory or (self.workdir / "submit")
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        sub = folder / f"job-{time.monotonic_ns()}.sub"
        sub.write_text(description.rstrip() + f"\ninitialdir = {folder}\nqueue {count}\n")
        sub.chmod(0o644)
        out = self.tool(
            "condor_submit", "-terse", str(sub), user=SUBMIT_USER if is_root() else None
        ).stdout
        return int(out.strip().split(".")[0])

    def logs(self) -> str:
        return show_logs(self.local / "log")

    def log_lines(self, daemon: str, needle: str) -> list[str]:
        path = self.local / "log" / f"{daemon}Log"
        if not path.exists():
            return []
        return [line for line in path.read_text(errors="replace").splitlines() if needle in line]

    def stop(self) -> None:
        if self.master:
            self.master.stop()

    def __enter__(self) -> CondorPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def job(
    *,
    executable: str = "/bin/sleep",
    arguments: str = "1",
    cpus: int = 1,
    memory_mb: int = 64,
    requirements: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """A submit description (without ``queue``) for a small vanilla job."""
    lines = [
        f"executable = {executable}",
        f"arguments = {arguments}",
        f"request_cpus = {cpus}",
        f"request_memory = {memory_mb}M",
        "request_disk = 10M",
        "should_transfer_files = YES",
        "when_to_transfer_output = ON_EXIT",
        "log = jobs.log",
    ]
    if requirements:
        lines.append(f"requirements = {requirements}")
    lines += list(extra)
    return "\n".join(lines)


@dataclass
class PilotMachine:
    """A "VM" on this host: its own folder, a base HTCondor configuration standing for the
    pilot image's ``/etc/condor/condor_config`` (which includes ``config.d/``), and the real
    ``glidein-pilot`` run as a process group. Its power-off writes ``poweroff`` in its
    folder and stops its processes."""

    install: CondorInstall
    folder: Path
    name: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.folder / "condor_config"

    @property
    def config_dir(self) -> Path:
        return self.folder / "config.d"

    @property
    def token_dir(self) -> Path:
        return self.folder / "tokens.d"

    @property
    def boot_log(self) -> Path:
        return self.folder / "boot.log"

    @property
    def powered_off(self) -> bool:
        return (self.folder / "poweroff").exists()

    def image_config(self) -> str:
        # Names are per machine: two "VMs" share this host's name, real ones do not.
        return f"""# The pilot image's base configuration (glidein_devkit.condor_pool)
RELEASE_DIR = {self.install.root}
LOCAL_DIR = {self.folder}/condor
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
LOCAL_CONFIG_DIR = {self.config_dir}
CONDOR_IDS = {condor_ids()}
UID_DOMAIN = glidein.test
FILESYSTEM_DOMAIN = {self.name}.glidein.test
MASTER_NAME = {self.name}
STARTD_NAME = {self.name}
# What HTCondor's packages install (00-security): local root and condor may administer.
use security:recommended
{BASE_KNOBS}
"""

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        local_dirs(self.folder / "condor")
        self.config_dir.mkdir(exist_ok=True)
        self.config.write_text(self.image_config())

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return condor_env(self.install, self.config, extra)

    def shutdown_script(self) -> Path:
        script = self.folder / "poweroff.sh"
        script.write_text(
            "#!/bin/sh\n"
            f"touch {self.folder}/poweroff\n"
            # A VM's power-off ends everything in it: the harness sees the file and pulls
            # the plug (PilotMachine.stop), as the cloud does after shutdown.
            "exit 0\n"
        )
        script.chmod(0o755)
        return script

    @staticmethod
    def pilot_command() -> str:
        return shutil.which("glidein-pilot") or str(Path(sys.executable).parent / "glidein-pilot")

    def boot(
        self,
        payload: bytes | None,
        *,
        pilot_id: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Run ``glidein-pilot``. A ``payload`` is delivered the way a pod or grid job gets
        it (``GLIDEIN_PAYLOAD_FILE``); without one, ``env`` says where the pilot finds it
        (e.g. a metadata service)."""
        self.prepare()
        extra_env = {}
        if payload is not None:
            (self.folder / "user-data").write_bytes(payload)
            extra_env["GLIDEIN_PAYLOAD_FILE"] = str(self.folder / "user-data")
        if pilot_id:
            extra_env["GLIDEIN_PILOT_ID"] = pilot_id
        extra_env.update(env or {})
        out = (self.folder / "pilot.out").open("wb")
        self.process = subprocess.Popen(
            [
                self.pilot_command(),
                "--config-dir",
                str(self.config_dir),
                "--token-dir",
                str(self.token_dir),
                "--log",
                str(self.boot_log),
                "--shutdown-command",
                str(self.shutdown_script()),
                *extra_args,
            ],
            env=self.env(extra_env),
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        return self.process

    def crash_at_boot(self, message: str) -> None:
        """A machine whose image does not get as far as the pilot: it prints ``message``
        on its console and powers itself off."""
        self.prepare()
        self.boot_log.write_text(message + "\n")
        script = self.shutdown_script()
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", f"sleep 1; {script}"], start_new_session=True
        )

    def start_startd(self, collector: str, token: str, trust_domain: str) -> None:
        """A bare master + startd joining ``collector`` with ``token`` and nothing else (no
        pilot): for checking what a collector accepts."""
        self.prepare()
        self.token_dir.mkdir(mode=0o700, exist_ok=True)
        path = self.token_dir / "token"
        path.write_text(token + "\n")
        path.chmod(0o600)
        (self.config_dir / "50-startd.conf").write_text(
            f"""COLLECTOR_HOST = {collector}
TRUST_DOMAIN = {trust_domain}
DAEMON_LIST = MASTER, STARTD
SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
SEC_TOKEN_DIRECTORY = {self.token_dir}
NUM_CPUS = 1
START = True
GlideinPilotId = "{self.name}"
STARTD_ATTRS = $(STARTD_ATTRS) GlideinPilotId
"""
        )
        self.process = subprocess.Popen(
            [str(self.install.sbin / "condor_master"), "-f"],
            env=self.env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def log_lines(self, daemon: str, needle: str) -> list[str]:
        path = self.folder / "condor" / "log" / f"{daemon}Log"
        if not path.exists():
            return []
        return [line for line in path.read_text(errors="replace").splitlines() if needle in line]

    def logs(self) -> str:
        text = self.boot_log.read_text(errors="replace") if self.boot_log.exists() else ""
        return f"--- {self.boot_log}\n{text}\n" + show_logs(self.folder / "condor" / "log")

    def stop(self) -> None:
        """Pull the plug: the pilot and every daemon below it."""
        proc = self.process
        if proc is None:
            return
        kill_all([proc.pid, *descendants(proc.pid)])
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
