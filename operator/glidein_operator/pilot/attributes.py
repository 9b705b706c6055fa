"""What a pilot says about itself in its startd ad, computed in one place for both ends.

The planner matches jobs against a machine ad it synthesises before any pilot exists
(``provisioning.matching.machine_ad``); the pilot's startd advertises the real one
(``condor_config.render``). Both take the attributes HTCondor does not measure from
``offer_attributes``, so a job the planner launched a pilot for matches that pilot.
Values are ClassAd expression text. Standard library only: this runs on the worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Read back by the operator from startd ads (condor/pilots.py).
PILOT_ID = "GlideinPilotId"
REQUEST_UID = "GlideinRequestUid"
ENTRY_NAME = "GLIDEIN_Entry_Name"
TO_RETIRE = "GLIDEIN_ToRetire"
TO_DIE = "GLIDEIN_ToDie"

DEFAULT_FACTORY = "glidein-operator"


def classad_string(value: str) -> str:
    return json.dumps(value)  # ClassAd string literals escape like JSON strings


def classad_real(value: float) -> str:
    # repr round-trips the double, and always reads back as a real (0.0, not the integer 0).
    return repr(float(value))


@dataclass(frozen=True)
class Offer:
    """One instance type at one entry, as far as jobs can see it."""

    entry: str
    site: str
    trust_domain: str  # the entry's TrustDomain (factory side), not the pool's TRUST_DOMAIN
    resource_type: str  # the entry's back end: ec2, openstack, opennebula, grid, kubernetes
    instance_type: str
    price_per_hour: float | None  # None: unknown (not advertised)
    cpus: int
    memory_mb: int
    os_name: str = ""
    os_version: str = ""
    provides: Mapping[str, str] = field(default_factory=dict)  # the image's, ClassAd text
    attributes: Mapping[str, str] = field(default_factory=dict)  # the entry's, ClassAd text


def offer_attributes(offer: Offer) -> dict[str, str]:
    """The GlideinWMS-style description of the offer, the image's OS and ``provides``,
    and the entry's ``attributes``. Later entries win (the entry's attributes over the
    image's, both over the defaults), except the entry name, which the operator reads back
    and so cannot be overridden."""
    out: dict[str, str] = {
        "GLIDEIN_Site": classad_string(offer.site),
        "GLIDEIN_ResourceName": classad_string(offer.site),
    }
    for name, value in (
        ("GLIDEIN_TrustDomain", offer.trust_domain),
        ("GLIDEIN_ResourceType", offer.resource_type),
        ("GLIDEIN_InstanceType", offer.instance_type),
    ):
        if value:  # unknown (a payload of an older operator): absent rather than ""
            out[name] = classad_string(value)
    if offer.price_per_hour is not None:
        out["GLIDEIN_PricePerHour"] = classad_real(offer.price_per_hour)
    out["GLIDEIN_CPUS"] = str(offer.cpus)
    out["GLIDEIN_MaxMemMBs"] = str(offer.memory_mb)
    if offer.os_name:
        out["OpSysName"] = classad_string(offer.os_name)
    major = offer.os_version.split(".")[0]
    if major:
        # The startd's own OpSysMajorVer is an integer: a job comparing it with 9 must see 9.
        out["OpSysMajorVer"] = major if re.fullmatch(r"[0-9]+", major) else classad_string(major)
    out.update(offer.provides)
    out.update(offer.attributes)
    out[ENTRY_NAME] = classad_string(offer.entry)
    return out


def pilot_attributes(
    offer: Offer,
    *,
    factory: str,
    name: str,
    pilot_id: str,
    request_uid: str,
    to_retire: int,
    to_die: int,
) -> dict[str, str]:
    """Everything a running pilot advertises beyond what its startd measures: the offer's
    attributes and who this pilot is (known only at launch and boot). The identity comes
    last so that no entry attribute can overwrite what the operator reads back."""
    return {
        "GLIDEIN_Factory": classad_string(factory or DEFAULT_FACTORY),
        "GLIDEIN_Name": classad_string(name),
        **offer_attributes(offer),
        PILOT_ID: classad_string(pilot_id),
        REQUEST_UID: classad_string(request_uid),
        TO_RETIRE: str(to_retire),
        TO_DIE: str(to_die),
    }
