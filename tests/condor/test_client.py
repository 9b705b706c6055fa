"""The operator's HTCondor client (condor/htcondor.py) against a real schedd and
collector: what it reads, how it authenticates, and what it says when a daemon is gone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from glidein_devkit.condor_pool import (
    CondorPool,
    PilotMachine,
    job,
)
from glidein_operator.condor.htcondor import HTCondorPool
from glidein_operator.condor.interface import CondorError
from glidein_operator.condor.jobs import significant_attributes
from glidein_operator.condor.pilots import STARTD_PROJECTION, SlotState
from glidein_operator.condor.reader import PoolReader
from tests.condor.support import eventually, operator_token, pilot_token, wrong_domain_token

SHAPES = {(1, 512): 5, (2, 2048): 3, (4, 8000): 2}
# Other tests' pilots join the same pool: these jobs stay idle, whatever starts.
NOWHERE = 'TARGET.GLIDEIN_Site =?= "nowhere"'


@pytest.fixture(scope="module")
def queued(pool: CondorPool) -> dict[str, int]:
    """Idle jobs of three shapes, and one held job (never idle)."""
    clusters = {}
    for (cpus, memory), count in SHAPES.items():
        clusters[f"{cpus}x{memory}"] = pool.submit(
            job(cpus=cpus, memory_mb=memory, requirements=NOWHERE, extra=['+AcctGroup = "cms"']),
            count,
        )
    held = pool.submit(job(requirements=NOWHERE, extra=['+AcctGroup = "atlas"']), 1)
    pool.tool("condor_hold", str(held))
    clusters["held"] = held
    return clusters


def test_idle_jobs_come_projected_and_constrained(pool: CondorPool, queued: dict[str, int]) -> None:
    client = HTCondorPool(pool.collector, operator_token(pool))
    ads = client.idle_jobs(pool.schedd_name, 'AcctGroup == "cms"', ["RequestCpus", "AcctGroup"])
    assert len(ads) == sum(SHAPES.values())
    for ad in ads:
        assert set(ad.keys()) <= {"RequestCpus", "AcctGroup", "ServerTime"}
    # The held job is not idle, whatever the constraint says.
    assert client.idle_jobs(pool.schedd_name, 'AcctGroup == "atlas"', ["RequestCpus"]) == []


def test_clusters_count_what_condor_q_counts(pool: CondorPool, queued: dict[str, int]) -> None:
    reader = PoolReader(HTCondorPool(pool.collector, operator_token(pool)))
    expressions = ('AcctGroup == "cms"', "true")
    clusters = asyncio.run(reader.clusters(pool.schedd_name, expressions))
    ours = Counter({(c.cpus, c.memory_mb): c.count for c in clusters})
    # condor_q's own view of the same queue: idle jobs by their request.
    q = pool.tool("condor_q", "-allusers", "-idle", "-af", "RequestCpus", "RequestMemory").stdout
    theirs = Counter(tuple(int(x) for x in line.split()) for line in q.splitlines())
    assert ours == theirs == Counter(SHAPES)
    totals = pool.tool("condor_q", "-allusers", "-totals").stdout
    assert f"{sum(SHAPES.values())} idle" in totals
    assert "AcctGroup" in significant_attributes(expressions)


def test_registered_pilots_carry_their_ids_and_state(
    pool: CondorPool, machine: Callable[[], PilotMachine]
) -> None:
    m = machine()
    m.start_startd(pool.collector, pilot_token(pool), pool.trust_domain)
    client = HTCondorPool(pool.collector, operator_token(pool))
    ads = eventually(
        lambda: client.slot_ads(f'GlideinPilotId == "{m.name}"', STARTD_PROJECTION),
        60,
        "the pilot's slot ad",
    )
    reader = PoolReader(client)
    pilots = asyncio.run(reader.pilots(time.time()))
    mine = [p for p in pilots if p.pilot_id == m.name]
    assert len(mine) == 1, ads
    assert mine[0].state is SlotState.IDLE
    assert mine[0].total_cpus == 1


def test_reading_needs_the_operator_token_where_the_pool_says_so(own_pool: CondorPool) -> None:
    with pytest.raises(CondorError, match="cannot locate schedd"):
        HTCondorPool(own_pool.collector).idle_jobs(own_pool.schedd_name, "true", ["Owner"])
    with pytest.raises(CondorError) as err:
        HTCondorPool(own_pool.collector, wrong_domain_token(own_pool)).idle_jobs(
            own_pool.schedd_name, "true", []
        )
    # The failure says which identity and issuer were offered, the usual culprit.
    assert "issued by cm.wrong.example.org" in str(err.value)
    client = HTCondorPool(own_pool.collector, operator_token(own_pool))
    assert client.idle_jobs(own_pool.schedd_name, "true", ["Owner"]) == []


def test_a_stopped_schedd_and_a_stopped_collector_are_named(own_pool: CondorPool) -> None:
    client = HTCondorPool(own_pool.collector, operator_token(own_pool))
    assert client.idle_jobs(own_pool.schedd_name, "true", ["Owner"]) == []
    own_pool.tool("condor_off", "-fast", "-schedd")

    def schedd_gone() -> str | None:
        try:
            client.idle_jobs(own_pool.schedd_name, "true", ["Owner"])
        except CondorError as exc:
            return str(exc)
        return None

    message = eventually(schedd_gone, 60, "the schedd's absence")
    assert own_pool.schedd_name in message

    own_pool.stop()
    t0 = time.monotonic()
    with pytest.raises(CondorError) as err:
        client.slot_ads("true", ["Name"])
    assert own_pool.collector in str(err.value)
    assert time.monotonic() - t0 < 30
