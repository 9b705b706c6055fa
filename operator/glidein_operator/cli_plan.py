"""``glidein-operator plan``'s input and output: the files an admin gives it, and the report
people read (one row per entry, the limit that bound it, and the jobs no entry can run
with the reason). The decision itself is ``provisioning.dryrun``, which reads no file.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import classad2
from rich.console import Console
from rich.table import Table

from glidein_operator.api.objects import load
from glidein_operator.condor.classads import ads_from_json
from glidein_operator.provisioning.dryrun import DryRun, dry_run, launch_cost
from glidein_operator.provisioning.planner import Ramp
from glidein_operator.provisioning.report import explain


def read_jobs(path: Path) -> list[classad2.ClassAd]:
    """The idle jobs of a dump: ``condor_q -json`` output or ClassAds (``condor_q -l``)."""
    text = path.read_text()
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        ads = ads_from_json(text)
    else:
        ads = list(classad2.parseAds(text, classad2.ParserType.Auto))
    return [ad for ad in ads if ad.get("JobStatus", 1) == 1]


def dry_run_files(
    resource_paths: Iterable[Path],
    jobs_path: Path,
    request_name: str | None = None,
    ramp: Ramp | None = None,
) -> list[DryRun]:
    """The dry run on resource YAML files or folders and a job dump."""
    return dry_run(load(resource_paths), read_jobs(jobs_path), request_name, ramp=ramp)


def _money(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"{amount:.2f}"


def render(console: Console, run: DryRun) -> None:
    p = run.plan
    table = Table(title=f"GlideinRequest {run.request.key}: plan", title_justify="left")
    for col, justify in [
        ("Entry", "left"),
        ("Type", "left"),
        ("Site", "left"),
        ("Idle jobs", "right"),
        ("Demand", "right"),
        ("Pilots now", "right"),
        ("Launch", "right"),
        ("Instance types", "left"),
        ("Cost/h", "right"),
        ("Cancel", "right"),
        ("Wanted", "right"),
        ("Bound by", "left"),
        ("Notes", "left"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for e in p.entries:
        spec = run.entries.get(e.entry)
        blocked = e.entry in p.blocked
        table.add_row(
            e.entry,
            spec.type if spec else "",
            spec.site if spec else "",
            str(e.idle_jobs),
            f"{e.demand:g}",
            str(e.alive),
            str(e.launch),
            ", ".join(f"{n}x {t}" for t, n in e.launch_by_type.items()),
            _money(launch_cost(spec, e.launch_by_type)) if spec else "",
            str(e.cancel),
            str(e.wanted),
            f"[yellow]{e.bound_by}[/yellow]" if blocked else e.bound_by,
            "; ".join(e.notes),
        )
    console.print(table)
    costs = [
        launch_cost(run.entries[e.entry], e.launch_by_type)
        for e in p.entries
        if e.entry in run.entries
    ]
    hourly = None if None in costs else sum((c for c in costs if c is not None), Decimal(0))
    summary = (
        f"idle jobs: {p.idle_jobs}   launch: {p.launches}   cancel: {p.cancels}"
        f"   launches cost {_money(hourly)}/h"
        + (f"   request bound by: {p.bound_by}" if p.bound_by else "")
    )
    console.print(summary)
    for note in run.notes:
        console.print(note)
    uncovered = explain(p)
    if uncovered:
        why = Table(
            title="Idle jobs without a new pilot, and what bound them", title_justify="left"
        )
        why.add_column("Jobs", justify="right")
        why.add_column("Bound by")
        why.add_column("Why")
        for row in uncovered:
            why.add_row(str(row.jobs), row.bound_by, row.message)
        console.print(why)
    if p.unmatched:
        um = Table(title="Jobs no entry can run", title_justify="left")
        um.add_column("Jobs", justify="right")
        um.add_column("Cpus/Memory MB", justify="right")
        um.add_column("Why")
        for u in p.unmatched:
            um.add_row(str(u.cluster.count), f"{u.cluster.cpus}/{u.cluster.memory_mb}", u.reason)
        console.print(um)
    console.print()
