"""The documents tests apply, in a few words (beside ``glidein_devkit.resources``, whose
builders these use): a namespace, its Secrets, a GlideinRequest, and one entry with the
trust domain and the image it names. Each returns the document kubectl applies."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from glidein_devkit.resources import G, cloud_entry, trust_domain, vm_image

Doc = dict[str, Any]

# The credential type each cloud's entries take in these tests.
CREDENTIAL_TYPE = {
    "ec2": "ec2-access-key",
    "openstack": "openstack-password",
    "opennebula": "opennebula-user-password",
}
# What the EC2 test server takes for a key.
EC2_TESTING = {"accessKeyId": "testing", "secretAccessKey": "testing"}


def namespace_doc(name: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def secret(ns: str, name: str, string_data: dict[str, str] | None = None, **doc: Any) -> Doc:
    """A Secret of ``string_data``; or of what ``doc`` says instead (``data=...``)."""
    body = doc if string_data is None else {"stringData": string_data, **doc}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        **body,
    }


def pool_key(ns: str, key: bytes | str) -> Doc:
    """The Secret ``pool-key`` the requests' pilots mint their tokens from: the POOL file
    as the collector wrote it (bytes: binary, as --from-file keeps it), or a stand-in."""
    if isinstance(key, str):
        return secret(ns, "pool-key", {"signingKey": key})
    return secret(ns, "pool-key", data={"signingKey": base64.b64encode(key).decode()})


def credential(trust_domain: str, type_: str = "ec2-access-key", name: str = "aws") -> Doc:
    """A request's credential: ``trust_domain``'s, of ``type_``, in the Secret ``name``."""
    return {"trustDomain": trust_domain, "type": type_, "secretRef": {"name": name}}


def glidein_request(
    ns: str,
    collector: str,
    schedd: str,
    credentials: list[Doc],
    *,
    name: str = "vo",
    pilot: Doc | None = None,
    token: bool = True,
    **spec: Any,
) -> Doc:
    """A GlideinRequest on one schedd. Its pilots take their token from the Secret
    ``pool-key`` (unless ``token`` is false), with ``pilot``'s settings; ``spec`` is any
    other field, as the API spells it (``jobConstraint=...``)."""
    settings = {**({"tokenSecretRef": {"name": "pool-key"}} if token else {}), **(pilot or {})}
    return {
        "apiVersion": G,
        "kind": "GlideinRequest",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "collector": collector,
            "schedds": [{"name": schedd}],
            "credentials": credentials,
            **({"pilot": settings} if settings else {}),
            **spec,
        },
    }


@dataclass(frozen=True)
class Names:
    """The cluster-scoped names of an entry, its trust domain and its image."""

    entry: str
    trust_domain: str
    image: str


def entry_docs(
    cloud: str,
    names: Names,
    location: tuple[str, str],
    settings: Doc,
    instance_type: Doc,
    **spec: Any,
) -> list[Doc]:
    """One entry on ``cloud`` (its ``settings``, one instance type) with its trust domain
    (the cloud's credential type) and its image at ``location`` (region, image id);
    ``spec`` is the entry's other fields (``site``, ``limits``)."""
    region, image_id = location
    return [
        trust_domain(names.trust_domain, [CREDENTIAL_TYPE[cloud]]),
        vm_image(names.image, [{"cloud": cloud, "region": region, "imageId": image_id}]),
        cloud_entry(
            names.entry,
            {
                "type": cloud,
                "trustDomain": names.trust_domain,
                "vmImage": names.image,
                cloud: settings,
                "instanceTypes": [instance_type],
                **spec,
            },
        ),
    ]
