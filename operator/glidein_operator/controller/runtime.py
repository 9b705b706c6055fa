"""What the handlers share: settings, the Kubernetes client, drivers and pool readers.

Drivers are cached per (entry, its generation, the credential's source and values):
a changed entry or rotated Secret gets a fresh driver; nothing else is rebuilt per cycle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from glidein_operator.api.cloudentry import CloudEntrySpec, GridSubmitter
from glidein_operator.clouds.factory import build_driver, decode_secret
from glidein_operator.clouds.instrumented import Backoff, DriverMetrics, InstrumentedDriver
from glidein_operator.condor.interface import Pool
from glidein_operator.condor.reader import PoolReader
from glidein_operator.controller import shards
from glidein_operator.controller.claims import EntryClaims
from glidein_operator.controller.keeper import Credential, Keeper, fingerprint
from glidein_operator.controller.listings import SharedListings
from glidein_operator.controller.metrics import ReconcileMetrics
from glidein_operator.credentials import idtokens

if TYPE_CHECKING:
    from glidein_operator.clouds.grid import Submitters

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# The operator's own READ tokens live an hour; they are renewed at half-life.
QUERY_TOKEN_LIFETIME = 3600


class Settings(BaseSettings):
    """Operator settings, from GLIDEIN_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="GLIDEIN_")

    operator_id: str = "glidein-operator"
    # Sharding (controller/shards.py): this operator's shard name (None: the only one),
    # and which GlideinRequests it owns by label (None: all it watches).
    shard: str | None = None
    request_selector: str | None = None
    # The operator's own namespace, where it keeps copies of the credentials its pilots
    # were launched with (controller/keeper.py). In a pod, the service account's.
    namespace: str | None = None
    # Seconds between two reconciles of a request: how soon new idle jobs are acted on.
    # Cheap at steady state: clouds are listed on their own intervals (listings.py).
    reconcile_interval: float = 1.0
    # Seconds one reconcile of one request may take (controller/stopwatch.py): a cloud
    # listing not in by then is replaced by its last one (or the entry waits a cycle),
    # launches not started by then are left to the next cycle, and a request that runs
    # over says so in its ReconcileSlow condition, naming what took the time.
    reconcile_budget: float = 10.0
    # Seconds a cloud listing serves every request at its entry: ``listing_interval``
    # while pilots there are in transit (pending, booting), ``listing_steady_interval``
    # once all have settled. A launch or termination there makes the next reader list
    # again. 0: list every cycle.
    listing_interval: float = 5.0
    listing_steady_interval: float = 60.0
    # Logs (controller/logs.py): a logging level name, and "text" or "json".
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    max_pilots: int | None = None
    credential_dir: Path = Path("/var/run/glidein/credentials")
    # The Secret (in the operator's namespace) through which grid entrypoints' credentials
    # reach the chart's submitting schedd (controller/gridlink.py); None: no such schedd.
    grid_credentials_secret: str | None = None
    # The chart's submitting schedd (JSON, as a CloudEntry's spec.grid.submitter): for grid
    # entries that name none.
    grid_submitter: GridSubmitter | None = None
    metrics_port: int | None = None
    # First wait, in seconds, before launching again at an entry after a retryable failure;
    # it doubles with each failure in a row (with jitter), up to five minutes.
    launch_backoff: float = 5.0
    # Leader election (glidein-operator run --lease): seconds a Lease lasts unrenewed,
    # within which its holder must renew or stop acting, and between attempts.
    lease_duration: float = 15.0
    lease_renew_deadline: float = 10.0
    lease_retry: float = 2.0
    # Seconds a collector or schedd query may take before its worker is killed.
    condor_query_deadline: float = 30.0
    # The validating admission webhook (controller/webhook.py): the port it serves on
    # (None: not served), the folder with the chart's tls.crt/tls.key, and, for
    # development, a host to make a self-signed certificate for (kopf then writes the
    # ValidatingWebhookConfiguration itself, pointing at https://host:port).
    webhook_port: int | None = None
    webhook_cert_dir: Path = Path("/var/run/glidein/webhook")
    webhook_host: str | None = None
    webhook_self_signed: bool = False

    @field_validator("reconcile_budget")
    @classmethod
    def _positive_budget(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be more than 0 seconds")
        return value

    @field_validator("shard")
    @classmethod
    def _shard_name(cls, value: str | None) -> str | None:
        return shards.check_name(value)

    @field_validator("request_selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        shards.labels(value)  # refuses what it cannot read
        return value or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


@dataclass
class Runtime:
    settings: Settings
    # (collector, token the operator presents or None) -> Pool
    pool_factory: Callable[[str, str | None], Pool]
    # How grid drivers reach submitting schedds (None: the real way, controller/gridlink).
    submitters: Submitters | None = None
    api: k8s.ApiClient | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    _drivers: dict[tuple[str, int, str, str], InstrumentedDriver] = field(default_factory=dict)
    _readers: dict[tuple[str, str], PoolReader] = field(default_factory=dict)
    _query_tokens: dict[tuple[str, bytes], tuple[str, float]] = field(default_factory=dict)
    # Per request: the spot interruptions last announced (each is announced once).
    interruptions: dict[str, set[str]] = field(default_factory=dict)
    # Per request: pilot ids seen registered by this process; cloud ids of pilots already
    # judged for ending without registering (reconcile._judge_unregistered).
    registered_once: dict[str, set[str]] = field(default_factory=dict)
    judged: set[str] = field(default_factory=set)
    # Per request: pilot id -> when first seen idle (idle too long is reaped from outside).
    idle_since: dict[str, dict[str, dt.datetime]] = field(default_factory=dict)
    # Launches per entry across requests, so an entry's maxPilots holds (claims.py).
    claims: EntryClaims = field(default_factory=EntryClaims)
    # Whether the cloud has an entry's image, per (entry, its generation, image id): asked
    # once (controller/imagecheck.py).
    images_seen: dict[tuple[str, int, str], bool] = field(default_factory=dict)
    started: dt.datetime = field(init=False)

    def __post_init__(self) -> None:
        # Whole seconds: clouds report end times to the second.
        self.started = self.clock().replace(microsecond=0)

    _metrics: DriverMetrics | None = None
    _reconcile_metrics: ReconcileMetrics | None = None
    _keeper: Keeper | None = None
    _listings: SharedListings | None = None
    _secrets: dict[tuple[str, str], tuple[float, tuple[dict[str, bytes], str] | None]] = field(
        default_factory=dict
    )

    @property
    def listings(self) -> SharedListings:
        if self._listings is None:
            self._listings = SharedListings(
                fast=self.settings.listing_interval,
                steady=self.settings.listing_steady_interval,
                clock=self.clock,
                claims_clock=self.claims.clock,
            )
        return self._listings

    @property
    def grid_link(self) -> Submitters:
        if self.submitters is None:
            from glidein_operator.controller.gridlink import GridLink

            self.submitters = GridLink(
                self.core,
                self.keeper.namespace or "default",
                credentials_secret=self.settings.grid_credentials_secret,
                token_dir=self.settings.credential_dir / "condor-tokens",
            )
        return self.submitters

    @property
    def keeper(self) -> Keeper:
        if self._keeper is None:
            namespace = self.settings.namespace
            if namespace is None and SERVICE_ACCOUNT_NAMESPACE.exists():
                namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            self._keeper = Keeper(lambda: self.core, namespace, self.settings.operator_id)
        return self._keeper

    @property
    def client(self) -> k8s.ApiClient:
        """The process's one client of the operator's own cluster, made on first use: the
        keeper, the lease, kopf's login and in-cluster entries all share it (a kubeconfig
        entry, another cluster, has its own)."""
        with _CLIENT_LOCK:  # kopf's login runs in a thread of its own
            if self.api is None:
                self.api = api_client()
            return self.api

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.client)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.client)

    @property
    def metrics(self) -> DriverMetrics:
        if self._metrics is None:
            self._metrics = DriverMetrics(self.registry)
        return self._metrics

    @property
    def reconcile_metrics(self) -> ReconcileMetrics:
        if self._reconcile_metrics is None:
            self._reconcile_metrics = ReconcileMetrics(self.registry)
        return self._reconcile_metrics

    def reader(self, collector: str, token: str | None = None, source: str = "") -> PoolReader:
        """The shared reader of one pool, as one identity: ``source`` says where the token
        comes from (a Secret, or minted), so a renewed token updates the reader in place."""
        key = (collector, source)
        reader = self._readers.get(key)
        if reader is None or reader.token != token:
            pool = self.pool_factory(collector, token)
            if reader is None:
                reader = PoolReader(pool, ttl=max(1.0, self.settings.reconcile_interval * 0.8))
                self._readers[key] = reader
            reader.pool, reader.token = pool, token
        return reader

    def query_token(self, trust_domain: str, signing_key: bytes) -> str:
        """The operator's own READ token for a pool, minted from its signing key and kept
        until half its life has passed."""
        now = time.time()
        key = (trust_domain, hashlib.sha256(signing_key).digest())
        cached = self._query_tokens.get(key)
        if cached and now < cached[1]:
            return cached[0]
        token = idtokens.mint(
            signing_key,
            identity=idtokens.operator_identity(trust_domain),
            issuer=trust_domain,
            lifetime=QUERY_TOKEN_LIFETIME,
            now=int(now),
            scope="condor:/READ",
        )
        self._query_tokens[key] = (token, now + QUERY_TOKEN_LIFETIME / 2)
        return token

    async def secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str] | None:
        """(values as bytes, resourceVersion), or None when the Secret does not exist.
        Kept for less than a reconcile interval: a request reads the same Secret for each
        of its entries, and fifty requests a second would otherwise read it 50 times."""
        key, now = (namespace, name), time.monotonic()
        cached = self._secrets.get(key)
        if cached is not None and now - cached[0] < min(1.0, self.settings.reconcile_interval):
            return cached[1]
        try:
            s = await asyncio.to_thread(self.core.read_namespaced_secret, name, namespace)
        except k8s.exceptions.ApiException as exc:
            if exc.status == 404:
                self._secrets[key] = (now, None)
                return None
            raise
        got = decode_secret(s.data or {}), str(s.metadata.resource_version)
        if len(self._secrets) > 10_000:
            self._secrets.clear()
        self._secrets[key] = (now, got)
        return got

    def driver(
        self, entry: str, spec: CloudEntrySpec, generation: int, cred: Credential
    ) -> InstrumentedDriver:
        """The cached driver for an entry with one credential. Keyed by where the
        credential comes from and its values, not the Secret's resourceVersion: the same
        credential read from the request's Secret and from its kept copy is one driver
        (one listing), and a rotated Secret gets a fresh one."""
        key = (entry, generation, f"{cred.type}/{cred.source}", fingerprint(cred.type, cred.values))
        cached = self._drivers.get(key)
        if cached is None:
            for old in [k for k in self._drivers if k[0] == entry and k[2] == key[2]]:
                # Not closed: a cycle in flight may still hold it; its threads go with it.
                del self._drivers[old]
            raw = build_driver(
                entry,
                spec,
                credential_type=cred.type,
                secret_name=cred.secret_name,
                secrets=cred.values,
                operator_id=self.settings.operator_id,
                submitters=self.grid_link,
                default_submitter=self.settings.grid_submitter,
                credential_dir=self.settings.credential_dir,
                cluster_api=lambda: self.client,
            )
            cached = InstrumentedDriver(
                raw,
                launches_per_minute=spec.limits.launches_per_minute,
                metrics=self.metrics,
                backoff=Backoff(base=self.settings.launch_backoff),
            )
            self._drivers[key] = cached
        return cached

    def drivers_for(self, entry: str, generation: int | None = None) -> list[InstrumentedDriver]:
        """The drivers held for an entry (of one generation of it, or any)."""
        return [
            d
            for k, d in self._drivers.items()
            if k[0] == entry and (generation is None or k[1] == generation)
        ]


