"""The grid side on 127.0.0.1, with real HTCondor: a submitting schedd with its gridmanager
(what the chart's grid submitter runs, or a site admin's), a site standing for a compute
entrypoint and its batch system (an HTCondor-CE is a schedd reached by HTCondor-C, with a
batch system behind it: here a schedd and a startd of their own pool), and a web server
the site's curl plugin fetches the HTCondor tarball from.

Each role is a pool of its own (``CondorPool``), with its own signing key and trust
domain, as across real hosts: a client picks a token by the issuer the daemon names.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import pwd
import shutil
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glidein_devkit.condor_pool import SUBMIT_USER, CondorPool, is_root

# The gridmanager and its HTCondor-C GAHP (the knobs of shared/htcondor/README.md); the
# probe intervals are short for the tests' sake (the defaults are 60 s and 300 s).
GRID_KNOBS = """
GRIDMANAGER = $(SBIN)/condor_gridmanager
CONDOR_GAHP = $(SBIN)/condor_c-gahp
CONDOR_GAHP_WORKER = $(SBIN)/condor_c-gahp_worker_thread
GRIDMANAGER_LOG = $(LOG)/GridmanagerLog
C_GAHP_LOG = $(LOG)/GridLogs/CGAHPLog.$(USERNAME)
C_GAHP_LOCK = $(LOG)/GridLogs/CGAHPLock.$(USERNAME)
C_GAHP_WORKER_THREAD_LOG = $(LOG)/GridLogs/CGAHPWorkerLog.$(USERNAME)
C_GAHP_WORKER_THREAD_LOCK = $(LOG)/GridLogs/CGAHPWorkerLock.$(USERNAME)
C_GAHP_WORKER_THREAD.FILE_TRANSFER_STATS_LOG = $(LOG)/GridLogs/transfer_history.$(USERNAME)
C_GAHP.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
C_GAHP_WORKER_THREAD.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
C_GAHP.SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/grid-tokens/$(USERNAME)
C_GAHP_WORKER_THREAD.SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/grid-tokens/$(USERNAME)
GRIDMANAGER_JOB_PROBE_INTERVAL = 5
GRIDMANAGER_RESOURCE_PROBE_INTERVAL = 10
GRIDMANAGER_CONTACT_SCHEDD_DELAY = 1
C_GAHP_CONTACT_SCHEDD_DELAY = 1
"""


def _owner(user: str) -> tuple[int, int]:
    if not is_root():
        return os.getuid(), os.getgid()
    found = pwd.getpwnam(user)
    return found.pw_uid, found.pw_gid


@dataclass
class Submitter(CondorPool):
    """A submitting schedd (collector and schedd of its own; no negotiator is needed for
    grid jobs, but it does no harm) whose gridmanager sends grid-universe jobs on. The
    operator submits as ``user@<trust domain>`` (root: a local account, as in a real
    schedd)."""

    uid_domain: str = "submit.test"
    trust_domain_setting: str | None = "submit.test"
    user: str = SUBMIT_USER if is_root() else pwd.getpwuid(os.getuid()).pw_name

    extra_config: str = GRID_KNOBS

    def _start(self, timeout: float) -> CondorPool:
        grid_logs = self.local / "log" / "GridLogs"
        grid_logs.mkdir(parents=True, exist_ok=True)
        grid_logs.chmod(0o1777)  # the c-gahp runs as the job's owner
        return super()._start(timeout)

    @property
    def token_dir(self) -> Path:
        """Where the gridmanager's GAHP, running as ``user``, finds its tokens."""
        return self.local / "grid-tokens" / self.user

    def queue(self) -> list[str]:
        """Every job in the queue, as ``cluster.proc JobStatus``."""
        out = self.tool("condor_q", "-allusers", "-af", "GlobalJobId", "JobStatus").stdout
        return [line for line in out.splitlines() if line.strip()]


@dataclass
class Site(CondorPool):
    """A compute entrypoint and its batch system: a schedd taking HTCondor-C submissions
    with IDTOKENS, and a startd of ``cpus`` and ``memory_mb`` for the batch slots (one
    partitionable slot: HTCondor 25's default, as most sites' are)."""

    uid_domain: str = "site.test"
    trust_domain_setting: str | None = "site.test"
    with_startd: bool = True
    cpus: int = 4
    memory_mb: int | None = 4096

    def entrypoint_token(self, user: str) -> str:
        """What the site issues a community: an IDTOKEN for ``user`` at this site (a local
        account here, as an HTCondor-CE maps identities to accounts), WRITE only."""
        return self.token_create(f"{user}@{self.uid_domain}", "WRITE")

    def queue(self) -> list[str]:
        out = self.tool("condor_q", "-allusers", "-af", "GlobalJobId", "JobStatus").stdout
        return [line for line in out.splitlines() if line.strip()]


def grid_settings(
    site: Site, submitter: Submitter, key_secret: str, tarball_url: str | None = None
) -> dict[str, Any]:
    """A CloudEntry's ``spec.grid`` (as the API spells it) for pilots at ``site`` through
    ``submitter``, whose signing key is in the Secret ``key_secret``."""
    settings: dict[str, Any] = {
        "ceType": "condor",
        "endpoint": site.collector,
        "scheddName": site.schedd_name,
        "submitter": {
            "collector": submitter.collector,
            "schedd": submitter.schedd_name,
            "trustDomain": submitter.trust_domain,
            "user": submitter.user,
            "tokenSecretRef": {"name": key_secret},
        },
    }
    if tarball_url:
        settings["condorTarballUrl"] = tarball_url
    return settings


def place_tokens(folder: Path, tokens: Mapping[str, bytes], user: str) -> None:
    """Make ``folder`` hold exactly ``tokens`` (file name -> value), each mode 600 and
    owned by ``user``: HTCondor skips, without a word, a token file anyone else can read."""
    uid, gid = _owner(user)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chown(folder, uid, gid)
    folder.chmod(0o700)
    for name, value in tokens.items():
        path = folder / name
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
        os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    for path in folder.iterdir():
        if path.name not in tokens and not path.name.startswith("."):
            path.unlink()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]


@dataclass
class FileServer:
    """Files of one folder over HTTP on 127.0.0.1 (the URL a curl plugin fetches)."""

    folder: Path
    server: http.server.ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None
    requests: list[str] = field(default_factory=list)

    def __enter__(self) -> FileServer:
        handler = functools.partial(_Quiet, directory=str(self.folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.requests = self.requests  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, name: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def __exit__(self, *exc: object) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@contextlib.contextmanager
def served(path: Path) -> Iterator[tuple[FileServer, str]]:
    """``path`` served over HTTP on 127.0.0.1: the server and the file's URL."""
    with FileServer(path.parent) as server:
        yield server, server.url(path.name)


def tarball_copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    if not dst.exists():
        shutil.copy2(src, dst)
    return dst
