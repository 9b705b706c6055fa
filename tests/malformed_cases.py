"""One corpus of malformed resources, run through pydantic (unit) and the API server
(integration): whatever one rejects the other must reject too, naming the same field.

Cases with ``server=False`` are rejected by pydantic alone: ClassAd expressions, which
only HTCondor's parser can judge (the validating admission webhook runs it at apply
time), and NaN or Infinity, which kubectl refuses before the API server sees them.

Below the hand-written cases, ``mutated_examples`` draws mutations of the examples by
family (wrong JSON type, out-of-range integer, number or boolean written as a string,
duplicate list-map key, bad name, unknown field, bad duration, bad quantity, ...) from
the generated CRD schema, for the property tests in ``test_validation_agreement*.py``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from glidein_operator.api import crdgen
from glidein_operator.api.base import (
    DURATION_PATTERN,
    LABEL_NAME_PATTERN,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    QUANTITY_PATTERN,
)
from glidein_operator.api.resources import KINDS_BY_NAME

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(kind: str, name: str) -> dict[str, Any]:
    for f in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return copy.deepcopy(doc)
    raise KeyError(f"{kind}/{name} not in examples/")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    base: str
    mutate: Callable[[dict[str, Any]], None]
    field: str  # the path kube-apiserver names, e.g. spec.limits.maxPilots
    # The API server (with kubectl) rejects this too, without the admission webhook.
    server: bool = True
    # A metadata.name that is itself the fault; otherwise the caller's or the example's.
    bad_name: str | None = None

    def build(self, name: str | None = None) -> dict[str, Any]:
        obj = example(self.kind, self.base)
        if name:
            obj["metadata"]["name"] = name
        if self.bad_name is not None:
            obj["metadata"]["name"] = self.bad_name
        self.mutate(obj["spec"])
        return obj

    @property
    def leaf(self) -> str:
        """Last segment of the field path (what pydantic's cross-field messages name)."""
        return self.field.rsplit(".", 1)[-1].split("[")[0]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
        last = parts[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return f


_DELETE = object()


def _both(*fs: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def f(spec: dict[str, Any]) -> None:
        for g in fs:
            g(spec)

    return f


CE, TD, VMI, GR = "CloudEntry", "TrustDomain", "VMImage", "GlideinRequest"
EC2, OS_, GRID = "aws-us-east-1", "hlt-openstack", "osg-nebraska"
IMG, REQ = "glidein-el9-2026.11", "cms-production"

CASES: list[Case] = [
    Case("entry-unknown-type", CE, EC2, _set("type", "azure"), "spec.type"),
    Case(
        "entry-ec2-and-openstack-sections",
        CE,
        EC2,
        _set("openstack", {"authUrl": "https://k:5000/v3", "region": "RegionOne"}),
        "spec.openstack",
    ),
    Case("entry-section-missing", CE, OS_, _set("openstack", _DELETE), "spec.openstack"),
    Case(
        "entry-negative-max-pilots", CE, EC2, _set("limits.maxPilots", -1), "spec.limits.maxPilots"
    ),
    Case(
        "entry-idle-above-max",
        CE,
        EC2,
        _both(_set("limits.maxPilots", 5), _set("limits.maxIdlePilots", 10)),
        "spec.limits.maxIdlePilots",
    ),
    Case(
        "entry-cpus-not-a-number",
        CE,
        EC2,
        _set("instanceTypes.0.cpus", "four"),
        "spec.instanceTypes[0].cpus",
    ),
    Case(
        "entry-memory-not-a-quantity",
        CE,
        EC2,
        _set("instanceTypes.0.memory", "lots"),
        "spec.instanceTypes[0].memory",
    ),
    Case(
        "entry-negative-price",
        CE,
        EC2,
        _set("instanceTypes.0.pricePerHour", -0.1),
        "spec.instanceTypes[0].pricePerHour",
    ),
    Case("entry-no-instance-types", CE, EC2, _set("instanceTypes", []), "spec.instanceTypes"),
    Case("entry-missing-trust-domain", CE, EC2, _set("trustDomain", _DELETE), "spec.trustDomain"),
    Case("entry-spot-on-openstack", CE, OS_, _set("spot", {"enabled": True}), "spec.spot"),
    Case(
        "entry-batch-ce-without-batch-system",
        CE,
        GRID,
        _set("grid.ceType", "batch"),
        "spec.grid.batchSystem",
    ),
    Case("entry-image-on-grid", CE, GRID, _set("vmImage", IMG), "spec.vmImage"),
    Case(
        "entry-endpoint-not-http",
        CE,
        EC2,
        _set("ec2.endpointUrl", "ftp://ec2.example.org"),
        "spec.ec2.endpointUrl",
    ),
    Case(
        "entry-bad-trust-domain-name",
        CE,
        EC2,
        _set("trustDomain", "Not_A_Name"),
        "spec.trustDomain",
    ),
    Case(
        "trustdomain-no-credential-types",
        TD,
        "aws",
        _set("credentialTypes", []),
        "spec.credentialTypes",
    ),
    Case(
        "trustdomain-unknown-credential-type",
        TD,
        "aws",
        _set("credentialTypes", ["password123"]),
        "spec.credentialTypes[0]",
    ),
    Case("image-bad-patch-date", VMI, IMG, _set("patchDate", "last tuesday"), "spec.patchDate"),
    Case("image-no-locations", VMI, IMG, _set("locations", []), "spec.locations"),
    Case(
        "image-unknown-cloud",
        VMI,
        IMG,
        _set("locations.0.cloud", "azure"),
        "spec.locations[0].cloud",
    ),
    Case(
        "image-superseded-not-deprecated",
        VMI,
        IMG,
        _set("supersededBy", "glidein-el10"),
        "spec.supersededBy",
    ),
    Case("request-no-schedds", GR, REQ, _set("schedds", []), "spec.schedds"),
    Case("request-missing-collector", GR, REQ, _set("collector", _DELETE), "spec.collector"),
    Case(
        "request-bad-duration", GR, REQ, _set("pilot.lifetime", "two days"), "spec.pilot.lifetime"
    ),
    Case(
        "request-retire-longer-than-lifetime",
        GR,
        REQ,
        _both(_set("pilot.lifetime", "2h"), _set("pilot.retireBeforeEnd", "3h")),
        "spec.pilot.retireBeforeEnd",
    ),
    Case(
        "request-min-above-max",
        GR,
        REQ,
        _both(
            _set("limits.minPilots", 3000),
            _set("limits.maxPilots", 10),
            _set("limits.maxIdlePilots", 5),
            _set("limits.curbIdlePilots", 1),
        ),
        "spec.limits.minPilots",
    ),
    Case(
        "request-curb-above-idle",
        GR,
        REQ,
        _set("limits.curbIdlePilots", 500),
        "spec.limits.curbIdlePilots",
    ),
    Case(
        "request-credential-without-secret",
        GR,
        REQ,
        _set("credentials.2.secretRef", _DELETE),
        "spec.credentials[2].secretRef",
    ),
    Case(
        "request-secret-bad-name",
        GR,
        REQ,
        _set("credentials.0.secretRef.name", "Bad_Name"),
        "spec.credentials[0].secretRef.name",
    ),
    Case("request-negative-budget", GR, REQ, _set("budget.limit", -5), "spec.budget.limit"),
    Case("request-warn-above-one", GR, REQ, _set("budget.warnAt", 1.5), "spec.budget.warnAt"),
    Case("request-kill-below-warn", GR, REQ, _set("budget.killAt", 0.5), "spec.budget.killAt"),
    Case("request-bad-period", GR, REQ, _set("budget.period", "fortnightly"), "spec.budget.period"),
    Case("request-misspelt-field", GR, REQ, _set("maxPilot", 3), "spec.maxPilot"),
    Case(
        "request-credential-unknown-type",
        GR,
        REQ,
        _set("credentials.0.type", "aws-root-password"),
        "spec.credentials[0].type",
    ),
    # --- durations: bounded on both sides, never an overflow --------------------------
    Case(
        "request-lifetime-overflows",
        GR,
        REQ,
        _set("pilot.lifetime", "99999999999999999h"),
        "spec.pilot.lifetime",
    ),
    Case(
        "request-lifetime-sub-second",
        GR,
        REQ,
        _both(_set("pilot.lifetime", "0.0000005s"), _set("pilot.retireBeforeEnd", "10s")),
        "spec.pilot.lifetime",
    ),
    Case(
        "request-lifetime-over-a-year",
        GR,
        REQ,
        _set("pilot.lifetime", "8760h1s"),
        "spec.pilot.lifetime",
    ),
    Case(
        "request-registration-timeout-zero",
        GR,
        REQ,
        _set("pilot.registrationTimeout", "0s"),
        "spec.pilot.registrationTimeout",
    ),
    Case(
        "request-idle-timeout-sub-second",
        GR,
        REQ,
        _set("pilot.idleTimeout", "500ms"),
        "spec.pilot.idleTimeout",
    ),
    Case(
        "request-retire-window-too-short",
        GR,
        REQ,
        _set("pilot.retireBeforeEnd", "5s"),
        "spec.pilot.retireBeforeEnd",
    ),
    Case(
        "request-kill-grace-over-a-year",
        GR,
        REQ,
        _set("budget.killGracePeriod", "9000h"),
        "spec.budget.killGracePeriod",
    ),
    # --- types as strict as the schema's -------------------------------------------------
    Case(
        "entry-price-as-string",
        CE,
        EC2,
        _set("instanceTypes.1.pricePerHour", "0.68"),
        "spec.instanceTypes[1].pricePerHour",
    ),
    Case("entry-enabled-as-string", CE, OS_, _set("enabled", "false"), "spec.enabled"),
    Case(
        "request-paused-as-number",
        GR,
        REQ,
        _set("paused", 0),
        "spec.paused",
    ),
    Case(
        "request-max-pilots-beyond-int64",
        GR,
        REQ,
        _set("limits.maxPilots", 2**63),
        "spec.limits.maxPilots",
    ),
    Case(
        "entry-template-id-as-string",
        CE,
        "fermicloud-one",
        _set("opennebula.templateId", "42"),
        "spec.opennebula.templateId",
    ),
    Case(
        "image-patch-date-is-a-timestamp",
        VMI,
        IMG,
        _set("patchDate", "2026-11-15T08:00:00Z"),
        "spec.patchDate",
    ),
    # --- lists that are maps or sets: no repeated key -------------------------------------
    Case(
        "entry-instance-type-twice",
        CE,
        "fermicloud-one",
        _set("instanceTypes.1.name", "small"),
        "spec.instanceTypes",
    ),
    Case(
        "image-location-twice",
        VMI,
        IMG,
        _set("locations.1.region", "us-east-1"),
        "spec.locations",
    ),
    Case(
        "trustdomain-credential-type-twice",
        TD,
        "osg",
        _set("credentialTypes", ["scitoken", "x509-proxy", "scitoken"]),
        "spec.credentialTypes",
    ),
    # --- names ------------------------------------------------------------------------
    Case(
        "entry-name-with-capitals",
        CE,
        GRID,
        lambda spec: None,
        "metadata.name",
        bad_name="OSG-Nebraska",
    ),
    Case(
        "entry-image-name-too-long",
        CE,
        EC2,
        _set("vmImage", "a" * 254),
        "spec.vmImage",
    ),
    Case(
        "entry-pod-namespace-with-dot",
        CE,
        "local-pods",
        _set("kubernetes.namespace", "glidein.pilots"),
        "spec.kubernetes.namespace",
    ),
    Case(
        "request-per-entry-budget-bad-entry-name",
        GR,
        REQ,
        _set("budget.perEntry", {"AWS us-east-1": 100}),
        "spec.budget.perEntry",
    ),
    # --- ClassAd attribute names: plain syntax, so the server checks them too ---------
    Case(
        "entry-attribute-name-not-classad",
        CE,
        OS_,
        _set("attributes", {"GLIDEIN-CMSSite": '"T2_CH_CERN_HLT"'}),
        "spec.attributes",
    ),
    Case(
        "image-provides-reserved-name",
        VMI,
        IMG,
        _set("provides.error", "false"),
        "spec.provides",
    ),
    Case(
        "entry-submit-attribute-bad-name",
        CE,
        GRID,
        _set("grid.submitAttributes", {"+max WallTime": "2880"}),
        "spec.grid.submitAttributes",
    ),
    Case(
        "request-start-expression-two-lines",
        GR,
        REQ,
        _set("pilot.startExpression", "true\nSTART = false"),
        "spec.pilot.startExpression",
    ),
    # --- ClassAd expressions: HTCondor's parser, in the webhook -------------------------
    Case(
        "request-job-constraint-unbalanced",
        GR,
        REQ,
        _set("jobConstraint", "(JobUniverse == 5"),
        "spec.jobConstraint",
        server=False,
    ),
    Case(
        "request-match-expression-smuggles-an-attribute",
        GR,
        REQ,
        _set("matchExpression", "true); Rank = (1"),
        "spec.matchExpression",
        server=False,
    ),
    Case(
        "request-start-expression-dangling-operator",
        GR,
        REQ,
        _set("pilot.startExpression", "Owner == "),
        "spec.pilot.startExpression",
        server=False,
    ),
    Case(
        "entry-attribute-value-not-classad",
        CE,
        OS_,
        _set("attributes.GLIDEIN_CMSSite", '"T2_CH_CERN_HLT'),
        "spec.attributes.GLIDEIN_CMSSite",
        server=False,
    ),
    Case(
        "image-provides-value-not-classad",
        VMI,
        IMG,
        _set("provides.OSGVO_OS_STRING", "RHEL 9"),
        "spec.provides.OSGVO_OS_STRING",
        server=False,
    ),
    Case(
        "entry-submit-attribute-value-not-classad",
        CE,
        GRID,
        _set("grid.submitAttributes", {"+maxWallTime": "48 hours"}),
        "spec.grid.submitAttributes",
        server=False,
    ),
    # --- NaN and Infinity: kubectl refuses them before the server, naming no field ---------
    Case(
        "request-budget-nan",
        GR,
        REQ,
        _set("budget.limit", float("nan")),
        "spec.budget.limit",
        server=False,
    ),
    Case(
        "entry-price-infinite",
        CE,
        EC2,
        _set("instanceTypes.0.pricePerHour", float("inf")),
        "spec.instanceTypes[0].pricePerHour",
        server=False,
    ),
    Case(
        "request-per-entry-budget-nan",
        GR,
        REQ,
        _set("budget.perEntry", {"aws-us-east-1": float("nan")}),
        "spec.budget.perEntry",
        server=False,
    ),
    Case(
        "request-warn-at-nan",
        GR,
        REQ,
        _set("budget.warnAt", float("nan")),
        "spec.budget.warnAt",
        server=False,
    ),
]


# --- generated cases ----------------------------------------------------------------------
#
# A mutation picks a place in an example (a "slot": a field present or absent, a list item,
# a map entry), found by walking the generated CRD schema alongside the example, and a
# family of damage that fits the slot's schema. Nothing here knows what the right verdict
# is: the tests compare the models' with the API server's.

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Slot:
    path: JsonPath  # from the object's root, e.g. ("spec", "limits", "maxPilots")
    schema: dict[str, Any]  # the CRD schema node for it
    present: bool


def _our_examples() -> list[tuple[str, str]]:
    out = []
    for f in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and str(doc.get("apiVersion", "")).startswith("glidein.dev/"):
                out.append((doc["kind"], doc["metadata"]["name"]))
    return out


EXAMPLE_IDS: list[tuple[str, str]] = _our_examples()
METADATA_NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "maxLength": NAME_MAX_LENGTH,
}


@functools.cache
def spec_schema(kind: str) -> dict[str, Any]:
    return crdgen.openapi_schema(KINDS_BY_NAME[kind])["properties"]["spec"]  # type: ignore[no-any-return]


def slots(obj: dict[str, Any]) -> list[Slot]:
    """Every place in ``obj`` a mutation can reach, with its schema."""
    out = [Slot(("metadata", "name"), METADATA_NAME_SCHEMA, True)]

    def walk(schema: dict[str, Any], value: Any, path: JsonPath) -> None:
        out.append(Slot(path, schema, True))
        if isinstance(value, dict) and "properties" in schema:
            for name, sub in schema["properties"].items():
                if name in value:
                    walk(sub, value[name], (*path, name))
                else:
                    out.append(Slot((*path, name), sub, False))
        elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                walk(schema["additionalProperties"], item, (*path, key))
        elif isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                walk(schema["items"], item, (*path, i))

    walk(spec_schema(obj["kind"]), obj["spec"], ("spec",))
    return out


_DELETED = object()


@dataclass(frozen=True)
class Mutation:
    family: str
    path: JsonPath
    value: Any = _DELETED  # _DELETED removes the field or item

    def apply(self, obj: dict[str, Any]) -> None:
        node: Any = obj
        for part in self.path[:-1]:
            node = node[part]
        last = self.path[-1]
        if self.value is _DELETED:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(copy.deepcopy(self.value))
        else:
            node[last] = copy.deepcopy(self.value)

    def __repr__(self) -> str:
        where = ".".join(str(p) for p in self.path)
        what = "<delete>" if self.value is _DELETED else repr(self.value)[:120]
        return f"{self.family}: {where} = {what}"


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_JSON_VALUES = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "name", "type"]), st.integers(0, 3), max_size=1),
)


