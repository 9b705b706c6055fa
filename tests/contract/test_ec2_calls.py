"""EC2 API economy: one RunInstances per batch, a paginated listing, retries that reuse
the ClientToken instead of launching twice."""

from __future__ import annotations

import math
from typing import Any

from glidein_operator.api.cloudentry import Ec2Settings
from glidein_operator.clouds.base import PilotState
from glidein_operator.clouds.ec2 import Ec2Driver
from tests.contract.conftest import EC2_SECRET, _ec2


def test_batches_cost_one_run_instances_each_and_listing_pages(ec2_server: Any) -> None:
    h = _ec2(ec2_server)
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
    h = _ec2(ec2_server)
    driver = h.make()
    batch = h.batch(5)
    first = driver.launch(batch)
    second = driver.launch(batch)
    assert {p.cloud_id for p in first} == {p.cloud_id for p in second}
    assert ec2_server.calls()["RunInstances"] == 2
    assert len([p for p in driver.list_pilots() if p.state is PilotState.RUNNING]) == 5
