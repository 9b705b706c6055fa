"""Each SDK's exceptions map to the same small taxonomy (retry or give up)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from kubernetes.client.exceptions import ApiException
from openstack import exceptions as os_exc

from glidein_operator.clouds import ec2, kubernetes, openstack
from glidein_operator.clouds.base import (
    AuthError,
    InsufficientCapacity,
    InvalidConfig,
    NotFound,
    QuotaExceeded,
    Throttled,
    Unavailable,
)


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "RunInstances",
    )


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
    assert isinstance(ec2.map_error(_client_error(code, status), "e"), expected)


def test_ec2_unreachable() -> None:
    err = ec2.map_error(EndpointConnectionError(endpoint_url="http://x"), "e")
    assert isinstance(err, Unavailable)
    assert err.retryable


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
    assert isinstance(kubernetes.map_error(exc, "e"), expected)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AuthError), (404, NotFound), (413, Throttled), (429, Throttled), (500, Unavailable)],
)
def test_openstack(status: int, expected: type[Exception]) -> None:
    exc = os_exc.HttpException(message="m", details="d", http_status=status)
    assert isinstance(openstack.map_error(exc, "e"), expected)
