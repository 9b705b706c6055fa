"""Helpers for the HTCondor tier: polling with a deadline (daemons answer in their own
time), the operator's own token."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from glidein_operator.credentials import idtokens
from glidein_operator.testing.condor_pool import CondorPool

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
) -> T:
    """The first truthy value ``probe`` returns within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:.0f}s: {what}")
        time.sleep(interval)


def operator_token(pool: CondorPool) -> str:
    """The READ token the operator mints itself from the pool's signing key."""
    return idtokens.mint(
        pool.signing_key(),
        identity=idtokens.operator_identity(pool.trust_domain),
        issuer=pool.trust_domain,
        lifetime=600,
        now=int(time.time()),
        scope="condor:/READ",
    )
