"""Each entry is listed once per cycle for all the requests that use it, however many
they are, and at steady state far less often; new idle jobs are still acted on at once."""

from __future__ import annotations

import asyncio

from glidein_operator.clouds.base import Throttled
from tests.support.many_requests import World_


def test_twenty_requests_on_five_entries_list_each_entry_at_most_once_a_cycle() -> None:
    w = World_(requests=20, entries=5)

    async def run() -> list[int]:
        for r in range(20):
            w.submit(r, 8)
        listed = [await w.cycle() for _ in range(8)]  # ramping up: launches every cycle
        w.start_all()
        listed += [await w.cycle() for _ in range(6)]
        return listed

    listed = asyncio.run(run())
    assert w.alive() == 20 * 8  # every request got its pilots
    assert max(listed) <= 5, listed
    assert sum(listed) <= 5 * len(listed)


def test_at_steady_state_entries_are_listed_on_the_slow_interval_with_jitter() -> None:
    w = World_(requests=20, entries=5, settings={"listing_steady_interval": 60.0})

    async def run() -> tuple[list[int], list[int]]:
        for r in range(20):
            w.submit(r, 5)  # a pilot at each entry
        for _ in range(3):
            await w.cycle()
        w.start_all()
        await w.cycle(5)  # one listing of each entry sees them settled
        quiet = [await w.cycle() for _ in range(47)]  # 48 s: within 0.8 x 60 s
        later = [await w.cycle() for _ in range(20)]  # past 60 s: each entry once more
        return quiet, later

    quiet, later = asyncio.run(run())
    assert sum(quiet) == 0, quiet
    assert sum(later) == 5, later


def test_new_idle_jobs_are_launched_for_in_the_next_cycle_without_waiting_for_a_listing() -> None:
    w = World_(requests=3, entries=2)

    async def run() -> tuple[int, int, int]:
        w.submit(0, 4)
        for _ in range(3):
            await w.cycle()
        w.start_all()
        await w.cycle(5)
        await w.cycle()
        before = w.alive()
        w.submit(1, 6)
        listed = await w.cycle()  # the very next cycle, a second later
        return before, w.alive(), listed

    before, after, listed = asyncio.run(run())
    assert after == before + 6
    assert listed == 0  # the settled listing served: the schedd drove the launch


def test_requests_with_different_credentials_at_an_entry_are_listed_apart() -> None:
    w = World_(requests=4, entries=1, secrets={0: "tok-a", 1: "tok-a", 2: "tok-b", 3: "tok-b"})

    async def run() -> int:
        return await w.cycle()

    assert asyncio.run(run()) == 2
    assert len(w.fakes) == 2
    for (_entry, cred), fake in w.fakes.items():
        assert len(fake.called("list")) == 1, cred


def test_a_throttled_listing_holds_listings_back_and_the_last_one_stands_in() -> None:
    w = World_(requests=5, entries=1, settings={"listing_interval": 1.0})

    async def run() -> tuple[list[int], dict[str, object]]:
        w.submit(0, 2)
        await w.cycle()
        await w.cycle()  # the launch made the listing stale: listed again
        (fake,) = w.fakes.values()
        fake.fail_next("list", Throttled("Rate exceeded"))
        listed = [await w.cycle(1.5)]  # refused: the hold begins (1 s, then doubling)
        listed += [await w.cycle(0.2) for _ in range(2)]  # held: not asked again
        listed += [await w.cycle(2.0)]  # past the hold: asked again, and answers
        return listed, w.status[w.requests[0][1]]

    listed, status = asyncio.run(run())
    assert listed == [1, 0, 0, 1], listed
    assert status["totals"]["launching"] == 2  # planned from the listing that stood in
