"""Drivers are built from an entry and a Secret; a wrong Secret is named, never shown."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from glidein_devkit.fake_grid import FakeGridSchedd, FakeSubmitters
from glidein_operator.api.cloudentry import GridSubmitter
from glidein_operator.api.objects import parse
from glidein_operator.clouds.base import Driver, InvalidConfig
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.clouds.factory import CredentialError, build_driver, decode_secret
from glidein_operator.clouds.grid import GridDriver
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from glidein_operator.clouds.openstack import OpenStackDriver
from glidein_operator.ground import LaunchBatch, Shape
from tests.malformed_cases import example


def _spec(name: str):  # type: ignore[no-untyped-def]
    return parse(example("CloudEntry", name)).spec


# The chart's submitting schedd, as the operator learns it (GLIDEIN_GRID_SUBMITTER): the
# example grid entry names none.
CHART = GridSubmitter.model_validate(
    {
        "collector": "glidein-glidein-operator-grid-submitter.glidein-system.svc:9618",
        "schedd": "glidein-submitter@glidein-glidein-operator-grid-submitter.glidein-system.svc",
        "tokenSecretRef": {"name": "glidein-glidein-operator-grid-submitter-key"},
    }
)


def _build(
    name: str, credential_type: str, secret: str | None, secrets: dict[str, bytes], **kw: Any
) -> Driver:
    """The driver of the example entry ``name``, its credential in the Secret ``secret``."""
    return build_driver(
        name,
        _spec(name),
        credential_type=credential_type,
        secret_name=secret,
        secrets=secrets,
        operator_id="op",
        **kw,
    )


def test_each_entry_type_gets_its_driver(tmp_path: Path) -> None:
    cases = [
        (
            "aws-us-east-1",
            "ec2-access-key",
            {"accessKeyId": b"AKIA", "secretAccessKey": b"s"},
            Ec2Driver,
        ),
        (
            "hlt-openstack",
            "openstack-password",
            {"username": b"u", "password": b"p"},
            OpenStackDriver,
        ),
        (
            "fermicloud-one",
            "opennebula-user-password",
            {"username": b"u", "password": b"p"},
            OpenNebulaDriver,
        ),
        ("osg-nebraska", "idtoken", {"token": b"tok"}, GridDriver),
    ]
    for name, ctype, values, cls in cases:
        submitters = FakeSubmitters(FakeGridSchedd())
        driver = _build(
            name,
            ctype,
            "s",
            values,
            submitters=submitters,
            default_submitter=CHART,
            credential_dir=tmp_path,
        )
        assert isinstance(driver, cls)


def test_missing_key_names_the_secret_and_key_not_the_values() -> None:
    with pytest.raises(CredentialError) as err:
        _build("aws-us-east-1", "ec2-access-key", "cms-aws", {"accessKeyId": b"AKIAEXAMPLE"})
    assert (
        str(err.value) == "Secret 'cms-aws' lacks secretAccessKey for a ec2-access-key credential"
    )
    assert "AKIAEXAMPLE" not in str(err.value)


def test_grid_credential_reaches_the_submitter_by_a_name_that_says_nothing(
    tmp_path: Path,
) -> None:
    """The entrypoint's token goes to the submitting schedd under a hash of itself; the
    job ad (readable by anyone with READ at that schedd) holds neither it nor the pool
    token the payload carries."""
    schedd = FakeGridSchedd()
    submitters = FakeSubmitters(schedd)
    driver = _build(
        "osg-nebraska",
        "idtoken",
        "t",
        {"token": b"eyJ-ce-token"},
        submitters=submitters,
        default_submitter=CHART,
        credential_dir=tmp_path / "creds",
    )
    assert isinstance(driver, GridDriver)
    batch = LaunchBatch(
        key="b1",
        request_uid="u",
        request="ns/r",
        entry="osg-nebraska",
        shape=Shape("8core", 8, 16384, 80),
        count=2,
        image_id=None,
        user_data=b"payload-with-eyJ-pool-token",
    )
    pilots = driver.launch(batch)
    assert [p.pilot_id for p in pilots] == ["b1-0", "b1-1"]
    (name,) = submitters.published
    assert name.endswith(".idtoken")
    assert "eyJ" not in name
    assert submitters.published[name] == b"eyJ-ce-token"
    for ad in schedd.jobs.values():
        assert "eyJ" not in str(ad)
    # The payload was spooled and is gone from the operator's disk.
    assert not list((tmp_path / "creds").rglob("glidein-payload"))


def test_secret_data_stays_bytes_binary_keys_included() -> None:
    pool_key = bytes([0xBE, 0xC8, 0x88, 0xBA, 0x00, 0xFF]) * 10
    data = {
        "token": base64.b64encode(b"abc").decode(),
        "signingKey": base64.b64encode(pool_key).decode(),
    }
    assert decode_secret(data) == {"token": b"abc", "signingKey": pool_key}


def test_binary_data_where_text_is_needed_is_named_without_a_byte_of_it() -> None:
    secret = bytes([0xFF, 0xFE, 0x41, 0x4B, 0x49, 0x41])
    keys = {"accessKeyId": b"AKIA", "secretAccessKey": secret}
    with pytest.raises(CredentialError) as err:
        _build("aws-us-east-1", "ec2-access-key", "cms-aws", keys)
    message = str(err.value)
    assert message == (
        "Secret 'cms-aws' holds binary data under secretAccessKey, where a ec2-access-key "
        "credential needs UTF-8 text"
    )
    for rendering in (repr(secret), secret.hex(), "xff", "0xff", "AKIA"):
        assert rendering not in message


def test_in_cluster_pods_without_the_operators_client_are_refused() -> None:
    with pytest.raises(InvalidConfig, match="in-cluster credential needs the operator's own"):
        _build("local-pods", "in-cluster", None, {})
