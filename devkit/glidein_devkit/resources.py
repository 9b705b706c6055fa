"""The cluster-scoped resources the demo and the tests apply, in a few words: each builder
returns the document kubectl applies."""

from __future__ import annotations

from typing import Any

G = "glidein.dev/v1alpha1"


def trust_domain(name: str, types: list[str], description: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"credentialTypes": types}
    if description:
        spec["description"] = description
    return {"apiVersion": G, "kind": "TrustDomain", "metadata": {"name": name}, "spec": spec}


def vm_image(
    name: str, locations: list[dict[str, str]], *, owner: str = "t", version: str = "1"
) -> dict[str, Any]:
    return {
        "apiVersion": G,
        "kind": "VMImage",
        "metadata": {"name": name},
        "spec": {
            "owner": {"name": owner, "contact": f"{owner}@example.org"},
            "version": version,
            "patchDate": "2026-11-01",
            "locations": locations,
        },
    }


def cloud_entry(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": G, "kind": "CloudEntry", "metadata": {"name": name}, "spec": spec}


def ec2_entry(
    name: str,
    *,
    endpoint: str,
    trust_domain: str,
    image: str,
    site: str,
    instance_types: list[dict[str, Any]],
    limits: dict[str, Any],
    region: str = "us-east-1",
    **extra: Any,
) -> dict[str, Any]:
    """An EC2 entry pointed at a test server; ``extra`` adds spec fields (``spot``, say)."""
    return cloud_entry(
        name,
        {
            "type": "ec2",
            "trustDomain": trust_domain,
            "site": site,
            "vmImage": image,
            "ec2": {"region": region, "endpointUrl": endpoint},
            "instanceTypes": instance_types,
            "limits": limits,
            **extra,
        },
    )
