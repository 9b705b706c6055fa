"""Pilots as the user pool's collector sees them (startd ads carrying our pilot id)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import classad2

from glidein_operator.pilot import attributes

# Attributes a pilot advertises in its startd ad (glidein_operator.pilot.attributes).
PILOT_ID = attributes.PILOT_ID
PILOT_REQUEST = attributes.REQUEST_UID
PILOT_ENTRY = attributes.ENTRY_NAME
PILOT_TO_RETIRE = attributes.TO_RETIRE
# What pilots of earlier releases advertised instead: they keep running through an
# operator upgrade, for up to a lifetime, and must still count at their entry.
LEGACY_ENTRY = "GlideinEntryName"
LEGACY_TO_RETIRE = "GlideinToRetire"

STARTD_PROJECTION: tuple[str, ...] = (
    "Name",
    "State",
    "Activity",
    "Cpus",
    "TotalSlotCpus",
    "PartitionableSlot",
    "DynamicSlot",
    PILOT_ID,
    PILOT_REQUEST,
    PILOT_ENTRY,
    PILOT_TO_RETIRE,
    LEGACY_ENTRY,
    LEGACY_TO_RETIRE,
)


class SlotState(enum.StrEnum):
    IDLE = "idle"  # registered, nothing claimed: capacity for idle jobs
    CLAIMED = "claimed"  # running jobs (a partitionable slot may still have room)
    RETIRING = "retiring"  # draining towards its end: no capacity, still alive


@dataclass(frozen=True)
class RegisteredPilot:
    pilot_id: str
    request_uid: str
    entry: str
    state: SlotState
    total_cpus: int
    free_cpus: int

    @property
    def free_fraction(self) -> float:
        if self.state is SlotState.RETIRING or self.total_cpus <= 0:
            return 0.0
        return min(1.0, self.free_cpus / self.total_cpus)


def _int(ad: classad2.ClassAd, name: str, default: int = 0) -> int:
    value = ad.get(name, default)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def pilot_from_ad(ad: classad2.ClassAd, now: float) -> RegisteredPilot | None:
    """Our view of one slot ad; None for slots that are not our pilots (or dynamic slots,
    whose partitionable parent already accounts for them)."""
    pilot_id = ad.get(PILOT_ID)
    if not isinstance(pilot_id, str) or ad.get("DynamicSlot") is True:
        return None
    state_attr = str(ad.get("State", ""))
    activity = str(ad.get("Activity", ""))
    total = _int(ad, "TotalSlotCpus", _int(ad, "Cpus", 1))
    free = _int(ad, "Cpus", 0)
    to_retire = ad.get(PILOT_TO_RETIRE, ad.get(LEGACY_TO_RETIRE))
    retiring = (
        activity == "Retiring"
        or state_attr in ("Drained", "Preempting")
        or (
            isinstance(to_retire, int | float)
            and not isinstance(to_retire, bool)
            and now >= to_retire
        )
    )
    partitionable = ad.get("PartitionableSlot") is True
    if retiring:
        state = SlotState.RETIRING
    elif partitionable:
        state = SlotState.IDLE if free >= total else SlotState.CLAIMED
    else:
        state = SlotState.CLAIMED if state_attr == "Claimed" else SlotState.IDLE
        free = total if state is SlotState.IDLE else 0
    return RegisteredPilot(
        pilot_id=pilot_id,
        request_uid=str(ad.get(PILOT_REQUEST, "")),
        entry=str(ad.get(PILOT_ENTRY, ad.get(LEGACY_ENTRY, ""))),
        state=state,
        total_cpus=total,
        free_cpus=free,
    )
