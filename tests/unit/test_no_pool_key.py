"""A request whose pool key is missing is told so, and its pool is not read: nothing could
be launched, and a read would only send unauthenticated traffic to a pool being set up
(the examples as shipped name a collector that is not the tests' to contact)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.many_requests import World_


def test_without_the_pool_key_the_pool_is_not_read_and_the_request_says_why() -> None:
    w = World_(requests=1, entries=1)
    w.submit(0, 4)
    reads: list[tuple[Any, ...]] = []
    reader = w.rt.reader

    def counting(*args: Any) -> Any:
        reads.append(args)
        return reader(*args)

    async def no_pool_key(namespace: str, name: str) -> tuple[dict[str, bytes], str] | None:
        return None if name == "pool" else ({"token": b"scitoken"}, "1")

    w.rt.reader = counting  # type: ignore[method-assign]
    w.rt.secret = no_pool_key  # type: ignore[method-assign]
    _before, after = asyncio.run(w.reconcile_one(0))
    ready = {c["type"]: c for c in after["conditions"]}["Ready"]
    assert ready["reason"] == "NoPoolCredential", ready
    assert "kubectl -n r0 create secret generic pool" in ready["message"], ready
    assert reads == []
    assert w.alive() == 0
