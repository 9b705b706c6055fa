"""The operator's half of the payload: what a batch of pilots is told at boot."""

from __future__ import annotations

from glidein_operator.api.cloudentry import CloudEntrySpec, InstanceType
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.credentials import idtokens
from glidein_operator.pilot.attributes import DEFAULT_FACTORY
from glidein_operator.pilot.payload import LIMITS, Payload, encode
from glidein_operator.provisioning.matching import offer_of

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
    itype: InstanceType,
    image: VMImageSpec | None,
    batch: str,
    pool_signing_key: bytes | None,
    premade_token: str | None,
    now: int,
    factory: str = DEFAULT_FACTORY,
) -> Payload:
    lifetime = int(spec.pilot.lifetime_td.total_seconds())
    trust_domain = spec.trust_domain()
    if pool_signing_key is not None:
        token = idtokens.mint(
            pool_signing_key,
            identity=idtokens.pilot_identity(batch, trust_domain),
            issuer=trust_domain,
            lifetime=lifetime + BOOT_GRACE,
            now=now,
        )
    elif premade_token:
        token = premade_token
    else:
        raise ValueError("no pool signing key and no token: pilots could not join the pool")
    # The very description the planner matched jobs on, so the pilot advertises it.
    offer = offer_of(entry, entry_spec, itype, image)
    return Payload(
        batch=batch,
        request=request,
        request_uid=request_uid,
        entry=entry,
        site=entry_spec.site,
        collector=spec.collector,
        trust_domain=trust_domain,
        token=token,
        not_after=now + lifetime + BOOT_GRACE,
        lifetime=lifetime,
        idle_timeout=int(spec.pilot.idle_timeout_td.total_seconds()),
        retire_before_end=int(spec.pilot.retire_before_end_td.total_seconds()),
        start_expression=spec.pilot.start_expression,
        partitionable=spec.pilot.partitionable,
        attributes=dict(offer.attributes),
        extra_config=dict(spec.pilot.extra_config),
        factory=factory,
        resource_type=offer.resource_type,
        entry_trust_domain=offer.trust_domain,
        instance_type=offer.instance_type,
        price_per_hour=offer.price_per_hour,
        cpus=offer.cpus,
        memory_mb=offer.memory_mb,
        gpus=itype.gpus,
        os_name=offer.os_name,
        os_version=offer.os_version,
        provides=dict(offer.provides),
        ccb=spec.pilot.ccb,
        shared_port=spec.pilot.shared_port,
    )


def user_data(payload: Payload, entry_type: str) -> bytes:
    """The encoded payload, checked against the back end's user-data limit."""
    return encode(payload, LIMITS[entry_type])
