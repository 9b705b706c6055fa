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

from glidein_operator.api.cloudentry import Ec2Compatibility, Ec2Settings
from glidein_operator.clouds.base import InsufficientCapacity, InvalidConfig
from glidein_operator.clouds.ec2 import Ec2Driver, KeyPairMode
from glidein_operator.ground import PilotState, Tag
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


# --- older EC2-compatible clouds (ec2.compatibility) --------------------------------------


def _old_cloud_driver(
    ec2_server: Any, key_pairs: KeyPairMode | None = None, **lacks: bool
) -> Ec2Driver:
    return Ec2Driver(
        "e1",
        Ec2Settings(
            region="us-east-1",
            endpoint_url=ec2_server.url,
            compatibility=Ec2Compatibility(**lacks),
        ),
        access_key_id="testing",
        secret_access_key=EC2_SECRET,
        operator_id="op-test",
        key_pairs=key_pairs,
    )


def _refused(ec2_server: Any, parameter: str, h: Any) -> None:
    """The server, playing the older cloud, refuses what an entry that does not declare
    the lack sends: the cloud's own error, and nothing starts."""
    with pytest.raises(ClientError) as err:
        h.make().launch(h.batch(1))
    assert err.value.response["Error"]["Code"] == "UnknownParameter"
    assert parameter in err.value.response["Error"]["Message"]
    assert isinstance(h.make().map_error(err.value), InvalidConfig)
    assert ec2_server.states() == {}


def test_without_launch_tags_instances_are_tagged_after_creation(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    ec2_server.refuse("TagSpecification")
    _refused(ec2_server, "TagSpecification", h)
    driver = _old_cloud_driver(ec2_server, tags_at_launch=False)
    batch = h.batch(3)
    launched = driver.launch(batch)
    assert sorted(p.pilot_id for p in launched) == [batch.pilot_id(i) for i in range(3)]
    listed = [p for p in driver.list_pilots() if p.state is PilotState.RUNNING]
    assert sorted(p.pilot_id for p in listed) == [batch.pilot_id(i) for i in range(3)]
    assert {p.request_uid for p in listed} == {batch.request_uid}
    tags = {
        t["Key"]: t["Value"]
        for r in ec2_server.client().describe_instances()["Reservations"]
        for i in r["Instances"]
        for t in i["Tags"]
    }
    assert tags[Tag.OPERATOR] == "op-test"
    assert tags[Tag.BATCH] == batch.key
    # The key pair is tagged too (before the launch): garbage collection finds it.
    assert driver.key_pairs_left() == [f"glidein-{batch.key}"]
    driver.terminate(listed)
    assert driver.key_pairs_left() == []


def test_a_crash_between_launch_and_tagging_is_found_and_tagged_at_the_next_listing(
    ec2_server: Any,
) -> None:
    h = ec2_harness(ec2_server)
    ec2_server.refuse("TagSpecification")
    driver = _old_cloud_driver(ec2_server, tags_at_launch=False)
    batch = h.batch(2)
    # The operator dies after RunInstances, before CreateTags on the instances (the key
    # pair's CreateTags, before the launch, went through).
    ec2_server.fail("CreateTags", "InvalidParameterValue", when="ResourceId.1=i-")
    with pytest.raises(ClientError):
        driver.launch(batch)
    assert ec2_server.states() == {"running": 2}
    bare = [
        i for r in ec2_server.client().describe_instances()["Reservations"] for i in r["Instances"]
    ]
    assert all(not i.get("Tags") for i in bare)
    # A restarted operator lists: the untagged instances carry the batch's key pair name,
    # and the key pair says whose they are.
    restarted = _old_cloud_driver(ec2_server, tags_at_launch=False)
    listed = [p for p in restarted.list_pilots() if p.state is PilotState.RUNNING]
    assert sorted(p.pilot_id for p in listed) == [batch.pilot_id(i) for i in range(2)]
    assert {p.request_uid for p in listed} == {batch.request_uid}
    # ...and they are tagged now: the plain tag listing finds them.
    assert len(list(restarted._instances())) == 2
    restarted.terminate(listed)
    assert restarted.key_pairs_left() == []
    assert ec2_server.states() == {"terminated": 2}


def test_without_client_token_a_retry_lists_before_it_creates(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    ec2_server.refuse("ClientToken")
    _refused(ec2_server, "ClientToken", h)
    driver = _old_cloud_driver(ec2_server, client_token=False)
    batch = h.batch(4)
    refused = ec2_server.calls()["RunInstances"]
    first = driver.launch(batch)
    # The reply was lost, or the operator restarted before writing its status: the same
    # batch again finds the instances by their key pair name and starts nothing.
    second = driver.launch(batch)
    assert {p.cloud_id for p in first} == {p.cloud_id for p in second}
    assert sorted(p.pilot_id for p in second) == [batch.pilot_id(i) for i in range(4)]
    assert ec2_server.calls()["RunInstances"] == refused + 1
    assert ec2_server.states() == {"running": 4}


def test_without_client_token_run_instances_is_sent_once(ec2_server: Any) -> None:
    # botocore retries a 503 (and a timeout) by sending the call again; without a token
    # that could start the batch twice, so the launch fails and the next cycle lists first.
    h = ec2_harness(ec2_server)
    ec2_server.refuse("ClientToken")
    driver = _old_cloud_driver(ec2_server, client_token=False)
    ec2_server.fail("RunInstances", "Unavailable", status=503)
    with pytest.raises(ClientError):
        driver.launch(h.batch(2))
    assert ec2_server.calls()["RunInstances"] == 1


def test_without_client_token_per_vm_and_spot_fallback_stay_idempotent(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    ec2_server.refuse("ClientToken")
    per_vm = _old_cloud_driver(ec2_server, client_token=False)
    per_vm.key_pairs = "perVM"
    batch = h.batch(3)
    first = per_vm.launch(batch)
    assert {p.cloud_id for p in per_vm.launch(batch)} == {p.cloud_id for p in first}
    assert ec2_server.calls()["RunInstances"] == 3
    driver = _old_cloud_driver(ec2_server, client_token=False)
    spot = dataclasses.replace(h.batch(2), spot=True, spot_fallback=True)
    ec2_server.fail("RunInstances", "InsufficientInstanceCapacity", times=2, when="MarketType=spot")
    on_demand = driver.launch(spot)
    assert {p.cloud_id for p in driver.launch(spot)} == {p.cloud_id for p in on_demand}
    assert ec2_server.calls()["RunInstances"] == 3 + 3  # spot, on-demand, spot again


def test_pilots_require_imds_tokens_unless_the_cloud_has_none(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    [pilot] = h.make().launch(h.batch(1))
    assert {i["id"]: i["httpTokens"] for i in ec2_server.instances()} == {
        pilot.cloud_id: "required"
    }
    ec2_server.reset()
    ec2_server.refuse("MetadataOptions")
    _refused(ec2_server, "MetadataOptions", h)
    [old] = _old_cloud_driver(ec2_server, imds_v2=False).launch(h.batch(1))
    # No MetadataOptions sent: the cloud's default, where IMDSv1 answers.
    assert {i["id"]: i["httpTokens"] for i in ec2_server.instances()} == {old.cloud_id: "optional"}


def test_an_entry_without_client_token_or_launch_tags_needs_key_pairs(ec2_server: Any) -> None:
    for lacks in ({"client_token": False}, {"tags_at_launch": False}):
        with pytest.raises(InvalidConfig, match="needs key pairs"):
            _old_cloud_driver(ec2_server, key_pairs="none", **lacks)
