"""Status as pure functions: conditions that only move when they change, the request's
figures from a plan, and "did anything change" so we write only then."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

from glidein_operator.api.base import ApiModel
from glidein_operator.api.glideinrequest import EntryStatus, RequestTotals, UncoveredJobs
from glidein_operator.ground import CloudPilot
from glidein_operator.pilot.bundle import condensed
from glidein_operator.provisioning.planner import PilotPhase, PilotView, Plan
from glidein_operator.provisioning.report import explain

# Console logs of stuck and failed pilots kept in the request's status, where
# `kubectl get greq NAME -o jsonpath='{.status.pilotLogs}'` reads them after the VM is
# gone (Events expire within the hour). Bounded: the newest few, the end of each log.
KEPT_PILOT_LOGS = 10
PILOT_LOG_CHARS = 4000
# Rows of .status.uncovered (the largest groups; the total is in .status.totals).
UNCOVERED_ROWS = 20


def now_iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    out = [dict(c) for c in conditions if c.get("type") != type_]
    old = next((c for c in conditions if c.get("type") == type_), None)
    moved = old is None or old.get("status") != status
    out.append(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message[:2000],
            "lastTransitionTime": now_iso(now)
            if moved
            else old.get("lastTransitionTime", now_iso(now)),  # type: ignore[union-attr]
            "observedGeneration": generation,
        }
    )
    return sorted(out, key=lambda c: str(c["type"]))


def describe(problems: dict[str, str]) -> str:
    """``{entry: why}`` as one sentence for a condition message."""
    return "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))


def flag(
    conditions: list[dict[str, Any]],
    type_: str,
    problems: dict[str, str],
    reasons: tuple[str, str],
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """A condition that is True while ``problems`` is non-empty, naming each one.
    ``reasons`` = (reason when True, reason when False)."""
    if problems:
        return set_condition(
            conditions, type_, "True", reasons[0], describe(problems), generation, now
        )
    return set_condition(conditions, type_, "False", reasons[1], "", generation, now)


def request_status(
    plan: Plan,
    views: list[PilotView],
    request_uid: str,
    stuck: Counter[str],
    last_batch: Mapping[str, int],
) -> tuple[RequestTotals, list[EntryStatus]]:
    """The request's figures, per entry and in total, as the status models hold them."""
    mine = [v for v in views if v.request_uid == request_uid]
    by_entry: dict[str, Counter[PilotPhase]] = {}
    for v in mine:
        by_entry.setdefault(v.entry, Counter())[v.phase] += 1
    rows = []
    for e in plan.entries:
        c = by_entry.get(e.entry, Counter())
        rows.append(
            EntryStatus(
                name=e.entry,
                idle_jobs=e.idle_jobs,
                wanted=e.wanted,
                launching=c[PilotPhase.PENDING] + c[PilotPhase.BOOTING] + e.launch,
                running=c[PilotPhase.CLAIMED],
                idle=c[PilotPhase.IDLE],
                stuck=stuck.get(e.entry, 0),
                bound_by=e.bound_by,
                last_batch=last_batch.get(e.entry) or None,
            )
        )
    totals = RequestTotals(
        idle_jobs=sum(r.idle_jobs for r in rows) + sum(u.cluster.count for u in plan.unmatched),
        wanted=sum(r.wanted for r in rows),
        launching=sum(r.launching for r in rows),
        running=sum(r.running for r in rows),
        idle=sum(r.idle for r in rows),
        uncovered_jobs=sum(u.jobs for u in explain(plan)),
    )
    return totals, rows


def uncovered(plan: Plan) -> list[UncoveredJobs]:
    """Why idle jobs are left without a new pilot (provisioning/report.py), as the status
    holds it."""
    return [
        UncoveredJobs(
            jobs=u.jobs,
            bound_by=u.bound_by[:256],
            entries=list(u.entries[:50]),
            message=u.message[:1024],
        )
        for u in explain(plan)[:UNCOVERED_ROWS]
    ]


def dump(status: ApiModel) -> dict[str, Any]:
    """A status model as the API stores it (what is unknown is left out, not null)."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def through(model: type[ApiModel], status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` as its model writes it: every field checked against the CRD's own model
    (a key it does not know, a negative count, a malformed time fail here, not at the API
    server), and dumped as the API stores it. Only the fields given are written."""
    return model.model_validate(dict(status)).model_dump(
        by_alias=True, exclude_unset=True, mode="json"
    )


def changes(old: Mapping[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``new`` that differ from ``old``: what a status patch sends. Empty
    when nothing moved (no write); a big field (pilot logs) is not sent again with every
    count that changes."""
    before = old or {}
    return {k: v for k, v in new.items() if before.get(k) != v}


def pilot_log(p: CloudPilot, reason: str, log: str, now: dt.datetime) -> dict[str, Any]:
    # The ends of the pilot's HTCondor logs and its own, framed on its console at a fatal
    # error or at shutdown, each kept short rather than the first of them cut off.
    text = condensed(log).strip()
    return {
        "pilotId": p.pilot_id,
        "entry": p.entry,
        "cloudId": p.cloud_id,
        "reason": reason,
        "state": p.raw_state[:200],
        "at": now_iso(now),
        "log": text[-PILOT_LOG_CHARS:] if text else "(the back end had no console output)",
    }


def keep_pilot_logs(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest ``KEPT_PILOT_LOGS``, one per pilot, oldest first."""
    by_id = {str(x.get("pilotId")): x for x in [*old, *new]}
    return sorted(by_id.values(), key=lambda x: str(x.get("at")))[-KEPT_PILOT_LOGS:]


# Conditions whose bad state an admin should hear of as an Event (Budget* ones are
# announced by money/spending.py), and that bad state.
ANNOUNCED = {
    "Ready": "False",
    "Degraded": "True",
    "EntriesBlocked": "True",
    "JobsUnmatched": "True",
    "ImageDeprecated": "True",
}


def warnings(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason, message) of each announced condition that went bad, or stayed bad for a
    new reason, since ``old``: one Warning Event per change, not one per cycle."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for cond in new:
        bad = ANNOUNCED.get(str(cond.get("type")))
        if bad is None or cond.get("status") != bad:
            continue
        was = before.get(cond.get("type")) or {}
        if was.get("status") != bad or was.get("reason") != cond.get("reason"):
            out.append((str(cond.get("reason")), str(cond.get("message", ""))))
    return out
