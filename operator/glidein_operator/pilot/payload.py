"""The contextualization payload: one versioned format written by the operator and read
by the pilot. Standard library only: this module runs inside VMs and pods.

Wire form (what goes into EC2/OpenStack user data, the OpenNebula CONTEXT, a pod's
Secret or a grid job's environment)::

    #glidein-payload v1 sha256=<hex of the body>
    <base64 of gzip of the JSON document>

The checksum catches truncation (user-data limits, copy-paste); the version lets a pilot
refuse a format it does not know instead of guessing; ``not_after`` makes a leaked
payload useless after the pilot's lifetime. The payload holds a short-lived pool token
scoped to one launch batch, never a cloud credential.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

VERSION = 1
HEADER = re.compile(r"^#glidein-payload v(\d+) sha256=([0-9a-f]{64})$")
LIMITS = {
    "ec2": 16 * 1024,
    "openstack": 65535 * 3 // 4,
    "opennebula": 1024 * 1024,
    "kubernetes": 1024 * 1024,
    "grid": 64 * 1024,
}


class PayloadError(ValueError):
    """A payload that cannot be used; the message says exactly why."""


@dataclass(frozen=True)
class Payload:
    batch: str
    request: str
    request_uid: str
    entry: str
    site: str
    collector: str
    token: str  # IDTOKEN for the user pool, scoped to this batch
    not_after: int  # epoch seconds: payload and token expire
    lifetime: int  # seconds from boot to the hard end
    idle_timeout: int
    retire_before_end: int
    start_expression: str = "true"
    # The pool's TRUST_DOMAIN (the token's issuer); empty in payloads of older operators.
    trust_domain: str = ""
    partitionable: bool = True
    attributes: dict[str, str] = field(default_factory=dict)  # ClassAd expressions
    extra_config: dict[str, str] = field(default_factory=dict)
    # What the planner matched jobs on (pilot.attributes.Offer), so the pilot advertises
    # the same. Defaults are what payloads of older operators decode to: unknown.
    factory: str = ""  # the operator's id
    resource_type: str = ""  # the entry's back end
    entry_trust_domain: str = ""  # the entry's TrustDomain, not the pool's (trust_domain)
    instance_type: str = ""
    price_per_hour: float | None = None
    cpus: int = 0  # the instance type's; 0: unknown
    memory_mb: int = 0
    gpus: int = 0
    os_name: str = ""  # the image's
    os_version: str = ""
    provides: dict[str, str] = field(default_factory=dict)  # the image's, ClassAd expressions
    # Networking for pilots behind NAT or a firewall (docs/pilot-networking.md).
    ccb: bool = False
    shared_port: bool = False
    version: int = VERSION

    def pilot_id(self, index: int) -> str:
        return f"{self.batch}-{index}"


def encode(payload: Payload, limit: int | None = None) -> bytes:
    body = base64.b64encode(
        gzip.compress(json.dumps(asdict(payload), sort_keys=True).encode(), mtime=0)
    )
    out = (
        f"#glidein-payload v{payload.version} sha256={hashlib.sha256(body).hexdigest()}\n".encode()
        + body
        + b"\n"
    )
    if limit is not None and len(out) > limit:
        raise PayloadError(
            f"payload is {len(out)} bytes, over the limit of {limit} for this back end"
        )
    return out


_REQUIRED = (
    "batch",
    "request",
    "request_uid",
    "entry",
    "site",
    "collector",
    "token",
    "not_after",
    "lifetime",
    "idle_timeout",
    "retire_before_end",
)


def decode(data: bytes | str, now: float) -> Payload:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    lines = text.strip().splitlines()
    if not lines:
        raise PayloadError("empty payload: no user data reached this machine")
    m = HEADER.match(lines[0].strip())
    if not m:
        raise PayloadError(
            "not a glidein payload: the first line must be '#glidein-payload v<N> sha256=<hex>'"
        )
    version, digest = int(m.group(1)), m.group(2)
    if version != VERSION:
        raise PayloadError(
            f"payload version {version} is not supported by this pilot (it reads v{VERSION})"
        )
    body = "".join(line.strip() for line in lines[1:]).encode()
    if hashlib.sha256(body).hexdigest() != digest:
        raise PayloadError("payload checksum mismatch: truncated or altered on the way")
    try:
        doc: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(body, validate=True)))
    except (ValueError, OSError) as exc:
        raise PayloadError(f"payload body is not base64 gzip JSON: {exc}") from None
    missing = [k for k in _REQUIRED if k not in doc or doc[k] in ("", None)]
    if missing:
        raise PayloadError(f"payload lacks {', '.join(missing)}")
    known = {f.name for f in fields(Payload)}
    payload = Payload(**{k: v for k, v in doc.items() if k in known})
    if payload.token.count(".") != 2:
        raise PayloadError("payload token is not a JWT (three dot-separated parts)")
    if now > payload.not_after:
        raise PayloadError(
            f"payload expired at {payload.not_after} (now {int(now)}): this pilot starts too late"
        )
    if payload.lifetime <= payload.retire_before_end:
        raise PayloadError("payload lifetime must exceed retire_before_end")
    return payload
