"""HTCondor IDTOKENs, minted for one launch batch from the user pool's signing key.

HTCondor's scheme (the protocol, as condor_token_create implements it): the signing key
file in ``passwords.d`` is stored XOR-scrambled with 0xDEADBEEF; unscrambled, it is fed
to HKDF-SHA256 (salt ``htcondor``, info ``master jwt``, 32 bytes), and the result signs
an HS256 JWT whose header names the key (``kid``) and whose claims carry the identity
(``sub``), the trust domain (``iss``), lifetime and the authorizations (``scope``).
Stdlib only (hmac, hashlib), so the pilot side could verify the same way.

A pilot's token allows only what a startd does: advertise itself and read. It expires
with the pilot's lifetime plus a margin, and names the batch, so the collector can tell
pilots apart and an admin can deny one batch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from itertools import cycle

PILOT_SCOPE = "condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER condor:/READ"


def unscramble(data: bytes) -> bytes:
    return bytes(b ^ k for b, k in zip(data, cycle(b"\xde\xad\xbe\xef"), strict=False))


def hkdf_sha256(key: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_key(scrambled_pool_key: bytes) -> bytes:
    return hkdf_sha256(unscramble(scrambled_pool_key), b"htcondor", b"master jwt")


def mint(
    scrambled_pool_key: bytes,
    *,
    identity: str,
    issuer: str,
    lifetime: int,
    now: int,
    kid: str = "POOL",
    scope: str = PILOT_SCOPE,
) -> str:
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    claims = {
        "sub": identity,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = hmac.new(
        signing_key(scrambled_pool_key), signing_input.encode(), hashlib.sha256
    ).digest()
    return signing_input + "." + _b64(signature)


def claims(token: str) -> dict[str, object]:
    """The claims of a token, unverified (for display and expiry checks)."""
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def verify(token: str, scrambled_pool_key: bytes) -> bool:
    head, body, sig = token.split(".")
    expected = hmac.new(
        signing_key(scrambled_pool_key), f"{head}.{body}".encode(), hashlib.sha256
    ).digest()
    return hmac.compare_digest(_b64(expected), sig)
