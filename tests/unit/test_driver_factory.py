"""Drivers are built from an entry and a Secret; a wrong Secret is named, never shown."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from glidein_devkit.fake_grid import FakeGridSchedd
from glidein_operator.api.objects import parse
from glidein_operator.clouds.base import InvalidConfig
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.clouds.factory import CredentialError, build_driver, decode_secret
from glidein_operator.clouds.grid import GridDriver
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from glidein_operator.clouds.openstack import OpenStackDriver
from tests.malformed_cases import example


def _spec(name: str):  # type: ignore[no-untyped-def]
    return parse(example("CloudEntry", name)).spec


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
        ("osg-nebraska", "scitoken", {"token": b"tok"}, GridDriver),
    ]
    for name, ctype, values, cls in cases:
        driver = build_driver(
            name,
            _spec(name),
            credential_type=ctype,
            secret_name="s",
            secrets=values,
            operator_id="op",
            grid_schedd=FakeGridSchedd(),
            credential_dir=tmp_path,
        )
        assert isinstance(driver, cls)


def test_missing_key_names_the_secret_and_key_not_the_values() -> None:
    with pytest.raises(CredentialError) as err:
        build_driver(
            "aws-us-east-1",
            _spec("aws-us-east-1"),
            credential_type="ec2-access-key",
            secret_name="cms-aws",
            secrets={"accessKeyId": b"AKIAEXAMPLE"},
            operator_id="op",
        )
    assert (
        str(err.value) == "Secret 'cms-aws' lacks secretAccessKey for a ec2-access-key credential"
    )
    assert "AKIAEXAMPLE" not in str(err.value)


def test_grid_token_file_is_private(tmp_path: Path) -> None:
    driver = build_driver(
        "osg-nebraska",
        _spec("osg-nebraska"),
        credential_type="scitoken",
        secret_name="t",
        secrets={"token": b"eyJ-token"},
        operator_id="op",
        grid_schedd=FakeGridSchedd(),
        credential_dir=tmp_path / "creds",
    )
    assert isinstance(driver, GridDriver)
    assert driver.credential_file is not None
    assert stat.S_IMODE(driver.credential_file.stat().st_mode) == 0o600
    assert "eyJ" not in driver.credential_file.name


def test_secret_data_stays_bytes_binary_keys_included() -> None:
    pool_key = bytes([0xBE, 0xC8, 0x88, 0xBA, 0x00, 0xFF]) * 10
    data = {
        "token": base64.b64encode(b"abc").decode(),
        "signingKey": base64.b64encode(pool_key).decode(),
    }
    assert decode_secret(data) == {"token": b"abc", "signingKey": pool_key}


def test_binary_data_where_text_is_needed_is_named_without_a_byte_of_it() -> None:
    secret = bytes([0xFF, 0xFE, 0x41, 0x4B, 0x49, 0x41])
    with pytest.raises(CredentialError) as err:
        build_driver(
            "aws-us-east-1",
            _spec("aws-us-east-1"),
            credential_type="ec2-access-key",
            secret_name="cms-aws",
            secrets={"accessKeyId": b"AKIA", "secretAccessKey": secret},
            operator_id="op",
        )
    message = str(err.value)
    assert message == (
        "Secret 'cms-aws' holds binary data under secretAccessKey, where a ec2-access-key "
        "credential needs UTF-8 text"
    )
    for rendering in (repr(secret), secret.hex(), "xff", "0xff", "AKIA"):
        assert rendering not in message


def test_in_cluster_pods_without_the_operators_client_are_refused() -> None:
    with pytest.raises(InvalidConfig, match="in-cluster credential needs the operator's own"):
        build_driver(
            "local-pods",
            _spec("local-pods"),
            credential_type="in-cluster",
            secret_name=None,
            secrets={},
            operator_id="op",
        )
