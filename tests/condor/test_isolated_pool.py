"""The isolated pool (condor/isolated.py) against real daemons: a collector that accepts
and never answers costs only its own queries, within their deadline, while the event loop
and a healthy pool carry on; and what it reads is what HTCondorPool reads."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import classad2
import pytest

from glidein_devkit.condor_pool import CondorPool, PilotMachine, job
from glidein_operator.condor.htcondor import HTCondorPool
from glidein_operator.condor.interface import CondorError
from glidein_operator.condor.isolated import IsolatedPool
from glidein_operator.condor.pilots import STARTD_PROJECTION
from glidein_operator.condor.reader import PoolReader
from tests.condor.support import eventually, operator_token, pilot_token, wrong_domain_token
from tests.relay import Relay

DEADLINE = 2.0
MARGIN = 1.0  # killing the worker and the event loop's own latency
NOWHERE = 'TARGET.GLIDEIN_Site =?= "nowhere"'
# Matches no slot: the session's pool may still list pilots of earlier tests.
NOBODY = 'Name =?= "nobody"'


@pytest.fixture
def hung() -> Iterator[Relay]:
    relay = Relay()
    yield relay
    relay.close()


def _one(ads: list[classad2.ClassAd]) -> list[str]:
    # ServerTime is the schedd's clock at each query: the one attribute that must differ.
    out = []
    for ad in ads:
        ad = classad2.ClassAd(repr(ad))
        if "ServerTime" in ad:
            del ad["ServerTime"]
        out.append(repr(ad))
    return sorted(out)


def test_a_collector_that_never_answers_costs_only_its_own_queries(
    pool: CondorPool, hung: Relay
) -> None:
    stuck = IsolatedPool(hung.address, deadline=DEADLINE)
    healthy = IsolatedPool(pool.collector, operator_token(pool), deadline=DEADLINE)
    stuck_reader, healthy_reader = PoolReader(stuck, ttl=0), PoolReader(healthy, ttl=0)

    async def run() -> tuple[list[float], list[float], list[tuple[float, object]]]:
        # As many default-executor threads as stuck queries: were they waiting there, the
        # healthy reader (which clusters jobs on that executor) would wait too.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        t0 = time.monotonic()

        async def ended(query: Coroutine[Any, Any, object]) -> tuple[float, object]:
            try:
                result = await query
            except CondorError as exc:
                result = exc
            return time.monotonic() - t0, result

        stuck_queries = [
            asyncio.create_task(ended(stuck_reader.pilots(time.time()))),
            asyncio.create_task(ended(stuck_reader.clusters("schedd@nowhere", ("true",)))),
        ]
        await asyncio.sleep(0.3)  # the stuck queries are in flight
        healthy_took = []
        for _ in range(3):
            started = time.monotonic()
            await healthy_reader.clusters(pool.schedd_name, ("true",))
            await healthy_reader.pilots(time.time())
            healthy_took.append(time.monotonic() - started)
        outcomes = await asyncio.gather(*stuck_queries)
        done.set()
        await ticking
        return gaps, healthy_took, outcomes

    try:
        gaps, healthy_took, stuck_ended = asyncio.run(run())
        (first, error1), (second, error2) = sorted(stuck_ended, key=lambda r: r[0])
        assert isinstance(error1, CondorError), error1
        assert isinstance(error2, CondorError), error2
        # The stuck pool's queries wait for one another, a deadline each at most.
        assert DEADLINE <= first < DEADLINE + MARGIN
        assert second < 2 * DEADLINE + MARGIN
        said = f"{error1} | {error2}"
        wait = f"within {DEADLINE:g}s"
        assert f"collector {hung.address} did not answer a query of its slot ads {wait}" in said
        assert f"did not answer {wait} when asked where schedd 'schedd@nowhere' is" in said
        assert max(healthy_took) < 1.0, healthy_took
        assert max(gaps) < 0.5, max(gaps)
        # Killed; the next query starts a fresh worker (the next test shows it).
        assert stuck.worker_pid is None
    finally:
        stuck.close()
        healthy.close()


def test_a_worker_killed_or_dead_is_replaced_by_a_fresh_one(pool: CondorPool) -> None:
    relay = Relay(pool.collector)
    isolated = IsolatedPool(relay.address, operator_token(pool), deadline=DEADLINE)
    try:
        assert isolated.slot_ads(NOBODY, ["Name"]) == []
        first = isolated.worker_pid
        relay.silent = True
        t0 = time.monotonic()
        with pytest.raises(CondorError, match=f"collector {relay.address} did not answer"):
            isolated.slot_ads(NOBODY, ["Name"])
        assert time.monotonic() - t0 < DEADLINE + MARGIN
        relay.silent = False
        assert isolated.slot_ads(NOBODY, ["Name"]) == []
        second = isolated.worker_pid
        assert second not in (None, first)
        # A worker that dies mid-query (the OOM killer, a crash in the bindings) is
        # reported at once, not at the deadline, and replaced too.
        relay.silent = True
        threading.Timer(0.3, os.kill, (second, signal.SIGKILL)).start()
        t0 = time.monotonic()
        with pytest.raises(CondorError, match=r"ended \(exit code -9\) before answering"):
            isolated.slot_ads(NOBODY, ["Name"])
        assert time.monotonic() - t0 < DEADLINE
        relay.silent = False
        assert isolated.slot_ads(NOBODY, ["Name"]) == []
    finally:
        isolated.close()
        relay.close()


def test_it_reads_what_htcondor_pool_reads(
    pool: CondorPool, machine: Callable[[], PilotMachine]
) -> None:
    probe = uuid.uuid4().hex
    tricky = [
        f'+Probe = "{probe}"',
        '+Text = "quotes \\" and a backslash \\\\ and é"',
        "+Ratio = 0.30000000000000004",
        '+Shares = {1, 2.5, "x"}',
        "+Later = ifThenElse(RequestCpus > 1, RequestCpus * 2, undefined)",
    ]
    cluster = pool.submit(job(cpus=2, requirements=NOWHERE, extra=tricky), 3)
    token = operator_token(pool)
    direct = HTCondorPool(pool.collector, token)
    isolated = IsolatedPool(pool.collector, token, deadline=10)
    try:
        projection = ["Probe", "Text", "Ratio", "Shares", "Later", "RequestCpus", "Missing"]
        constraint = f'Probe == "{probe}"'
        theirs = direct.idle_jobs(pool.schedd_name, constraint, projection)
        ours = isolated.idle_jobs(pool.schedd_name, constraint, projection)
        assert len(ours) == 3
        assert _one(ours) == _one(theirs)
        # Nothing evaluated on the way: the expression is still one.
        assert isinstance(ours[0].lookup("Later"), classad2.ExprTree)
        assert ours[0].eval("Later") == 4
        # An ad without any projected attribute still counts (an empty ad is an ad).
        bare = isolated.idle_jobs(pool.schedd_name, constraint, ["NoSuchAttribute"])
        assert len(bare) == len(direct.idle_jobs(pool.schedd_name, constraint, ["NoSuchAttribute"]))

        m = machine()
        m.start_startd(pool.collector, pilot_token(pool), pool.trust_domain)
        mine = f'GlideinPilotId == "{m.name}"'
        eventually(lambda: direct.slot_ads(mine, STARTD_PROJECTION), 60, "the slot ad")
        assert _one(isolated.slot_ads(mine, STARTD_PROJECTION)) == _one(
            direct.slot_ads(mine, STARTD_PROJECTION)
        )
    finally:
        isolated.close()
        # Other tests count the session pool's idle jobs.
        pool.tool("condor_rm", str(cluster))


def test_its_errors_say_what_htcondor_pool_says(pool: CondorPool, tmp_path: Path) -> None:
    token = operator_token(pool)
    isolated = IsolatedPool(pool.collector, token, deadline=10)
    try:
        for who in (HTCondorPool(pool.collector, token), isolated):
            with pytest.raises(CondorError) as err:
                who.idle_jobs("schedd@nowhere.example.org", "true", ["Owner"])
            assert str(err.value) == (
                f"schedd 'schedd@nowhere.example.org' is not in the collector {pool.collector}: "
                "stopped, or not advertising"
            )
    finally:
        isolated.close()
    # Token folders of their own: this process's shared one holds the pool's good token by
    # now, which HTCondor would pick whatever was offered.
    wrong = wrong_domain_token(pool)
    anonymous = IsolatedPool(pool.collector, token_dir=tmp_path / "none", deadline=10)
    refused = IsolatedPool(pool.collector, wrong, tmp_path / "wrong", deadline=10)
    try:
        with pytest.raises(CondorError, match="cannot locate schedd"):
            anonymous.idle_jobs(pool.schedd_name, "true", ["Owner"])
        with pytest.raises(CondorError) as err:
            refused.slot_ads("true", ["Name"])
        said = str(err.value)
        assert said.startswith(f"query of collector {pool.collector} failed: ")
        assert said.endswith(
            " (offering a token for glidein-operator@cm.wrong.example.org issued by "
            "cm.wrong.example.org: is that the pool's TRUST_DOMAIN, and its signing key?)"
        )
    finally:
        anonymous.close()
        refused.close()
