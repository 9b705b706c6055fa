"""A plan as people read it: one row per entry, the limit that bound it, and the jobs
no entry can run with the reason."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.provisioning.dryrun import DryRun


def launch_cost(spec: CloudEntrySpec, launch_by_type: dict[str, int]) -> Decimal | None:
    """What the launches of a plan cost per hour at the entry's prices; None when a
    price is unknown."""
    total = Decimal(0)
    for name, n in launch_by_type.items():
        itype = spec.instance_type(name)
        if itype is None or itype.price_per_hour is None:
            return None
        total += itype.price_per_hour * n
    return total


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
    if p.unmatched:
        um = Table(title="Jobs no entry can run", title_justify="left")
        um.add_column("Jobs", justify="right")
        um.add_column("Cpus/Memory MB", justify="right")
        um.add_column("Why")
        for u in p.unmatched:
            um.add_row(str(u.cluster.count), f"{u.cluster.cpus}/{u.cluster.memory_mb}", u.reason)
        console.print(um)
    console.print()
