"""The one pydantic base every resource model derives from, and the small value types they share.

Two audiences read these models: Python (the operator validates every object it reads
with them) and the API server (the CRD schema is generated from them, see ``crdgen``).
Anything that must be rejected at ``kubectl apply`` is therefore expressed twice in one
place: as a JSON-schema constraint or a CEL rule (``cel_rules``) for the server, and as a
pydantic validator for Python. One corpus of bad resources (``tests/malformed_cases.py``)
goes through both, the models in ``tests/unit/test_models.py`` and the API server in
``tests/integration/test_crds_on_apiserver.py``; and
``tests/integration/test_validation_agreement.py`` draws mutations of the examples by
property and gives each to both, so the two cannot drift apart.

The one exception is ClassAd expressions (``classad``): the API server cannot parse them,
the validating admission webhook (which calls ``objects.parse``) does.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, cast

from kubernetes.utils import parse_quantity as kubernetes_quantity
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

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


def _as_sent(value: Any) -> Any:
    """A value as the API server receives it from kubectl: null members pruned (none of
    our fields is nullable, so the server drops them before defaulting) and integral
    floats written as integers (Go's JSON encoder writes YAML's 4.0 as 4)."""
    if isinstance(value, Mapping):
        return {k: _as_sent(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_sent(v) for v in value]
    if type(value) is float and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


class ApiModel(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields refused.

    Types are strict, as the API server's are: ``"1.5"`` is not a price, ``"true"`` not a
    boolean, ``1`` not a string (pydantic's lax mode would convert them; the server, with
    ``type: number`` or ``boolean``, refuses them). The few types whose JSON form is not
    their Python type (integers, money, dates, timestamps) convert explicitly below.

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
        strict=True,
        allow_inf_nan=False,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _as_the_server_reads_it(cls, data: Any) -> Any:
        # `limits:` left empty in YAML means the defaults, not an error, and `cpus: 4.0` is
        # 4, as they are to the API server. kopf hands specs over as Mappings, not dicts,
        # which strict mode would refuse.
        if isinstance(data, Mapping):
            return _as_sent(data)
        return data

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


# --- numbers ----------------------------------------------------------------------------

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Int64:
    """Bounds an integer to Go's int64, which is how the API server decodes integers (it
    refuses anything wider). A field's own ge/le take precedence, whichever pydantic
    applies first; the CRD generator leaves the int64 bounds implicit."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        if schema["type"] != "int":
            raise TypeError(f"Int annotates int, not {schema['type']}")
        bounds = cast(dict[str, Any], schema)
        bounds.setdefault("ge", INT64_MIN)
        bounds.setdefault("le", INT64_MAX)
        return schema


Int = Annotated[int, _Int64()]


def _json_number(value: Any) -> Any:
    # A YAML or JSON number, never a string: the schema says `type: number`. Floats go
    # through their shortest repr so 0.192 is Decimal("0.192"), not its binary neighbour.
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {type(value).__name__} {str(value)[:40]!r}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, not {value}")
        number = Decimal(repr(value))
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"must be a finite number, not {number}")
    return number


# Money is Decimal in Python (accounting must add up to the cent) but a plain JSON number
# in YAML, which is what people write; floats never enter arithmetic.
Money = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0),
    PlainSerializer(lambda d: float(d), return_type=float, when_used="json"),
    WithJsonSchema({"type": "number", "minimum": 0}),
]


# --- dates and times --------------------------------------------------------------------

_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}.*")


def _full_date(value: Any) -> Any:
    # `format: date` on the server is RFC 3339's full-date and nothing else: not 20261115,
    # not a timestamp (YAML reads an unquoted 2026-11-15 as a date, which is fine).
    if isinstance(value, dt.datetime):
        raise ValueError("must be a date written YYYY-MM-DD, not a timestamp")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _FULL_DATE.fullmatch(value):
        return dt.date.fromisoformat(value)
    raise ValueError(f"must be a date written YYYY-MM-DD, not {str(value)[:40]!r}")


Date = Annotated[dt.date, BeforeValidator(_full_date)]


def _timestamp_text(value: Any) -> Any:
    # JSON carries timestamps as RFC 3339 text; a bare number would be read as Unix time.
    if isinstance(value, dt.datetime) or (isinstance(value, str) and _DATE_TIME.fullmatch(value)):
        return value
    raise ValueError(f"must be an RFC 3339 timestamp, not {str(value)[:40]!r}")


Timestamp = Annotated[dt.datetime, Strict(False), BeforeValidator(_timestamp_text)]


