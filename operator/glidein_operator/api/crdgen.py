"""Generate CustomResourceDefinitions from the pydantic models.

The models are the one source of truth; ``crds/*.yaml`` and the Helm chart's copy are
written from them by ``glidein-operator crds generate`` and a test fails when they are
stale. Pydantic's JSON schema is turned into a *structural* schema, the form the API
server insists on: every ``$ref`` inlined, ``Optional`` unwrapped (absence means unset),
no ``additionalProperties: false`` next to ``properties`` (the server prunes and
``kubectl`` rejects unknown fields instead), and our CEL rules kept. Every default the
server applies is also said in the field's description (``Default: 24h.``), because
``kubectl explain`` shows descriptions and not defaults.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from glidein_operator.api.base import INT64_MAX, INT64_MIN
from glidein_operator.api.resources import CATEGORY, KINDS, Kind

_DROP = {"title", "discriminator", "examples"}
_KEEP_FORMATS = {"date", "date-time", "int32", "int64", "double", "float", "byte"}


class SchemaError(ValueError):
    """The models produced a schema the API server would not accept."""


def _siblings(node: dict[str, Any]) -> dict[str, Any]:
    """Keys beside a $ref/allOf/anyOf that still apply to the unwrapped schema."""
    return {k: v for k, v in node.items() if k not in _DROP and not (k == "default" and v is None)}


def _structural(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = _structural(target, defs, where)
        # The field's own description is more specific than the model's docstring.
        merged.update(_siblings(node))
        return merged
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{where}: allOf with {len(parts)} parts is not supported")
        merged = _structural(parts[0], defs, where)
        merged.update(_siblings(node))
        return merged
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"{where}: a union of {len(options)} types is not structural")
        merged = _structural(options[0], defs, where)
        merged.update(_siblings(node))
        return merged

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "format" and value not in _KEEP_FORMATS:
            continue
        if key == "properties":
            out["properties"] = {
                name: _structural(sub, defs, f"{where}.{name}") for name, sub in value.items()
            }
            continue
        if key == "items":
            out["items"] = _structural(value, defs, f"{where}[]")
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _structural(value, defs, f"{where}{{}}")
            continue
        out[key] = copy.deepcopy(value)
    if "type" not in out:
        raise SchemaError(f"{where}: no type (structural schemas need one everywhere)")
    if out["type"] == "integer":
        # The server reads integers as int64 anyway; stated, the bounds would be float64s,
        # and 2**63-1 rounds to 2**63, which it refuses as an integer bound.
        if out.get("minimum") == INT64_MIN:
            del out["minimum"]
        if out.get("maximum") == INT64_MAX:
            del out["maximum"]
    if out["type"] == "number" and isinstance(out.get("default"), str):
        # pydantic writes Decimal defaults as strings; the server wants a number.
        number = float(out["default"])
        out["default"] = int(number) if number.is_integer() else number
    if "enum" in out and "type" in out and out["type"] == "string":
        out["enum"] = list(out["enum"])
    return out


def as_written(value: Any) -> str:
    """A default as a user writes it in YAML: ``24h``, ``true``, ``0.8``, ``[]``, and a
    string in double quotes only where YAML would read it as something else (``"true"``,
    ``""``)."""
    if isinstance(value, str):
        plain = yaml.safe_dump(value, default_flow_style=True, width=10**6)
        plain = plain.removesuffix("\n").removesuffix("\n...").strip()
        return json.dumps(value) if plain[:1] in ("'", '"') else plain
    return json.dumps(value)


DEFAULT_LABEL = "Default:"


def _describe_defaults(node: dict[str, Any]) -> None:
    """Append ``Default: <value>.`` to the description of every property the server
    defaults, unless the description already says it."""
    if "default" in node:
        text = node.get("description", "").rstrip()
        if DEFAULT_LABEL not in text:
            if text and text[-1] not in ".!?":
                text += "."
            node["description"] = f"{text} {DEFAULT_LABEL} {as_written(node['default'])}.".lstrip()
    for sub in node.get("properties", {}).values():
        _describe_defaults(sub)
    if isinstance(node.get("items"), dict):
        _describe_defaults(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        _describe_defaults(node["additionalProperties"])


def openapi_schema(kind: Kind) -> dict[str, Any]:
    """The openAPIV3Schema of one kind."""
    parts = {}
    for part, model in (("spec", kind.spec), ("status", kind.status)):
        raw = model.model_json_schema(by_alias=True, mode="validation")
        defs = raw.pop("$defs", {})
        parts[part] = _structural(raw, defs, part)
        _describe_defaults(parts[part])
    return {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": parts["spec"],
            "status": parts["status"],
        },
    }


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, as a plain dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "glidein-operator"},
        },
        "spec": {
            "group": kind.group,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.as_crd() for c in kind.columns],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)

HEADER = "# GENERATED by `glidein-operator crds generate` from glidein_operator.api: do not edit.\n"


def render(kind: Kind) -> str:
    body = yaml.dump(crd(kind), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def file_name(kind: Kind) -> str:
    return f"{kind.group}_{kind.plural}.yaml"


def rendered() -> dict[str, str]:
    """File name -> YAML text for every kind."""
    return {file_name(k): render(k) for k in KINDS}


# Where the generated CRDs live: for `kubectl apply -f crds/`, and in the Helm chart.
TARGETS = (Path("crds"), Path("helm/glidein-operator/crds"))


def write(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``, removing stale generated files; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = rendered()
    for old in directory.glob(f"{KINDS[0].group}_*.yaml"):
        if old.name not in wanted:
            old.unlink()
    paths = []
    for name, text in wanted.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    return paths


def stale(directory: Path) -> list[str]:
    """Names of files in ``directory`` that differ from what the models generate."""
    out = []
    for name, text in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            out.append(name)
    return out
