"""What each pilot is, from what the cloud says and what the collector says, and which
ones must go (pure: time comes in).

* Cloud TERMINATED: gone, ignored.
* Cloud SHUTDOWN (OpenStack SHUTOFF, OpenNebula POWEROFF/UNKNOWN): the VM ignored
  terminate-on-shutdown; reap it.
* Cloud ERROR (a failed boot, a held grid job): reap it, keeping its log.
* Running and registered: IDLE, CLAIMED or RETIRING as the collector reports.
* Running, registered before but not now: its startd left, it is ending (RETIRING).
* Running, not registered within the registration timeout: STUCK; its console log is
  kept and it is terminated. When the collector could not be read (``registered`` is
  None) nobody is judged stuck: no answer is not "not registered", and the pilots that
  look unregistered may be running jobs.
* Older than its lifetime plus a grace: terminated from outside, whatever it says
  (the pilot should have drained and left; this is the belt to its braces).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from glidein_operator.condor.pilots import RegisteredPilot, SlotState
from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.provisioning.planner import PilotPhase, PilotView


class Reap(enum.StrEnum):
    SHUTDOWN = "stopped without terminating"
    ERROR = "failed"
    STUCK = "never registered"
    EXPIRED = "outlived its lifetime"
    BUDGET = "budget kill switch"
    FINISHED = "finished"  # ended, its record lingering at the back end (``lingers``)


@dataclass(frozen=True)
class Timeouts:
    registration: dt.timedelta
    lifetime: dt.timedelta
    grace: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Classified:
    views: list[PilotView]
    reap: list[tuple[CloudPilot, Reap]]


_SLOT_PHASE = {
    SlotState.IDLE: PilotPhase.IDLE,
    SlotState.CLAIMED: PilotPhase.CLAIMED,
    SlotState.RETIRING: PilotPhase.RETIRING,
}


def classify(
    cloud: Iterable[CloudPilot],
    registered: dict[str, RegisteredPilot] | None,
    now: dt.datetime,
    timeouts: Timeouts,
    seen_registered: Collection[str] = (),
) -> Classified:
    views: list[PilotView] = []
    reap: list[tuple[CloudPilot, Reap]] = []
    for p in cloud:
        if p.state is PilotState.TERMINATED:
            continue
        age = now - p.launched_at if p.launched_at else dt.timedelta(0)
        if p.state is PilotState.SHUTDOWN:
            reap.append((p, Reap.SHUTDOWN))
            continue
        if p.state is PilotState.ERROR:
            reap.append((p, Reap.ERROR))
            continue
        if age > timeouts.lifetime + timeouts.grace:
            reap.append((p, Reap.EXPIRED))
            continue
        reg = registered.get(p.pilot_id) if registered is not None else None
        if reg is not None:
            phase = _SLOT_PHASE[reg.state]
            views.append(
                PilotView(
                    p.pilot_id,
                    p.request_uid,
                    p.entry,
                    p.instance_type,
                    phase,
                    reg.free_fraction,
                    reg.left,
                )
            )
            continue
        if p.pilot_id in seen_registered and registered is not None:
            # Registered before, gone from the collector now: its startd left (idle, or
            # retired) and the machine or job is ending. Neither capacity nor to cancel:
            # cancelling a grid pilot now would lose its output.
            phase = PilotPhase.RETIRING
        elif p.state is PilotState.PENDING:
            phase = PilotPhase.PENDING
        elif age > timeouts.registration and registered is not None:
            reap.append((p, Reap.STUCK))
            phase = PilotPhase.STUCK
        else:
            phase = PilotPhase.BOOTING
        views.append(PilotView(p.pilot_id, p.request_uid, p.entry, p.instance_type, phase))
    return Classified(views, reap)