# --- durations --------------------------------------------------------------------------

_DURATION_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
_DURATION_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ms|s|m|h)")
# Go durations (what Kubernetes users write: 90s, 1h30m, 48h), and nothing wider, so that
# CEL's duration() in the CRD parses every value the pattern lets through. Numbers of at
# most six digits in at most 20 characters keep every such value below Go's limit
# (2562047h, int64 nanoseconds), so duration() never overflows either. The pattern goes
# into the CRD so `kubectl apply` rejects "ten minutes" before the operator sees it.
DURATION_PATTERN = r"^([0-9]{1,6}([.][0-9]+)?(ms|s|m|h))+$"
DURATION_MAX_LENGTH = 20
# The longest duration any field takes: a year, far inside Python's timedelta, CEL's
# duration and Go's time.Duration.
MAX_DURATION = "8760h"


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``1h30m``-style text; raise ValueError naming the bad text otherwise."""
    if len(text) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{text[:40]!r} is not a duration: use numbers of up to six digits with units "
            "ms, s, m or h, e.g. 90s, 1h30m or 48h"
        )
    seconds = sum(Decimal(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    return dt.timedelta(microseconds=int(seconds * 1_000_000))


def cel_is_duration(expr: str) -> str:
    """A CEL test that ``expr`` (a string) matches the duration pattern."""
    return f"{expr}.matches('{DURATION_PATTERN}')"


class Checked:
    """A field annotation checked twice, the way everything here is: ``check`` runs after
    pydantic's own validation, ``schema`` is what the CRD schema gets for the API server
    (added to, or with ``replace_schema`` instead of, the field's own)."""

    replace_schema = False

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        return {}

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if self.replace_schema:
            return self.schema()
        out = handler(schema)
        out.update(self.schema())
        return out


@dataclass(frozen=True)
class DurationRange(Checked):
    """A duration field's bounds: checked here and by a CEL rule on the field, so both
    name the field and say the same thing."""

    minimum: str
    maximum: str = MAX_DURATION

    @property
    def message(self) -> str:
        return f"must be between {self.minimum} and {self.maximum}"

    replace_schema = True

    def check(self, text: str) -> str:
        if not parse_duration(self.minimum) <= parse_duration(text) <= parse_duration(self.maximum):
            raise ValueError(f"{self.message}, not {text}")
        return text

    def schema(self) -> dict[str, Any]:
        # A value the pattern refuses is reported by the pattern; the guard keeps CEL from
        # adding an evaluation error about the same value.
        rule = (
            f"!{cel_is_duration('self')} || "
            f"(duration(self) >= duration('{self.minimum}') && "
            f"duration(self) <= duration('{self.maximum}'))"
        )
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
            "x-kubernetes-validations": [{"rule": rule, "message": self.message}],
        }


# A duration with no bound of its own: from 0s to the common maximum.
Duration = Annotated[str, DurationRange("0s")]


# --- quantities -------------------------------------------------------------------------

# The CRD's language for bytes: Kubernetes quantities without signs, exponents, milli- or
# exa- units. The API server refuses the rest by this pattern, and so does the model.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"


def parse_quantity(text: str) -> int:
    """Kubernetes-style byte quantity (``16Gi``, ``500M``, ``1024``) to bytes, a fraction of a
    byte rounded up as Kubernetes' ``Quantity.Value()`` does. ValueError for anything the
    CRD's pattern refuses."""
    if not re.fullmatch(QUANTITY_PATTERN, text):
        raise ValueError(f"{text[:40]!r} is not a quantity of bytes: write e.g. 16Gi, 500M or 1024")
    value: Decimal = kubernetes_quantity(text)
    return math.ceil(value)


def _check_quantity(text: str) -> str:
    parse_quantity(text)
    return text


ByteQuantity = Annotated[
    str,
    AfterValidator(_check_quantity),
    WithJsonSchema({"type": "string", "pattern": QUANTITY_PATTERN}),
]


# --- names ------------------------------------------------------------------------------

# Kubernetes object names (DNS-1123 subdomain) for references to other resources, and
# namespace names (DNS-1123 label), as the API server checks metadata.name and namespace.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME_MAX_LENGTH = 253
LABEL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_NAME_MAX_LENGTH = 63
ObjectName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)]
NamespaceName = Annotated[
    str, Field(min_length=1, max_length=LABEL_NAME_MAX_LENGTH, pattern=LABEL_NAME_PATTERN)
]


