"""VMImage: the image catalogue the seeds ask for.

"Who owns the image? Who patches it? Who gets called? Where does it reside?" Each
VMImage answers those questions for one image version, and lists where it is staged
(image id per cloud and region) so an entry can check its image exists before launching.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from glidein_operator.api.base import (
    ApiModel,
    CelRule,
    Conditions,
    Date,
    Int,
    ListMap,
    ObjectName,
    Timestamp,
    conditions_field,
)
from glidein_operator.api.classad import AttributeMap, ConfigClassAdExpression

ImageCloud = Literal["ec2", "openstack", "opennebula"]


class ImageOwner(ApiModel):
    """Who maintains the image: who builds and patches it, and who gets called."""

    name: str = Field(min_length=1, max_length=256, description="Person or team owning the image.")
    contact: str = Field(
        min_length=1,
        max_length=256,
        description="Where to reach the owner when the image misbehaves (e-mail, ticket queue).",
    )


class ImageLocation(ApiModel):
    """One place the image is staged."""

    cloud: ImageCloud = Field(description="Kind of cloud holding the image.")
    region: str = Field(
        min_length=1,
        max_length=128,
        description=(
            "Region (EC2, OpenStack) or zone/endpoint label (OpenNebula) where the image is "
            "registered; matched against the CloudEntry's region."
        ),
    )
    image_id: str = Field(
        min_length=1,
        max_length=256,
        description="The cloud's identifier: AMI id, Glance image UUID, or OpenNebula image ID.",
    )
    account: str | None = Field(
        default=None,
        max_length=256,
        description="Account or project under which the image is stored.",
    )


class OperatingSystem(ApiModel):
    """What the image runs, advertised to jobs as OpSys-style attributes."""

    name: str = Field(min_length=1, max_length=64, description="Distribution, e.g. AlmaLinux.")
    version: str = Field(min_length=1, max_length=64, description="Release, e.g. 9.4.")


class VMImageSpec(ApiModel):
    """One version of a pilot VM image and where it resides."""

    owner: ImageOwner = Field(description="Who owns, patches and answers for the image.")
    version: str = Field(min_length=1, max_length=64, description="Image version, e.g. 2026.11.1.")
    patch_date: Date = Field(description="Date of the last security patch applied (YYYY-MM-DD).")
    description: str = Field(default="", max_length=4096, description="Free text.")
    os: OperatingSystem | None = Field(default=None, description="Operating system of the image.")
    arch: Literal["X86_64", "aarch64", "ppc64le"] = Field(
        default="X86_64", description="CPU architecture, in HTCondor's spelling (Arch attribute)."
    )
    provides: Annotated[dict[str, ConfigClassAdExpression], AttributeMap()] = Field(
        default_factory=dict,
        description=(
            "ClassAd attributes the image provides, merged into the machine ad jobs match "
            'against, e.g. {HAS_CVMFS: "true", HTCONDOR_VERSION: "\\"24.0\\""}. Names are '
            "ClassAd attribute names; values are ClassAd expressions, one line each, checked "
            "with HTCondor's ClassAd parser."
        ),
    )
    locations: Annotated[list[ImageLocation], ListMap(("cloud", "region"))] = Field(
        min_length=1,
        description="Where the image is staged: one item per cloud and region.",
    )
    deprecated: bool = Field(
        default=False,
        description="A deprecated image still works but entries using it get a warning condition.",
    )
    superseded_by: ObjectName | None = Field(
        default=None, description="Name of the VMImage replacing this one, when deprecated."
    )

    cel_rules = (
        CelRule(
            "!has(self.supersededBy) || self.deprecated",
            "supersededBy may only be set on a deprecated image",
            ".supersededBy",
        ),
        # The API server's `format: date` check lets a list through (kube-apiserver 1.36:
        # patchDate: [] is stored as is); a CEL rule sees the value for what it is.
        CelRule(
            "self.patchDate >= timestamp('0001-01-01T00:00:00Z')",
            "patchDate must be a date written YYYY-MM-DD",
            ".patchDate",
        ),
    )

    @model_validator(mode="after")
    def _superseded_only_when_deprecated(self) -> VMImageSpec:
        if self.superseded_by and not self.deprecated:
            raise ValueError("supersededBy may only be set on a deprecated image")
        return self

    def location(self, cloud: str, region: str) -> ImageLocation | None:
        for loc in self.locations:
            if loc.cloud == cloud and loc.region == region:
                return loc
        return None


class VMImageStatus(ApiModel):
    """What the operator observed about this image."""

    observed_generation: Int | None = Field(
        default=None, ge=0, description="The .metadata.generation last reconciled."
    )
    patched_at: Timestamp | None = Field(
        default=None,
        description=(
            "spec.patchDate as a timestamp (midnight UTC), so the printer column shows the "
            "age of the last security patch."
        ),
    )
    conditions: Conditions = conditions_field()
