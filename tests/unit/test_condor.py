"""The condor layer: clustering, one shared query per schedd, pilots from startd ads."""

from __future__ import annotations

import asyncio

import classad2
import pytest

from glidein_devkit.fake_pool import FakePool
from glidein_operator.condor.classads import is_true
from glidein_operator.condor.interface import CondorError
from glidein_operator.condor.jobs import cluster_jobs, significant_attributes
from glidein_operator.condor.pilots import (
    PILOT_ENTRY,
    PILOT_ID,
    PILOT_REQUEST,
    PILOT_TO_RETIRE,
    STARTD_PROJECTION,
    SlotState,
    pilot_from_ad,
)
from glidein_operator.condor.reader import PoolReader, select


def _pool() -> FakePool:
    pool = FakePool()
    pool.submit("s1", 300, RequestCpus=1, RequestMemory=2000, Owner="alice")
    pool.submit("s1", 200, RequestCpus=4, RequestMemory=8000, Owner="bob")
    pool.submit("s1", 50, RequestCpus=1, RequestMemory=2000, Owner="alice", AcctGroup="prod")
    return pool


def test_htcondor_functions_are_available() -> None:
    # Without htcondor2's registration, classad2 evaluates these to Error.
    assert is_true(classad2.ExprTree('stringListMember("b", "a,b,c")').eval())
    assert not is_true(classad2.ExprTree('stringListMember("z", "a,b,c")').eval())
    assert not is_true(classad2.ExprTree("undefined_attr > 3").eval())


def test_jobs_cluster_by_significant_attributes() -> None:
    pool = _pool()
    ads = pool.idle_jobs("s1", "true", significant_attributes(['AcctGroup =?= "prod"']))
    clusters = cluster_jobs("s1", ads, significant_attributes(['AcctGroup =?= "prod"']))
    assert sorted(c.count for c in clusters) == [50, 200, 300]
    four_core = next(c for c in clusters if c.cpus == 4)
    assert four_core.memory_mb == 8000


def test_request_constraint_filters_clusters_exactly() -> None:
    pool = _pool()
    sig = significant_attributes(['Owner == "alice" && AcctGroup =!= "prod"'])
    clusters = cluster_jobs("s1", pool.idle_jobs("s1", "true", sig), sig)
    chosen = select(clusters, 'Owner == "alice" && AcctGroup =!= "prod"')
    assert sum(c.count for c in chosen) == 300


def test_running_jobs_are_not_idle() -> None:
    pool = _pool()
    pool.set_status("s1", 'Owner == "bob"', 2)
    assert len(pool.idle_jobs("s1", "true", ())) == 350


def test_unreachable_schedd_raises_condor_error() -> None:
    pool = _pool()
    pool.unreachable.add("s1")
    with pytest.raises(CondorError, match="s1"):
        pool.idle_jobs("s1", "true", ())


def test_reader_queries_each_schedd_once_for_all_requests() -> None:
    pool = _pool()
    now = [0.0]
    reader = PoolReader(pool, ttl=5.0, clock=lambda: now[0])

    async def cycle() -> list[int]:
        a, b = await asyncio.gather(
            reader.clusters("s1", ('Owner == "alice"',)),
            reader.clusters("s1", ('Owner == "bob"',)),
        )
        return [
            sum(c.count for c in select(a, 'Owner == "alice"')),
            sum(c.count for c in select(b, 'Owner == "bob"')),
        ]

    async def two_cycles() -> None:
        assert await cycle() == [350, 200]
        assert pool.calls.count(("idle_jobs", "s1")) == 1
        now[0] = 10.0  # next cycle: fresh data
        await cycle()
        assert pool.calls.count(("idle_jobs", "s1")) == 2

    asyncio.run(two_cycles())


def test_reader_refetches_when_a_request_needs_a_new_attribute() -> None:
    pool = _pool()
    reader = PoolReader(pool, ttl=60.0, clock=lambda: 0.0)

    async def go() -> int:
        await reader.clusters("s1", ("true",))
        clusters = await reader.clusters("s1", ('AcctGroup == "prod"',))
        return sum(c.count for c in select(clusters, 'AcctGroup == "prod"'))

    assert asyncio.run(go()) == 50
    assert pool.calls.count(("idle_jobs", "s1")) == 2


def _slot(**attrs: object) -> classad2.ClassAd:
    ad = classad2.ClassAd()
    ad[PILOT_ID] = "p1"
    ad[PILOT_REQUEST] = "u"
    ad[PILOT_ENTRY] = "e"
    for k, v in attrs.items():
        ad[k] = v
    return ad


def test_pilot_states_from_startd_ads() -> None:
    idle = pilot_from_ad(
        _slot(PartitionableSlot=True, Cpus=8, TotalSlotCpus=8, State="Unclaimed"), 0
    )
    assert idle is not None
    assert idle.state is SlotState.IDLE
    busy = pilot_from_ad(_slot(PartitionableSlot=True, Cpus=2, TotalSlotCpus=8), 0)
    assert busy is not None
    assert busy.state is SlotState.CLAIMED
    assert busy.free_fraction == 0.25
    retiring = pilot_from_ad(
        _slot(PartitionableSlot=True, Cpus=8, TotalSlotCpus=8, **{PILOT_TO_RETIRE: 100}), 200
    )
    assert retiring is not None
    assert retiring.state is SlotState.RETIRING
    assert retiring.free_fraction == 0
    assert pilot_from_ad(classad2.ClassAd({"Name": "not-ours"}), 0) is None
    # A dynamic slot carries the pilot's attributes too (STARTD_ATTRS), but its
    # partitionable parent already counts it: read as a pilot of its own, it would
    # replace the parent's view (seen on a real startd: slot1_1@ beside slot1@).
    child = _slot(DynamicSlot=True, PartitionableSlot=False, State="Claimed", Cpus=1)
    assert pilot_from_ad(child, 0) is None


def test_pilots_read_with_glideinwms_names() -> None:
    assert (PILOT_ENTRY, PILOT_TO_RETIRE) == ("GLIDEIN_Entry_Name", "GLIDEIN_ToRetire")
    assert (PILOT_ID, PILOT_REQUEST) == ("GlideinPilotId", "GlideinRequestUid")
    assert {PILOT_ID, PILOT_REQUEST, PILOT_ENTRY, PILOT_TO_RETIRE} <= set(STARTD_PROJECTION)


def test_pilots_of_the_previous_release_are_still_read() -> None:
    ad = classad2.ClassAd(
        {
            PILOT_ID: "p1",
            PILOT_REQUEST: "u",
            "GlideinEntryName": "old-entry",
            "GlideinToRetire": 100,
            "PartitionableSlot": True,
            "Cpus": 8,
            "TotalSlotCpus": 8,
        }
    )
    old = pilot_from_ad(ad, 200)
    assert old is not None
    assert old.entry == "old-entry"
    assert old.state is SlotState.RETIRING


def test_reader_lists_only_our_pilots() -> None:
    pool = FakePool()
    pool.advertise(
        [
            _slot(PartitionableSlot=True, Cpus=4, TotalSlotCpus=4),
            classad2.ClassAd({"Name": "site-node", "Cpus": 4}),
        ]
    )
    pilots = asyncio.run(PoolReader(pool).pilots(0))
    assert [p.pilot_id for p in pilots] == ["p1"]
