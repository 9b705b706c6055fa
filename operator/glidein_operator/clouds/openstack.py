"""OpenStack servers through openstacksdk.

One multi-create POST per batch (``max_count``): Nova names the servers
``glidein-{key}-1 .. -N`` (just ``glidein-{key}`` for one), which is how a pilot learns
its index. Nova has no client token, so idempotency is "list before create": a batch
whose servers already exist (found by the server tag of the batch, written atomically at
create) is not created again. Listing uses Nova's server-side tag filter, one paginated
``/servers/detail`` per entry per cycle.

SSH keys: a fresh key pair per batch (``glidein-{key}``), or with ``keyPairs: perVM`` one
per server (``glidein-{pilot id}``), each server then created by a call of its own named
``glidein-{key}-{n}``, as a multi-create would have named it, so the pilot reads its index
the same way. The private half is never kept.

OpenStack ignores terminate-on-shutdown: a pilot that powers its VM off leaves a SHUTOFF
server behind; it is reported as SHUTDOWN for the controller to reap.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openstack
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from glidein_operator.api.cloudentry import OpenStackSettings
from glidein_operator.clouds.base import (
    AuthError,
    DriverError,
    InvalidConfig,
    QuotaExceeded,
    Unavailable,
    for_http_status,
    old_enough,
)
from glidein_operator.ground import (
    ALIVE_STATES,
    CloudPilot,
    LaunchBatch,
    PilotState,
    Tag,
    price_from_tags,
)

USER_DATA_LIMIT = 65535  # Nova's limit on base64-encoded user data
# Seconds, connecting and reading alike: a multi-create POST of many servers can take Nova
# a while to accept.
TIMEOUT = 60.0
_STATES = {
    "BUILD": PilotState.PENDING,
    "ACTIVE": PilotState.RUNNING,
    "SHUTOFF": PilotState.SHUTDOWN,
    "STOPPED": PilotState.SHUTDOWN,
    "PAUSED": PilotState.SHUTDOWN,
    "SUSPENDED": PilotState.SHUTDOWN,
    "SHELVED": PilotState.SHUTDOWN,
    "SHELVED_OFFLOADED": PilotState.SHUTDOWN,
    "ERROR": PilotState.ERROR,
    "DELETED": PilotState.TERMINATED,
    "SOFT_DELETED": PilotState.TERMINATED,
    "REBOOT": PilotState.RUNNING,
    "HARD_REBOOT": PilotState.RUNNING,
    "MIGRATING": PilotState.RUNNING,
    "RESIZE": PilotState.RUNNING,
    "VERIFY_RESIZE": PilotState.RUNNING,
    "UNKNOWN": PilotState.UNKNOWN,
}


def map_sdk_error(exc: BaseException, entry: str) -> DriverError | None:
    """keystoneauth and openstacksdk exceptions -> the domain taxonomy; None for anything
    else."""
    if isinstance(exc, ks_exc.Unauthorized | ks_exc.AuthorizationFailure):
        return AuthError(f"Keystone refused the credentials: {type(exc).__name__}", entry=entry)
    if isinstance(exc, ks_exc.ConnectFailure | ks_exc.ConnectTimeout | ks_exc.DiscoveryFailure):
        return Unavailable(f"OpenStack unreachable: {type(exc).__name__}: {exc}", entry=entry)
    if isinstance(exc, os_exc.HttpException):
        status = exc.status_code or 0
        text = f"{status}: {exc.details or exc.message}"
        if status == 403 and "uota" in text:  # "Quota exceeded for instances: ..."
            return QuotaExceeded(text, entry=entry)
        return for_http_status(status, text, entry)
    if isinstance(exc, ks_exc.ClientException | os_exc.SDKException):
        return Unavailable(f"OpenStack call failed: {type(exc).__name__}: {exc}", entry=entry)
    if isinstance(exc, OSError):  # a socket's error that keystoneauth let through
        return Unavailable(f"OpenStack unreachable: {type(exc).__name__}: {exc}", entry=entry)
    return None


def _parse_time(value: object) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _tag(kind: str, value: str) -> str:
    # Nova tags: at most 60 characters, no '/' or ','.
    return f"glidein-{kind}:{value}".replace("/", ".").replace(",", ".")[:60]


# Server deletions in flight at once (terminate).
DELETE_WORKERS = 8


class OpenStackDriver:
    def __init__(
        self,
        entry: str,
        settings: OpenStackSettings,
        *,
        credentials: dict[str, str],
        operator_id: str,
        page_size: int = 1000,
        timeout: float = TIMEOUT,
    ) -> None:
        self.entry = entry
        self.settings = settings
        self.operator_id = operator_id
        self.page_size = page_size
        auth: dict[str, Any] = {"auth_url": settings.auth_url}
        if "applicationCredentialId" in credentials:
            auth_type = "v3applicationcredential"
            auth["application_credential_id"] = credentials["applicationCredentialId"]
            auth["application_credential_secret"] = credentials["applicationCredentialSecret"]
        else:
            auth_type = "password"
            auth.update(
                username=credentials.get("username", ""),
                password=credentials.get("password", ""),
                project_name=settings.project_name,
                user_domain_name=settings.user_domain,
                project_domain_name=settings.project_domain,
            )
        self._conn = openstack.connection.Connection(
            auth=auth,
            auth_type=auth_type,
            region_name=settings.region,
            app_name="glidein-operator",
            # keystoneauth retries 429 and 503 itself, honouring Retry-After, a few times.
            rate_limit=None,
            status_code_retries=2,
            connect_retries=2,
            # keystoneauth's one timeout, for connecting and for each read; without it a
            # request waits forever. It reports a timed-out read as ConnectTimeout and
            # retries it (connect_retries): a silent Nova costs up to 3 * timeout (+1.5s
            # of waits) per request, a silent Keystone a timeout per request.
            api_timeout=timeout,
        )
        self._flavors: dict[str, str] = {}

    def map_error(self, exc: BaseException) -> DriverError | None:
        return map_sdk_error(exc, self.entry)

    def _base_tags(self) -> list[str]:
        return [_tag("op", self.operator_id), _tag("entry", self.entry)]

    def _servers(self, extra_tags: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Our servers as Nova's JSON, every page (Nova caps a page at its max_limit and
        links the next). Read raw: openstacksdk builds a Server object of each at about
        4 ms of CPU apiece, 8 s for 2,000 (tests/benchmarks/openstack_scale.py)."""
        tags = ",".join([*self._base_tags(), *extra_tags])
        compute = self._conn.compute
        # Tags filters need compute API 2.26; the same version the SDK asks for them.
        reply = compute.get(
            "/servers/detail",
            params={"tags": tags, "limit": self.page_size},
            microversion="2.26",
            raise_exc=False,
        )
        servers: list[dict[str, Any]] = []
        while True:
            os_exc.raise_from_response(reply)
            body = reply.json()
            page = body.get("servers") or []
            servers += page
            following = [
                link["href"]
                for link in body.get("servers_links") or []
                if link.get("rel") == "next"
            ]
            if not page or not following:
                return servers
            reply = compute.get(following[0], microversion="2.26", raise_exc=False)

    def _flavor_id(self, name: str) -> str:
        if name not in self._flavors:
            try:
                flavor = self._conn.compute.find_flavor(name, ignore_missing=False)
            except os_exc.NotFoundException:
                raise InvalidConfig(f"flavour {name!r} does not exist", entry=self.entry) from None
            self._flavors[name] = flavor.id
        return self._flavors[name]

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        user_data = base64.b64encode(batch.user_data).decode()
        if len(user_data) > USER_DATA_LIMIT:
            raise InvalidConfig(
                f"user data is {len(user_data)} bytes in base64; Nova takes at most {USER_DATA_LIMIT}",
                entry=self.entry,
            )
        if not batch.image_id:
            raise InvalidConfig("no image id for an OpenStack launch", entry=self.entry)
        batch_tag = _tag("batch", batch.key)
        existing = [self._pilot(srv) for srv in self._servers([batch_tag])]
        if self.settings.key_pairs == "perVM":
            # A retry creates only the servers the first try did not (list before create,
            # per server).
            have = {p.pilot_id for p in existing}
            for index in range(batch.count):
                if batch.pilot_id(index) not in have:
                    self._create(
                        batch,
                        user_data,
                        name=f"glidein-{batch.key}-{index + 1}",
                        key_name=self._ensure_key_pair(batch.pilot_id(index)),
                        count=1,
                    )
        elif not existing:  # else a retry: this batch was created before the crash
            self._create(
                batch,
                user_data,
                name=f"glidein-{batch.key}",
                key_name=self._ensure_key_pair(batch.key),
                count=batch.count,
            )
        else:
            return existing
        return [self._pilot(srv) for srv in self._servers([batch_tag])]

    def _create(
        self, batch: LaunchBatch, user_data: str, *, name: str, key_name: str, count: int
    ) -> None:
        s = self.settings
        metadata = {**batch.tags(), Tag.OPERATOR: self.operator_id}
        params: dict[str, Any] = {
            "name": name,
            "image_id": batch.image_id,
            "flavor_id": self._flavor_id(batch.shape.name),
            "key_name": key_name,
            "user_data": user_data,
            "metadata": {k: v[:255] for k, v in metadata.items()},
            "tags": [*self._base_tags(), _tag("batch", batch.key)],
            "min_count": 1,
            "max_count": count,
            "config_drive": s.config_drive,
            "networks": [{"uuid": n} for n in s.network_ids] or "auto",
        }
        if s.security_groups:
            params["security_groups"] = [{"name": g} for g in s.security_groups]
        if s.availability_zone:
            params["availability_zone"] = s.availability_zone
        self._conn.compute.create_server(**params)

    def _ensure_key_pair(self, key: str) -> str:
        name = f"glidein-{key}"
        # Nova (2.92+) no longer generates keys: make one, send the public half, keep nothing.
        private = ed25519.Ed25519PrivateKey.generate()
        public = (
            private.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        # A conflict is a retry: the key pair of the first try is ours.
        with contextlib.suppress(os_exc.ConflictException):
            self._conn.compute.create_keypair(name=name, public_key=public, type="ssh")
        return name

    def list_pilots(self) -> list[CloudPilot]:
        return [self._pilot(s) for s in self._servers()]

    def _pilot(self, server: dict[str, Any]) -> CloudPilot:
        meta = dict(server.get("metadata") or {})
        batch = meta.get(Tag.BATCH, "")
        name = server.get("name") or ""
        m = re.fullmatch(rf"glidein-{re.escape(batch)}(?:-(\d+))?", name) if batch else None
        index = int(m.group(1)) - 1 if m and m.group(1) else 0
        status = (server.get("status") or "UNKNOWN").upper()
        raw = status
        fault = server.get("fault")
        if status == "ERROR" and isinstance(fault, dict):
            raw = f"ERROR: {fault.get('message', '')}"
        created = _parse_time(server.get("created"))
        return CloudPilot(
            pilot_id=f"{batch}-{index}" if batch else name,
            cloud_id=str(server["id"]),
            entry=meta.get(Tag.ENTRY, self.entry),
            request_uid=meta.get(Tag.REQUEST_UID, ""),
            batch=batch,
            instance_type=meta.get(Tag.INSTANCE_TYPE, ""),
            state=_STATES.get(status, PilotState.UNKNOWN),
            launched_at=created,
            spot=meta.get(Tag.SPOT) == "true",
            raw_state=raw,
            extra={"request": meta.get(Tag.REQUEST, "")},
            price_per_hour=price_from_tags(meta),
            # The operator never stops a server, it deletes: SHUTOFF is the guest's own
            # power-off (its pilot's, or a kernel that gave up), and Nova's `updated` is
            # when that status was set.
            shut_itself_down=status == "SHUTOFF",
            ended_at=_parse_time(server.get("updated")) if status == "SHUTOFF" else None,
        )

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        def delete(p: CloudPilot) -> None:
            self._conn.compute.delete_server(p.cloud_id, ignore_missing=True)
            if self.settings.key_pairs == "perVM":
                self._conn.compute.delete_keypair(f"glidein-{p.pilot_id}", ignore_missing=True)

        # Nova deletes one server a request: a few at once, as its API has several workers
        # (2,000 one after the other took 76 s at 30 ms a request).
        with ThreadPoolExecutor(max_workers=DELETE_WORKERS) as pool:
            for done in [pool.submit(delete, p) for p in pilots]:
                done.result()  # the first failure fails the call, after all were tried
        batches = {p.batch for p in pilots if p.batch}
        if batches:
            alive = {p.batch for p in self.list_pilots() if p.state is not PilotState.TERMINATED}
            for batch in batches - alive:
                self._conn.compute.delete_keypair(f"glidein-{batch}", ignore_missing=True)

    def _key_names(self, pilots: Sequence[CloudPilot]) -> set[str]:
        """The key pairs these pilots may hold: their batch's, or their own (perVM)."""
        return {f"glidein-{p.batch}" for p in pilots} | {f"glidein-{p.pilot_id}" for p in pilots}

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        alive = self._key_names([p for p in self.list_pilots() if p.state in ALIVE_STATES])
        # Key pairs carry no tags: ours are named glidein-{batch key}, and a batch key
        # starts with the request uid's first eight characters.
        prefix = f"glidein-{request_uid[:8]}-" if request_uid else "glidein-"
        deleted = 0
        for kp in self._conn.compute.keypairs():
            created = _parse_time(getattr(kp, "created_at", None))
            if (
                kp.name.startswith(prefix)
                and kp.name not in alive
                and old_enough(created, min_age_seconds)
            ):
                self._conn.compute.delete_keypair(kp.name, ignore_missing=True)
                deleted += 1
        return deleted

    def leftovers(self) -> list[str]:
        """Key pairs of ours without a live server (garbage for the collector)."""
        alive = self._key_names(self.list_pilots())
        return sorted(
            kp.name
            for kp in self._conn.compute.keypairs()
            if kp.name.startswith("glidein-") and kp.name not in alive
        )

    def console_log(self, pilot: CloudPilot) -> str:
        try:
            reply = self._conn.compute.get_server_console_output(pilot.cloud_id, length=2000)
        except os_exc.NotFoundException:
            return ""
        return str(reply.get("output", "")) if isinstance(reply, dict) else str(reply)

    def image_exists(self, image_id: str) -> bool:
        try:
            self._conn.image.get_image(image_id)
            return True
        except os_exc.NotFoundException:
            return False
