"""kopf wiring, and nothing else: one level-based entry point per kind, on a timer, and
for CloudEntries a second timer, the orphan collector (controller/orphans.py). Each
handler gets its spec parsed into its model (controller/wiring.py: ``with_spec``).

Indices keep the cluster-scoped resources in memory from their watches, so a reconcile
reads no API object but the request's Secrets. kopf waits for every index to be filled
before any handler runs, so the orphan collector never mistakes "not listed yet" for
"gone".
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf

from glidein_operator.api.base import API_GROUP, API_VERSION
from glidein_operator.api.cloudentry import CloudEntrySpec, CloudEntryStatus
from glidein_operator.api.glideinrequest import GlideinRequestSpec, GlideinRequestStatus
from glidein_operator.api.objects import InvalidResource, parse
from glidein_operator.api.trustdomain import TrustDomainSpec, TrustDomainStatus
from glidein_operator.api.vmimage import VMImageSpec, VMImageStatus
from glidein_operator.controller import (
    cleanup,
    health,
    imagecheck,
    leader,
    logs,
    metrics,
    orphans,
    runtime,
    shards,
    webhook,
    wiring,
)
from glidein_operator.controller.reconcile import World, reconcile
from glidein_operator.provisioning import eligibility
from glidein_operator.provisioning import status as st

G, V = API_GROUP, API_VERSION
_SETTINGS = runtime.get().settings
# A shard marks shared objects with its own name and owns only the requests it selects.
SHARD = _SETTINGS.shard
FINALIZER = shards.finalizer(SHARD)
OWNED = shards.labels(_SETTINGS.request_selector)

# Seconds between two validations of a CloudEntry, TrustDomain or VMImage: they read
# the indices (a VM entry also asks its cloud, once per generation and image id).
CHECK_INTERVAL = 30.0


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    rt = runtime.get()
    # kopf #1120/#585: watches that go silent; bound both sides of the watch.
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 130
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    # A deleted object's finalizer goes only once its timer has stopped; kopf looks again
    # every cancellation_polling seconds, 60 by default: every deletion took a minute.
    settings.background.cancellation_polling = 1.0
    settings.persistence.finalizer = FINALIZER
    prefix = shards.annotation_prefix(SHARD)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    logs.configure(rt.settings.log_level, rt.settings.log_format)
    settings.posting.level = logging.INFO
    # Events come from the operator by its own name (`kubectl describe`'s "From").
    settings.posting.reporting_component = rt.settings.operator_id
    settings.posting.reporting_instance = leader.identity()
    settings.posting.event_name_prefix = "glidein-"
    settings.execution.max_workers = 8
    if rt.settings.webhook_port:
        settings.admission.server = webhook.server(
            rt.settings.webhook_port,
            rt.settings.webhook_cert_dir,
            rt.settings.webhook_host,
            make_certificate=rt.settings.webhook_self_signed,
        )
        if rt.settings.webhook_self_signed:
            settings.admission.managed = G  # the ValidatingWebhookConfiguration's name
    else:
        # kopf will not start with admission handlers and no server: this one serves nothing.
        settings.admission.server = webhook.not_served
    if rt.settings.metrics_port:  # `glidein-operator run` served it already, standby or not
        metrics.serve(rt.settings.metrics_port, rt.registry)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account. Elsewhere: $KUBECONFIG, as the process's one client
    read it (see api_client)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") or not os.environ.get("KUBECONFIG"):
        return kopf.login_via_client(**kwargs)
    cfg = runtime.get().client.configuration
    if cfg.refresh_api_key_hook is not None:  # a re-login after a 401 wants a fresh token
        cfg.refresh_api_key_hook(cfg)
    # The client keeps a kubeconfig token under "BearerToken" (older: "authorization").
    bearer = next(iter((cfg.api_key or {}).values()), "")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        token=bearer.removeprefix("Bearer ") or None,
        default_namespace="default",
    )


# --- admission: what CEL cannot check (ClassAd expressions), at kubectl apply -------------
# Paths are the handler ids: the chart's ValidatingWebhookConfiguration names them.
# failurePolicy Ignore: an operator that is down must not block every apply; whatever
# slips through then gets the reconcile's InvalidSpec condition, naming the field.


def _admit(body: kopf.Body, **_: Any) -> None:
    try:
        parse(dict(body))
    except InvalidResource as exc:
        raise kopf.AdmissionError(str(exc), code=422) from None


for _plural in ("glideinrequests", "cloudentries", "trustdomains", "vmimages"):
    kopf.on.validate(
        G,
        V,
        _plural,
        id=f"validate-{_plural}",
        operations=["CREATE", "UPDATE"],
        ignore_failures=True,
    )(_admit)


# --- indices ------------------------------------------------------------------------------


@kopf.index(G, V, "cloudentries")
def entries(name: str, spec: kopf.Spec, labels: kopf.Labels, meta: kopf.Meta, **_: Any) -> Any:
    if meta.get("deletionTimestamp"):
        return None  # nothing new there; its own finalizer ends what runs (remove_entry)
    parsed = wiring.spec_or_none(CloudEntrySpec, spec)
    if parsed is None:
        return None  # reported by the entry's own status
    return {name: (parsed, dict(labels), int(meta.get("generation") or 0))}


@kopf.index(G, V, "trustdomains")
def domains(name: str, spec: kopf.Spec, **_: Any) -> Any:
    parsed = wiring.spec_or_none(TrustDomainSpec, spec)
    return None if parsed is None else {name: parsed}


@kopf.index(G, V, "vmimages")
def images(name: str, spec: kopf.Spec, **_: Any) -> Any:
    parsed = wiring.spec_or_none(VMImageSpec, spec)
    return None if parsed is None else {name: parsed}


@kopf.index(G, V, "glideinrequests", labels=OWNED)
def requests(uid: str, namespace: str | None, name: str, **_: Any) -> Any:
    return {uid: f"{namespace}/{name}"}


# kopf runs no handler before every index is filled (its processing waits for them all,
# whatever the resource), and the namespace "default" always exists: the first call of
# this one says the active replica is ready (/readyz: controller/health.py).
@kopf.on.event("", "v1", "namespaces", field="metadata.name", value="default")
def indices_filled(**_: Any) -> None:
    health.STATE.indices_filled()


def _world(kwargs: dict[str, Any]) -> World:
    """The indices (kopf passes every index to every handler, by name) as plain dicts."""

    def first(index: kopf.Index[str, Any]) -> dict[str, Any]:
        return {k: next(iter(v)) for k, v in index.items() if v}

    return World(
        entries=first(kwargs["entries"]),
        domains=first(kwargs["domains"]),
        images=first(kwargs["images"]),
    )


# --- GlideinRequest ---------------------------------------------------------------------------


def _count_invalid(kwargs: Mapping[str, Any]) -> None:
    runtime.get().reconcile_metrics.failed(kwargs["namespace"], kwargs["name"], kwargs["uid"])


@kopf.timer(
    G,
    V,
    "glideinrequests",
    interval=_SETTINGS.reconcile_interval,
    initial_delay=0.1,
    labels=OWNED,
)
@wiring.with_spec(GlideinRequestSpec, also=_count_invalid)
async def reconcile_request(
    name: str,
    namespace: str | None,
    uid: str,
    meta: kopf.Meta,
    parsed: GlideinRequestSpec,
    status: kopf.Status,
    patch: kopf.Patch,
    body: kopf.Body,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    rt = runtime.get()
    assert namespace is not None  # GlideinRequest is namespaced
    generation = int(meta.get("generation") or 0)

    def emit(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    started = time.perf_counter()
    try:
        outcome = await reconcile(
            rt,
            name=name,
            namespace=namespace,
            uid=uid,
            generation=generation,
            spec=parsed,
            old_status=dict(status or {}),
            world=_world(kwargs),
            emit=emit,
        )
    except Exception as exc:
        # Anything unforeseen: say so on the resource and try again next tick, rather
        # than let kopf back off for a minute with nothing visible to the user.
        logger.exception("reconcile of %s/%s failed", namespace, name)
        conds = st.set_condition(
            list(status.get("conditions") or []),
            "Ready",
            "False",
            "ReconcileError",
            f"{type(exc).__name__}: {exc}"[:1000],
            generation,
            rt.clock(),
        )
        wiring.announce(body, status, {"conditions": conds})
        wiring.patch_status(patch, status, {"conditions": conds}, GlideinRequestStatus)
        rt.reconcile_metrics.failed(namespace, name, uid)
        return
    seconds = time.perf_counter() - started
    rt.reconcile_metrics.record(namespace, name, outcome.status, seconds, uid)
    wiring.announce(body, status, outcome.status)
    wiring.patch_status(patch, status, outcome.status, GlideinRequestStatus)


@kopf.on.delete(G, V, "glideinrequests", labels=OWNED)
async def terminate_everything(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    body: kopf.Body,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """The finalizer: every pilot of this request, on every entry, goes before it does,
    whatever its spec holds now and whether or not its Secrets are still there."""
    rt = runtime.get()
    logs.about(body)
    assert namespace is not None
    parsed = wiring.spec_or_none(GlideinRequestSpec, spec)
    sweep = await cleanup.request_pilots(rt, uid, namespace, parsed, _world(kwargs))
    if sweep.terminated:
        kopf.event(
            body,
            type="Normal",
            reason="Terminated",
            message=f"terminated {sweep.terminated} pilot(s) for deletion",
        )
    for failure in sweep.failed or []:
        logger.warning("cleanup at %s", failure)
    if sweep.left:
        raise kopf.TemporaryError(f"{sweep.left} pilot(s) still alive; retrying", delay=2)
    rt.reconcile_metrics.forget_request(namespace, name, uid)  # gone: no series of it


# --- cluster-scoped kinds: validation, and orphan collection --------------------------------


@kopf.timer(G, V, "cloudentries", interval=CHECK_INTERVAL, initial_delay=0.1)
@wiring.with_spec(CloudEntrySpec)
async def check_entry(
    name: str,
    parsed: CloudEntrySpec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    body: kopf.Body,
    **kwargs: Any,
) -> None:
    """The entry's Ready condition: what no request could get past (eligibility), then
    whether its cloud has its image. Writes conditions and observedGeneration only."""
    rt = runtime.get()
    world = _world(kwargs)
    generation = int(meta.get("generation") or 0)
    problem = eligibility.entry_problem(parsed, world.domains, world.images)
    if problem is None:
        problem = await imagecheck.problem(rt, name, parsed, generation, world.images)
    if problem is not None:
        reason, message = problem
        # Unverified: the cloud could not be asked; the entry may well be usable.
        ready = "Unknown" if reason == "ImageUnverified" else "False"
    elif not parsed.enabled:
        ready, reason, message = "True", "Disabled", "disabled: starts nothing new"
    else:
        ready, reason, message = "True", "Valid", "usable"
    conds = st.set_condition(
        list(status.get("conditions") or []),
        "Ready",
        ready,
        reason,
        message,
        generation,
        rt.clock(),
    )
    conds = st.flag(
        conds,
        "ImageDeprecated",
        imagecheck.deprecated(parsed, world.images),
        ("Deprecated", "ImageCurrent"),
        generation,
        rt.clock(),
    )
    new = {"conditions": conds, "observedGeneration": generation}
    wiring.announce(body, status, new)
    wiring.patch_status(patch, status, new, CloudEntryStatus)


@kopf.timer(G, V, "cloudentries", interval=orphans.INTERVAL, initial_delay=0.1)
@wiring.with_spec(CloudEntrySpec, report=False)  # check_entry reports an invalid spec
async def collect_orphans(
    name: str,
    parsed: CloudEntrySpec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    requests: kopf.Index[str, str],
    **_: Any,
) -> None:
    """Pilots at the entry whose GlideinRequest is gone (controller/orphans.py). Writes
    ``.status.pilots`` only: the conditions are check_entry's."""
    live = await orphans.collect(
        runtime.get(),
        name,
        parsed,
        int(meta.get("generation") or 0),
        alive_requests=set(requests),
        request_namespaces={next(iter(v)).split("/", 1)[0] for v in requests.values() if v},
    )
    if live is not None and SHARD is None:  # shards' counts would overwrite each other
        wiring.patch_status(patch, status, {"pilots": live}, CloudEntryStatus)


