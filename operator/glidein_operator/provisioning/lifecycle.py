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
* Still pending past the registration timeout (a Nova server stuck in BUILD, a pod left
  Pending, a grid job idle at the CE): it has not started, so it cannot have registered
  either; reaped with its log kept, whether or not the collector answered.
* Registered and idle past ``idleTimeout`` plus a grace: its startd should have shut
  itself down (``STARTD_NOCLAIM_SHUTDOWN``) and did not; terminated from outside. Idle
  time is counted from when this process first saw it idle (``idle_since``, handed in
  and out), so a restart only ever makes the operator later, never early.
* Older than its lifetime plus a grace: terminated from outside, whatever it says
  (the pilot should have drained and left; this is the belt to its braces).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from glidein_operator.condor.pilots import RegisteredPilot, SlotState
from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.provisioning.planner import PilotPhase, PilotView


class Reap(enum.StrEnum):
    SHUTDOWN = "stopped without terminating"
    ERROR = "failed"
    STUCK = "never registered"
    NEVER_STARTED = "still pending past registrationTimeout"
    IDLE = "idle past idleTimeout"
    EXPIRED = "outlived its lifetime"
    BUDGET = "budget kill switch"
    FINISHED = "finished"  # ended, its record lingering at the back end (``lingers``)


@dataclass(frozen=True)
class Timeouts:
    registration: dt.timedelta
    lifetime: dt.timedelta
    grace: dt.timedelta = dt.timedelta(minutes=15)
    idle: dt.timedelta | None = None  # None: never reaped for idleness from outside
    # The pilot's own shutdown comes first: its supervisor's tick, condor_off, power-off.
    idle_grace: dt.timedelta = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Classified:
    views: list[PilotView]
    reap: list[tuple[CloudPilot, Reap]]
    # Pilot id -> when first seen idle, for the registered pilots idle now.
    idle_since: dict[str, dt.datetime] = field(default_factory=dict)


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
    idle_since: Mapping[str, dt.datetime] | None = None,
) -> Classified:
    views: list[PilotView] = []
    reap: list[tuple[CloudPilot, Reap]] = []
    # An unread collector says nothing of idleness: what was seen stays remembered.
    idle_now: dict[str, dt.datetime] = dict(idle_since or {}) if registered is None else {}
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
            if reg.state is SlotState.IDLE:
                since = idle_now[p.pilot_id] = (idle_since or {}).get(p.pilot_id, now)
                if timeouts.idle is not None and now - since > timeouts.idle + timeouts.idle_grace:
                    reap.append((p, Reap.IDLE))
                    continue
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
        elif p.state is PilotState.PENDING and age > timeouts.registration:
            reap.append((p, Reap.NEVER_STARTED))
            phase = PilotPhase.STUCK
        elif p.state is PilotState.PENDING:
            phase = PilotPhase.PENDING
        elif age > timeouts.registration and registered is not None:
            reap.append((p, Reap.STUCK))
            phase = PilotPhase.STUCK
        else:
            phase = PilotPhase.BOOTING
        views.append(PilotView(p.pilot_id, p.request_uid, p.entry, p.instance_type, phase))
    return Classified(views, reap, idle_now)


def shared_phases(
    cloud: Iterable[CloudPilot], registered: dict[str, RegisteredPilot] | None
) -> dict[str, Counter[PilotPhase]]:
    """Other requests' pilots, per entry and phase, as far as the limits they share with
    this request need them (entry maxPilots and maxIdlePilots, the operator's own): their
    requests judge, time out and reap them. Cheaper than ``classify``: one look each. A
    pilot its own request is about to reap (stuck, expired) still counts here until it
    is gone, which errs on the side of the limits."""
    out: dict[str, Counter[PilotPhase]] = {}
    seen = registered or {}
    for p in cloud:
        if p.state in _ENDED:
            continue
        reg = seen.get(p.pilot_id)
        if reg is not None:
            phase = _SLOT_PHASE[reg.state]
        elif p.state is PilotState.PENDING:
            phase = PilotPhase.PENDING
        else:
            phase = PilotPhase.BOOTING
        counts = out.get(p.entry)
        if counts is None:
            counts = out[p.entry] = Counter()
        counts[phase] += 1
    return out


_ENDED = frozenset({PilotState.TERMINATED, PilotState.SHUTDOWN, PilotState.ERROR})
