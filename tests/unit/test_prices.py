"""Honest prices: on a cloud one pays for, an entry without a price is unknown, not free."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.objects import load
from glidein_operator.cli import app
from glidein_operator.money import budget as bg
from glidein_operator.money import spending
from glidein_operator.money.ledger import accrue
from glidein_operator.money.pricing import launch_price
from glidein_operator.provisioning.cycle import within_budget
from glidein_operator.provisioning.eligibility import EntryRecord, candidates
from glidein_operator.provisioning.planner import Candidate, Ramp, plan
from tests.support.planning import REQ, entry, jobs, request

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def _examples(unpriced: str) -> tuple[object, list[EntryRecord], dict, dict]:  # type: ignore[type-arg]
    resources = load([ROOT / "examples"])
    domains = {r.name: r.spec for r in resources if r.kind.kind == "TrustDomain"}
    images = {r.name: r.spec for r in resources if r.kind.kind == "VMImage"}
    entries = []
    for r in resources:
        if r.kind.kind != "CloudEntry":
            continue
        spec = r.spec
        if r.name == unpriced:
            spec = spec.model_copy(deep=True)
            for itype in spec.instance_types:
                itype.price_per_hour = None
        entries.append(EntryRecord(r.name, r.labels, spec))
    req = next(r.spec for r in resources if r.kind.kind == "GlideinRequest")
    return req, entries, domains, images


def test_a_budget_does_not_launch_where_the_price_is_unknown_and_says_so() -> None:
    req, entries, domains, images = _examples("hlt-openstack")
    assert req.budget is not None  # type: ignore[attr-defined]
    usable, blocked = candidates(req, entries, domains, images)  # type: ignore[arg-type]
    assert "hlt-openstack" not in {c.name for c in usable}
    assert "no pricePerHour for instance type(s) m1.xlarge" in blocked["hlt-openstack"]
    assert "budget" in blocked["hlt-openstack"]
    # Without a budget nothing is counted, and nothing is blocked for it.
    unbudgeted = req.model_copy(update={"budget": None})  # type: ignore[attr-defined]
    usable, blocked = candidates(unbudgeted, entries, domains, images)
    assert "hlt-openstack" in {c.name for c in usable}
    assert not blocked


def test_grid_and_pod_entries_are_free_when_no_price_is_written() -> None:
    grid = entry("osg")  # tests.support.planning writes no price
    assert grid.spec.instance_types[0].price_per_hour == Decimal(0)
    assert grid.spec.unpriced() == []


def _vm(name: str, price: str | None) -> Candidate:
    itype: dict[str, object] = {"name": "m1.xlarge", "cpus": 4, "memory": "8Gi", "disk": "40Gi"}
    if price is not None:
        itype["pricePerHour"] = Decimal(price)
    spec = CloudEntrySpec.model_validate(
        {
            "type": "openstack",
            "trustDomain": "osg",
            "site": name,
            "vmImage": "img",
            "openstack": {
                "authUrl": "https://keystone.example.org:5000/v3",
                "region": "RegionOne",
                "projectName": "p",
            },
            "instanceTypes": [itype],
        }
    )
    return Candidate(name, spec)


def test_cost_placement_ranks_an_unknown_price_after_any_known_one() -> None:
    unknown, dear = _vm("unknown", None), _vm("dear", "5.00")
    p = plan(REQ, request(), [unknown, dear], jobs(8), [], ramp=Ramp(initial=10_000))
    assert p.entry("dear").launch == 2
    assert p.entry("unknown").launch == 0


def test_the_budget_gate_never_affords_a_launch_of_unknown_price() -> None:
    unknown = _vm("unknown", None)
    assert launch_price(unknown.spec, "m1.xlarge") is None
    spec = request(budget={"limit": 1000, "period": "monthly"})
    p = plan(REQ, spec, [unknown], jobs(8), [], ramp=Ramp(initial=10_000))
    assert p.entry("unknown").launch == 2  # the plan alone, before the money step
    assert spec.budget is not None
    ledger = accrue(None, [], NOW, "monthly")
    money = spending.Spending(
        ledger=ledger,
        write=False,
        fresh=True,
        check=bg.check(spec.budget, ledger, {}),
        max_life=dt.timedelta(hours=2),
    )
    final = within_budget(p, money, {"unknown": unknown.spec}, NOW)
    assert final.entry("unknown").launch == 0
    assert final.entry("unknown").bound_by == "budget"
    assert p.entry("unknown").launch == 2  # the planner's plan is left as it was made


def test_plan_says_unknown_rather_than_a_cost_of_zero(tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    folder.mkdir()
    for f in (ROOT / "examples").glob("*.yaml"):
        text = f.read_text()
        if f.name == "30-cloudentries.yaml":  # the HLT cloud without its price
            text = text.replace("disk: 80Gi, pricePerHour: 0}", "disk: 80Gi}")
        if f.name == "40-glideinrequest.yaml":  # no budget: the entry is planned for
            text = text[: text.index("  budget:")]
        (folder / f.name).write_text(text)
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(
        json.dumps(
            [
                {
                    "MyType": "Job",
                    "Owner": "alice",
                    "ClusterId": 7,
                    "ProcId": i,
                    "JobStatus": 1,
                    "JobUniverse": 5,
                    "RequestCpus": 1,
                    "RequestMemory": 2000,
                    "RequestDisk": 1000000,
                    "DESIRED_Sites": "T2_CH_CERN_HLT",
                    "Requirements": "/Expr(TARGET.Memory >= RequestMemory)/",
                }
                for i in range(4)
            ]
        )
    )
    result = CliRunner().invoke(app, ["plan", str(folder), "--jobs", str(jobs_file), "--no-ramp"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "hlt-openstack" in line)
    assert "unknown" in row, result.output
    assert "launches cost unknown/h" in result.output, result.output


def _ec2(name: str, price: str, spot_cap: str | None = None) -> Candidate:
    body: dict[str, object] = {
        "type": "ec2",
        "trustDomain": "osg",
        "site": name,
        "vmImage": "img",
        "ec2": {"region": "us-east-1"},
        "instanceTypes": [
            {"name": "m5.xlarge", "cpus": 4, "memory": "8Gi", "pricePerHour": Decimal(price)}
        ],
    }
    if spot_cap is not None:
        body["spot"] = {
            "enabled": True,
            "maxPricePerHour": Decimal(spot_cap),
            "fallBackToOnDemand": False,
        }
    return Candidate(name, CloudEntrySpec.model_validate(body))


def test_cost_placement_prices_a_spot_entry_as_the_budget_gate_does() -> None:
    """One price function: a spot entry capped below another's on-demand price is the
    cheaper one for placement as for the budget gate (it was ranked at on-demand)."""
    on_demand, spot = _ec2("on-demand", "0.20"), _ec2("spot", "0.30", spot_cap="0.10")
    assert launch_price(spot.spec, "m5.xlarge") == Decimal("0.10")
    p = plan(REQ, request(), [on_demand, spot], jobs(8), [], ramp=Ramp(initial=10_000))
    assert p.entry("spot").launch == 2
    assert p.entry("on-demand").launch == 0
