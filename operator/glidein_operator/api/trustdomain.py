"""TrustDomain: a group of entries that accept the same kinds of credential.

GlideinWMS introduced trust domains when clouds arrived: grid sites take X.509 proxies,
each cloud its own key pair or password. A request may start pilots at an entry only if
it holds a credential of a type the entry's trust domain accepts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from glidein_operator.api.base import ApiModel, Conditions, Int, ListSet, conditions_field

CredentialType = Literal[
    "ec2-access-key",
    "openstack-application-credential",
    "openstack-password",
    "opennebula-user-password",
    "x509-proxy",
    "scitoken",
    "idtoken",
    "kubeconfig",
    "in-cluster",
]

# What each credential type reads from its Secret. The operator (and its validation of
# Secrets) uses this table; users read it in docs/credentials.md.
CREDENTIAL_SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "ec2-access-key": ("accessKeyId", "secretAccessKey"),
    "openstack-application-credential": ("applicationCredentialId", "applicationCredentialSecret"),
    "openstack-password": ("username", "password"),
    "opennebula-user-password": ("username", "password"),
    "x509-proxy": ("proxy",),
    "scitoken": ("token",),
    "idtoken": ("token",),
    "kubeconfig": ("kubeconfig",),
    "in-cluster": (),
}


# Which credential types can drive which kind of entry: a trust domain may accept several
# (a site with both OpenStack and OpenNebula), and the request's credential must fit the
# entry's back end, not only its trust domain.
ENTRY_CREDENTIAL_TYPES: dict[str, frozenset[str]] = {
    "ec2": frozenset({"ec2-access-key"}),
    "openstack": frozenset({"openstack-application-credential", "openstack-password"}),
    "opennebula": frozenset({"opennebula-user-password"}),
    "grid": frozenset({"idtoken", "scitoken", "x509-proxy"}),
    "kubernetes": frozenset({"kubeconfig", "in-cluster"}),
}


class TrustDomainSpec(ApiModel):
    """Which credential types the entries of this trust domain accept."""

    description: str = Field(default="", description="Free text for admins.", max_length=1024)
    credential_types: Annotated[list[CredentialType], ListSet()] = Field(
        min_length=1,
        description=(
            "Credential types accepted by every entry in this trust domain, each once. A "
            "GlideinRequest needs a credential of one of these types to use the entries."
        ),
    )


class TrustDomainStatus(ApiModel):
    """What the operator observed about this trust domain."""

    observed_generation: Int | None = Field(
        default=None, ge=0, description="The .metadata.generation last reconciled."
    )
    entries: Int | None = Field(
        default=None, ge=0, description="How many CloudEntries name this trust domain."
    )
    conditions: Conditions = conditions_field()