def _wrong_json_type(schema_type: str) -> st.SearchStrategy[Any]:
    def fits(value: Any) -> bool:
        t = _type_of(value)
        # An integer is a number; an integral float is an integer on the wire.
        return t == schema_type or (schema_type == "number" and t == "integer")

    return _JSON_VALUES.filter(lambda v: not fits(v))


_NUMBER_WORDS = ["1", "0", "1.5", "-1", "1e3", "", " 1", "0x10", "NaN", "Infinity"]
_BOOLEAN_WORDS = ["true", "false", "True", "yes", "on", "1", "0", ""]

_NAMES = st.one_of(
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,12}[a-z0-9])?(\.[a-z0-9]{1,4}){0,2}", fullmatch=True),
    st.text(alphabet="abzAZ09-._é ", max_size=12),
    st.sampled_from([60, 63, 64, 252, 253, 254, 300]).map(lambda n: "a" * n),
    st.sampled_from(["-a", "a-", "a..b", ".a", "A", "a_b", "é", "\uff41", "a/b", "0"]),
)
_DURATIONS = st.one_of(
    st.from_regex(r"([0-9]{1,8}(\.[0-9]{1,3})?(ms|s|m|h)){1,3}", fullmatch=True),
    st.sampled_from(
        [
            *("0s", "1s", "9s", "10s", "59s", "1m", "8760h", "8760h1ms", "525600m", "1d", "1us"),
            *("99999999999999999h", "0.0000005s", "1h 30m", "-5m", "", "1.5h", "h", "1"),
        ]
    ),
    st.text(alphabet="0123456789.mshd ", max_size=8),
)
_QUANTITIES = st.one_of(
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?", fullmatch=True),
    st.sampled_from(["", "1e3", "16GB", "16 Gi", "-1Gi", ".5Gi", "0x10", "lots"]),
)
_FIELD_NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,10}", fullmatch=True)
_MAP_KEYS = st.one_of(
    st.from_regex(r"[A-Za-z_+.][A-Za-z0-9_.]{0,8}", fullmatch=True),
    st.sampled_from(["true", "Error", "MY", "my.x", "+x", "+1x", "MY.true", "+My Attr"]),
    st.sampled_from(["a-b", "é", "", "TARGET", "isnt", "aws-us-east-1", "Aws"]),
    _NAMES,
)


