"""A driver for an entry, from the entry's spec and the request's credential Secret.

The one place credentials are unpacked. Values go straight into the SDK clients (or,
for grid tokens and proxies, into a 0600 file the schedd reads); they are never logged,
and errors name the Secret and the missing key, never a value.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.trustdomain import CREDENTIAL_SECRET_KEYS
from glidein_operator.clouds.base import Driver, InvalidConfig
from glidein_operator.condor.grid import GridSchedd


class CredentialError(InvalidConfig):
    reason = "CredentialInvalid"


def decode_secret(data: Mapping[str, str]) -> dict[str, str]:
    """A Secret's ``data`` (base64) as text."""
    return {k: base64.b64decode(v).decode("utf-8") for k, v in data.items()}


def missing_keys(
    credential_type: str, values: Mapping[str, str], key: str | None = None
) -> list[str]:
    """Keys the credential type needs that the Secret lacks (or holds empty)."""
    wanted = (key,) if key else CREDENTIAL_SECRET_KEYS.get(credential_type, ())
    return [k for k in wanted if not values.get(k)]


def write_credential_file(directory: Path, name: str, content: str) -> Path:
    """Write a token/proxy where only we can read it; the name carries no secret."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    path = directory / f"{name}-{digest}"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    return path


def build_driver(
    entry: str,
    spec: CloudEntrySpec,
    *,
    credential_type: str,
    secret_name: str | None,
    values: Mapping[str, str],
    operator_id: str,
    grid_schedd: GridSchedd | None = None,
    credential_dir: Path | None = None,
) -> Driver:
    lacking = missing_keys(credential_type, values)
    if lacking:
        raise CredentialError(
            f"Secret {secret_name!r} lacks {', '.join(lacking)} for a {credential_type} credential",
            entry=entry,
        )
    if spec.ec2 is not None:
        from glidein_operator.clouds.ec2 import Ec2Driver

        return Ec2Driver(
            entry,
            spec.ec2,
            access_key_id=values["accessKeyId"],
            secret_access_key=values["secretAccessKey"],
            operator_id=operator_id,
            max_attempts=4,
        )
    if spec.openstack is not None:
        from glidein_operator.clouds.openstack import OpenStackDriver

        return OpenStackDriver(
            entry, spec.openstack, credentials=dict(values), operator_id=operator_id
        )
    if spec.opennebula is not None:
        from glidein_operator.clouds.opennebula import OpenNebulaDriver

        return OpenNebulaDriver(
            entry,
            spec.opennebula,
            username=values["username"],
            password=values["password"],
            operator_id=operator_id,
        )
    if spec.kubernetes is not None:
        from glidein_operator.clouds.kubernetes import KubernetesDriver, api_client

        api = api_client(values["kubeconfig"] if credential_type == "kubeconfig" else None)
        return KubernetesDriver(entry, spec.kubernetes, api=api, operator_id=operator_id)
    if spec.grid is not None:
        from glidein_operator.clouds.grid import GridDriver
        from glidein_operator.condor.grid import HTCondorGridSchedd

        content = values.get("token") or values.get("proxy")
        path = None
        if content:
            path = write_credential_file(
                credential_dir or Path("/var/run/glidein/credentials"), entry, content
            )
        return GridDriver(
            entry,
            spec.grid,
            schedd=grid_schedd or HTCondorGridSchedd(),
            operator_id=operator_id,
            credential_file=path,
            credential_type=credential_type,
        )
    raise InvalidConfig(f"entry {entry!r} has no back-end section", entry=entry)
