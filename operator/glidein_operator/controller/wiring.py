"""What every kopf handler of ours shares: its spec parsed into its model, status written
only where it changed, and one Warning Event when a condition turns bad.

``with_spec`` wraps a timer: the handler gets the spec as its model (``parsed=``), or is
not called at all when the spec does not validate; the object's Ready condition then
says InvalidSpec, naming each field. Finalizers must run whatever the spec holds now
(a resource that no longer validates still has pilots to end): they take
``spec_or_none`` instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import kopf
from pydantic import ValidationError

from glidein_operator.api.base import ApiModel
from glidein_operator.api.cloudentry import CloudEntrySpec, CloudEntryStatus
from glidein_operator.api.glideinrequest import GlideinRequestSpec, GlideinRequestStatus
from glidein_operator.api.objects import describe_errors
from glidein_operator.api.trustdomain import TrustDomainSpec, TrustDomainStatus
from glidein_operator.api.vmimage import VMImageSpec, VMImageStatus
from glidein_operator.controller import logs, runtime
from glidein_operator.provisioning import status as st

M = TypeVar("M", bound=ApiModel)
# Each kind's spec model, and the model its status is written through.
STATUS_OF: dict[type[ApiModel], type[ApiModel]] = {
    GlideinRequestSpec: GlideinRequestStatus,
    CloudEntrySpec: CloudEntryStatus,
    TrustDomainSpec: TrustDomainStatus,
    VMImageSpec: VMImageStatus,
}
Handler = Callable[..., Coroutine[Any, Any, None]]


def patch_status(patch: kopf.Patch, old: Any, new: dict[str, Any], model: type[ApiModel]) -> None:
    """Into the handler's patch: the fields of ``new`` that differ from ``old``, only
    those (two timers of one object each write their own fields), written through the
    kind's status model."""
    for k, v in st.changes(dict(old or {}), st.through(model, new)).items():
        patch.status[k] = v


def announce(body: kopf.Body, old: Any, new: dict[str, Any]) -> None:
    """A condition that went bad is a Warning Event (once, not every cycle)."""
    if "conditions" not in new:
        return
    for reason, message in st.warnings((old or {}).get("conditions"), new["conditions"]):
        kopf.warn(body, reason=reason, message=message)


def spec_or_none(model: type[M], spec: Mapping[str, Any]) -> M | None:
    """The spec as its model, or None when it does not validate (an index leaves the
    object out; a finalizer does what it can without it)."""
    try:
        return model.model_validate(dict(spec))
    except ValidationError:
        return None


def with_spec(
    model: type[ApiModel],
    *,
    report: bool = True,
    also: Callable[[Mapping[str, Any]], None] | None = None,
) -> Callable[[Handler], Handler]:
    """Decorate an async kopf handler (under its ``@kopf.timer``): it is called with
    ``parsed=`` the spec as ``model``. A spec that does not validate is not handled:
    with ``report``, Ready=False InvalidSpec naming each field is written (with
    observedGeneration) and announced; ``also`` gets the handler's kwargs then. The
    handler's id is its own name (kopf follows ``__wrapped__``)."""

    def decorate(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(**kwargs: Any) -> None:
            logs.about(kwargs["body"])
            try:
                parsed = model.model_validate(dict(kwargs["spec"]))
            except ValidationError as exc:
                if report:
                    _invalid_spec(kwargs, exc, STATUS_OF[model])
                if also is not None:
                    also(kwargs)
                return
            await fn(parsed=parsed, **kwargs)

        return handler

    return decorate


def _invalid_spec(
    kwargs: Mapping[str, Any], exc: ValidationError, status_model: type[ApiModel]
) -> None:
    status, meta = kwargs["status"], kwargs["meta"]
    generation = int(meta.get("generation") or 0)
    conds = st.set_condition(
        list(status.get("conditions") or []),
        "Ready",
        "False",
        "InvalidSpec",
        "; ".join(describe_errors(exc)),
        generation,
        runtime.get().clock(),
    )
    new = {"conditions": conds, "observedGeneration": generation}
    announce(kwargs["body"], status, new)
    patch_status(kwargs["patch"], status, new, status_model)
