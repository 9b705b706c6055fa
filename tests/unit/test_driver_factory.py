"""Drivers are built from an entry and a Secret; a wrong Secret is named, never shown."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

from glidein_devkit.fake_grid import FakeGridSchedd
from glidein_operator.api.objects import parse
from glidein_operator.clouds.base import Driver, InvalidConfig
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.clouds.factory import CredentialError, build_driver, decode_secret
from glidein_operator.clouds.grid import GridDriver
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from glidein_operator.clouds.openstack import OpenStackDriver
from tests.malformed_cases import example


def _spec(name: str):  # type: ignore[no-untyped-def]
    return parse(example("CloudEntry", name)).spec


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
        ("osg-nebraska", "scitoken", {"token": b"tok"}, GridDriver),
    ]
    for name, ctype, values, cls in cases:
        schedd = FakeGridSchedd()
        driver = _build(name, ctype, "s", values, grid_schedd=schedd, credential_dir=tmp_path)
        assert isinstance(driver, cls)


def test_missing_key_names_the_secret_and_key_not_the_values() -> None:
    with pytest.raises(CredentialError) as err:
        _build("aws-us-east-1", "ec2-access-key", "cms-aws", {"accessKeyId": b"AKIAEXAMPLE"})
    assert (
        str(err.value) == "Secret 'cms-aws' lacks secretAccessKey for a ec2-access-key credential"
    )
    assert "AKIAEXAMPLE" not in str(err.value)


def test_grid_token_file_is_private(tmp_path: Path) -> None:
    driver = _build(
        "osg-nebraska",
        "scitoken",
        "t",
        {"token": b"eyJ-token"},
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
