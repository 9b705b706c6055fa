"""The ground floor: the words every layer shares about pilots in a cloud.

What a back end reports (``CloudPilot``, ``PilotState``), what a launch asks for
(``LaunchBatch``, ``Shape``), and the ownership marks written on every pilot. Drivers,
the planner, the money step and the status all speak these; this module imports nothing
of ours, so any layer may import it (the import contracts in pyproject.toml hold that).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from decimal import Decimal


class Tag:
    """Ownership marks, written atomically at creation on every back end (EC2 tags,
    OpenStack metadata, OpenNebula template attributes, pod labels)."""

    OPERATOR = "glidein.dev/operator"
    REQUEST_UID = "glidein.dev/request-uid"
    REQUEST = "glidein.dev/request"
    ENTRY = "glidein.dev/entry"
    BATCH = "glidein.dev/batch"
    PILOT_ID = "glidein.dev/pilot-id"
    INSTANCE_TYPE = "glidein.dev/instance-type"
    SPOT = "glidein.dev/spot"
    # The hourly price the pilot was launched at: accounting survives a restart and a later
    # price change in the CloudEntry without remembering anything.
    PRICE = "glidein.dev/price-per-hour"


class PilotState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SHUTDOWN = "shutdown"  # stopped without terminating (OpenStack SHUTOFF, OpenNebula POWEROFF)
    TERMINATED = "terminated"
    ERROR = "error"
    UNKNOWN = "unknown"


ALIVE_STATES = frozenset({PilotState.PENDING, PilotState.RUNNING, PilotState.SHUTDOWN})


@dataclass(frozen=True)
class Shape:
    """The instance type to launch, as the entry describes it."""

    name: str
    cpus: int
    memory_mb: int
    disk_gb: int
    gpus: int = 0
    price_per_hour: Decimal | None = None  # None: unknown (no price tag is written)


@dataclass(frozen=True)
class LaunchBatch:
    """Pilots of one request, one entry and one instance type, started in one call.

    ``key`` is deterministic (request uid, entry, a per-request sequence number): a
    retry after a crash uses the same key, so the back end can tell it is a retry. Pilot
    ids are ``{key}-{index}``: each pilot learns its index at boot (EC2's AMI launch
    index, or its own name elsewhere), so both sides agree without per-pilot user data.
    """

    key: str
    request_uid: str
    request: str  # namespace/name, for people reading tags
    entry: str
    shape: Shape
    count: int
    image_id: str | None
    user_data: bytes
    spot: bool = False
    spot_max_price: Decimal | None = None
    spot_fallback: bool = False  # on-demand when spot capacity is lacking (EC2)

    def pilot_id(self, index: int) -> str:
        return f"{self.key}-{index}"

    def tags(self) -> dict[str, str]:
        price = (
            self.spot_max_price if self.spot and self.spot_max_price else self.shape.price_per_hour
        )
        tags = {
            Tag.REQUEST_UID: self.request_uid,
            Tag.REQUEST: self.request.replace("/", "."),
            Tag.ENTRY: self.entry,
            Tag.BATCH: self.key,
            Tag.INSTANCE_TYPE: self.shape.name,
            Tag.SPOT: "true" if self.spot else "false",
        }
        if price is not None:
            tags[Tag.PRICE] = str(price)
        return tags


@dataclass(frozen=True)
class CloudPilot:
    """A pilot as the back end reports it."""

    pilot_id: str
    cloud_id: str
    entry: str
    request_uid: str
    batch: str
    instance_type: str
    state: PilotState
    launched_at: dt.datetime | None = None
    spot: bool = False
    raw_state: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # What it costs per hour, where the back end says (the price tag written at launch,
    # or the spot price actually charged); None: the entry's price applies.
    price_per_hour: Decimal | None = None
    # When it stopped, where the back end keeps terminated pilots and says when.
    ended_at: dt.datetime | None = None
    # A spot pilot the cloud took back (EC2 Server.SpotInstanceTermination).
    interrupted: bool = False
    # It powered itself off (EC2 Client.InstanceInitiatedShutdown, OpenStack SHUTOFF,
    # OpenNebula POWEROFF): it ended by its own decision, not the operator's or the cloud's.
    shut_itself_down: bool = False
    # Ended, but the back end keeps its record (and its output) until told to let go: a
    # finished grid pilot job at the submitting schedd. Reaped with its log kept.
    lingers: bool = False


def price_from_tags(tags: dict[str, str]) -> Decimal | None:
    try:
        return Decimal(tags[Tag.PRICE])
    except (KeyError, ArithmeticError, ValueError):
        return None
