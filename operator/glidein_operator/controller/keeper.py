"""Copies of the cloud credentials pilots were launched with, kept for their cleanup.

A request's credential Secret lives in the request's namespace, and can go before the
pilots do: a deleted namespace takes its Secrets at once while the request's finalizer
still has pilots to terminate, and an operator restarted after that finds nobody who
could list them. So before the first launch with a credential at an entry, the operator
keeps a copy in its own namespace (a Secret only it and the cluster admin can read). The
finalizers and the orphan collector build drivers from these copies when the original
is gone; a copy goes when nothing of ours is left behind it.

Why a copy rather than blocking the namespace's deletion: only a finalizer on the
credential Secret itself would hold it, and that needs write access to every Secret a
request names; the copy needs write access to Secrets in one namespace.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from glidein_operator.api.base import API_GROUP

log = logging.getLogger(__name__)

LABEL_KEPT = f"{API_GROUP}/kept-credential"  # value: hash of the operator id
LABEL_ENTRY = f"{API_GROUP}/kept-for-entry"  # value: hash of the entry name
ANNOTATION_ENTRY = f"{API_GROUP}/entry"
ANNOTATION_ORIGIN = f"{API_GROUP}/origin"  # namespace/secret it was copied from
ANNOTATION_TYPE = f"{API_GROUP}/credential-type"
ANNOTATION_FINGERPRINT = f"{API_GROUP}/fingerprint"


def _short(text: str) -> str:
    # Label values are at most 63 characters; names and ids may be longer.
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(credential_type: str, values: dict[str, bytes]) -> str:
    """Says whether a copy is current without reading it back: a hash over the values,
    keyed with the type (the copy's own contents are never compared in the clear)."""
    h = hashlib.sha256(credential_type.encode())
    for k in sorted(values):
        h.update(b"\0" + k.encode() + b"\0" + hashlib.sha256(values[k]).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class Credential:
    """What a driver is built with: the type, the Secret's values, and where they come
    from (``namespace/secret``; empty for credentials without a Secret)."""

    type: str
    secret_name: str | None
    values: dict[str, bytes]
    source: str


@dataclass(frozen=True)
class Kept:
    name: str  # of the copy
    entry: str
    origin: str  # namespace/secret
    credential_type: str
    values: dict[str, bytes]
    version: str  # the copy's resourceVersion

    @property
    def namespace(self) -> str:
        return self.origin.split("/", 1)[0]

    def credential(self) -> Credential:
        return Credential(
            self.credential_type, self.origin.split("/", 1)[-1], self.values, self.origin
        )


class Keeper:
    """Keeps, lists and forgets the copies; ``namespace`` None disables it (the operator
    then says once that pilots whose Secret goes first cannot be cleaned up)."""

    def __init__(
        self, core: Callable[[], k8s.CoreV1Api], namespace: str | None, operator_id: str
    ) -> None:
        self._core = core  # made on first use: a disabled keeper needs no API client
        self.namespace = namespace
        self.operator_id = operator_id
        self._current: dict[str, str] = {}  # copy name -> fingerprint written or seen
        self._warned = False

    @property
    def core(self) -> k8s.CoreV1Api:
        return self._core()

    def copy_name(self, entry: str, origin: str) -> str:
        return "glidein-kept-" + _short("\n".join((self.operator_id, entry, origin)))

    async def keep(self, entry: str, cred: Credential) -> None:
        """Make sure a current copy exists; one API call per process and change."""
        if not cred.values:
            return  # nothing to keep (a credential without a Secret)
        origin, credential_type, values = cred.source, cred.type, cred.values
        if self.namespace is None:
            if not self._warned:
                self._warned = True
                log.warning(
                    "GLIDEIN_NAMESPACE is not set: no copies of credentials are kept, so "
                    "pilots whose Secret is deleted first cannot be cleaned up"
                )
            return
        name = self.copy_name(entry, origin)
        mark = fingerprint(credential_type, values)
        if self._current.get(name) == mark:
            return
        body = k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels={
                    LABEL_KEPT: _short(self.operator_id),
                    LABEL_ENTRY: _short(entry),
                    "app.kubernetes.io/managed-by": "glidein-operator",
                },
                annotations={
                    ANNOTATION_ENTRY: entry,
                    ANNOTATION_ORIGIN: origin,
                    ANNOTATION_TYPE: credential_type,
                    ANNOTATION_FINGERPRINT: mark,
                },
            ),
            type="Opaque",
            data={k: base64.b64encode(v).decode() for k, v in values.items()},
        )
        try:
            found = await asyncio.to_thread(self.core.read_namespaced_secret, name, self.namespace)
        except k8s.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            await asyncio.to_thread(self.core.create_namespaced_secret, self.namespace, body)
        else:
            if (found.metadata.annotations or {}).get(ANNOTATION_FINGERPRINT) != mark:
                await asyncio.to_thread(
                    self.core.replace_namespaced_secret, name, self.namespace, body
                )
        self._current[name] = mark

    async def kept(self, entry: str | None = None) -> list[Kept]:
        """The copies of this operator (for one entry, or all)."""
        if self.namespace is None:
            return []
        selector = f"{LABEL_KEPT}={_short(self.operator_id)}"
        if entry is not None:
            selector += f",{LABEL_ENTRY}={_short(entry)}"
        listed = await asyncio.to_thread(
            self.core.list_namespaced_secret, self.namespace, label_selector=selector
        )
        out = []
        for s in listed.items:
            notes: dict[str, Any] = s.metadata.annotations or {}
            if entry is not None and notes.get(ANNOTATION_ENTRY) != entry:
                continue  # a hash collision of the label, however unlikely
            out.append(
                Kept(
                    name=s.metadata.name,
                    entry=str(notes.get(ANNOTATION_ENTRY, "")),
                    origin=str(notes.get(ANNOTATION_ORIGIN, "")),
                    credential_type=str(notes.get(ANNOTATION_TYPE, "")),
                    values={k: base64.b64decode(v) for k, v in (s.data or {}).items()},
                    version=str(s.metadata.resource_version),
                )
            )
        return out

    async def forget(self, kept: Kept) -> None:
        if self.namespace is None:
            return
        try:
            await asyncio.to_thread(self.core.delete_namespaced_secret, kept.name, self.namespace)
        except k8s.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
        self._current.pop(kept.name, None)
