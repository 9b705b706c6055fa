"""The driver contract's fixtures: the service doubles, and ``harness``, which runs every
test taking it on every back end (the harnesses themselves: tests/support/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.harness import (
    HARNESSES,
    SUPPORTS,
    Harness,
    ec2_harness,
    grid_harness,
    opennebula_harness,
    openstack_harness,
    pods_harness,
)


@pytest.fixture(scope="session")
def ec2_server() -> Iterator[Any]:
    from glidein_devkit.ec2server import Ec2Server

    with Ec2Server() as server:
        # Contract tests call one driver and leave what they made; each starts from reset().
        server.check_leaks = False
        yield server


@pytest.fixture(autouse=True)
def _every_ec2_launch_terminates_on_shutdown(request: pytest.FixtureRequest) -> Iterator[None]:
    # A pilot powers its VM off at the end of its life; on EC2 that must end the VM (and
    # its bill), not leave it stopped. Checked after every test that launched there, on
    # every instance: batches, perVM, spot and the on-demand fallback alike.
    yield
    if "ec2_server" not in request.fixturenames:
        return
    server = request.getfixturevalue("ec2_server")
    wrong = [i["id"] for i in server.instances() if i["shutdownBehavior"] != "terminate"]
    assert not wrong, f"launched without InstanceInitiatedShutdownBehavior=terminate: {wrong}"


@pytest.fixture(scope="session")
def openstack_fake() -> Iterator[Any]:
    from glidein_devkit.openstack_fake import FakeOpenStack

    with FakeOpenStack() as fake:
        fake.check_leaks = False  # contract tests leave what they made (see ec2_server)
        yield fake


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test taking `harness` runs on every back end; error tests only on the
    # (back end, failure) pairs the service can really produce.
    if "harness" not in metafunc.fixturenames:
        return
    if "error_kind" in metafunc.fixturenames:
        combos = [(h, k) for h, kinds in SUPPORTS.items() for k in kinds]
        metafunc.parametrize(
            ("harness", "error_kind"),
            combos,
            indirect=["harness"],
            ids=[f"{h}-{k}" for h, k in combos],
        )
    else:
        metafunc.parametrize("harness", HARNESSES, indirect=True)


@pytest.fixture
def harness(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Harness]:
    name = request.param
    if name == "ec2":
        yield ec2_harness(request.getfixturevalue("ec2_server"))
    elif name == "ec2-old-cloud":
        yield ec2_harness(request.getfixturevalue("ec2_server"), old_cloud=True)
    elif name == "kubernetes":
        yield pods_harness(request.getfixturevalue("cluster"), request.getfixturevalue("namespace"))
    elif name == "openstack":
        yield openstack_harness(request.getfixturevalue("openstack_fake"))
    elif name == "opennebula":
        yield from opennebula_harness()
    elif name == "grid":
        yield grid_harness(tmp_path)
    else:
        raise AssertionError(name)
