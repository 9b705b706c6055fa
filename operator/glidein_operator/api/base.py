"""The one pydantic base every resource model derives from, and the small value types they share.

Two audiences read these models: Python (the operator validates every object it reads
with them) and the API server (the CRD schema is generated from them, see ``crdgen``).
Anything that must be rejected at ``kubectl apply`` is therefore expressed twice in one
place: as a JSON-schema constraint or a CEL rule (``cel_rules``) for the server, and as a
pydantic validator for Python. ``tests/unit/test_malformed.py`` runs one corpus of bad
resources through both so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

API_GROUP = "glidein.dev"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class CelRule:
    """A CEL validation rule the API server enforces (``x-kubernetes-validations``).

    ``field_path`` points the error at the field a user must fix, so the rejection names it.
    """

    def __init__(self, rule: str, message: str, field_path: str | None = None) -> None:
        self.rule = rule
        self.message = message
        self.field_path = field_path

    def as_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


class ApiModel(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields refused.

    Subclasses list the CEL rules that mirror their cross-field validators in
    ``cel_rules``; the CRD generator attaches them to the object's schema.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        use_enum_values=True,
        validate_default=True,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        if cls.cel_rules:
            schema["x-kubernetes-validations"] = [r.as_schema() for r in cls.cel_rules]
        return schema

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- durations --------------------------------------------------------------------------

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
# Go durations (what Kubernetes users write: 90s, 1h30m, 48h), and nothing wider, so that
# CEL's duration() in the CRD parses every value the pattern lets through. The pattern goes
# into the CRD so `kubectl apply` rejects "ten minutes" before the operator sees it.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``1h30m``-style text; raise ValueError naming the bad text otherwise."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{text!r} is not a duration: use numbers with units ms, s, m or h, e.g. 90s, 1h30m or 48h"
        )
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    return dt.timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": 32}),
]


# --- quantities -------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"


def parse_quantity(text: str) -> int:
    """Kubernetes-style byte quantity (``16Gi``, ``500M``, ``1024``) to bytes."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?", text)
    if not m:
        raise ValueError(f"{text!r} is not a quantity of bytes: write e.g. 16Gi, 500M or 1024")
    number, unit = m.groups()
    factor = _BINARY.get(unit or "", 0) or _DECIMAL.get(unit or "", 1)
    return int(Decimal(number) * factor)


def _check_quantity(text: str) -> str:
    parse_quantity(text)
    return text


ByteQuantity = Annotated[
    str,
    AfterValidator(_check_quantity),
    WithJsonSchema({"type": "string", "pattern": QUANTITY_PATTERN}),
]


# --- money ------------------------------------------------------------------------------

# Money is Decimal in Python (accounting must add up to the cent) but a plain JSON number
# in YAML, which is what people write; floats never enter arithmetic.
Money = Annotated[
    Decimal,
    Field(ge=0),
    PlainSerializer(lambda d: float(d), return_type=float, when_used="json"),
    WithJsonSchema({"type": "number", "minimum": 0}),
]

# Kubernetes object names (DNS-1123 subdomain) for references to other resources.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]


# --- status building blocks -------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the resource's state, in the shape every Kubernetes tool reads."""

    type: str = Field(description="Kind of condition: Ready, Degraded, Budget, ...", max_length=64)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="",
        description="One CamelCase word a machine can act on, e.g. SecretMissing.",
        max_length=128,
    )
    message: str = Field(
        default="", description="What a person needs to know, naming the field or object at fault."
    )
    last_transition_time: dt.datetime | None = Field(
        default=None, description="When status last changed."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was computed for."
    )


CONDITIONS_FIELD_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Latest observations of the resource's state (Ready, Degraded, ...).",
        json_schema_extra=CONDITIONS_FIELD_EXTRA,
    )


class SecretKeyRef(ApiModel):
    """A Secret in the namespace of the resource that names it. Never another namespace:
    a request can only spend credentials its own namespace holds."""

    name: ObjectName = Field(description="Name of the Secret, in the same namespace.")
    key: str | None = Field(
        default=None,
        description=(
            "Key inside the Secret. When absent the operator reads the keys the credential "
            "type defines (e.g. accessKeyId and secretAccessKey for ec2-access-key)."
        ),
        max_length=253,
    )
