"""Drivers are built from an entry and a Secret; a wrong Secret is named, never shown."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from glidein_operator.api.objects import parse
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.clouds.factory import CredentialError, build_driver, decode_secret
from glidein_operator.clouds.grid import GridDriver
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from glidein_operator.clouds.openstack import OpenStackDriver
from glidein_operator.condor.grid import FakeGridSchedd
from tests.malformed_cases import example


def _spec(name: str):  # type: ignore[no-untyped-def]
    return parse(example("CloudEntry", name)).spec


def test_each_entry_type_gets_its_driver(tmp_path: Path) -> None:
    cases = [
        (
            "aws-us-east-1",
            "ec2-access-key",
            {"accessKeyId": "AKIA", "secretAccessKey": "s"},
            Ec2Driver,
        ),
        (
            "hlt-openstack",
            "openstack-password",
            {"username": "u", "password": "p"},
            OpenStackDriver,
        ),
        (
            "fermicloud-one",
            "opennebula-user-password",
            {"username": "u", "password": "p"},
            OpenNebulaDriver,
        ),
        ("osg-nebraska", "scitoken", {"token": "tok"}, GridDriver),
    ]
    for name, ctype, values, cls in cases:
        driver = build_driver(
            name,
            _spec(name),
            credential_type=ctype,
            secret_name="s",
            values=values,
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
            values={"accessKeyId": "AKIAEXAMPLE"},
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
        values={"token": "eyJ-token"},
        operator_id="op",
        grid_schedd=FakeGridSchedd(),
        credential_dir=tmp_path / "creds",
    )
    assert isinstance(driver, GridDriver)
    assert driver.credential_file is not None
    assert stat.S_IMODE(driver.credential_file.stat().st_mode) == 0o600
    assert "eyJ" not in driver.credential_file.name


def test_secret_data_is_decoded() -> None:
    assert decode_secret({"token": base64.b64encode(b"abc").decode()}) == {"token": "abc"}
