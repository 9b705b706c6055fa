"""What `kubectl explain` and `kubectl get` show of the CRDs: every default in its field's
description, and short names no other well-known kind claims."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from glidein_operator.api import crdgen
from glidein_operator.api.base import ApiModel
from glidein_operator.api.resources import CATEGORY, KINDS, Kind

# --- defaults ---------------------------------------------------------------------------


def _models_in(annotation: Any, node: dict[str, Any]) -> Iterator[tuple[type[ApiModel], Any]]:
    """The ApiModels inside a field's type, each with the schema node that describes it."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _models_in(get_args(annotation)[0], node)
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            if arg is not type(None):
                yield from _models_in(arg, node)
    elif origin is list:
        yield from _models_in(get_args(annotation)[0], node["items"])
    elif origin is dict:
        yield from _models_in(get_args(annotation)[1], node["additionalProperties"])
    elif isinstance(annotation, type) and issubclass(annotation, ApiModel):
        yield annotation, node


def _fields(
    model: type[ApiModel], node: dict[str, Any], path: str
) -> Iterator[tuple[str, FieldInfo, dict[str, Any]]]:
    """Every field of ``model`` and the models under it, with its property in the schema."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = node["properties"][alias]
        yield f"{path}.{alias}", field, prop
        for sub, sub_node in _models_in(field.annotation, prop):
            yield from _fields(sub, sub_node, f"{path}.{alias}")


def _is_empty(value: Any) -> bool:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_defaults=True) == {}
    return value in ([], {})


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_default_is_in_the_description(kind: Kind) -> None:
    # `kubectl explain` shows a field's description, never its schema default.
    schema = crdgen.openapi_schema(kind)
    missing, unstated = [], []
    for part, model in (("spec", kind.spec), ("status", kind.status)):
        for path, field, prop in _fields(model, schema["properties"][part], part):
            description = prop.get("description", "")
            if field.default_factory is not None:
                # Absent and empty are one thing (an empty list, a section whose own
                # fields state their defaults): nothing to say, and the server applies
                # no default for them. A factory that fills something in must say so.
                value = field.get_default(call_default_factory=True, validated_data={})
                if not _is_empty(value) and "Default:" not in description:
                    missing.append(path)
                continue
            if field.is_required() or field.default is None:
                continue  # required, or absent means unset
            if "Default:" not in description:
                missing.append(path)
            elif "default" in prop and (
                f"Default: {crdgen.as_written(prop['default'])}" not in description
            ):
                unstated.append(f"{path}: {description!r} vs {prop['default']!r}")
    assert not missing, f"{kind.kind}: no 'Default:' in the description of {missing}"
    assert not unstated, f"{kind.kind}: the description states another default: {unstated}"


def test_defaults_are_written_as_in_yaml() -> None:
    assert crdgen.as_written("24h") == "24h"
    assert crdgen.as_written("true") == '"true"'  # a string: unquoted, YAML reads a boolean
    assert crdgen.as_written("") == '""'
    assert crdgen.as_written("X86_64") == "X86_64"
    assert crdgen.as_written(True) == "true"
    assert crdgen.as_written(0.8) == "0.8"
    assert crdgen.as_written([]) == "[]"
    assert crdgen.as_written({"a": 1}) == '{"a": 1}'


def test_a_default_already_described_is_not_repeated() -> None:
    node = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "default": "5m", "description": "Wait. Default: 5m."},
            "b": {"type": "boolean", "default": False, "description": "Off or on"},
        },
    }
    crdgen._describe_defaults(node)
    assert node["properties"]["a"]["description"] == "Wait. Default: 5m."
    assert node["properties"]["b"]["description"] == "Off or on. Default: false."


# --- short names ------------------------------------------------------------------------

# Short names a user of this operator already types for something else.
WELL_KNOWN_SHORT_NAMES = {
    # kubectl's built-in kinds (`kubectl api-resources`), and its aliases
    "all", "cm", "cj", "crd", "crds", "cs", "csr", "deploy", "ds", "ep", "ev", "hpa", "ing",
    "limits", "netpol", "no", "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota", "rc",
    "rs", "sa", "sc", "sts", "svc",
    # KubeVirt and CDI
    "vm", "vms", "vmi", "vmis", "vmim", "vmims", "vmirs", "vmirss", "vmipreset",
    "vmipresets", "vmpool", "vmsnapshot", "vmrestore", "vmexport", "vmclone", "dv", "dvs",
    # Harvester's VirtualMachineImage
    "vmimage", "vmimages",
    # cert-manager
    "cert", "certs", "cr", "crs", "issuer", "issuers", "clusterissuer", "clusterissuers",
    # Argo CD, Argo Workflows and Rollouts
    "app", "apps", "appproj", "appprojs", "appset", "appsets", "wf", "cwf", "wftmpl",
    "cwftmpl", "ro",
    # Prometheus operator, Knative, Istio
    "prom", "am", "smon", "pmon", "promrule", "ksvc", "kservice", "rev", "vs", "gw", "dr",
    "se",
    # HTCondor and GlideinWMS words: a CE is a compute entrypoint to this audience
    "ce", "ces", "schedd", "schedds", "startd", "startds", "collector", "negotiator",
    "factory", "frontend", "fe",
    # two letters that say nothing of the kind
    "gr", "td",
}  # fmt: skip


def test_short_names_are_ours_alone() -> None:
    names = [n for k in KINDS for n in k.short_names]
    assert names, "every kind has a short name (test_crd_shape)"
    assert len(names) == len(set(names)), f"two kinds share a short name: {names}"
    taken = sorted(set(names) & WELL_KNOWN_SHORT_NAMES)
    assert not taken, f"short names {taken} already mean something else to kubectl users"
    ours = {k.kind.lower() for k in KINDS} | {k.plural for k in KINDS} | {CATEGORY}
    assert not set(names) & ours, "a short name may not repeat a kind's own names"
    for name in names:
        assert name.isalpha(), name
        assert name.islower(), name
        assert len(name) >= 3, name


def test_generated_crds_carry_the_short_names() -> None:
    for kind in KINDS:
        names = crdgen.crd(kind)["spec"]["names"]
        assert names["shortNames"] == list(kind.short_names)
        assert not set(names["shortNames"]) & WELL_KNOWN_SHORT_NAMES, kind.kind
