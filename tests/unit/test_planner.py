"""The planner's rules, each a behaviour an admin would notice, with real ClassAds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from glidein_operator.provisioning.planner import Candidate, PilotPhase, Ramp, plan
from tests.support.planning import REQ, entry, jobs, pilots, request

BIG = Ramp(initial=10_000)


def test_four_core_pilots_serve_four_single_core_jobs_each() -> None:
    p = plan(REQ, request(), [entry("a")], jobs(40), [], ramp=BIG)
    assert p.entry("a").launch == 10
    assert p.entry("a").idle_jobs == 40
    assert p.entry("a").bound_by == "demand"


def test_static_slots_mean_one_job_per_pilot() -> None:
    p = plan(REQ, request(pilot={"partitionable": False}), [entry("a")], jobs(40), [], ramp=BIG)
    assert p.entry("a").launch == 40


def test_smallest_fitting_instance_type_is_chosen() -> None:
    types = [
        {"name": "big", "cpus": 32, "memory": "128Gi", "pricePerHour": 2.0},
        {"name": "small", "cpus": 2, "memory": "4Gi", "pricePerHour": 0.1},
        {"name": "mid", "cpus": 8, "memory": "32Gi", "pricePerHour": 0.5},
    ]
    small_jobs = plan(REQ, request(), [entry("a", types=types)], jobs(4, memory=1000), [], ramp=BIG)
    assert small_jobs.entry("a").launch_by_type == {"small": 2}
    # 20 GB jobs do not fit 'small' (4 GiB): 'mid' is the cheapest that does.
    fat_jobs = plan(REQ, request(), [entry("a", types=types)], jobs(3, memory=20_000), [], ramp=BIG)
    assert fat_jobs.entry("a").launch_by_type == {"mid": 3}


def test_jobs_matching_several_entries_are_split() -> None:
    p = plan(REQ, request(), [entry("a"), entry("b")], jobs(80), [], ramp=BIG)
    assert p.entry("a").launch == 10
    assert p.entry("b").launch == 10


def test_desired_sites_restrict_entries() -> None:
    p = plan(REQ, request(), [entry("a"), entry("b")], jobs(8, sites="b"), [], ramp=BIG)
    assert p.entry("a").launch == 0
    assert p.entry("b").launch == 2


def test_gh332_jobs_of_a_full_entry_spill_to_the_others() -> None:
    # GlideinWMS #332: jobs split onto an entry at its limit never got pilots.
    full = entry("a", limits={"maxPilots": 5})
    existing = pilots("a", PilotPhase.CLAIMED, 5, request_uid="someone-else")
    p = plan(REQ, request(), [full, entry("b")], jobs(80), existing, ramp=BIG)
    assert p.entry("a").launch == 0
    assert p.entry("a").bound_by == "entry.maxPilots"
    assert p.entry("b").launch == 20  # all 80 jobs, 4 per pilot


def test_gh332_disabled_entry_gets_no_jobs() -> None:
    p = plan(REQ, request(), [entry("a", enabled=False), entry("b")], jobs(40), [], ramp=BIG)
    assert p.entry("b").launch == 10
    assert p.blocked == {"a": "entry disabled"}


def test_booting_and_idle_pilots_count_against_demand() -> None:
    existing = pilots("a", PilotPhase.BOOTING, 3) + pilots("a", PilotPhase.IDLE, 2)
    p = plan(REQ, request(), [entry("a")], jobs(40), existing, ramp=BIG)
    assert p.entry("a").launch == 5
    assert p.entry("a").capacity == 5


def test_no_launch_when_idle_slots_already_cover_the_jobs() -> None:
    existing = pilots("a", PilotPhase.IDLE, 3)
    p = plan(REQ, request(), [entry("a")], jobs(12), existing, ramp=BIG)
    assert p.launches == 0
    assert p.entry("a").bound_by == "covered by pilots already there"


def test_free_cores_of_claimed_partitionable_pilots_count() -> None:
    existing = pilots("a", PilotPhase.CLAIMED, 4, free=0.5)  # 2 of 4 cores free each
    p = plan(REQ, request(), [entry("a")], jobs(8), existing, ramp=BIG)
    assert p.launches == 0


def test_gh554_retiring_pilots_are_not_idle_capacity() -> None:
    # GlideinWMS #554: retiring glideins counted as idle starved the queue.
    existing = pilots("a", PilotPhase.RETIRING, 10)
    p = plan(REQ, request(), [entry("a")], jobs(40), existing, ramp=BIG)
    assert p.entry("a").launch == 10


def test_gh443_empty_queue_requests_nothing_even_with_reserve() -> None:
    # GlideinWMS #443: pilots were requested for an empty queue.
    p = plan(
        REQ, request(limits={"reserveIdlePilots": 5}), [entry("a"), entry("b")], [], [], ramp=BIG
    )
    assert p.launches == 0
    assert {e.bound_by for e in p.entries} == {"no demand"}


def test_reserve_idle_applies_while_there_is_demand() -> None:
    p = plan(REQ, request(limits={"reserveIdlePilots": 3}), [entry("a")], jobs(4), [], ramp=BIG)
    assert p.entry("a").launch == 1 + 3


def test_min_pilots_keeps_a_warm_pool() -> None:
    p = plan(REQ, request(limits={"minPilots": 4}), [entry("a"), entry("b")], [], [], ramp=BIG)
    assert p.launches == 4


def test_gh282_removal_only_cancels_pending_pilots_never_the_pool() -> None:
    # GlideinWMS #282: one removal request drained a whole pool.
    existing = (
        pilots("a", PilotPhase.PENDING, 6)
        + pilots("a", PilotPhase.IDLE, 5)
        + pilots("a", PilotPhase.CLAIMED, 20)
        + pilots("a", PilotPhase.PENDING, 7, request_uid="other-request")
    )
    p = plan(REQ, request(), [entry("a")], [], existing, ramp=BIG)
    assert p.entry("a").cancel == 6  # only ours, only never-started ones
    assert p.entry("a").wanted == 31 - 6


def test_cancel_keeps_what_demand_still_needs() -> None:
    existing = pilots("a", PilotPhase.PENDING, 10)
    p = plan(REQ, request(), [entry("a")], jobs(16), existing, ramp=BIG)  # needs 4
    assert p.entry("a").cancel == 6
    assert p.entry("a").launch == 0


def test_a_lowered_max_pilots_cuts_pilots_running_no_job_never_a_busy_one() -> None:
    # 15 pilots, 3 of them running jobs; the cap goes down to 7: 8 must go, taken from
    # the 12 running no job; the 3 busy ones stay.
    existing = (
        pilots("a", PilotPhase.PENDING, 2)
        + pilots("a", PilotPhase.BOOTING, 6)
        + pilots("a", PilotPhase.IDLE, 4)
        + pilots("a", PilotPhase.CLAIMED, 3)
    )
    p = plan(REQ, request(limits={"maxPilots": 7}), [entry("a")], jobs(60), existing, ramp=BIG)
    assert p.entry("a").cancel == 8
    assert p.entry("a").launch == 0
    assert p.entry("a").wanted == 7
    # Down to 2 with only busy pilots above it: nothing can go.
    busy = pilots("a", PilotPhase.CLAIMED, 3)
    p = plan(REQ, request(limits={"maxPilots": 2}), [entry("a")], jobs(60), busy, ramp=BIG)
    assert p.entry("a").cancel == 0


def test_entry_max_idle_counts_all_requests() -> None:
    existing = pilots("a", PilotPhase.BOOTING, 8, request_uid="other")
    p = plan(
        REQ, request(), [entry("a", limits={"maxIdlePilots": 10})], jobs(400), existing, ramp=BIG
    )
    assert p.entry("a").launch == 2
    assert p.entry("a").bound_by == "entry.maxIdlePilots"


def test_request_max_pilots_caps_across_entries() -> None:
    p = plan(
        REQ, request(limits={"maxPilots": 10}), [entry("a"), entry("b")], jobs(400), [], ramp=BIG
    )
    assert p.launches == 10
    assert p.bound_by == "request.maxPilots"
    assert {e.bound_by for e in p.entries} == {"request.maxPilots"}


def test_request_max_idle_counts_booting_pilots() -> None:
    existing = pilots("a", PilotPhase.BOOTING, 15)
    spec = request(limits={"maxPilots": 1000, "maxIdlePilots": 20})
    p = plan(REQ, spec, [entry("a")], jobs(400), existing, ramp=BIG)
    assert p.launches == 5
    assert p.bound_by == "request.maxIdlePilots"


def test_curb_slows_growth_past_the_threshold() -> None:
    existing = pilots("a", PilotPhase.BOOTING, 10)
    spec = request(limits={"maxPilots": 1000, "maxIdlePilots": 50, "curbIdlePilots": 10})
    p = plan(REQ, spec, [entry("a")], jobs(4000), existing, ramp=BIG)
    assert p.launches == 20  # half of the 40 idle places left
    assert p.bound_by == "request.curbIdlePilots"


def test_max_pilots_per_entry() -> None:
    spec = request(limits={"maxPilots": 1000, "maxPilotsPerEntry": 7})
    p = plan(REQ, spec, [entry("a"), entry("b")], jobs(400), [], ramp=BIG)
    assert p.entry("a").launch == 7
    assert p.entry("a").bound_by == "request.maxPilotsPerEntry"


def test_batch_size_bounds_one_cycle() -> None:
    p = plan(
        REQ, request(), [entry("a", limits={"maxLaunchPerCycle": 25})], jobs(400), [], ramp=BIG
    )
    assert p.entry("a").launch == 25
    assert p.entry("a").bound_by == "entry.maxLaunchPerCycle"


def test_ramp_up_damping_starts_slowly_then_doubles() -> None:
    first = plan(REQ, request(), [entry("a")], jobs(4000), [])
    assert first.entry("a").launch == 10
    assert first.entry("a").bound_by == "rampUp"
    later = plan(REQ, request(), [entry("a")], jobs(4000), pilots("a", PilotPhase.CLAIMED, 40))
    assert later.entry("a").launch == 40


def test_global_headroom() -> None:
    p = plan(REQ, request(), [entry("a")], jobs(400), [], ramp=BIG, global_headroom=3)
    assert p.launches == 3
    assert p.bound_by == "operator.maxPilots"


def test_paused_request_launches_nothing_and_cancels_nothing() -> None:
    existing = pilots("a", PilotPhase.PENDING, 2)
    p = plan(REQ, request(paused=True), [entry("a")], jobs(400), existing, ramp=BIG)
    assert p.launches == 0
    assert p.entry("a").bound_by == "paused"
    assert p.cancels == 0


def test_unmatchable_jobs_are_reported_with_a_reason() -> None:
    p = plan(REQ, request(), [entry("a")], jobs(5, memory=64_000), [], ramp=BIG)
    assert p.launches == 0
    assert len(p.unmatched) == 1
    assert "Requirements match no entry" in p.unmatched[0].reason
    too_many_cores = plan(
        REQ, request(), [entry("a")], jobs(5, cpus=8, requirements="true"), [], ramp=BIG
    )
    assert "no instance type fits" in too_many_cores.unmatched[0].reason


def test_match_expression_excluding_everything_is_explained() -> None:
    spec = request(matchExpression='GLIDEIN_Site == "nowhere"')
    p = plan(REQ, spec, [entry("a")], jobs(5), [], ramp=BIG)
    assert "matchExpression excludes" in p.unmatched[0].reason
    # Well-formed, but an error whatever the job: the request is told it is its own bug.
    broken = request(matchExpression='GLIDEIN_Site + 1 == "x"')
    p = plan(REQ, broken, [entry("a")], jobs(5), [], ramp=BIG)
    assert "matchExpression evaluates to an error" in p.unmatched[0].reason
    assert p.launches == 0


def test_entry_attributes_reach_the_machine_ad() -> None:
    gpu = entry(
        "gpu",
        types=[{"name": "g", "cpus": 8, "memory": "32Gi", "gpus": 1}],
        attributes={"HAS_CUDA": "true"},
    )
    plain = entry("cpu")
    p = plan(
        REQ, request(), [gpu, plain], jobs(2, requirements="TARGET.HAS_CUDA =?= true"), [], ramp=BIG
    )
    assert p.entry("gpu").launch == 1
    assert p.entry("cpu").launch == 0


def test_stuck_pilots_are_not_alive() -> None:
    existing = pilots("a", PilotPhase.STUCK, 3)
    p = plan(REQ, request(), [entry("a")], jobs(4), existing, ramp=BIG)
    assert p.entry("a").launch == 1
    assert p.entry("a").wanted == 1


def _priced(name: str, price: str, **kw: Any) -> Candidate:
    return entry(
        name,
        types=[
            {
                "name": "4c",
                "cpus": 4,
                "memory": "8Gi",
                "disk": "40Gi",
                "pricePerHour": Decimal(price),
            }
        ],
        **kw,
    )


def test_cost_placement_fills_the_cheapest_entry_then_spills_to_the_next() -> None:
    cheap = _priced("cheap", "0.10", limits={"maxPilots": 6})
    dear = _priced("dear", "0.40")
    p = plan(REQ, request(), [dear, cheap], jobs(40), [], ramp=BIG)
    assert p.entry("cheap").launch == 6  # all it may hold
    assert p.entry("dear").launch == 4  # only what the cheap one cannot take
    assert p.entry("dear").idle_jobs == 16


def test_a_nearly_full_cheap_entry_loses_to_an_empty_dearer_one() -> None:
    # 9 of 10 slots taken: 0.10 / (1 - 0.9) = 1.0 per pilot-hour of merit, worse than 0.40.
    cheap = _priced("cheap", "0.10", limits={"maxPilots": 10})
    dear = _priced("dear", "0.40")
    busy = pilots("cheap", PilotPhase.CLAIMED, 9, request_uid="someone-else")
    p = plan(REQ, request(), [cheap, dear], jobs(8), busy, ramp=BIG)
    assert p.entry("dear").launch == 2
    assert p.entry("cheap").launch == 0


def test_spread_placement_shares_jobs_whatever_the_price() -> None:
    cheap, dear = _priced("cheap", "0.10"), _priced("dear", "0.40")
    p = plan(REQ, request(placement="spread"), [cheap, dear], jobs(40), [], ramp=BIG)
    assert p.entry("cheap").launch == 5
    assert p.entry("dear").launch == 5


def test_jobs_as_condor_submit_25_writes_them_match() -> None:
    # condor_submit 25.12+ gates the disk check on the machine's version; a machine ad
    # without CondorVersion made these Requirements an error and matched nothing.
    submitted = (
        '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && '
        '(versionGE(split(TARGET.CondorVersion)[1],"25.12.0") || '
        "(TARGET.Disk >= RequestDisk)) && (TARGET.Memory >= RequestMemory) && "
        "(TARGET.HasFileTransfer)"
    )
    p = plan(REQ, request(), [entry("a")], jobs(4, requirements=submitted), [], ramp=BIG)
    assert p.entry("a").launch == 1
    assert p.entry("a").idle_jobs == 4