@kopf.on.delete(G, V, "cloudentries")
async def remove_entry(
    name: str, spec: Any, meta: Any, body: kopf.Body, logger: kopf.Logger, **_: Any
) -> None:
    """The entry's finalizer: whichever request launched them, its pilots go first."""
    rt = runtime.get()
    logs.about(body)
    entry = wiring.spec_or_none(CloudEntrySpec, spec)
    if entry is None:
        _forget_entry(rt, name)
        return  # never usable: nothing was launched through it
    sweep = await cleanup.entry_pilots(rt, name, entry, int(meta.get("generation") or 0))
    if sweep.terminated:
        kopf.event(
            body,
            type="Normal",
            reason="Terminated",
            message=(
                f"terminated {sweep.terminated} pilot(s): the CloudEntry is being deleted; "
                "requests that need more start them at other entries"
            ),
        )
    for failure in sweep.failed or []:
        logger.warning("cleanup at %s", failure)
    if sweep.left:
        raise kopf.TemporaryError(f"{sweep.left} pilot(s) still alive; retrying", delay=2)
    _forget_entry(rt, name)


def _forget_entry(rt: runtime.Runtime, name: str) -> None:
    """A deleted entry has no series (not its drivers', nor any request's rows for it),
    and nothing is remembered of its image."""
    rt.reconcile_metrics.forget_entry(name)
    rt.metrics.forget_entry(name)
    imagecheck.forget(rt, name)


