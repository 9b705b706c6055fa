"""Each SDK's exceptions map to the same small taxonomy (retry or give up), in one place:
the driver's ``map_error``, applied once by ``InstrumentedDriver`` to whatever a driver
method raises. A bug of ours is not a cloud failure: it comes out as it is."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyone
import pytest
import requests
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from keystoneauth1 import exceptions as ks_exc
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException, ApiTypeError, ApiValueError
from openstack import exceptions as os_exc
from prometheus_client import CollectorRegistry
from urllib3.exceptions import MaxRetryError

from glidein_operator.api.cloudentry import (
    Ec2Settings,
    GridSettings,
    KubernetesSettings,
    OpenNebulaSettings,
    OpenStackSettings,
)
from glidein_operator.clouds import ec2, grid, kubernetes, opennebula, openstack
from glidein_operator.clouds.base import (
    AuthError,
    Driver,
    DriverError,
    InsufficientCapacity,
    InvalidConfig,
    NotFound,
    QuotaExceeded,
    Throttled,
    Unavailable,
)
from glidein_operator.clouds.instrumented import DriverMetrics, InstrumentedDriver
from glidein_operator.condor.grid import SubmitRefused
from glidein_operator.condor.interface import CondorError
from glidein_operator.ground import LaunchBatch, Shape

# Nothing listens there: a call that reached the network would fail, not hang.
NOWHERE = "127.0.0.1:9"


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "RunInstances",
    )


# --- each SDK's errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("UnauthorizedOperation", 403, AuthError),
        ("VcpuLimitExceeded", 400, QuotaExceeded),
        ("InsufficientInstanceCapacity", 500, InsufficientCapacity),
        ("RequestLimitExceeded", 503, Throttled),
        ("InvalidAMIID.NotFound", 400, NotFound),
        ("InvalidParameterValue", 400, InvalidConfig),
        ("InternalError", 500, Unavailable),
    ],
)
def test_ec2(code: str, status: int, expected: type[Exception]) -> None:
    assert isinstance(ec2.map_sdk_error(_client_error(code, status), "e"), expected)


def test_ec2_unreachable() -> None:
    err = ec2.map_sdk_error(EndpointConnectionError(endpoint_url="http://x"), "e")
    assert isinstance(err, Unavailable)
    assert err.retryable
    timed_out = ec2.map_sdk_error(ReadTimeoutError(endpoint_url="http://x"), "e")
    assert isinstance(timed_out, Unavailable)


def test_ec2_request_botocore_refuses_is_config_not_an_outage() -> None:
    err = ec2.map_sdk_error(ParamValidationError(report="Invalid type for parameter"), "e")
    assert isinstance(err, InvalidConfig)
    assert not err.retryable


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, "{}", AuthError),
        (403, '{"message": "pods \\"x\\" is forbidden: exceeded quota: q"}', QuotaExceeded),
        (403, '{"message": "forbidden"}', AuthError),
        (404, "{}", NotFound),
        (429, "{}", Throttled),
        (422, "{}", InvalidConfig),
        (503, "{}", Unavailable),
    ],
)
def test_kubernetes(status: int, body: str, expected: type[Exception]) -> None:
    exc = ApiException(status=status, reason="r")
    exc.body = body
    assert isinstance(kubernetes.map_sdk_error(exc, "e"), expected)


def test_kubernetes_unreachable() -> None:
    exc = MaxRetryError(None, "/api/v1/namespaces/ns/pods", reason=ConnectionRefusedError())  # type: ignore[arg-type]
    assert isinstance(kubernetes.map_sdk_error(exc, "e"), Unavailable)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AuthError), (404, NotFound), (413, Throttled), (429, Throttled), (500, Unavailable)],
)
def test_openstack(status: int, expected: type[Exception]) -> None:
    exc = os_exc.HttpException(message="m", details="d", http_status=status)
    assert isinstance(openstack.map_sdk_error(exc, "e"), expected)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ks_exc.Unauthorized(), AuthError),
        (ks_exc.ConnectFailure(), Unavailable),
        (ks_exc.ConnectTimeout(), Unavailable),
        (
            os_exc.HttpException(message="Quota exceeded for instances", http_status=403),
            QuotaExceeded,
        ),
        (os_exc.SDKException("odd"), Unavailable),
    ],
)
def test_openstack_keystone_and_sdk(exc: Exception, expected: type[Exception]) -> None:
    assert isinstance(openstack.map_sdk_error(exc, "e"), expected)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            pyone.OneAuthenticationException("[one.vmpool.info] User couldn't be authenticated"),
            AuthError,
        ),
        (pyone.OneAuthorizationException("not authorized"), AuthError),
        (pyone.OneNoExistsException("[one.vm.info] Error getting virtual machine [7]."), NotFound),
        (pyone.OneInternalException("database locked"), Unavailable),
        (pyone.OneActionException("User [2] : limit of 0 reached for VMS quota"), QuotaExceeded),
        (pyone.OneApiException("wrong template"), InvalidConfig),
        (
            xmlrpc.client.ProtocolError("http://one/RPC2", 503, "Service Unavailable", {}),
            Unavailable,
        ),
        (xmlrpc.client.ProtocolError("http://one/RPC2", 401, "Unauthorized", {}), AuthError),
        (requests.ConnectionError("refused"), Unavailable),
        (requests.ReadTimeout("silent"), Unavailable),
        (ConnectionResetError(), Unavailable),
    ],
)
def test_opennebula(exc: Exception, expected: type[Exception]) -> None:
    assert isinstance(opennebula.map_sdk_error(exc, "e"), expected)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (SubmitRefused("MAX_JOBS_PER_OWNER exceeded"), QuotaExceeded),
        (SubmitRefused("grid universe jobs need a grid_resource"), InvalidConfig),
        (CondorError("Failed to connect to schedd"), Unavailable),
        (ConnectionRefusedError(), Unavailable),
    ],
)
def test_grid(exc: Exception, expected: type[Exception]) -> None:
    assert isinstance(grid.map_sdk_error(exc, "e"), expected)


# --- not an SDK's error: not mapped -------------------------------------------------------

MAPPERS: dict[str, Callable[[BaseException, str], DriverError | None]] = {
    "ec2": ec2.map_sdk_error,
    "openstack": openstack.map_sdk_error,
    "opennebula": opennebula.map_sdk_error,
    "kubernetes": kubernetes.map_sdk_error,
    "grid": grid.map_sdk_error,
}
BUGS = [
    TypeError("unsupported operand"),
    KeyError("quota"),  # the word a lazy mapper would match on
    AttributeError("'NoneType' object has no attribute 'id'"),
    ValueError("invalid literal for int()"),
    RuntimeError("unexpected"),
    AssertionError("quota exceeded"),
]


@pytest.mark.parametrize("name", MAPPERS)
@pytest.mark.parametrize("bug", BUGS, ids=lambda e: type(e).__name__)
def test_a_bug_of_ours_is_not_a_cloud_failure(name: str, bug: Exception) -> None:
    assert MAPPERS[name](bug, "e") is None


@pytest.mark.parametrize("exc", [ApiTypeError("bad kwarg"), ApiValueError("missing namespace")])
def test_arguments_the_kubernetes_client_refuses_are_a_bug(exc: Exception) -> None:
    assert kubernetes.map_sdk_error(exc, "e") is None


# --- one choke point: InstrumentedDriver ---------------------------------------------------


class _Schedd:
    """Just enough of a schedd for the grid driver (a test sets ``query``)."""

    def submit(self, description: dict[str, str], count: int) -> int:
        raise AssertionError("not here")

    def query(self, constraint: str, projection: Any) -> list[Any]:
        return []

    def remove(self, constraint: str, reason: str) -> int:
        return 0

    def retrieve(self, constraint: str) -> None:
        return None


class _Submitters:
    def __init__(self, schedd: _Schedd) -> None:
        self.schedd_ = schedd

    def schedd(self, submitter: Any) -> _Schedd:
        return self.schedd_

    def publish(self, name: str, content: bytes) -> None:
        return None


def _ec2() -> ec2.Ec2Driver:
    return ec2.Ec2Driver(
        "e",
        Ec2Settings(region="us-east-1", endpoint_url=f"http://{NOWHERE}"),
        access_key_id="a",
        secret_access_key="s",
        operator_id="op",
        key_pairs="none",
        max_attempts=1,
    )


def _build(name: str) -> Driver:
    if name == "ec2":
        return _ec2()
    if name == "openstack":
        return openstack.OpenStackDriver(
            "e",
            OpenStackSettings(authUrl=f"http://{NOWHERE}/v3", region="R", projectName="p"),
            credentials={"username": "u", "password": "p"},
            operator_id="op",
        )
    if name == "opennebula":
        return opennebula.OpenNebulaDriver(
            "e",
            OpenNebulaSettings(endpoint=f"http://{NOWHERE}/RPC2", templateId=1),
            username="u",
            password="p",
            operator_id="op",
        )
    if name == "kubernetes":
        return kubernetes.KubernetesDriver(
            "e",
            KubernetesSettings(namespace="ns", pilot_image="example.org/pilot:1"),
            api=k8s.ApiClient(),
            operator_id="op",
        )
    settings = GridSettings.model_validate(
        {
            "ceType": "condor",
            "endpoint": "ce.example.org:9619",
            "submitter": {
                "collector": "submit.example.org",
                "schedd": "s",
                "tokenSecretRef": {"name": "t"},
            },
        }
    )
    assert settings.submitter is not None
    return grid.GridDriver(
        "e",
        settings,
        submitter=settings.submitter,
        submitters=_Submitters(_Schedd()),
        operator_id="op",
        workdir=Path("/nonexistent/grid"),
    )


def _raises(exc: BaseException) -> Callable[..., Any]:
    """A stand-in for a call that raises ``exc``, whatever it is given."""

    def call(*_a: Any, **_k: Any) -> Any:
        raise exc

    return call


def _listing_raises(
    name: str, driver: Any, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    """Make the first thing list_pilots asks of the back end raise ``exc``."""
    target: tuple[Any, str] = {
        "ec2": (driver, "_instances"),
        "openstack": (driver, "_servers"),
        "opennebula": (driver, "_vms"),
        "kubernetes": (getattr(driver, "_core", None), "list_namespaced_pod"),
        "grid": (getattr(driver, "schedd", None), "query"),
    }[name]
    monkeypatch.setattr(*target, _raises(exc))


# What each back end's SDK raises for some failure, and what that is.
SDK_FAILURES: dict[str, tuple[Callable[[], Exception], type[DriverError]]] = {
    "ec2": (lambda: _client_error("RequestLimitExceeded", 503), Throttled),
    "openstack": (lambda: os_exc.HttpException(message="m", http_status=503), Unavailable),
    "opennebula": (lambda: pyone.OneAuthenticationException("denied"), AuthError),
    "kubernetes": (lambda: ApiException(status=429, reason="Too Many Requests"), Throttled),
    "grid": (lambda: CondorError("Failed to connect to schedd"), Unavailable),
}


class Instrumented:
    """Drivers wrapped as the operator wraps them, counting their errors in a registry of
    the test's own (the ``instrumented`` fixture)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.made: list[InstrumentedDriver] = []

    def wrap(self, driver: Driver) -> InstrumentedDriver:
        metrics = DriverMetrics(self.registry)
        self.made.append(InstrumentedDriver(driver, launches_per_minute=600, metrics=metrics))
        return self.made[-1]

    def errors(self, operation: str, reason: str) -> float | None:
        """glidein_cloud_errors_total of the entry "e" for ``operation`` and ``reason``."""
        return self.registry.get_sample_value(
            "glidein_cloud_errors_total", {"entry": "e", "operation": operation, "reason": reason}
        )


