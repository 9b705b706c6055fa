"""Every driver keeps the same promises (clouds/base.py), against a service that behaves
like the real one, through the real client library."""

from __future__ import annotations

import pytest

from glidein_operator.clouds.base import (
    TAG_BATCH,
    AuthError,
    InsufficientCapacity,
    PilotState,
    QuotaExceeded,
    Throttled,
)
from tests.contract.conftest import Harness

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
    assert TAG_BATCH.startswith("glidein.dev/")


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


def test_bad_credentials_are_an_auth_error(harness: Harness) -> None:
    driver = harness.make(bad_auth=True)
    with pytest.raises(AuthError):
        driver.launch(harness.batch(1))


@pytest.mark.parametrize(
    ("kind", "error"),
    [("quota", QuotaExceeded), ("capacity", InsufficientCapacity), ("throttle", Throttled)],
)
def test_errors_are_mapped(harness: Harness, kind: str, error: type[Exception]) -> None:
    if kind not in harness.supports:
        pytest.skip(f"{harness.name} cannot be made to answer {kind} for real")
    driver = harness.make()
    harness.fail(kind)
    with pytest.raises(error) as err:
        driver.launch(harness.batch(1))
    assert err.value.retryable  # type: ignore[attr-defined]


def test_console_log(harness: Harness) -> None:
    driver = harness.make()
    [pilot] = driver.launch(harness.batch(1))
    log = driver.console_log(pilot)
    assert isinstance(log, str)
    assert harness.console_text in log


def test_image_check(harness: Harness) -> None:
    driver = harness.make()
    if harness.image_id:
        assert driver.image_exists(harness.image_id)
    if harness.missing_image:
        assert not driver.image_exists(harness.missing_image)