def _strings_near(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 16)
    sizes = sorted({n for n in (0, low - 1, low, high, high + 1) if n >= 0})
    # Multi-byte characters: the server counts characters, as Python does, not bytes.
    return st.sampled_from(sizes).flatmap(
        lambda n: st.text(alphabet="aZ0-é😀 ", min_size=n, max_size=n)
    )


def _valid_value(schema: dict[str, Any]) -> Any:
    return {"string": "true", "number": 1, "integer": 1, "boolean": True}.get(
        schema.get("type", ""), {}
    )


def _family_values(slot: Slot) -> dict[str, st.SearchStrategy[Any]]:
    """The families of damage that fit one slot, each with a strategy for the new value."""
    s, out = slot.schema, {}
    t = s.get("type")
    if slot.path != ("spec",) and t:
        out["wrong JSON type"] = _wrong_json_type(t)
    if slot.present and len(slot.path) > 1 and slot.path[0] == "spec":
        out["null"] = st.none()
        out["removed"] = st.just(_DELETED)
    if t == "integer":
        bounds = [s.get("minimum", 0), s.get("maximum", 1000)]
        out["number written as a string"] = st.sampled_from(_NUMBER_WORDS)
        out["integer out of range"] = st.one_of(
            st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30]),
            st.sampled_from(bounds).flatmap(lambda b: st.integers(b - 2, b + 2)),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
        )
    if t == "number":
        out["number written as a string"] = st.sampled_from(_NUMBER_WORDS)
        out["number out of range"] = st.one_of(
            st.floats(min_value=-2, max_value=2),
            st.sampled_from([0, -0.0, 5e-324, 1e308, -1e-9, 1.0000001, 10**30]),
            st.integers(-3, 3),
        )
    if t == "boolean":
        out["boolean written as a string"] = st.sampled_from(_BOOLEAN_WORDS)
    if t == "string":
        pattern = s.get("pattern")
        if pattern in (NAME_PATTERN, LABEL_NAME_PATTERN):
            out["bad name"] = _NAMES
        elif pattern == DURATION_PATTERN:
            out["bad duration"] = _DURATIONS
        elif pattern == QUANTITY_PATTERN:
            out["bad quantity"] = _QUANTITIES
        elif "enum" in s:
            words = [*s["enum"], *(str(e).upper() for e in s["enum"]), "", "other"]
            out["not in the enum"] = st.sampled_from(words)
        else:
            out["string length"] = _strings_near(s)
    if not slot.present:
        return out
    if "properties" in s:
        unknown = _FIELD_NAMES.filter(lambda n, known=s["properties"]: n not in known)
        out["unknown field"] = st.tuples(unknown, _JSON_VALUES)
    elif isinstance(s.get("additionalProperties"), dict):
        value = _valid_value(s["additionalProperties"])
        out["map key"] = st.tuples(_MAP_KEYS, st.just(value))
        if "maxProperties" in s:
            # Keys valid as ClassAd attribute and as object names alike.
            out["map size"] = st.sampled_from([s["maxProperties"], s["maxProperties"] + 1]).map(
                lambda n, v=value: {f"k{i}": v for i in range(n)}
            )
    return out


