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
    "Memory",
    "Disk",
    "GPUs",
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
class Leftover:
    """What a pilot has left for new jobs. For a partitionable slot, its own Cpus, Memory
    (MB), Disk (KB) and GPUs: what its dynamic slots have not carved out. Capacity is what
    fits a job on *every* dimension: four free cores next to 1 GB of memory run no 8 GB
    job. ``None``: the slot does not advertise it (a real startd always does; the
    in-memory doubles may not), and it does not bound."""

    cpus: int
    memory_mb: int | None = None
    disk_kb: int | None = None
    gpus: int = 0

    def jobs_fit(self, cpus: int, memory_mb: int, disk_kb: int, gpus: int) -> int:
        """How many jobs of this size fit at once (0: none)."""
        n = self.cpus // max(1, cpus)
        if memory_mb and self.memory_mb is not None:
            n = min(n, self.memory_mb // memory_mb)
        if disk_kb and self.disk_kb is not None:
            n = min(n, self.disk_kb // disk_kb)
        if gpus:
            n = min(n, self.gpus // gpus)
        return max(0, n)

    def minus(self, n: int, cpus: int, memory_mb: int, disk_kb: int, gpus: int) -> Leftover:
        """What is left once ``n`` such jobs took their share."""
        return Leftover(
            self.cpus - n * max(1, cpus),
            None if self.memory_mb is None else self.memory_mb - n * memory_mb,
            None if self.disk_kb is None else self.disk_kb - n * disk_kb,
            self.gpus - n * gpus,
        )


@dataclass(frozen=True)
class RegisteredPilot:
    pilot_id: str
    request_uid: str
    entry: str
    state: SlotState
    total_cpus: int
    free_cpus: int
    # What a partitionable pilot has left on every dimension (None: a static slot, whose
    # capacity is all or nothing).
    left: Leftover | None = None

    @property
    def free_fraction(self) -> float:
        if self.state is SlotState.RETIRING or self.total_cpus <= 0:
            return 0.0
        return min(1.0, self.free_cpus / self.total_cpus)


def _int(ad: classad2.ClassAd, name: str, default: int = 0) -> int:
    value = ad.get(name, default)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _maybe_int(ad: classad2.ClassAd, name: str) -> int | None:
    value = ad.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
    left = None
    if retiring:
        state = SlotState.RETIRING
    elif partitionable:
        state = SlotState.IDLE if free >= total else SlotState.CLAIMED
        left = Leftover(
            cpus=free,
            memory_mb=_maybe_int(ad, "Memory"),
            disk_kb=_maybe_int(ad, "Disk"),
            gpus=_int(ad, "GPUs", 0),
        )
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
        left=left,
    )