def name_problem(name: str, *, label: bool = False) -> str | None:
    """Why ``name`` is not a valid object (or, with ``label``, namespace) name, or None."""
    pattern, limit = (
        (LABEL_NAME_PATTERN, LABEL_NAME_MAX_LENGTH) if label else (NAME_PATTERN, NAME_MAX_LENGTH)
    )
    if len(name) > limit:
        return f"must be no more than {limit} characters"
    if not re.fullmatch(pattern, name):
        return (
            "must consist of lower case letters, digits and '-'"
            + ("" if label else ", in parts separated by '.'")
            + ", and start and end with a letter or digit"
        )
    return None


def at_most(value: dict[str, Any], max_properties: int) -> None:
    # The schema's maxProperties, which keeps the CEL rule over the keys within the API
    # server's cost budget.
    if len(value) > max_properties:
        raise ValueError(f"at most {max_properties} entries, not {len(value)}")


@dataclass(frozen=True)
class CheckedKeys(Checked):
    """A map whose keys must follow a rule: checked here and, since a schema cannot
    constrain map keys, by a CEL rule (``key_rule``) for the API server."""

    max_properties: int = 256

    def key_problem(self, key: str) -> str | None:
        raise NotImplementedError

    def key_rule(self) -> dict[str, str]:
        raise NotImplementedError

    def check(self, value: dict[str, Any]) -> dict[str, Any]:
        at_most(value, self.max_properties)
        for key in value:
            problem = self.key_problem(key)
            if problem:
                raise ValueError(problem)
        return value

    def schema(self) -> dict[str, Any]:
        return {
            "maxProperties": self.max_properties,
            "x-kubernetes-validations": [self.key_rule()],
        }


@dataclass(frozen=True)
class MapKeys(CheckedKeys):
    """Keys of a map field that must be names of other objects (e.g. CloudEntries)."""

    what: str = "an object name"

    def key_problem(self, key: str) -> str | None:
        problem = name_problem(key)
        return f"key {key[:60]!r} is not {self.what}: {problem}" if problem else None

    def key_rule(self) -> dict[str, str]:
        return {
            "rule": f"self.all(k, k.size() <= {NAME_MAX_LENGTH} && k.matches('{NAME_PATTERN}'))",
            "message": f"every key must be {self.what} (a DNS-1123 subdomain)",
        }


# --- lists the API server treats as maps or sets ----------------------------------------


def _wire_key(item: Any, keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(item, to_snake(k)) for k in keys)


@dataclass(frozen=True)
class ListMap(Checked):
    """A list of objects keyed by ``keys`` (``x-kubernetes-list-type: map``). The API
    server refuses two items with the same key; so does this."""

    keys: tuple[str, ...]

    def check(self, items: list[Any]) -> list[Any]:
        seen: dict[tuple[Any, ...], int] = {}
        for i, item in enumerate(items):
            key = _wire_key(item, self.keys)
            if key in seen:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(self.keys, key, strict=True))
                raise ValueError(f"[{i}] duplicates [{seen[key]}]: both have {shown}")
            seen[key] = i
        return items

    def schema(self) -> dict[str, Any]:
        return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(self.keys)}


@dataclass(frozen=True)
class ListSet(Checked):
    """A list of scalars without repeats (``x-kubernetes-list-type: set``)."""

    def check(self, items: list[Any]) -> list[Any]:
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            if item in seen:
                raise ValueError(f"[{i}] duplicates [{seen[item]}]: {item!r}")
            seen[item] = i
        return items

    def schema(self) -> dict[str, Any]:
        return {"x-kubernetes-list-type": "set"}


# --- status building blocks -------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the resource's state, in the shape every Kubernetes tool reads."""

    type: str = Field(description="Kind of condition: Ready, Degraded, Budget, ...", max_length=64)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="",
        description="One CamelCase word a machine can act on, e.g. NoPoolCredential.",
        max_length=128,
    )
    message: str = Field(
        default="", description="What a person needs to know, naming the field or object at fault."
    )
    last_transition_time: Timestamp | None = Field(
        default=None, description="When status last changed."
    )
    observed_generation: Int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was computed for."
    )


Conditions = Annotated[list[Condition], ListMap(("type",))]


# Every condition type and reason the operator sets, what it means and what to do about
# it; a unit test fails when a reason the code sets is missing there.
CONDITIONS_DOC = "https://github.com/glidein-operator/glidein-operator/blob/main/docs/conditions.md"


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description=(
            "Latest observations of the resource's state (Ready, Degraded, ...), one per "
            f"type. Every type and reason, and what to do about it: {CONDITIONS_DOC}"
        ),
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
