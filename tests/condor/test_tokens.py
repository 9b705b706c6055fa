"""IDTOKENs against HTCondor's own code: the collector accepts what the operator mints,
refuses a wrong key or a wrong issuer, and ``idtokens.verify`` agrees with
``condor_token_create``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from glidein_devkit.condor_pool import CondorPool, PilotMachine
from glidein_operator.credentials import idtokens
from tests.condor.support import eventually


def _mint(key: bytes, batch: str, issuer: str) -> str:
    return idtokens.mint(
        key,
        identity=idtokens.pilot_identity(batch, issuer),
        issuer=issuer,
        lifetime=3600,
        now=int(time.time()),
    )


def _slot_auth(pool: CondorPool, name: str) -> list[str]:
    out = pool.tool(
        "condor_status",
        "-const",
        f'GlideinPilotId == "{name}"',
        "-af",
        "AuthenticatedIdentity",
        "AuthenticationMethod",
    ).stdout
    return out.split()


def test_a_startd_with_an_operator_minted_token_registers(
    pool: CondorPool, machine: Callable[[], PilotMachine]
) -> None:
    m = machine()
    batch = f"b{os.getpid()}-ok"
    token = _mint(pool.signing_key(), batch, pool.trust_domain)
    m.start_startd(pool.collector, token, pool.trust_domain)

    seen = eventually(lambda: _slot_auth(pool, m.name), 60, "the slot in the collector")
    identity = f"glidein-{batch}@127.0.0.1"
    assert seen == [identity, "IDTOKENS"]
    granted = [
        line
        for line in pool.log_lines("Collector", f"PERMISSION GRANTED to {identity}")
        if "UPDATE_STARTD_AD" in line
    ]
    assert granted, "the collector logged no grant for the pilot's identity"
    print(f"\ncollector: {granted[0]}")


@pytest.mark.parametrize("fault", ["wrong signing key", "wrong issuer"])
def test_a_startd_with_a_bad_token_is_refused(
    pool: CondorPool, machine: Callable[[], PilotMachine], fault: str
) -> None:
    m = machine()
    batch = f"b{os.getpid()}-{fault.split()[1]}"
    if fault == "wrong signing key":
        token = _mint(os.urandom(64), batch, pool.trust_domain)
    else:
        # The issuer with its port stripped: what the operator used to write.
        token = _mint(pool.signing_key(), batch, pool.trust_domain.split(":")[0])
    m.start_startd(pool.collector, token, pool.trust_domain)

    eventually(
        lambda: m.log_lines("Start", "Failed to authenticate using IDTOKENS"),
        60,
        "the startd's authentication failure",
    )
    # A few update rounds later, still nothing in the collector.
    time.sleep(6)
    assert _slot_auth(pool, m.name) == []
    assert not pool.log_lines("Collector", f"PERMISSION GRANTED to glidein-{batch}@")


def test_tokens_from_condor_token_create_verify(pool: CondorPool) -> None:
    token = pool.token_create("someone@glidein.test", "READ")
    assert idtokens.header(token)["kid"] == "POOL"
    assert idtokens.claims(token)["iss"] == pool.trust_domain
    assert idtokens.verify(token, pool.signing_key())
    assert not idtokens.verify(token, os.urandom(64))
    # HTCondor writes {"alg","kid"}; PyJWT adds "typ": "JWT" (as the operator always did),
    # which the collector accepts (test_a_startd_with_an_operator_minted_token_registers).
    assert idtokens.header(token) == {"alg": "HS256", "kid": "POOL"}
    ours = _mint(pool.signing_key(), "header", pool.trust_domain)
    assert idtokens.header(ours) == {"alg": "HS256", "kid": "POOL", "typ": "JWT"}


def test_named_keys_are_not_doubled(pool: CondorPool) -> None:
    # A key file other than POOL, as an admin would add one: HTCondor does not double it.
    named = pool.local / "passwords.d" / "SITEKEY"
    fd = os.open(named, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(os.urandom(64))
    out = pool.tool(
        "condor_token_create", "-identity", "x@glidein.test", "-key", "SITEKEY", "-authz", "READ"
    )
    token = out.stdout.strip()
    assert idtokens.header(token)["kid"] == "SITEKEY"
    assert idtokens.verify(token, named.read_bytes())
    minted = idtokens.mint(
        named.read_bytes(),
        identity="y@glidein.test",
        issuer=pool.trust_domain,
        lifetime=60,
        now=int(time.time()),
        kid="SITEKEY",
    )
    assert idtokens.verify(minted, named.read_bytes())
    assert not idtokens.verify(minted, pool.signing_key())
