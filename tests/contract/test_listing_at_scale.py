"""Past the first page: the OpenStack and OpenNebula drivers list every pilot of an entry
exactly once at 2,100 (Nova's pages of at most 1,000 with ``limit``/``marker`` and
``servers_links``; ``one.vmpool.infoextended``'s offset pages), and a cloud's quota
refusal reaches the controller as QuotaExceeded. Each back end here is a double of its
own, so the 2,100 pilots stay out of the other contract tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from openstack import exceptions as os_exc
from prometheus_client import CollectorRegistry

from glidein_devkit.opennebula_fake import FakeOpenNebula
from glidein_devkit.openstack_fake import MAX_LIMIT, FakeOpenStack, Latency
from glidein_operator.api.cloudentry import OpenNebulaSettings, OpenStackSettings
from glidein_operator.clouds.base import QuotaExceeded
from glidein_operator.clouds.instrumented import DriverMetrics, InstrumentedDriver
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from glidein_operator.clouds.openstack import OpenStackDriver
from glidein_operator.ground import LaunchBatch
from tests.support.harness import SHAPE

MANY = 2100
LISTING = "GET /compute/v2.1/servers/detail"


def _batch(key: str, count: int, image: str, entry: str = "e1") -> LaunchBatch:
    return LaunchBatch(key, "uid-0001", "ns1/req1", entry, SHAPE, count, image, b"#!/bin/sh\n")


def _wrapped(driver: Any) -> InstrumentedDriver:
    return InstrumentedDriver(
        driver, launches_per_minute=10**6, metrics=DriverMetrics(CollectorRegistry())
    )


# --- OpenStack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nova() -> Iterator[FakeOpenStack]:
    with FakeOpenStack() as fake:
        fake.check_leaks = False
        yield fake


def _nova_driver(fake: FakeOpenStack, page_size: int = 1000, entry: str = "e1") -> OpenStackDriver:
    settings = OpenStackSettings.model_validate(
        {"authUrl": fake.auth_url, "region": "RegionOne", "projectName": "glidein-project"}
    )
    return OpenStackDriver(
        entry,
        settings,
        credentials={"username": "glidein", "password": "secret"},
        operator_id="op-test",
        page_size=page_size,
    )


@pytest.fixture(scope="module")
def many_servers(nova: FakeOpenStack) -> set[str]:
    """2,100 servers of entry e1 (three multi-creates), and 50 of another entry."""
    nova.reset()
    driver = _nova_driver(nova)
    for n in range(3):
        driver.launch(_batch(f"big{n}", MANY // 3, nova.image_id))
    _nova_driver(nova, entry="e2").launch(_batch("other", 50, nova.image_id, entry="e2"))
    ours = {s["id"] for s in nova.state.servers.values() if "glidein-entry:e1" in s["tags"]}
    assert len(ours) == MANY
    return ours


def _servers(
    fake: FakeOpenStack, driver: OpenStackDriver, count: int, tags: list[str] | None = None
) -> None:
    """``count`` servers in one multi-create, without the listing a driver's launch makes
    after it (openstacksdk takes milliseconds to read each server of a listing)."""
    driver._conn.compute.create_server(
        name="neighbour",
        image_id=fake.image_id,
        flavor_id="flavor-m5.large",
        min_count=1,
        max_count=count,
        networks="auto",
        tags=tags or [],
    )


def _pages(fake: FakeOpenStack) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(r.split(" ", 1)[1]).query) for r in fake.requests(LISTING)]


@pytest.mark.parametrize("page_size", [1000, 250, 5000])
def test_openstack_lists_2100_servers_once_each_page_by_page(
    nova: FakeOpenStack, many_servers: set[str], page_size: int
) -> None:
    nova.state.log.clear()
    pilots = _nova_driver(nova, page_size).list_pilots()
    ids = [p.cloud_id for p in pilots]
    assert len(ids) == len(set(ids)) == MANY
    assert set(ids) == many_servers
    pages = _pages(nova)
    # Nova serves at most max_limit a page whatever the client asks: every page was one
    # request, each after the last server of the one before, none repeated.
    size = min(page_size, MAX_LIMIT)
    full = MANY // size
    assert full + 1 <= len(pages) <= full + 2, pages
    assert "marker" not in pages[0]
    markers = [p["marker"][0] for p in pages[1:]]
    assert len(set(markers)) == len(markers)
    newest_first = [p.cloud_id for p in pilots]
    assert markers[:full] == [newest_first[size * (i + 1) - 1] for i in range(full)]
    # The server-side tag filter travels with every page (the next links carry it).
    assert all(p["tags"] == ["glidein-op:op-test,glidein-entry:e1"] for p in pages)


def test_openstack_next_link_is_novas(nova: FakeOpenStack, many_servers: set[str]) -> None:
    driver = _nova_driver(nova)
    reply = driver._conn.compute.get(
        "/servers/detail", params={"limit": 1000, "tags": "glidein-entry:e1"}
    ).json()
    assert len(reply["servers"]) == 1000
    (link,) = reply["servers_links"]
    assert link["rel"] == "next"
    query = parse_qs(urlparse(link["href"]).query)
    assert query == {
        "limit": ["1000"],
        "tags": ["glidein-entry:e1"],
        "marker": [reply["servers"][-1]["id"]],
    }
    # Newest first, as Nova's default sort (created_at desc, id desc).
    rows = [nova.state.servers[s["id"]]["_row"] for s in reply["servers"]]
    assert rows == sorted(rows, reverse=True)


def test_openstack_listing_survives_deletes_between_pages(nova: FakeOpenStack) -> None:
    """A server deleted while a listing pages (its marker's among them) neither breaks
    the listing (Nova finds markers among deleted rows) nor makes another show twice."""
    nova.reset()
    driver = _nova_driver(nova)
    tags = "glidein-op:op-test,glidein-entry:e1"
    _servers(nova, driver, MANY, tags.split(","))
    listing = driver._conn.compute.servers(details=True, tags=tags, limit=1000)
    first = [next(listing).id for _ in range(1000)]
    unseen = sorted(set(nova.state.servers) - set(first))
    doomed = [first[-1], first[0], *unseen[:10]]  # the marker, a seen one, ten unseen
    for sid in doomed:
        driver._conn.compute.delete_server(sid)
    rest = [s.id for s in listing]
    assert not set(rest) & set(first)
    assert len(rest) == len(set(rest)) == MANY - 1000 - 10
    assert set(rest) == set(unseen) - set(doomed)
    nova.reset()


def test_openstack_quota_is_novas_and_maps_to_quota_exceeded(nova: FakeOpenStack) -> None:
    nova.reset()
    nova.set_quota(instances=2000)
    driver = _nova_driver(nova)
    wrapped = _wrapped(driver)
    _servers(nova, driver, 1990)  # the project's other servers count too
    assert len(asyncio.run(wrapped.launch(_batch("last", 10, nova.image_id)))) == 10
    # Full: Nova refuses the whole multi-create (min_count 1 does not fit) with a 403.
    with pytest.raises(os_exc.HttpException) as raw:
        driver.launch(_batch("over", 100, nova.image_id))
    assert raw.value.status_code == 403
    assert raw.value.response is not None
    assert raw.value.response.json() == {
        "forbidden": {
            "code": 403,
            "message": "Quota exceeded for instances: Requested 1-100, "
            "but already used 2000 of 2000 instances",
        }
    }
    mapped = driver.map_error(raw.value)
    assert isinstance(mapped, QuotaExceeded)
    assert mapped.retryable
    with pytest.raises(QuotaExceeded, match="Quota exceeded for instances"):
        asyncio.run(wrapped.launch(_batch("over2", 1, nova.image_id)))
    assert len(nova.state.servers) == 2000
    nova.reset()


def test_openstack_multi_create_takes_what_the_quota_leaves(nova: FakeOpenStack) -> None:
    """As Nova: max_count beyond the quota but min_count within it starts as many as fit;
    the cores quota counts too, and Nova names every resource over its limit."""
    nova.reset()
    nova.set_quota(instances=10, cores=16)  # m5.large: 2 vCPUs, so 8 servers' worth
    driver = _nova_driver(nova)
    assert len(driver.launch(_batch("part", 12, nova.image_id))) == 8
    with pytest.raises(os_exc.HttpException) as raw:
        driver.launch(_batch("none", 1, nova.image_id))
    assert raw.value.response is not None
    assert raw.value.response.json()["forbidden"]["message"] == (
        "Quota exceeded for cores: Requested 2, but already used 16 of 16 cores"
    )
    assert isinstance(driver.map_error(raw.value), QuotaExceeded)
    nova.set_quota(instances=8, cores=16)
    with pytest.raises(os_exc.HttpException) as raw:
        driver.launch(_batch("both", 2, nova.image_id))
    assert raw.value.response is not None
    assert raw.value.response.json()["forbidden"]["message"] == (
        "Quota exceeded for cores, instances: Requested 4, 1-2, but already used 16, 8 "
        "of 16, 8 cores, instances"
    )
    nova.reset()


def test_openstack_latency_model_is_off_unless_set(nova: FakeOpenStack) -> None:
    nova.reset()
    assert nova.state.latency == Latency()
    driver = _nova_driver(nova)
    driver.launch(_batch("slow", 300, nova.image_id))
    nova.set_latency(base=0.05, per_listed=0.002)
    before = len(nova.requests("GET /compute/v2.1/servers/detail"))
    started = time.perf_counter()
    assert len(driver.list_pilots()) == 300
    # One request for the one page (no next link: the driver asks for no more): at least
    # the base and 2 ms a server.
    assert len(nova.requests("GET /compute/v2.1/servers/detail")) == before + 1
    assert time.perf_counter() - started >= 0.05 + 300 * 0.002
    nova.reset()
    assert nova.state.latency == Latency()


# --- OpenNebula --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one() -> Iterator[FakeOpenNebula]:
    with FakeOpenNebula() as fake:
        fake.check_leaks = False
        yield fake


def _one_driver(fake: FakeOpenNebula, page_size: int = 500, entry: str = "e1") -> OpenNebulaDriver:
    return OpenNebulaDriver(
        entry,
        OpenNebulaSettings.model_validate({"endpoint": fake.endpoint, "templateId": 42}),
        username="glidein",
        password="secret",
        operator_id="op-test",
        page_size=page_size,
    )


@pytest.fixture(scope="module")
def many_vms(one: FakeOpenNebula) -> set[str]:
    """2,100 VMs of entry e1, 30 of another entry and 40 ended ones (DONE) between them."""
    one.reset()
    driver = _one_driver(one)
    driver.launch(_batch("first", 1000, "1342"))
    ended = driver.launch(_batch("ended", 40, "1342"))
    driver.terminate(ended)
    _one_driver(one, entry="e2").launch(_batch("other", 30, "1342", entry="e2"))
    driver.launch(_batch("second", MANY - 1000, "1342"))
    live = {str(v.id) for v in one.vms.values() if v.user_template.get("GLIDEIN_ENTRY") == "e1"}
    live -= {p.cloud_id for p in ended}
    assert len(live) == MANY
    return live


@pytest.mark.parametrize(("page_size", "order"), [(500, "ASC"), (1000, "DESC"), (300, "ASC")])
def test_opennebula_lists_2100_vms_once_each_page_by_page(
    one: FakeOpenNebula, many_vms: set[str], page_size: int, order: str
) -> None:
    one.list_order = order
    one.log.clear()
    try:
        pilots = _one_driver(one, page_size).list_pilots()
    finally:
        one.list_order = "ASC"
    ids = [p.cloud_id for p in pilots]
    assert len(ids) == len(set(ids)) == MANY
    assert set(ids) == many_vms
    # one.vmpool.infoextended(filter, start, end, state, kv): with end < -1, start is an
    # offset and -end the page size; state -1 leaves out DONE VMs.
    calls = [args for name, args in one.log if name == "vmpool.infoextended"]
    pages = MANY // page_size + 1
    assert [c[:4] for c in calls] == [(-2, i * page_size, -page_size, -1) for i in range(pages)]
    assert ids == sorted(ids, key=int, reverse=order == "DESC")


def test_opennebula_quota_at_scale_maps_to_quota_exceeded(
    one: FakeOpenNebula, many_vms: set[str]
) -> None:
    before = one.vm_quota
    one.vm_quota = len(one.live())
    try:
        with pytest.raises(QuotaExceeded, match=r"limit of \d+ reached for VMS quota"):
            asyncio.run(_wrapped(_one_driver(one)).launch(_batch("over", 1, "1342")))
    finally:
        one.vm_quota = before
    assert len(_one_driver(one).list_pilots()) == MANY