@pytest.fixture
def instrumented() -> Iterator[Instrumented]:
    i = Instrumented()
    yield i
    for d in i.made:
        d.close()


@pytest.mark.parametrize("name", SDK_FAILURES)
def test_an_sdk_error_is_mapped_once_at_the_choke_point(
    name: str, monkeypatch: pytest.MonkeyPatch, instrumented: Instrumented
) -> None:
    make, expected = SDK_FAILURES[name]
    original = make()
    driver = _build(name)
    _listing_raises(name, driver, monkeypatch, original)
    # The driver itself lets its SDK's error out as it is ...
    with pytest.raises(type(original)):
        driver.list_pilots()
    # ... and InstrumentedDriver sorts it, once: the original is the cause, unwrapped.
    wrapped = instrumented.wrap(driver)
    with pytest.raises(DriverError) as err:
        asyncio.run(wrapped.list_pilots())
    assert type(err.value) is expected
    assert err.value.__cause__ is original
    assert err.value.entry == "e"
    assert wrapped.last_error is err.value
    assert instrumented.errors("list", expected.reason) == 1


@pytest.mark.parametrize("name", SDK_FAILURES)
@pytest.mark.parametrize(
    "bug",
    [TypeError("unsupported operand"), KeyError("InstanceId"), AttributeError("no attribute")],
    ids=lambda e: type(e).__name__,
)
def test_a_bug_in_a_driver_comes_out_as_itself(
    name: str, bug: Exception, monkeypatch: pytest.MonkeyPatch, instrumented: Instrumented
) -> None:
    driver = _build(name)
    _listing_raises(name, driver, monkeypatch, bug)
    wrapped = instrumented.wrap(driver)
    with pytest.raises(type(bug)) as err:
        asyncio.run(wrapped.list_pilots())
    assert err.value is bug
    assert not isinstance(err.value, DriverError)
    # Not counted as the cloud's failure, and the entry is not Degraded by it.
    assert wrapped.last_error is None
    assert not wrapped.degraded
    assert instrumented.errors("list", "DriverError") is None


