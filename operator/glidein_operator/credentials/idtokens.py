"""HTCondor IDTOKENs, minted for one launch batch from the user pool's signing key.

HTCondor's scheme, as upstream ``getTokenSigningKey`` (src/condor_utils/store_cred.cpp) and
``Condor_Auth_Passwd::generate_token`` (src/condor_io/condor_auth_passwd.cpp) implement it:
a signing key file is stored XOR-scrambled with 0xDEADBEEF (``simple_scramble``); the POOL
key, and only it, is *doubled* after unscrambling (key + key: a compatibility rule kept for
tokens signed before 8.9.12); named keys are not. The result is fed to HKDF-SHA256 (salt
``htcondor``, info ``master jwt``, 32 bytes), which signs an HS256 JWT whose header names
the key (``kid``) and whose claims carry the identity (``sub``), the pool's TRUST_DOMAIN
(``iss``, compared verbatim by collector and pilot), lifetime and authorizations (``scope``).
The key file is binary (64 random bytes written by the collector); it stays bytes here, and
is never truncated at a NUL (upstream truncates only under
``SEC_TOKEN_POOL_SIGNING_KEY_IS_PASSWORD``, a pre-9.0 knob, off by default). HKDF is
``cryptography``'s, the JWT is PyJWT's; only the key derivation is HTCondor's own, and it
lives in ``signing_key``. PyJWT writes the header sorted, ``{"alg":"HS256","kid":...,
"typ":"JWT"}``: HTCondor's own tokens leave ``typ`` out, its collector accepts it either way,
and these are the bytes the operator has always minted (tests/unit/test_idtokens.py).

A pilot's token allows only what a startd does: advertise itself and read. It expires
with the pilot's lifetime plus a margin, and names the batch, so the collector can tell
pilots apart and an admin can deny one batch.
"""

from __future__ import annotations

import uuid
from itertools import cycle

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PILOT_SCOPE = "condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER condor:/READ"
ALGORITHM = "HS256"


def unscramble(data: bytes) -> bytes:
    """Undo HTCondor's ``simple_scramble`` (XOR with 0xDEADBEEF, repeated)."""
    return bytes(b ^ k for b, k in zip(data, cycle(b"\xde\xad\xbe\xef"), strict=False))


def signing_key(scrambled_key: bytes, kid: str = "POOL") -> bytes:
    """The HS256 key for tokens signed with the key file ``kid`` (its bytes as stored)."""
    key = unscramble(scrambled_key)
    if kid in ("", "POOL"):
        key += key
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"htcondor", info=b"master jwt")
    return hkdf.derive(key)


def domain_of(trust_domain: str) -> str:
    """An identity's domain part for a trust domain: without its port."""
    return trust_domain.rsplit(":", 1)[0] if trust_domain.count(":") == 1 else trust_domain


def operator_identity(trust_domain: str) -> str:
    """Who the operator is when it reads the pool (collector and schedds)."""
    return f"glidein-operator@{domain_of(trust_domain)}"


def pilot_identity(batch: str, trust_domain: str) -> str:
    """``glidein-<batch>@<domain>``: a collector admits pilots with
    ``ALLOW_ADVERTISE_STARTD = glidein-*@<domain>`` and can deny one batch by name. The domain
    is the trust domain without a port (an identity's domain part names hosts, not
    endpoints)."""
    return f"glidein-{batch}@{domain_of(trust_domain)}"


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
    # Claims in this order (PyJWT keeps it); the header PyJWT sorts: alg, kid, typ.
    claims = {
        "sub": identity,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    return jwt.encode(
        claims, signing_key(scrambled_pool_key, kid), algorithm=ALGORITHM, headers={"kid": kid}
    )


def claims(token: str) -> dict[str, object]:
    """The claims of a token, unverified (for display and expiry checks). ValueError when
    ``token`` is not a JWT."""
    try:
        return dict(jwt.decode(token.strip(), options={"verify_signature": False}))
    except jwt.PyJWTError as exc:
        raise ValueError(f"not a JWT: {exc}") from exc


def header(token: str) -> dict[str, object]:
    """The header of a token, unverified. ValueError when ``token`` is not a JWT."""
    try:
        return dict(jwt.get_unverified_header(token.strip()))
    except jwt.PyJWTError as exc:
        raise ValueError(f"not a JWT: {exc}") from exc


def verify(token: str, scrambled_key: bytes) -> bool:
    """Whether the token was signed with this key file (the ``kid`` in its header says
    whether the key is doubled). Expiry and issuer are the caller's to check."""
    try:
        kid = str(header(token).get("kid", "POOL"))
        # The signature alone: PyJWS checks no claim (exp, nbf, iss are the caller's).
        jwt.PyJWS().decode(token.strip(), signing_key(scrambled_key, kid), algorithms=[ALGORITHM])
    except (ValueError, jwt.PyJWTError):
        return False
    return True
