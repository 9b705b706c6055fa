"""Every driver keeps the same promises (clouds/base.py), against a service that behaves
like the real one, through the real client library."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from glidein_operator.clouds.base import (
    AuthError,
    DriverError,
    InsufficientCapacity,
    InvalidConfig,
    QuotaExceeded,
    Throttled,
)
from glidein_operator.clouds.instrumented import DriverMetrics, InstrumentedDriver
from glidein_operator.ground import PilotState, Tag
from glidein_operator.pilot import bundle
from tests.support.harness import Harness

ALIVE = {PilotState.PENDING, PilotState.RUNNING}


def _alive(pilots):  # type: ignore[no-untyped-def]
    return [p for p in pilots if p.state in ALIVE]


def test_launch_then_list_shows_them_with_our_marks(harness: Harness) -> None:
    driver = harness.make()
    batch = harness.batch(4)
    launched = driver.launch(batch)
    assert len(launched) == 4
    listed = _alive(driver.list_pilots())
    assert sorted(p.pilot_id for p in listed) == [batch.pilot_id(i) for i in range(4)]
    for p in listed:
        assert p.entry == "e1"
        assert p.request_uid == "uid-0001"
        assert p.batch == batch.key
        assert p.instance_type == "m5.large"
    assert Tag.BATCH.startswith("glidein.dev/")


def test_relaunch_with_the_same_key_makes_no_duplicate(harness: Harness) -> None:
    driver = harness.make()
    batch = harness.batch(3)
    first = driver.launch(batch)
    again = driver.launch(batch)  # a retry after a crash between "asked" and "recorded"
    assert sorted(p.cloud_id for p in again) == sorted(p.cloud_id for p in first)
    assert len(_alive(driver.list_pilots())) == 3


def test_terminate_leaves_nothing(harness: Harness) -> None:
    driver = harness.make()
    driver.launch(harness.batch(3))
    driver.launch(harness.batch(2))
    driver.terminate(_alive(driver.list_pilots()))
    assert _alive(driver.list_pilots()) == []
    assert harness.leftovers(driver) == []


def test_terminating_what_is_already_gone_is_done(harness: Harness) -> None:
    driver = harness.make()
    pilots = driver.launch(harness.batch(2))
    driver.terminate(pilots)
    driver.terminate(pilots)  # no error
    assert _alive(driver.list_pilots()) == []


def test_list_sees_only_this_entry_and_this_operator(harness: Harness) -> None:
    mine = harness.make(entry="e1", operator_id="op-a")
    other_entry = harness.make(entry="e2", operator_id="op-a")
    other_operator = harness.make(entry="e1", operator_id="op-b")
    mine.launch(harness.batch(1, entry="e1"))
    other_entry.launch(harness.batch(1, entry="e2"))
    other_operator.launch(harness.batch(1, entry="e1"))
    assert len(_alive(mine.list_pilots())) == 1
    assert len(_alive(other_entry.list_pilots())) == 1
    assert len(_alive(other_operator.list_pilots())) == 1


ERRORS = {
    "auth": AuthError,
    "quota": QuotaExceeded,
    "capacity": InsufficientCapacity,
    "throttle": Throttled,
}


def test_errors_are_mapped(harness: Harness, error_kind: str) -> None:
    if error_kind == "auth":
        driver = harness.make(bad_auth=True)
    else:
        driver = harness.make()
        harness.fail(error_kind)
    # As the controller calls it: the SDK's error is sorted once, by InstrumentedDriver.
    wrapped = InstrumentedDriver(
        driver, launches_per_minute=600, metrics=DriverMetrics(CollectorRegistry())
    )
    try:
        with pytest.raises(ERRORS[error_kind]) as err:
            asyncio.run(wrapped.launch(harness.batch(1)))
    finally:
        wrapped.close()
    # Auth and bad config wait for a person; the rest passes with time.
    assert err.value.retryable == (error_kind != "auth")  # type: ignore[attr-defined]
    assert err.value.entry == "e1"  # type: ignore[attr-defined]
    # The driver let its SDK's own error out; that is the cause, mapped once.
    cause = err.value.__cause__
    assert cause is not None
    assert not isinstance(cause, DriverError), repr(cause)
    assert type(driver.map_error(cause)) is type(err.value)
    for value in harness.secrets:
        assert value not in str(err.value)


def test_vms_carry_the_price_they_were_launched_at(harness: Harness) -> None:
    # Accounting reads the price from the pilot, not from the CloudEntry: a later price
    # change must not rewrite the history of pilots already running.
    if harness.name not in ("ec2", "openstack", "opennebula"):
        return  # grid and pod pilots are not paid by the hour
    driver = harness.make()
    shape = dataclasses.replace(harness.batch(1).shape, price_per_hour=Decimal("0.173"))
    batch = dataclasses.replace(harness.batch(2), shape=shape)
    driver.launch(batch)
    listed = [p for p in _alive(driver.list_pilots()) if p.batch == batch.key]
    assert [p.price_per_hour for p in listed] == [Decimal("0.173")] * 2


def test_user_data_too_large_is_refused_before_anything_starts(harness: Harness) -> None:
    limits = {"ec2": 16 * 1024, "openstack": 65535 // 4 * 3, "opennebula": 65535 // 4 * 3}
    if harness.name not in limits:
        return  # pods and grid jobs carry their payload in a Secret or a file
    driver = harness.make()
    fits = harness.batch(1, user_data=b"x" * limits[harness.name])
    assert len(driver.launch(fits)) == 1
    too_big = harness.batch(1, user_data=b"x" * (limits[harness.name] + 3))
    with pytest.raises(InvalidConfig, match="user data is"):
        driver.launch(too_big)
    assert [p for p in driver.list_pilots() if p.batch == too_big.key] == []


FRAMED = "\n".join(
    [
        "2026-11-30T10:00:00Z glidein-pilot: FATAL: startd never answered; shutting down",
        *bundle.frame(
            "MasterLog", "11/30/26 10:00:01 ** condor_master (CONDOR_MASTER) STARTING UP", 8
        ),
        *bundle.frame("StartLog", "11/30/26 10:00:02 ERROR: AUTHENTICATE:1003:Failed", 15),
        *bundle.frame(
            "glidein-pilot.log",
            "10:00:03 glidein-pilot: slot: 2 cpus\n"
            "10:10:03 glidein-pilot: FATAL: startd never answered; shutting down",
            25,
        ),
    ]
)


def test_console_log(harness: Harness) -> None:
    driver = harness.make()
    [pilot] = driver.launch(harness.batch(1))
    log = driver.console_log(pilot)
    assert isinstance(log, str)
    assert harness.console_text in log
    # Every back end says something real: what the machine printed, or why it has not.
    assert harness.console_text or harness.say is not None
    if harness.say is None:
        return
    harness.say(driver, pilot, FRAMED)
    log = driver.console_log(pilot)
    assert "FATAL: startd never answered" in log
    # The frames come back out, each log's end under its name, as the status keeps it.
    kept = bundle.condensed(log)
    for name, line in (
        ("MasterLog", "condor_master (CONDOR_MASTER) STARTING UP"),
        ("StartLog", "AUTHENTICATE:1003:Failed"),
        ("glidein-pilot.log", "slot: 2 cpus"),
    ):
        assert f"--- {name}\n" in kept, kept
        assert line in kept, kept


def test_image_check(harness: Harness) -> None:
    driver = harness.make()
    if harness.image_id:
        assert driver.image_exists(harness.image_id)
    if harness.missing_image:
        assert not driver.image_exists(harness.missing_image)


def test_grid_ce_refusing_the_token_holds_the_pilot_with_the_reason(harness: Harness) -> None:
    if harness.name != "grid":
        return
    driver = harness.make(bad_auth=True)
    [pilot] = driver.launch(harness.batch(1))
    assert pilot.state is PilotState.ERROR
    assert "authentication failed" in pilot.raw_state
    assert "authentication failed" in driver.console_log(pilot)


def test_vms_that_stopped_without_terminating_are_reported(harness: Harness) -> None:
    # The seeds: OpenStack ignores terminate-on-shutdown (SHUTOFF), OpenNebula leaves
    # POWEROFF or UNKNOWN. They must show as SHUTDOWN for the controller to reap.
    if harness.name not in ("openstack", "opennebula"):
        return
    driver = harness.make()
    pilots = driver.launch(harness.batch(2))
    fake = harness.extra["fake"]
    if harness.name == "openstack":
        fake.shut_off(pilots[0].cloud_id)
        expected = {"SHUTOFF"}
    else:
        fake.power_off(int(pilots[0].cloud_id))
        fake.lose_host(int(pilots[1].cloud_id))
        expected = {"POWEROFF/0", "ACTIVE/16"}
    shut = [p for p in driver.list_pilots() if p.state is PilotState.SHUTDOWN]
    assert {p.raw_state for p in shut} == expected
    driver.terminate(shut)
    assert not [p for p in driver.list_pilots() if p.state is PilotState.SHUTDOWN]


def test_collect_removes_what_a_crash_left_between_create_and_launch(harness: Harness) -> None:
    # A crash after the key pair (or payload Secret) was made and before or after the
    # pilots went: the batch's leftovers must still go, but never those of live pilots.
    driver = harness.make()
    live = driver.launch(harness.batch(1))
    gone = driver.launch(harness.batch(1))
    # Terminate behind the driver's back (as a killed operator would have, half-way):
    # only the cloud object goes, the leftovers stay.
    driver_terminate_pilots_only(harness, driver, gone)
    driver.collect()
    left = harness.leftovers(driver)
    assert all(live[0].batch in name for name in left), left
    assert not any(gone[0].batch in name for name in left), left


def driver_terminate_pilots_only(harness: Harness, driver, pilots) -> None:  # type: ignore[no-untyped-def]
    if harness.name == "ec2":
        harness.extra["server"]
        driver._client.terminate_instances(InstanceIds=[p.cloud_id for p in pilots])  # type: ignore[attr-defined]
    elif harness.name == "openstack":
        for p in pilots:
            driver._conn.compute.delete_server(p.cloud_id)  # type: ignore[attr-defined]
    elif harness.name == "kubernetes":
        for p in pilots:
            driver._core.delete_namespaced_pod(p.cloud_id, driver.settings.namespace)  # type: ignore[attr-defined]
    else:
        driver.terminate(pilots)
