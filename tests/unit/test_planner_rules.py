"""The planner's rules of issue 18, each with real ClassAds (classad2, HTCondor's functions):
no phantom capacity in busy partitionable pilots, the cheapest job slot rather than the
cheapest hour, the matcher's shortcuts equal to a real match, clustering exact whatever
the order of the schedd's answer, and a plan that says why jobs get no pilot."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import classad2

from glidein_devkit.fake_pool import FakePool
from glidein_operator.api.glideinrequest import Budget
from glidein_operator.condor.classads import is_true
from glidein_operator.condor.jobs import _key_value, cluster_jobs
from glidein_operator.condor.pilots import PILOT_ENTRY, PILOT_ID, PILOT_REQUEST, pilot_from_ad
from glidein_operator.money import budget as bg
from glidein_operator.money.ledger import accrue
from glidein_operator.money.pricing import launch_price
from glidein_operator.provisioning.cycle import Acted, EntryState, Observed, Policy, decide, report
from glidein_operator.provisioning.matching import Matcher
from glidein_operator.provisioning.planner import Candidate, PilotPhase, PilotView, Ramp, plan
from glidein_operator.provisioning.report import explain
from tests.support.planning import REQ, STD_REQUIREMENTS, entry, jobs, pilots, request

BIG = Ramp(initial=10_000)
GIB = 1024


def _startd_ads(pilot: str, entry_name: str) -> list[classad2.ClassAd]:
    """A partitionable slot of 8 cores and 32 GiB with two dynamic slots carved out of
    it (2 cores, 15.5 GiB each): 4 cores left, but only 1 GiB of memory."""
    common = {PILOT_ID: pilot, PILOT_REQUEST: REQ, PILOT_ENTRY: entry_name}
    parent = classad2.ClassAd(
        {
            **common,
            "Name": f"slot1@{pilot}",
            "MyType": "Machine",
            "PartitionableSlot": True,
            "State": "Unclaimed",
            "Activity": "Idle",
            "TotalSlotCpus": 8,
            "TotalSlotMemory": 32 * GIB,
            "TotalSlotDisk": 40 * 2**20,
            "Cpus": 4,
            "Memory": 1 * GIB,
            "Disk": 20 * 2**20,
            "GPUs": 0,
        }
    )
    children = [
        classad2.ClassAd(
            {
                **common,
                "Name": f"slot1_{k}@{pilot}",
                "MyType": "Machine",
                "DynamicSlot": True,
                "PartitionableSlot": False,
                "State": "Claimed",
                "Activity": "Busy",
                "Cpus": 2,
                "Memory": 15 * GIB + 512,
                "Disk": 10 * 2**20,
            }
        )
        for k in (1, 2)
    ]
    return [parent, *children]


def _views(n: int, entry_name: str, itype: str) -> list[PilotView]:
    out = []
    for i in range(n):
        for ad in _startd_ads(f"p{i}", entry_name):
            reg = pilot_from_ad(ad, 0)
            if reg is None:
                continue  # a dynamic slot: its parent accounts for it
            out.append(
                PilotView(
                    reg.pilot_id,
                    reg.request_uid,
                    reg.entry,
                    itype,
                    PilotPhase.CLAIMED,
                    reg.free_fraction,
                    reg.left,
                )
            )
    return out


BIG_TYPE = [{"name": "8c", "cpus": 8, "memory": "32Gi", "disk": "40Gi"}]


# --- 1. no phantom capacity -----------------------------------------------------------------


def test_a_busy_partitionable_slot_leaves_what_its_dynamic_slots_did_not_take() -> None:
    ads = _startd_ads("p0", "a")
    parent = pilot_from_ad(ads[0], 0)
    assert parent is not None
    assert parent.left is not None
    assert (parent.left.cpus, parent.left.memory_mb, parent.left.disk_kb) == (4, GIB, 20 * 2**20)
    assert parent.free_fraction == 0.5  # half the cores: not half a pilot
    assert [pilot_from_ad(ad, 0) for ad in ads[1:]] == [None, None]
    # Room for a job on every dimension, or none.
    assert parent.left.jobs_fit(1, 8000, 1_000_000, 0) == 0  # 1 GiB of memory is no place
    assert parent.left.jobs_fit(1, 500, 1_000_000, 0) == 2  # memory bounds it, not cores
    assert parent.left.jobs_fit(1, 100, 30 * 2**20, 0) == 0  # nor disk
    assert parent.left.jobs_fit(1, 100, 1_000, 1) == 0  # nor gpus it does not have


def test_memory_heavy_jobs_get_pilots_beside_free_cores_with_no_memory() -> None:
    # #332-shaped: 10 busy pilots, 4 cores free each next to 1 GiB; the waiting jobs want
    # 8 GB. Counting free cores as capacity covered half of them with no pilot coming.
    a = entry("a", types=BIG_TYPE)
    busy = _views(10, "a", "8c")
    p = plan(REQ, request(), [a], jobs(40, memory=8000), busy, ramp=BIG)
    assert p.entry("a").launch == 10  # 4 jobs per 8c/32Gi pilot: all 40 need new ones
    assert p.entry("a").covered_jobs == 0
    # Small jobs do fit that room: 2 per pilot (memory), 20 in all.
    small = plan(REQ, request(), [a], jobs(40, memory=500), busy, ramp=BIG)
    assert small.entry("a").covered_jobs == 20
    assert small.entry("a").launch == 3  # 20 more at 8 per pilot


def test_room_in_pilots_already_there_is_shared_not_counted_per_cluster() -> None:
    a = entry("a", types=BIG_TYPE)
    idle = pilots("a", PilotPhase.IDLE, 1, itype="8c")  # one whole 8c/32Gi pilot
    two_kinds = jobs(4, memory=6000) + jobs(4, cpus=1, memory=2000)
    p = plan(REQ, request(), [a], two_kinds, idle, ramp=BIG)
    # 4 x 6000 MB leave 8 GiB and 4 cores: 4 small jobs fit too; nothing twice.
    assert p.entry("a").covered_jobs == 8
    assert p.entry("a").launch == 0
    three_kinds = two_kinds + jobs(4, memory=6000, Owner="other")
    q = plan(REQ, request(), [a], three_kinds, idle, ramp=BIG)
    # Biggest first: five 6000 MB jobs (30,000 MB), then one small one (2,000 MB): the
    # pilot's 32 GiB hold no more. The other six need a new pilot.
    assert q.entry("a").covered_jobs == 6
    assert q.entry("a").launch == 1


def test_slots_without_memory_or_disk_advertised_keep_counting_their_cores() -> None:
    # The in-memory pool of the demo advertises cores alone: a dimension not advertised
    # does not bound (a real startd always advertises it).
    ad = classad2.ClassAd(
        {PILOT_ID: "p", PILOT_REQUEST: REQ, PILOT_ENTRY: "a"}
        | {"PartitionableSlot": True, "TotalSlotCpus": 4, "Cpus": 2}
    )
    reg = pilot_from_ad(ad, 0)
    assert reg is not None
    assert reg.left is not None
    assert reg.left.jobs_fit(1, 8000, 1_000_000, 0) == 2


# --- 2. the cheapest job slot ----------------------------------------------------------------


TWO_TYPES = [
    {"name": "small", "cpus": 2, "memory": "4Gi", "disk": "40Gi", "pricePerHour": Decimal("0.10")},
    {"name": "big", "cpus": 8, "memory": "16Gi", "disk": "160Gi", "pricePerHour": Decimal("0.30")},
]


def test_the_type_with_the_cheapest_job_slot_wins_over_the_cheapest_hour() -> None:
    # small: 0.10/h for 2 jobs = 0.05 a job; big: 0.30/h for 8 jobs = 0.0375 a job.
    p = plan(REQ, request(), [entry("a", types=TWO_TYPES)], jobs(80), [], ramp=BIG)
    assert p.entry("a").launch_by_type == {"big": 10}
    # Four jobs fill half a big pilot: then a small one is cheaper per job that runs.
    few = plan(REQ, request(), [entry("a", types=TWO_TYPES)], jobs(2), [], ramp=BIG)
    assert few.entry("a").launch_by_type == {"small": 1}


def test_a_tie_goes_to_the_smaller_type() -> None:
    types = [
        {
            "name": "eight",
            "cpus": 8,
            "memory": "16Gi",
            "disk": "80Gi",
            "pricePerHour": Decimal("0.40"),
        },
        {
            "name": "four",
            "cpus": 4,
            "memory": "8Gi",
            "disk": "40Gi",
            "pricePerHour": Decimal("0.20"),
        },
    ]
    p = plan(REQ, request(), [entry("a", types=types)], jobs(80), [], ramp=BIG)
    assert p.entry("a").launch_by_type == {"four": 20}


def test_placement_cost_ranks_entries_by_the_same_job_slot_price() -> None:
    only_small = entry("s", types=[TWO_TYPES[0]])
    only_big = entry("b", types=[TWO_TYPES[1]])
    p = plan(REQ, request(), [only_small, only_big], jobs(80), [], ramp=BIG)
    assert p.entry("b").idle_jobs == 80  # 0.0375 a job against 0.05
    assert p.entry("s").idle_jobs == 0


def test_the_matcher_slot_price_is_launch_price_per_job() -> None:
    a = entry("a", types=TWO_TYPES)
    matcher = Matcher([(a.name, a.spec, None)])
    for offer in matcher.offers:
        for n in (1, 2, 3, 8):
            exact = launch_price(a.spec, offer.instance_type, n)
            assert exact is not None
            assert matcher.slot_price(offer, n) == float(exact)


def test_the_budget_gate_buys_the_cheapest_job_slots_first() -> None:
    budget = Budget.model_validate({"limit": 30})
    check = bg.check(
        budget, accrue(None, [], dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "monthly"), {}
    )
    options = [
        # cheaper pilots, dearer job slots
        bg.LaunchOption("a", "small", 3, Decimal(10), slot_price=Decimal("0.05")),
        bg.LaunchOption("a", "big", 1, Decimal(30), slot_price=Decimal("0.0375")),
    ]
    assert bg.gate(options, check) == {("a", "big"): 1, ("a", "small"): 0}


# --- 3. the shortcuts are exact ---------------------------------------------------------------


def test_flattened_match_expressions_match_what_a_real_match_does() -> None:
    cands = [
        entry("a", site="S1", attributes={"Flavour": '"fast"'}),
        entry("b", site="S2"),
        entry("c", site="S3", types=BIG_TYPE),
    ]
    expressions = [
        "stringListMember(GLIDEIN_Site, ifThenElse(isUndefined(TARGET.DESIRED_Sites), "
        "GLIDEIN_Site, TARGET.DESIRED_Sites))",
        "RequestCpus <= Cpus",  # unscoped: a match finds RequestCpus in the job
        "MY.Cpus >= TARGET.RequestCpus && Flavour =!= TARGET.Avoid",
        'TARGET.Owner == "alice" || GLIDEIN_Site == "S3"',
        "TARGET.RequestMemory * 2 <= Memory",
    ]
    clusters = (
        jobs(3, sites="S1,S3")
        + jobs(3, cpus=8, memory=1000)
        + jobs(3, Avoid="fast", Owner="alice")
        + jobs(3, memory=9000, sites="S2")
    )
    for text in expressions:
        matcher = Matcher([(c.name, c.spec, c.image) for c in cands])
        expr = classad2.ExprTree(text)
        for cluster in clusters:
            fast = matcher._mask(expr, cluster.ad, machine_side=True)
            slow = 0
            for offer in matcher.offers:
                if is_true(expr.eval(scope=offer.ad, target=cluster.ad)):
                    slow |= 1 << offer.index
            assert fast == slow, (text, cluster.ad)


def test_clusters_are_the_same_whatever_the_order_of_the_answer() -> None:
    pool = FakePool()
    req = classad2.ExprTree(STD_REQUIREMENTS)
    for i in range(12):
        pool.submit(
            "s", 25, RequestCpus=1 + i % 3, RequestMemory=1000 * (1 + i % 4), Requirements=req
        )
    ordered = pool.idle_jobs("s", "true", ("RequestCpus", "RequestMemory", "Requirements"))
    shuffled = list(ordered)
    random.Random(5).shuffle(shuffled)
    full = pool.idle_jobs("s", "true", ())  # whole ads: ClusterId, ProcId differ per job
    significant = ("RequestCpus", "RequestMemory", "Requirements")

    def by_key(ads: list[classad2.ClassAd]) -> dict[tuple[Any, ...], int]:
        out: dict[tuple[Any, ...], int] = {}
        for ad in ads:
            key = tuple(_key_value(ad.get(a)) for a in significant)
            out[key] = out.get(key, 0) + 1
        return out

    truth = by_key(ordered)
    assert len(truth) == 12
    for ads in (ordered, shuffled, full):
        got = cluster_jobs("s", ads, significant)
        assert {tuple(_key_value(c.ad.get(a)) for a in significant): c.count for c in got} == truth


# --- 4. the plan says why ---------------------------------------------------------------------


def test_jobs_that_match_only_a_full_entry_are_named_with_it() -> None:
    full = entry("x", limits={"maxPilots": 5})
    others = pilots("x", PilotPhase.CLAIMED, 5, request_uid="someone-else")
    p = plan(REQ, request(), [full, entry("y")], jobs(320, sites="x"), others, ramp=BIG)
    [row] = explain(p)
    assert (row.jobs, row.bound_by, row.entries) == (320, "entry.maxPilots", ("x",))
    assert row.message == "320 jobs match only entry x, which is full (entry.maxPilots)"


def test_every_kind_of_bound_is_explained() -> None:
    slow = entry("slow")  # ramp-up: 10 pilots at first, 40 jobs of 1000
    waiting = entry("w")
    booting = pilots("w", PilotPhase.BOOTING, 2)
    work = (
        jobs(1000, sites="slow")
        + jobs(8, sites="w")
        + jobs(5, memory=10**7)  # no entry has 10 TB of memory
    )
    p = plan(REQ, request(), [slow, waiting], work, booting, ramp=Ramp(initial=10))
    rows = {u.bound_by: u for u in explain(p)}
    assert rows["rampUp"].jobs == 1000 - 40
    assert rows["rampUp"].message.startswith("960 jobs match only entry slow, which is ramping up")
    assert rows["pilots already there"].jobs == 8
    assert rows["no entry"].jobs == 5
    assert "Requirements match no entry" in rows["no entry"].message


def _seen(cands: list[Candidate], clusters: Any) -> Observed:
    return Observed(
        now=dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC),
        usable=cands,
        blocked={},
        listings={c.name: [] for c in cands},
        listing_errors={},
        entries={c.name: EntryState() for c in cands},
        registered={},
        clusters=clusters,
    )


def test_the_request_status_says_how_many_jobs_got_no_pilot_and_why() -> None:
    priced = entry(
        "paid",
        types=[{"name": "4c", "cpus": 4, "memory": "8Gi", "disk": "40Gi", "pricePerHour": 1}],
    )
    seen = _seen([priced], jobs(40, cpus=4, memory=4000))
    spec = request(budget={"limit": 1, "period": "monthly"})
    d = decide(
        seen,
        uid=REQ,
        spec=spec,
        entries={"paid": priced.spec},
        old_status={},
        policy=Policy(interval=dt.timedelta(seconds=5)),
    )
    status, _ = report(d, seen, Acted(), spec=spec, old_status={}, generation=1)
    assert status["totals"]["uncoveredJobs"] == 40
    [row] = status["uncovered"]
    assert row["boundBy"] == "budget"
    assert row["entries"] == ["paid"]
    assert row["message"] == "40 jobs match only entry paid, which is held back by the budget"


def test_jobs_several_full_entries_could_run_are_explained_at_each() -> None:
    x, y = entry("x", limits={"maxPilots": 2}), entry("y", limits={"maxPilots": 2})
    others = pilots("x", PilotPhase.CLAIMED, 2, request_uid="o") + pilots(
        "y", PilotPhase.CLAIMED, 2, request_uid="o"
    )
    p = plan(REQ, request(), [x, y], jobs(10, sites="x,y"), others, ramp=BIG)
    rows = explain(p)
    assert sum(r.jobs for r in rows) == 10
    assert {r.bound_by for r in rows} == {"entry.maxPilots"}
    assert all("no other entry they match has room left" in r.message for r in rows)


def test_the_plan_command_says_what_bound_the_jobs_left_without_a_pilot() -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from glidein_operator.cli import app

    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(
        app,
        ["plan", str(root / "examples"), "--jobs", str(root / "examples/jobs/idle-jobs.classads")],
    )
    assert result.exit_code == 0, result.output
    assert "Idle jobs without a new pilot, and what bound them" in result.output
    assert "1 job matches no entry" in result.output
