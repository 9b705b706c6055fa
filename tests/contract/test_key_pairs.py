"""SSH key pairs per VM (the seeds' model: a leaked key opens one VM) or per batch (the
default: one launch call per batch), on the clouds that have key pairs."""

from __future__ import annotations

from typing import Any

from glidein_operator.api.cloudentry import Ec2Settings, OpenStackSettings
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.clouds.openstack import OpenStackDriver
from glidein_operator.ground import PilotState
from tests.support.harness import EC2_SECRET, ec2_harness, openstack_harness


def _ec2(server: Any, key_pairs: str) -> Ec2Driver:
    return Ec2Driver(
        "e1",
        Ec2Settings(region="us-east-1", endpointUrl=server.url, keyPairs=key_pairs),
        access_key_id="testing",
        secret_access_key=EC2_SECRET,
        operator_id="op-test",
    )


def _key_names(server: Any) -> dict[str, str]:
    reply = server.client().describe_instances()
    return {
        i["InstanceId"]: i.get("KeyName", "")
        for r in reply["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    }


def test_ec2_per_vm_gives_each_vm_its_own_key_pair_at_one_call_each(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    driver = _ec2(ec2_server, "perVM")
    ec2_server.reset()
    batch = h.batch(3)
    pilots = driver.launch(batch)
    assert sorted(p.pilot_id for p in pilots) == [batch.pilot_id(i) for i in range(3)]
    keys = _key_names(ec2_server)
    assert len(set(keys.values())) == 3
    assert "" not in keys.values()
    assert ec2_server.calls()["RunInstances"] == 3
    # A retry after a crash starts nothing new.
    again = driver.launch(batch)
    assert {p.cloud_id for p in again} == {p.cloud_id for p in pilots}
    assert len([p for p in driver.list_pilots() if p.state is PilotState.RUNNING]) == 3
    driver.terminate(pilots)
    assert driver.key_pairs_left() == []


def test_ec2_per_batch_is_the_default_one_call_one_key(ec2_server: Any) -> None:
    h = ec2_harness(ec2_server)
    assert Ec2Settings(region="us-east-1").key_pairs == "perBatch"
    driver = h.make()
    ec2_server.reset()
    driver.launch(h.batch(3))
    assert len(set(_key_names(ec2_server).values())) == 1
    assert ec2_server.calls()["RunInstances"] == 1


def _openstack(fake: Any, key_pairs: str) -> OpenStackDriver:
    settings = OpenStackSettings(
        authUrl=fake.auth_url,
        region="RegionOne",
        projectName="glidein-project",
        keyPairs=key_pairs,
    )
    return OpenStackDriver(
        "e1",
        settings,
        credentials={"username": "glidein", "password": "secret"},
        operator_id="op-test",
    )


def test_openstack_per_vm_gives_each_server_its_own_key_pair(openstack_fake: Any) -> None:
    h = openstack_harness(openstack_fake)
    driver = _openstack(openstack_fake, "perVM")
    batch = h.batch(3)
    pilots = driver.launch(batch)
    assert sorted(p.pilot_id for p in pilots) == [batch.pilot_id(i) for i in range(3)]
    servers = openstack_fake.state.servers.values()
    keys = {s["key_name"] for s in servers}
    assert keys == {f"glidein-{batch.pilot_id(i)}" for i in range(3)}
    # Named as a multi-create names them: the pilot reads its index the same way.
    assert sorted(s["name"] for s in servers) == [f"glidein-{batch.key}-{n}" for n in (1, 2, 3)]
    # A retry after a crash creates only what the first try did not.
    again = driver.launch(batch)
    assert {p.cloud_id for p in again} == {p.cloud_id for p in pilots}
    # A VM's key goes with it, not with the last of its batch.
    driver.terminate(pilots[:1])
    assert f"glidein-{pilots[0].pilot_id}" not in openstack_fake.state.keypairs
    assert f"glidein-{pilots[1].pilot_id}" in openstack_fake.state.keypairs
    driver.terminate(pilots[1:])
    assert h.leftovers(driver) == []


def test_openstack_per_batch_is_the_default_one_key_for_the_batch(openstack_fake: Any) -> None:
    h = openstack_harness(openstack_fake)
    driver = h.make()
    batch = h.batch(3)
    driver.launch(batch)
    assert {s["key_name"] for s in openstack_fake.state.servers.values()} == {
        f"glidein-{batch.key}"
    }
