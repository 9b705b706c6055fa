"""The real Pool with a deadline: htcondor2 queries run in a worker process that can be killed.

Why a process. A collector or schedd that accepts the connection and never answers keeps
an htcondor2 call going for about a minute, and the bindings hold the GIL all that time:
no other thread runs, so ``asyncio.to_thread`` does not help and the whole operator
stops, every other pool's request included. A thread cannot be abandoned either. So each
pool object has one long-lived worker process; a query not answered within ``deadline``
seconds kills the worker (and its process group) and fails with a CondorError naming the
daemon that did not answer, and the next query starts a fresh worker. One hung pool costs
only its own queries, which wait for one another: a pool's queries go one at a time.

A worker is a fresh interpreter (``sys.executable``, started like ``spawn`` does), never a
fork of the multi-threaded operator, and not a multiprocessing child either: those
re-import the operator's ``__main__`` in every worker. It talks over a socket pair with
multiprocessing's ``Connection`` framing; the token goes through it, not the command line.
ClassAds cross back as their ``repr`` (the new ClassAd syntax), one string per ad, read
with ``classad2.ClassAd(text)``: that keeps expressions unevaluated, strings byte for
byte, lists, nested ads, undefined/error and empty ads (a concatenation parsed with
``parseAds`` drops empty ads, and ``printOld`` mangles strings with newlines). Reals keep
the 16 significant digits HTCondor's own wire protocol carries.

The parent waits in ``Connection.poll``, which releases the GIL; the async methods do
that wait on this pool's own thread, so a hung pool holds neither the event loop nor the
loop's shared default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import classad2

from glidein_operator.condor.interface import CondorError

# A healthy schedd answers for tens of thousands of jobs in a few seconds; HTCondor's own
# client gives up after about a minute.
DEFAULT_DEADLINE = 30.0

# Replies from the worker: (kind, payload).
_ADS = "ads"  # payload: list[str], one repr per ad
_LOCATED = "located"  # the collector answered with the schedd's ad; its query follows
_CONDOR_ERROR = "condor"  # payload: the CondorError's message
_FAILED = "failed"  # payload: anything else the worker raised

# Where glidein_operator is imported from, for the worker (tests run it from a checkout).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

_default_dir: Path | None = None
_default_dir_lock = threading.Lock()


def _token_dir(token_dir: Path | None) -> Path:
    # Made here, once per operator process, rather than by each worker (htcondor.py makes
    # one per process): a worker killed and restarted would leave a folder each time.
    global _default_dir
    if token_dir is not None:
        return token_dir
    with _default_dir_lock:
        if _default_dir is None:
            _default_dir = Path(tempfile.mkdtemp(prefix="glidein-operator-tokens-"))
        return _default_dir


def worker_main(fd: int) -> None:
    """The worker: configured by its first message, then one query per message until the
    operator closes the socket."""
    conn = Connection(fd)
    from glidein_operator.condor.htcondor import HTCondorPool

    try:
        collector, token, token_dir = conn.recv()
    except (EOFError, OSError):
        return
    pool: HTCondorPool | None = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the pool object was dropped, or the operator is gone
        reply: tuple[str, Any]
        try:
            if pool is None:
                pool = HTCondorPool(collector, token, Path(token_dir))
            if request[0] == "slots":
                ads = pool.slot_ads(request[1], request[2])
            elif request[0] == "ping":
                ads = [pool.ping(request[1])]
            else:
                _, schedd, constraint, projection = request
                located = pool.schedd(schedd)
                conn.send((_LOCATED, None))
                ads = pool.query_idle(located, schedd, constraint, projection)
            reply = (_ADS, [repr(ad) for ad in ads])
        except CondorError as exc:
            reply = (_CONDOR_ERROR, str(exc))
        except Exception as exc:  # a bug or a surprise of the bindings: said, not hidden
            reply = (_FAILED, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except OSError:
            return


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection

    def stop(self) -> None:
        # The worker leads its own session: its group goes with it, whatever it started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.conn.close()


class IsolatedPool:
    """A user pool reached through its collector (``host[:port]``), every query in a
    worker process given ``deadline`` seconds. Implements ``Pool``; the ``*_async``
    methods are for callers on the event loop (``PoolReader`` uses them)."""

    def __init__(
        self,
        collector: str,
        token: str | None = None,
        token_dir: Path | None = None,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.collector_address = collector
        self.deadline = deadline
        self._token = token
        self._token_dir = _token_dir(token_dir)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        # The async methods wait here, not on the loop's default executor: a hung pool
        # then holds one thread of its own and nobody else's.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="condor-query")

    # --- Pool ------------------------------------------------------------------------

    def idle_jobs(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        return self._ask(("idle", schedd, constraint, list(projection)), schedd)

    def slot_ads(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        return self._ask(("slots", constraint, list(projection)), None)

    def ping(self, authz: str) -> classad2.ClassAd:
        """``HTCondorPool.ping`` (the collector's answer to ``condor_ping <authz>``) in
        the worker; its security log goes to this pool's token folder."""
        return self._ask(("ping", authz), None)[0]

    async def idle_jobs_async(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        call = functools.partial(self.idle_jobs, schedd, constraint, projection)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def slot_ads_async(
        self, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        call = functools.partial(self.slot_ads, constraint, projection)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def close(self) -> None:
        """Stop the worker and this pool's thread."""
        with self._lock:
            self._stop_worker()
        self._thread.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:
        # A reader given a renewed token drops its old pool: its worker goes too.
        with contextlib.suppress(Exception):
            self._stop_worker()

    @property
    def worker_pid(self) -> int | None:
        """The current worker's process id (None before the first query or after a kill)."""
        worker = self._worker
        return worker.process.pid if worker else None

    # --- the worker ------------------------------------------------------------------

    def _start_worker(self) -> _Worker:
        ours, theirs = socket.socketpair()
        code = (
            f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
            "from glidein_operator.condor.isolated import worker_main; "
            f"worker_main({theirs.fileno()})"
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise CondorError(f"cannot start a query worker: {exc}") from exc
        finally:
            theirs.close()  # the worker's death then reads as EOF here
        worker = _Worker(process, Connection(ours.detach()))
        try:
            worker.conn.send((self.collector_address, self._token, str(self._token_dir)))
        except OSError as exc:
            worker.stop()
            raise CondorError(f"the query worker for {self.collector_address} died: {exc}") from exc
        self._worker = worker
        return worker

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def _ask(self, request: tuple[Any, ...], schedd: str | None) -> list[classad2.ClassAd]:
        with self._lock:
            kind, payload = self._exchange(request, schedd)
        if kind == _CONDOR_ERROR:
            raise CondorError(payload)
        if kind == _FAILED:
            raise CondorError(f"query of {self._target(schedd)} failed: {payload}")
        # One ClassAd() call per ad: between them, other threads get the GIL.
        return [classad2.ClassAd(text) for text in payload]

    def _exchange(self, request: tuple[Any, ...], schedd: str | None) -> tuple[str, Any]:
        worker = self._worker or self._start_worker()
        ends = time.monotonic() + self.deadline
        located = False
        try:
            worker.conn.send(request)
            while True:
                # poll() waits in select() without the GIL.
                if not worker.conn.poll(max(0.0, ends - time.monotonic())):
                    self._stop_worker()
                    raise CondorError(self._silent(schedd, located, request[0]))
                kind, payload = worker.conn.recv()
                if kind != _LOCATED:
                    return kind, payload
                located = True
        except (EOFError, OSError) as exc:
            self._stop_worker()
            raise CondorError(
                f"the query worker for {self._target(schedd)} ended (exit code "
                f"{worker.process.returncode}) before answering"
            ) from exc

    def _target(self, schedd: str | None) -> str:
        if schedd is None:
            return f"collector {self.collector_address}"
        return f"schedd {schedd!r} via {self.collector_address}"

    def _silent(self, schedd: str | None, located: bool, kind: str = "") -> str:
        wait = f"{self.deadline:g}s"
        if kind == "ping":
            return (
                f"collector {self.collector_address} did not answer a ping within {wait}: abandoned"
            )
        if schedd is None:
            return (
                f"collector {self.collector_address} did not answer a query of its slot ads "
                f"within {wait}: abandoned"
            )
        if not located:
            return (
                f"collector {self.collector_address} did not answer within {wait} when asked "
                f"where schedd {schedd!r} is: abandoned"
            )
        return (
            f"schedd {schedd!r} (located via {self.collector_address}) did not answer its "
            f"job query within {wait}: abandoned"
        )
