"""A driver for an entry, from the entry's spec and the request's credential Secret.

The one place credentials are unpacked. A Secret's values are bytes (a POOL signing key
is binary, and ``kubectl create secret --from-file`` keeps its raw bytes); only the values a
back end reads as text are decoded, here. Values go straight into the SDK clients (or, for
grid credentials, to the submitting schedd: ``clouds/grid.py``); they are never logged, and
errors name the Secret and the key, never a value or a byte of one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from glidein_operator.api.cloudentry import CloudEntrySpec, GridSubmitter
from glidein_operator.api.trustdomain import CREDENTIAL_SECRET_KEYS
from glidein_operator.clouds.base import Driver, InvalidConfig

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from glidein_operator.clouds.grid import Submitters


class CredentialError(InvalidConfig):
    reason = "CredentialInvalid"


SecretValues = Mapping[str, bytes]


def decode_secret(data: Mapping[str, str]) -> dict[str, bytes]:
    """A Secret's ``data`` (base64), as the bytes it holds."""
    return {k: base64.b64decode(v) for k, v in data.items()}


def text_values(values: SecretValues) -> dict[str, str]:
    """The values that are UTF-8 text; binary ones are left out (``not_text`` names them
    when a back end needs one)."""
    out = {}
    for k, v in values.items():
        try:
            out[k] = v.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out


def missing_keys(credential_type: str, values: SecretValues, key: str | None = None) -> list[str]:
    """Keys the credential type needs that the Secret lacks (or holds empty)."""
    wanted = (key,) if key else CREDENTIAL_SECRET_KEYS.get(credential_type, ())
    return [k for k in wanted if not values.get(k)]


def under_defined_key(credential_type: str, values: SecretValues, key: str | None) -> SecretValues:
    """A one-value credential kept under another key (a token under "bearer") also under
    the key its type defines, where the driver reads it."""
    defined = CREDENTIAL_SECRET_KEYS.get(credential_type, ())
    if key and len(defined) == 1 and key in values:
        return {**values, defined[0]: values[key]}
    return values


def not_text(credential_type: str, values: SecretValues) -> list[str]:
    """Keys the credential type reads as text that hold binary data."""
    text = text_values(values)
    return [
        k for k in CREDENTIAL_SECRET_KEYS.get(credential_type, ()) if k in values and k not in text
    ]


def build_driver(
    entry: str,
    spec: CloudEntrySpec,
    *,
    credential_type: str,
    secret_name: str | None,
    secrets: SecretValues,
    operator_id: str,
    submitters: Submitters | None = None,
    default_submitter: GridSubmitter | None = None,
    credential_dir: Path | None = None,
    cluster_api: Callable[[], ApiClient] | None = None,
) -> Driver:
    """``cluster_api`` gives the process's one client to the operator's own cluster, for
    kubernetes entries with an ``in-cluster`` credential (called only for those)."""
    lacking = missing_keys(credential_type, secrets)
    if lacking:
        raise CredentialError(
            f"Secret {secret_name!r} lacks {', '.join(lacking)} for a {credential_type} credential",
            entry=entry,
        )
    binary = not_text(credential_type, secrets)
    if binary:
        raise CredentialError(
            f"Secret {secret_name!r} holds binary data under {', '.join(binary)}, where a "
            f"{credential_type} credential needs UTF-8 text",
            entry=entry,
        )
    values = text_values(secrets)
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

        if credential_type == "kubeconfig":
            # Another cluster (or this one under another identity): a client of its own.
            api = api_client(values["kubeconfig"])
        elif cluster_api is not None:
            api = cluster_api()
        else:
            raise InvalidConfig(
                f"entry {entry!r}: an in-cluster credential needs the operator's own API client",
                entry=entry,
            )
        return KubernetesDriver(entry, spec.kubernetes, api=api, operator_id=operator_id)
    if spec.grid is not None:
        from glidein_operator.clouds.grid import GridDriver

        submitter = spec.grid.submitter or default_submitter
        if submitters is None or submitter is None:
            raise InvalidConfig(
                f"entry {entry!r} names no submitting schedd: set spec.grid.submitter, or "
                "run the chart's (gridSubmitter.enabled=true)",
                entry=entry,
            )
        content = secrets.get("token") or secrets.get("proxy")
        return GridDriver(
            entry,
            spec.grid,
            submitter=submitter,
            submitters=submitters,
            operator_id=operator_id,
            workdir=(credential_dir or Path("/var/run/glidein/credentials")) / "grid" / entry,
            credential=content,
            credential_type=credential_type,
        )
    raise InvalidConfig(f"entry {entry!r} has no back-end section", entry=entry)