def _batch(image_id: str | None = "ami-12345678") -> LaunchBatch:
    return LaunchBatch(
        key="b0001",
        request_uid="uid-0001",
        request="ns/req",
        entry="e",
        shape=Shape(name="m5.large", cpus=2, memory_mb=8192, disk_gb=20),
        count=2,
        image_id=image_id,
        user_data=b"#!/bin/sh\n",
    )


def test_ec2_throttled_launch_is_throttled_and_backs_off(
    monkeypatch: pytest.MonkeyPatch, instrumented: Instrumented
) -> None:
    driver = _ec2()
    original = _client_error("RequestLimitExceeded", 503)
    monkeypatch.setattr(driver._client, "run_instances", _raises(original))
    wrapped = instrumented.wrap(driver)
    with pytest.raises(Throttled) as err:
        asyncio.run(wrapped.launch(_batch()))
    assert err.value.reason == "Throttled"
    assert err.value.__cause__ is original
    assert err.value.entry == "e"
    assert wrapped.degraded  # retryable: the entry backs off
    assert instrumented.errors("launch", "Throttled") == 1


def test_ec2_bug_in_launch_is_a_type_error_not_a_degraded_entry(
    monkeypatch: pytest.MonkeyPatch, instrumented: Instrumented
) -> None:
    driver = _ec2()
    monkeypatch.setattr(
        driver._client, "run_instances", lambda **_: {"Instances": [{"InstanceId": "i-1"}]}
    )
    bug = TypeError("'NoneType' object is not subscriptable")
    monkeypatch.setattr(driver, "_pilot", _raises(bug))
    wrapped = instrumented.wrap(driver)
    with pytest.raises(TypeError):
        asyncio.run(wrapped.launch(_batch()))
    assert not wrapped.degraded
    assert wrapped.last_error is None
    assert instrumented.errors("launch", "DriverError") is None


def test_what_a_driver_refuses_itself_passes_through_unchanged(
    monkeypatch: pytest.MonkeyPatch, instrumented: Instrumented
) -> None:
    driver = _ec2()

    def never(exc: BaseException) -> DriverError | None:
        raise AssertionError(f"mapped again: {exc!r}")

    monkeypatch.setattr(driver, "map_error", never)
    wrapped = instrumented.wrap(driver)
    with pytest.raises(InvalidConfig) as err:
        asyncio.run(wrapped.launch(_batch(image_id=None)))
    assert err.value.__cause__ is None
    assert instrumented.errors("launch", "InvalidConfig") == 1
