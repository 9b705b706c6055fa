"""EC2 API economy: one RunInstances per batch, a paginated listing, retries that reuse
the ClientToken instead of launching twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from glidein_operator.api.cloudentry import Ec2Settings
from glidein_operator.clouds.base import InsufficientCapacity
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.ground import PilotState
from tests.support.harness import EC2_SECRET, SHAPE, ec2_harness


def test_batches_cost_one_run_instances_each_and_listing_pages(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    driver = Ec2Driver(
        "e1",
        Ec2Settings(region="us-east-1", endpoint_url=ec2_server.url),
        access_key_id="testing",
        secret_access_key=EC2_SECRET,
        operator_id="op-test",
        page_size=2,
    )
    ec2_server.reset()
    for _ in range(3):
        driver.launch(h.batch(100))
    listed = [p for p in driver.list_pilots() if p.state is not PilotState.TERMINATED]
    calls = ec2_server.calls()
    assert calls["RunInstances"] == 3
    assert len(listed) == 300
    assert len({p.pilot_id for p in listed}) == 300
    # moto pages by reservation (AWS by instance): 3 reservations, 2 per page.
    assert calls["DescribeInstances"] == math.ceil(3 / 2)


def test_a_retried_launch_after_a_lost_reply_does_not_double(ec2_server: Any) -> None:
    # The reply to the first RunInstances is lost (a 503 after the server acted is
    # indistinguishable, for the client, from one before): botocore retries with the same
    # ClientToken, and the AWS-faithful server returns the first reservation.
    h = ec2_harness(ec2_server)
    driver = h.make()
    batch = h.batch(5)
    first = driver.launch(batch)
    second = driver.launch(batch)
    assert {p.cloud_id for p in first} == {p.cloud_id for p in second}
    assert ec2_server.calls()["RunInstances"] == 2
    assert len([p for p in driver.list_pilots() if p.state is PilotState.RUNNING]) == 5


def test_spot_shortage_falls_back_to_on_demand_once_and_idempotently(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    driver = h.make()
    ec2_server.reset()
    batch = dataclasses.replace(
        h.batch(4), spot=True, spot_max_price=Decimal("0.05"), spot_fallback=True
    )
    ec2_server.fail("RunInstances", "InsufficientInstanceCapacity", times=2, when="MarketType=spot")
    first = driver.launch(batch)
    assert len(first) == 4
    assert not any(p.spot for p in first)  # what the reconcile reports as SpotFallback
    listed = [p for p in driver.list_pilots() if p.state is PilotState.RUNNING]
    assert {p.cloud_id for p in listed} == {p.cloud_id for p in first}
    # The on-demand pilots carry the on-demand price, not the spot cap.
    assert {p.price_per_hour for p in listed} == {batch.shape.price_per_hour}
    # A retry after a crash (spot still short) finds the same on-demand instances.
    again = driver.launch(batch)
    assert {p.cloud_id for p in again} == {p.cloud_id for p in first}
    assert ec2_server.calls()["RunInstances"] == 4


def test_spot_shortage_without_fallback_is_a_capacity_error(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    driver = h.make()
    ec2_server.reset()
    batch = dataclasses.replace(h.batch(2), spot=True, spot_fallback=False)
    ec2_server.fail("RunInstances", "InsufficientInstanceCapacity", when="MarketType=spot")
    with pytest.raises(ClientError) as err:  # the SDK's, for InstrumentedDriver to map
        driver.launch(batch)
    assert isinstance(driver.map_error(err.value), InsufficientCapacity)
    assert [p for p in driver.list_pilots() if p.state is PilotState.RUNNING] == []


def test_interrupted_spot_pilots_and_end_times_are_reported(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    driver = h.make()
    ec2_server.reset()
    pilots = driver.launch(dataclasses.replace(h.batch(3), spot=True))
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert ec2_server.interrupt([pilots[0].cloud_id]) == 1
    driver.terminate([pilots[1]])
    after = dt.datetime.now(dt.UTC)
    by_id = {p.cloud_id: p for p in driver.list_pilots()}
    gone, ended, alive = (by_id[p.cloud_id] for p in pilots)
    assert gone.interrupted
    assert gone.state is PilotState.TERMINATED
    assert not ended.interrupted
    for p in (gone, ended):
        assert p.ended_at is not None
        assert before <= p.ended_at <= after
    assert alive.ended_at is None
    assert not alive.interrupted


def test_running_spot_pilots_cost_the_market_price_on_demand_ones_their_tag(
    ec2_server: Any,
) -> None:
    h = ec2_harness(ec2_server)
    driver = h.make()
    ec2_server.reset()
    ec2_server.set_spot_prices({SHAPE.name: "0.0312"})
    spot = driver.launch(dataclasses.replace(h.batch(2), spot=True, spot_max_price=Decimal("0.1")))
    priced = dataclasses.replace(SHAPE, price_per_hour=Decimal("0.096"))
    on_demand = driver.launch(dataclasses.replace(h.batch(1), shape=priced))
    before = ec2_server.calls().get("DescribeSpotPriceHistory", 0)
    by_id = {p.cloud_id: p for p in driver.list_pilots()}
    assert {by_id[p.cloud_id].price_per_hour for p in spot} == {Decimal("0.0312")}
    assert by_id[on_demand[0].cloud_id].price_per_hour == Decimal("0.096")  # its launch tag
    assert ec2_server.calls()["DescribeSpotPriceHistory"] == before + 1  # one per listing
    # The market moves: the next listing says so.
    ec2_server.set_spot_prices({SHAPE.name: "0.0450"})
    assert {p.price_per_hour for p in driver.list_pilots() if p.spot} == {Decimal("0.0450")}


def test_console_log_is_what_the_machine_printed(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    driver = h.make()
    [pilot] = driver.launch(h.batch(1))
    assert driver.console_log(pilot) == ""  # nothing printed yet, as on EC2
    printed = "2026-11-30T10:00:00Z glidein-pilot: FATAL: payload checksum mismatch\n"
    ec2_server.set_console(pilot.cloud_id, printed)
    assert printed.strip() in driver.console_log(pilot)
