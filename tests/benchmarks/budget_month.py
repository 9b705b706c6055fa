"""A simulated month of the real reconcile under a budget, several seeds: overspend and
accounting error per run (the issue's floors: overspend at most one instance-hour of the
most expensive type, accounting within a cent). Exits 1 if a run misses either.

    .venv/bin/python -m tests.benchmarks.budget_month [--seeds 5] [--step-minutes 15]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from tests.support.simulation import START, Sim

DEC1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--step-minutes", type=float, default=15)
    ap.add_argument("--limit", type=int, default=2000)
    args = ap.parse_args()
    table = Table(title=f"30 simulated days, budget {args.limit}/month, prices moving every 3 days")
    for col in (
        "seed",
        "spent",
        "overspend",
        "1 h of dearest",
        "accounting error",
        "pilots",
        "status writes/cycle",
        "wall s",
    ):
        table.add_column(col, justify="right")
    ok = True
    for seed in range(1, args.seeds + 1):
        t = time.perf_counter()
        sim = Sim(
            {"limit": args.limit, "period": "monthly"},
            step=dt.timedelta(minutes=args.step_minutes),
            seed=seed,
        )
        sim.run(30.01, restart_at=START + dt.timedelta(days=15))
        spent = sim.cloud.cost(START, DEC1)
        closed = sim.status["spend"]["previousPeriod"]
        error = abs(Decimal(str(closed["spent"])) - spent)
        dearest = sim.cloud.most_expensive_price()
        over = spent - args.limit
        ok &= over <= dearest and error < Decimal("0.01")
        table.add_row(
            str(seed),
            f"{spent:.4f}",
            f"{over:.4f}",
            f"{dearest:.3f}",
            f"{error:.7f}",
            str(len(sim.cloud.history)),
            f"{sim.writes / sim.cycles:.2f}",
            f"{time.perf_counter() - t:.1f}",
        )
    Console(width=160).print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
