"""HTCondor IDTOKENs, minted for one launch batch from the user pool's signing key.

HTCondor's scheme, as upstream ``getTokenSigningKey`` (src/condor_utils/store_cred.cpp) and
``Condor_Auth_Passwd::generate_token`` (src/condor_io/condor_auth_passwd.cpp) implement it:
a signing key file is stored XOR-scrambled with 0xDEADBEEF (``simple_scramble``); the POOL
key, and only it, is *doubled* after unscrambling (key + key: a compatibility rule kept for
tokens signed before 8.9.12); named keys are not. The result is fed to HKDF-SHA256 (salt
``htcondor``, info ``master jwt``, 32 bytes), which signs an HS256 JWT whose header names
the key (``kid``) and whose claims carry the identity (``sub``), the pool's TRUST_DOMAIN
(``iss``, compared verbatim by collector and pilot), lifetime and authorizations (``scope``).
The key file is binary (64 random bytes written by the collector); it stays bytes here.
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


def signing_key(scrambled_key: bytes, kid: str = "POOL") -> bytes:
    """The HS256 key for tokens signed with the key file ``kid`` (its bytes as stored)."""
    key = unscramble(scrambled_key)
    if kid in ("", "POOL"):
        key += key
    return hkdf_sha256(key, b"htcondor", b"master jwt")


def _domain(trust_domain: str) -> str:
    return trust_domain.rsplit(":", 1)[0] if trust_domain.count(":") == 1 else trust_domain


def operator_identity(trust_domain: str) -> str:
    """Who the operator is when it reads the pool (collector and schedds)."""
    return f"glidein-operator@{_domain(trust_domain)}"


def pilot_identity(batch: str, trust_domain: str) -> str:
    """``glidein-<batch>@<domain>``: a collector admits pilots with
    ``ALLOW_ADVERTISE_STARTD = glidein-*@<domain>`` and can deny one batch by name. The domain
    is the trust domain without a port (an identity's domain part names hosts, not
    endpoints)."""
    return f"glidein-{batch}@{_domain(trust_domain)}"


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
        signing_key(scrambled_pool_key, kid), signing_input.encode(), hashlib.sha256
    ).digest()
    return signing_input + "." + _b64(signature)


def claims(token: str) -> dict[str, object]:
    """The claims of a token, unverified (for display and expiry checks)."""
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def header(token: str) -> dict[str, object]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def verify(token: str, scrambled_key: bytes) -> bool:
    """Whether the token was signed with this key file (the ``kid`` in its header says
    whether the key is doubled). Expiry and issuer are the caller's to check."""
    try:
        head, body, sig = token.strip().split(".")
        kid = str(header(token).get("kid", "POOL"))
    except ValueError:
        return False
    expected = hmac.new(
        signing_key(scrambled_key, kid), f"{head}.{body}".encode(), hashlib.sha256
    ).digest()
    return hmac.compare_digest(_b64(expected), sig)