@kopf.timer(G, V, "trustdomains", interval=CHECK_INTERVAL, initial_delay=0.1)
@wiring.with_spec(TrustDomainSpec)
async def check_domain(
    name: str, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **kwargs: Any
) -> None:
    rt = runtime.get()
    entries = kwargs["entries"]
    generation = int(meta.get("generation") or 0)
    count = sum(1 for v in entries.values() for spec, _l, _g in v if spec.trust_domain == name)
    conds = st.set_condition(
        list(status.get("conditions") or []),
        "Ready",
        "True",
        "Valid",
        f"{count} entries",
        generation,
        rt.clock(),
    )
    wiring.patch_status(
        patch,
        status,
        {"conditions": conds, "entries": count, "observedGeneration": generation},
        TrustDomainStatus,
    )


@kopf.timer(G, V, "vmimages", interval=CHECK_INTERVAL, initial_delay=0.1)
@wiring.with_spec(VMImageSpec)
async def check_image(
    parsed: VMImageSpec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    rt = runtime.get()
    generation = int(meta.get("generation") or 0)
    if parsed.deprecated:
        reason = "Deprecated"
        message = (
            f"deprecated; use {parsed.superseded_by}" if parsed.superseded_by else "deprecated"
        )
    else:
        reason, message = "Valid", "catalogued"
    conds = st.set_condition(
        list(status.get("conditions") or []),
        "Ready",
        "True",
        reason,
        message,
        generation,
        rt.clock(),
    )
    wiring.patch_status(
        patch,
        status,
        {
            "conditions": conds,
            "observedGeneration": generation,
            "patchedAt": imagecheck.patched_at(parsed),
        },
        VMImageStatus,
    )
