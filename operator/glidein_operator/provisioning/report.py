"""A plan as people read it: one row per entry, the limit that bound it, and the jobs
no entry can run with the reason."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.provisioning.dryrun import DryRun


def launch_cost(spec: CloudEntrySpec, launch_by_type: dict[str, int]) -> Decimal:
    """What the launches of a plan cost per hour at the entry's prices."""
    total = Decimal(0)
    for name, n in launch_by_type.items():
        itype = spec.instance_type(name)
        if itype is not None:
            total += itype.price_per_hour * n
    return total


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
            f"{launch_cost(spec, e.launch_by_type):.2f}" if spec else "",
            str(e.cancel),
            str(e.wanted),
            f"[yellow]{e.bound_by}[/yellow]" if blocked else e.bound_by,
            "; ".join(e.notes),
        )
    console.print(table)
    hourly = sum(
        (
            launch_cost(run.entries[e.entry], e.launch_by_type)
            for e in p.entries
            if e.entry in run.entries
        ),
        Decimal(0),
    )
    summary = (
        f"idle jobs: {p.idle_jobs}   launch: {p.launches}   cancel: {p.cancels}"
        f"   launches cost {hourly:.2f}/h"
        + (f"   request bound by: {p.bound_by}" if p.bound_by else "")
    )
    console.print(summary)
    if p.unmatched:
        um = Table(title="Jobs no entry can run", title_justify="left")
        um.add_column("Jobs", justify="right")
        um.add_column("Cpus/Memory MB", justify="right")
        um.add_column("Why")
        for u in p.unmatched:
            um.add_row(str(u.cluster.count), f"{u.cluster.cpus}/{u.cluster.memory_mb}", u.reason)
        console.print(um)
    console.print()