def _item_list(obj: dict[str, Any], path: JsonPath) -> list[Any]:
    node: Any = obj
    for part in path:
        node = node[part]
    return node if isinstance(node, list) else []


def _by_family(obj: dict[str, Any]) -> dict[str, list[tuple[Slot, st.SearchStrategy[Any]]]]:
    out: dict[str, list[tuple[Slot, st.SearchStrategy[Any]]]] = {}
    for slot in slots(obj):
        for family, values in _family_values(slot).items():
            out.setdefault(family, []).append((slot, values))
        listed = slot.present and slot.schema.get("x-kubernetes-list-type") in ("map", "set")
        if listed and (items := _item_list(obj, slot.path)):
            out.setdefault("duplicate list-map key", []).append((slot, st.sampled_from(items)))
    return out


@st.composite
def _mutation(draw: st.DrawFn, obj: dict[str, Any], family: str | None = None) -> Mutation:
    by_family = _by_family(obj)
    if family is None:
        family = draw(st.sampled_from(sorted(by_family)))
    slot, values = draw(st.sampled_from(by_family[family]))
    value = draw(values)
    if family in ("unknown field", "map key"):
        key, value = value
        return Mutation(family, (*slot.path, key), value)
    if family == "duplicate list-map key":
        # Appending a copy of an item repeats its key (or, for a set, its value).
        return Mutation(family, (*slot.path, len(_item_list(obj, slot.path))), value)
    return Mutation(family, slot.path, value)


@functools.cache
def _families_of_examples() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for kind, name in EXAMPLE_IDS:
        for family in _by_family(example(kind, name)):
            out.setdefault(family, []).append((kind, name))
    return out


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[dict[str, Any], list[Mutation]]:
    """An example resource with one or two mutations, and the mutations."""
    # The first family is drawn over all of them, then an example it fits: each family
    # gets its share, whichever examples have fields for it.
    examples = _families_of_examples()
    family = draw(st.sampled_from(sorted(examples)))
    obj = example(*draw(st.sampled_from(examples[family])))
    done = [draw(_mutation(obj, family))]
    done[0].apply(obj)
    if draw(st.booleans()):
        done.append(draw(_mutation(obj)))
        done[-1].apply(obj)
    return obj, done
