"""The operator's half of the payload: what a batch of pilots is told at boot."""

from __future__ import annotations

from glidein_operator.api.base import parse_duration
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.credentials import idtokens
from glidein_operator.pilot.payload import LIMITS, Payload, encode

# A payload stays usable this long past the pilot lifetime: a VM that boots late (cloud
# queue, slow image) must still start, one that boots a day late must not.
BOOT_GRACE = 3600


def build(
    *,
    request: str,
    request_uid: str,
    spec: GlideinRequestSpec,
    entry: str,
    entry_spec: CloudEntrySpec,
    batch: str,
    pool_signing_key: bytes | None,
    premade_token: str | None,
    now: int,
) -> Payload:
    lifetime = int(parse_duration(spec.pilot.lifetime).total_seconds())
    collector_host = spec.collector.split(":")[0]
    if pool_signing_key is not None:
        token = idtokens.mint(
            pool_signing_key,
            identity=f"glidein-{batch}@{collector_host}",
            issuer=collector_host,
            lifetime=lifetime + BOOT_GRACE,
            now=now,
        )
    elif premade_token:
        token = premade_token
    else:
        raise ValueError("no pool signing key and no token: pilots could not join the pool")
    return Payload(
        batch=batch,
        request=request,
        request_uid=request_uid,
        entry=entry,
        site=entry_spec.site,
        collector=spec.collector,
        token=token,
        not_after=now + lifetime + BOOT_GRACE,
        lifetime=lifetime,
        idle_timeout=int(parse_duration(spec.pilot.idle_timeout).total_seconds()),
        retire_before_end=int(parse_duration(spec.pilot.retire_before_end).total_seconds()),
        start_expression=spec.pilot.start_expression,
        partitionable=spec.pilot.partitionable,
        attributes=dict(entry_spec.attributes),
        extra_config=dict(spec.pilot.extra_config),
    )


def user_data(payload: Payload, entry_type: str) -> bytes:
    """The encoded payload, checked against the back end's user-data limit."""
    return encode(payload, LIMITS[entry_type])
