"""IDTOKENs byte for byte: the tokens and keys below were written by the hand-made HKDF and
HS256 signer that ``tests/condor/test_tokens.py`` proved against a real collector; PyJWT and
cryptography's HKDF must keep writing exactly these bytes."""

from __future__ import annotations

import uuid

import pytest

from glidein_operator.credentials import idtokens

KEY = bytes(range(64))

POOL_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wiLCJ0eXAiOiJKV1QifQ."
    "eyJzdWIiOiJnbGlkZWluLWIxQHBvb2wuZXhhbXBsZS5vcmciLCJpc3MiOiJwb29sLmV4YW1wbGUub3JnOjk2MTgi"
    "LCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwLCJqdGkiOiIwMDAwMDAw"
    "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMTIzNCIsInNjb3BlIjoiY29uZG9yOi9BRFZFUlRJU0VfU1RBUlREIGNvbmRv"
    "cjovQURWRVJUSVNFX01BU1RFUiBjb25kb3I6L1JFQUQifQ."
    "gv8kWLv_tZZ2qZ9BuroXRWi5mJkYFPf9mQ0xH0pKs0k"
)
NAMED_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IlNJVEVLRVkiLCJ0eXAiOiJKV1QifQ."
    "eyJzdWIiOiJ4QHBvb2wuZXhhbXBsZS5vcmciLCJpc3MiOiJwb29sLmV4YW1wbGUub3JnIiwiaWF0IjoxNzAwMDAw"
    "MDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDA2MCwianRpIjoiMDAwMDAwMDAwMDAwMDAwMDAwMDAw"
    "MDAwMDAwMDEyMzQiLCJzY29wZSI6ImNvbmRvcjovUkVBRCJ9."
    "wio6TNPYX1X3v0JQfEUnCMyMlet0YkgGTsaO9wauBrA"
)


@pytest.fixture
def fixed_jti(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0x1234))


def test_signing_keys_double_only_the_pool_key() -> None:
    assert (
        idtokens.signing_key(KEY).hex()
        == "292e12e9d5d2a37ee7bd72eb7bb8d51f56d34fd688a98bdaf7346549278c26ac"
    )
    assert idtokens.signing_key(KEY, "") == idtokens.signing_key(KEY, "POOL")
    assert (
        idtokens.signing_key(KEY, "SITEKEY").hex()
        == "65ce6d2d9adb4e61ef1506e4ef59dfd0041f9655cdad20a8a7fe369b0d0e7fb4"
    )


@pytest.mark.usefixtures("fixed_jti")
@pytest.mark.parametrize(
    ("token", "identity", "issuer", "lifetime", "named"),
    [
        (POOL_TOKEN, "glidein-b1@pool.example.org", "pool.example.org:9618", 3600, {}),
        (NAMED_TOKEN, "x@pool.example.org", "pool.example.org", 60, {"kid": "SITEKEY"}),
    ],
    ids=["pool", "named"],
)
def test_minted_tokens_are_byte_exact(
    token: str, identity: str, issuer: str, lifetime: int, named: dict[str, str]
) -> None:
    scope = {"scope": "condor:/READ"} if named else {}
    minted = idtokens.mint(
        KEY, identity=identity, issuer=issuer, lifetime=lifetime, now=1700000000, **named, **scope
    )
    assert minted == token
    kid = named.get("kid", "POOL")
    assert idtokens.header(minted) == {"alg": "HS256", "kid": kid, "typ": "JWT"}


def test_verify_checks_the_signature_and_nothing_else() -> None:
    # Both tokens expired long ago: expiry is the caller's to judge.
    assert idtokens.verify(POOL_TOKEN, KEY)
    assert idtokens.verify(NAMED_TOKEN + "\n", KEY)
    assert not idtokens.verify(POOL_TOKEN, bytes(64))
    # The kid decides the doubling: the same key under another name does not verify.
    forged = POOL_TOKEN.replace(POOL_TOKEN.split(".")[0], NAMED_TOKEN.split(".")[0])
    assert not idtokens.verify(forged, KEY)
    assert idtokens.claims(POOL_TOKEN)["exp"] == 1700003600
    assert idtokens.claims(NAMED_TOKEN)["sub"] == "x@pool.example.org"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "\x00\x01", "e30.e30"])
def test_garbage_is_no_token(garbage: str) -> None:
    assert not idtokens.verify(garbage, KEY)
    with pytest.raises(ValueError, match="not a JWT"):
        idtokens.claims(garbage)
