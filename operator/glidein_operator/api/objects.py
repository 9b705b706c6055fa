"""Typed views of whole objects (metadata + spec) as read from YAML or the API server."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from glidein_operator.api.base import API_GROUP_VERSION, ApiModel, name_problem
from glidein_operator.api.resources import KINDS_BY_NAME, Kind


class InvalidResource(ValueError):
    """A resource that does not validate; ``str()`` names the object and each bad field."""

    def __init__(self, kind: str, name: str, errors: list[str]) -> None:
        self.kind, self.name, self.errors = kind, name, errors
        super().__init__(f"{kind} {name!r} is invalid: " + "; ".join(errors))


@dataclass(frozen=True)
class Resource:
    kind: Kind
    name: str
    namespace: str | None
    spec: ApiModel
    labels: dict[str, str] = field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def describe_errors(exc: ValidationError, prefix: str = "spec") -> list[str]:
    """pydantic errors as ``spec.limits.maxPilots: message``, the way kubectl prints them."""
    out = []
    for err in exc.errors():
        loc = prefix
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def _metadata_errors(meta: dict[str, Any], namespaced: bool) -> list[str]:
    """What the API server would refuse in metadata.name and metadata.namespace."""
    out = []
    for member, value, label in (
        ("name", meta.get("name"), False),
        ("namespace", meta.get("namespace") if namespaced else None, True),
    ):
        if value is None:
            continue
        problem = name_problem(value, label=label) if isinstance(value, str) else "must be a string"
        if problem:
            out.append(f"metadata.{member}: {problem}")
    if meta.get("name") is None and not meta.get("generateName"):
        out.append("metadata.name: required")
    return out


def parse(obj: dict[str, Any]) -> Resource:
    """Validate one object of our group; raise InvalidResource naming what is wrong."""
    kind_name = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", "<unnamed>"))
    kind = KINDS_BY_NAME.get(kind_name)
    if kind is None or obj.get("apiVersion") != API_GROUP_VERSION:
        raise InvalidResource(kind_name or "<no kind>", name, [f"not a {API_GROUP_VERSION} kind"])
    errors = _metadata_errors(meta, kind.scope == "Namespaced")
    try:
        spec = kind.spec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        raise InvalidResource(kind.kind, name, errors + describe_errors(exc)) from None
    if errors:
        raise InvalidResource(kind.kind, name, errors)
    return Resource(
        kind=kind,
        name=name,
        namespace=meta.get("namespace") if kind.scope == "Namespaced" else None,
        spec=spec,
        labels=dict(meta.get("labels") or {}),
        uid=meta.get("uid"),
        generation=meta.get("generation"),
    )


def iter_documents(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        for f in files:
            for doc in yaml.safe_load_all(f.read_text()):
                if isinstance(doc, dict):
                    yield doc


def load(paths: Iterable[Path]) -> list[Resource]:
    """Every object of our group in the YAML files (or folders) given; others are skipped."""
    return [
        parse(doc)
        for doc in iter_documents(paths)
        if str(doc.get("apiVersion", "")).startswith(API_GROUP_VERSION.split("/")[0] + "/")
    ]