_CLIENT_LOCK = threading.Lock()


def api_client() -> k8s.ApiClient:
    """In a pod: the service account; elsewhere $KUBECONFIG, read now (the client reads
    that variable only at import, which may be before it was set)."""
    cfg = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg
        )
    return k8s.ApiClient(cfg)


RUNTIME: Runtime | None = None


def real_pools(settings: Settings) -> Callable[[str, str | None], Pool]:
    """The production pool factory: each pool's queries in a worker process with a
    deadline, so a collector that never answers costs its own requests, not the whole
    operator."""
    from glidein_operator.condor.isolated import IsolatedPool

    token_dir = settings.credential_dir / "condor-tokens"
    return lambda collector, token: IsolatedPool(
        collector, token, token_dir, deadline=settings.condor_query_deadline
    )


def get() -> Runtime:
    """The process's runtime, made from settings on first use with the real pools. Tests
    and the development kit inject another pool factory by installing a Runtime of their
    own first (``install``); the product never imports a pool double."""
    global RUNTIME
    if RUNTIME is None:
        settings = Settings()
        RUNTIME = Runtime(settings=settings, pool_factory=real_pools(settings))
    return RUNTIME


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the process's (before the handlers run): how a pool factory other
    than the real one is injected."""
    global RUNTIME
    RUNTIME = runtime
