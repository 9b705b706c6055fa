"""``glidein-operator check REQUEST``: does this GlideinRequest's setup work? Read only.

Like ``condor_ce_trace`` or ``cmctl check``: one row per check, ``ok``, ``FAIL``, or
``skip`` where an earlier failure leaves nothing to check; what was checked, and for a
failure the fix, the exact thing to do. In order:

1. the request exists and its spec validates (the API models);
2. the Secrets it names hold what they must: the pool's signing key or token
   (``spec.pilot.tokenSecretRef``), the operator's own token if named, and each
   credential's keys for its type;
3. the pool token: a pilot's token (minted from the signing key as for a launch, or the
   ready token) authenticates to the collector, which authorizes ADVERTISE_STARTD
   (``condor_ping -type collector ADVERTISE_STARTD``); a refusal is said in the
   collector's words;
4. each CloudEntry the request can use (selected, and in the trust domain of one of its
   credentials) is valid, and its credential works: the driver lists pilots;
5. the image each VM entry boots exists at its cloud and region;
6. the operator reads each schedd's idle jobs, and the planner starts pilots for them.

Nothing is created or changed, in the cluster or in the clouds: no launch, no kept copy of
a credential, no Secret. The tokens it mints (a pilot's, for five minutes; the operator's
READ token) go only to the collector and the schedds, through a scratch folder of its own
that is removed at the end. No row says a byte of a Secret.

The operator's own code decides wherever it would: Secrets are read and judged by
``reconcile.pool_token``, ``query_token`` and ``_credential``, drivers come from
``Runtime.driver`` (``clouds/factory.build_driver``), entries from
``eligibility.candidates``, jobs through the operator's pool reader, the plan from the
planner. Rows are data; ``render`` is the only formatting.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from glidein_operator.api.base import API_GROUP, API_VERSION
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import InvalidResource, Resource, parse
from glidein_operator.api.trustdomain import CREDENTIAL_SECRET_KEYS, TrustDomainSpec
from glidein_operator.api.vmimage import ImageLocation, VMImageSpec
from glidein_operator.clouds.base import AuthError, DriverError, Unavailable
from glidein_operator.clouds.factory import missing_keys, not_text
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.condor.interface import CondorError
from glidein_operator.condor.isolated import IsolatedPool
from glidein_operator.condor.jobs import JobCluster
from glidein_operator.condor.reader import select
from glidein_operator.controller.fixes import pool_key_command, secret_command
from glidein_operator.controller.observe import World, pool_token, query_token
from glidein_operator.controller.observe import credential as _credential
from glidein_operator.controller.runtime import Runtime, Settings
from glidein_operator.credentials import idtokens
from glidein_operator.provisioning.eligibility import (
    EntryRecord,
    candidates,
    credential_for,
    image_for,
    selected,
)
from glidein_operator.provisioning.planner import Candidate, plan

# The permission a pilot's startd needs at the collector; what condor_ping is asked.
PILOT_AUTHZ = "ADVERTISE_STARTD"
# The pilot token minted for the check: a pilot's identity and scope, five minutes.
CHECK_BATCH = "check"
CHECK_TOKEN_LIFETIME = 300


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Row:
    """One check: its status, what kind (``request``, ``secret``, ``pool token``,
    ``entry``, ``image``, ``schedd``, ``plan``), what it was about, what was found, and
    for a failure the fix."""

    status: Status
    check: str
    subject: str
    detail: str
    fix: str = ""


# --- formatting (pure) -----------------------------------------------------------------


def render(rows: list[Row]) -> list[str]:
    """One line per row: ``FAIL  secret      cms/aws: not found ... fix: kubectl ...``."""
    width = max((len(r.check) for r in rows), default=0)
    return [
        f"{r.status.value:<4}  {r.check:<{width}}  {r.subject}: {r.detail}"
        + (f"  fix: {r.fix}" if r.fix else "")
        for r in rows
    ]


def passed(rows: list[Row]) -> bool:
    return bool(rows) and all(r.status is Status.OK for r in rows)


def replace_command(create: str) -> str:
    """The same Secret, replaced in place."""
    return f"{create} --dry-run=client -o yaml | kubectl apply -f -"


def patch_request(namespace: str, name: str, patch: dict[str, Any]) -> str:
    return (
        f"kubectl -n {namespace} patch glideinrequest {name} --type merge "
        f"-p '{json.dumps({'spec': patch}, separators=(',', ':'))}'"
    )


class Refusal(enum.StrEnum):
    """Why a collector refused a pilot's token, from its words."""

    TRUST_DOMAIN = "trust domain"  # the token's issuer is not the collector's TRUST_DOMAIN
    NOT_ALLOWED = "not allowed"  # authenticated, but ALLOW_ADVERTISE_STARTD does not admit it
    AUTHENTICATION = "authentication"  # not signed with the collector's key (or expired)
    UNREACHABLE = "unreachable"  # no answer: address, network, a collector that is down


def refusal(said: str) -> Refusal:
    if "Ignoring token as it is from trust domain" in said:
        return Refusal.TRUST_DOMAIN
    if "DENIED" in said or "does not authorize" in said:
        return Refusal.NOT_ALLOWED
    if "Failed to authenticate" in said or "Hash supplied by server" in said:
        return Refusal.AUTHENTICATION
    return Refusal.UNREACHABLE


def token_fix(
    said: str,
    *,
    namespace: str,
    request: str,
    secret: str,
    collector: str,
    trust_domain: str,
    identity: str,
    minted: bool,
) -> str:
    """What to do about the collector's refusal of a pilot's token, from its words."""
    domain = identity.split("@", 1)[-1]
    kind = refusal(said)
    if kind is Refusal.TRUST_DOMAIN:
        return (
            f"the collector's TRUST_DOMAIN is not {trust_domain!r}: set spec.poolTrustDomain "
            "to what `condor_config_val TRUST_DOMAIN` says on the central manager: "
            + patch_request(namespace, request, {"poolTrustDomain": "<TRUST_DOMAIN>"})
        )
    if kind is Refusal.NOT_ALLOWED:
        return (
            f"admit the pilots in the collector's configuration: ALLOW_ADVERTISE_STARTD = "
            f"$(ALLOW_ADVERTISE_STARTD) glidein-*@{domain} (and the same in "
            "ALLOW_ADVERTISE_MASTER), then condor_reconfig on the central manager"
        )
    if kind is Refusal.AUTHENTICATION and minted:
        return (
            f"the signingKey in Secret {namespace}/{secret} is not the collector's POOL key: "
            "on the central manager, " + replace_command(pool_key_command(namespace, secret))
        )
    if kind is Refusal.AUTHENTICATION:
        return (
            f"the collector does not accept the token in Secret {namespace}/{secret}: on the "
            f"central manager, kubectl -n {namespace} create secret generic {secret} "
            f'--from-literal=token="$(condor_token_create -identity glidein@{domain} '
            '-authz ADVERTISE_STARTD -authz ADVERTISE_MASTER -authz READ -key POOL)" '
            "--dry-run=client -o yaml | kubectl apply -f -"
        )
    return (
        f"make the collector {collector} (spec.collector) reachable from here and from the "
        f"operator; `condor_ping -pool {collector} -type collector {PILOT_AUTHZ}` tells"
    )


def entry_fix(
    name: str,
    entry: CloudEntrySpec,
    request: GlideinRequestSpec,
    domains: Mapping[str, TrustDomainSpec],
    images: Mapping[str, VMImageSpec],
    namespace: str,
    request_name: str,
) -> str:
    """What to do about an entry the request may not use (eligibility said why)."""
    if entry.trust_domain not in domains:
        return f"kubectl apply -f <a TrustDomain named {entry.trust_domain}>"
    cred, _why = credential_for(request, entry, domains)
    if cred is None:
        accepted = ", ".join(domains[entry.trust_domain].credential_types)
        return (
            f"add to spec.credentials one of the types TrustDomain {entry.trust_domain} "
            f"accepts ({accepted}) that drives a {entry.type} entry: kubectl -n {namespace} "
            f"edit glideinrequest {request_name}"
        )
    _image, why = image_for(entry, images)
    if why and entry.vm_image not in images:
        return f"kubectl apply -f <a VMImage named {entry.vm_image}>"
    if why:
        return (
            f"add a location for cloud {entry.type}, region {entry.image_region} to VMImage "
            f"{entry.vm_image}: kubectl edit vmimage {entry.vm_image}"
        )
    return f"kubectl edit cloudentry {name}"


# --- the checks (I/O) -------------------------------------------------------------------


@dataclass
class _Entries:
    """What the entry checks leave for the plan."""

    working: list[tuple[Candidate, InstrumentedDriver]] = field(default_factory=list)
    broken: list[Candidate] = field(default_factory=list)  # usable, but no working driver
    failed: bool = False


def _location(c: Candidate) -> ImageLocation | None:
    """Where the entry's VMImage says its image is, for its cloud and region."""
    region = c.spec.image_region
    return c.image.location(c.spec.type, region) if c.image and region else None


class Checker:
    """Runs the checks in order; each appends its rows."""

    def __init__(self, rt: Runtime, namespace: str, name: str, scratch: Path) -> None:
        self.rt, self.namespace, self.name, self.scratch = rt, namespace, name, scratch
        self.rows: list[Row] = []
        self.drivers: list[InstrumentedDriver] = []
        # The collector refused tokens signed with the pool's key (or its issuer): the
        # operator's own READ token, minted from the same key, cannot read the pool either.
        self.key_refused = False
        # CloudEntries that do not validate: name -> (their trustDomain, the errors).
        self.invalid: dict[str, tuple[str, list[str]]] = {}

    def _row(self, status: Status, check: str, subject: str, detail: str, fix: str = "") -> None:
        self.rows.append(Row(status, check, subject, detail, fix))

    async def run(self) -> list[Row]:
        request = await self.request()
        if request is None:
            self._row(
                Status.SKIP,
                "the rest",
                f"{self.namespace}/{self.name}",
                "secrets, pool token, entries, images, schedds and plan need a valid request",
            )
            return self.rows
        spec = request.spec
        assert isinstance(spec, GlideinRequestSpec)
        world = await self.world()
        if world is None:
            return self.rows
        pool_credential = await self.pool_secret(spec)
        query = await self.operator_secret(spec, pool_credential)
        bad_secrets = await self.credential_secrets(spec)
        await self.collector(spec, pool_credential)
        entries = await self.entries(spec, world, bad_secrets)
        working = await self.images(entries)
        clusters = await self.schedds(spec, query, pool_credential)
        self.plan(request, spec, working, clusters, entries.failed)
        return self.rows

    # 1. the request ------------------------------------------------------------------

    async def request(self) -> Resource | None:
        key = f"{self.namespace}/{self.name}"
        try:
            obj = await asyncio.to_thread(
                self.rt.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                "glideinrequests",
                self.name,
            )
        except (k8s_config.ConfigException, urllib3.exceptions.HTTPError) as exc:
            self._row(
                Status.FAIL,
                "request",
                key,
                f"cannot reach the cluster: {exc}",
                "point KUBECONFIG at the cluster's kubeconfig (kubectl get glideinrequests "
                f"-n {self.namespace} works with it)",
            )
            return None
        except k8s.exceptions.ApiException as exc:
            if exc.status == 404:
                self._row(
                    Status.FAIL,
                    "request",
                    key,
                    f"no GlideinRequest {self.name!r} in namespace {self.namespace!r}",
                    f"kubectl -n {self.namespace} get glideinrequests (the name?), or "
                    f"kubectl -n {self.namespace} apply -f <its YAML>",
                )
            else:
                self._row(
                    Status.FAIL,
                    "request",
                    key,
                    f"cannot read it: {exc.status} {exc.reason}",
                    f"kubectl auth can-i get glideinrequests -n {self.namespace} (KUBECONFIG?)",
                )
            return None
        try:
            resource = parse(obj)
        except InvalidResource as exc:
            self._row(
                Status.FAIL,
                "request",
                key,
                "invalid: " + "; ".join(exc.errors),
                f"kubectl -n {self.namespace} edit glideinrequest {self.name} (the fields "
                "named; kubectl explain glideinrequest.spec.<field> describes each)",
            )
            return None
        spec = resource.spec
        assert isinstance(spec, GlideinRequestSpec)
        self._row(
            Status.OK,
            "request",
            key,
            f"GlideinRequest valid: collector {spec.collector}, {len(spec.schedds)} schedd(s), "
            f"{len(spec.credentials)} credential(s)" + (" (paused)" if spec.paused else ""),
        )
        return resource

    async def world(self) -> World | None:
        """The cluster-scoped resources, as the operator's watches see them (those that
        validate; entries that do not are kept in ``invalid``)."""
        world = World()
        for plural in ("cloudentries", "trustdomains", "vmimages"):
            try:
                listed = await asyncio.to_thread(
                    self.rt.custom.list_cluster_custom_object, API_GROUP, API_VERSION, plural
                )
            except k8s.exceptions.ApiException as exc:
                self._row(
                    Status.FAIL,
                    "cluster",
                    plural,
                    f"cannot list them: {exc.status} {exc.reason}",
                    f"kubectl auth can-i list {plural}",
                )
                return None
            for item in listed.get("items", []):
                meta = item.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    continue  # going: the operator starts nothing there
                try:
                    r = parse(item)
                except InvalidResource as exc:
                    if plural == "cloudentries":
                        trust_domain = str((item.get("spec") or {}).get("trustDomain", ""))
                        self.invalid[exc.name] = (trust_domain, exc.errors)
                    continue
                if isinstance(r.spec, CloudEntrySpec):
                    world.entries[r.name] = (r.spec, r.labels, r.generation or 0)
                elif isinstance(r.spec, TrustDomainSpec):
                    world.domains[r.name] = r.spec
                elif isinstance(r.spec, VMImageSpec):
                    world.images[r.name] = r.spec
        return world

    # 2. the Secrets ------------------------------------------------------------------

    async def _secret(self, name: str, role: str, create: str) -> dict[str, bytes] | None:
        """The Secret's values (read as the operator reads them), or None after a FAIL row
        saying it is not there (``create`` makes it) or cannot be read."""
        key = f"{self.namespace}/{name}"
        try:
            found = await self.rt.secret(self.namespace, name)
        except k8s.exceptions.ApiException as exc:
            self._row(
                Status.FAIL,
                "secret",
                key,
                f"cannot read it ({role}): {exc.status} {exc.reason}",
                f"kubectl auth can-i get secrets -n {self.namespace}",
            )
            return None
        if found is None:
            self._row(
                Status.FAIL,
                "secret",
                key,
                f"not found in namespace {self.namespace} ({role})",
                create,
            )
            return None
        return found[0]

    async def pool_secret(self, spec: GlideinRequestSpec) -> tuple[bytes | None, str | None] | None:
        """(signing key, ready token) as the operator reads them, or None after a FAIL."""
        ref = spec.pilot.token_secret_ref
        role = "spec.pilot.tokenSecretRef"
        if ref is None:
            self._row(
                Status.FAIL,
                "secret",
                role,
                "not set: pilots would have no credential to join the pool",
                pool_key_command(self.namespace, "pool-signing-key")
                + "; "
                + patch_request(
                    self.namespace,
                    self.name,
                    {"pilot": {"tokenSecretRef": {"name": "pool-signing-key"}}},
                ),
            )
            return None
        key = f"{self.namespace}/{ref.name}"
        create = (
            pool_key_command(self.namespace, ref.name)
            + " (on the central manager: condor_config_val SEC_TOKEN_POOL_SIGNING_KEY_FILE "
            "names the file)"
        )
        if await self._secret(ref.name, role, create) is None:
            return None
        got = await pool_token(self.rt, self.namespace, spec)
        if isinstance(got, str):
            self._row(
                Status.FAIL,
                "secret",
                key,
                f"{got} ({role})",
                replace_command(pool_key_command(self.namespace, ref.name)),
            )
            return None
        signing_key, token = got
        if signing_key is not None:
            detail = "signingKey present: pilots' tokens are minted from it"
        else:
            assert token is not None
            claims = idtokens.claims(token)
            detail = (
                f"{ref.key or 'token'} holds a token for {claims.get('sub')} issued by "
                f"{claims.get('iss')}"
            )
        self._row(Status.OK, "secret", key, f"{detail} ({role})")
        return got

    async def operator_secret(
        self, spec: GlideinRequestSpec, pool_credential: tuple[bytes | None, str | None] | None
    ) -> tuple[str | None, str] | str:
        """The token the operator reads the pool with, as ``reconcile.query_token``."""
        query = await query_token(self.rt, self.namespace, spec, pool_credential)
        ref = spec.operator_token_secret_ref
        if ref is None:
            return query
        key, role = f"{self.namespace}/{ref.name}", "spec.operatorTokenSecretRef"
        if isinstance(query, str):
            domain = idtokens.operator_identity(spec.trust_domain())
            self._row(
                Status.FAIL,
                "secret",
                key,
                query,
                f"on the central manager, kubectl -n {self.namespace} create secret generic "
                f'{ref.name} --from-literal={ref.key or "token"}="$(condor_token_create '
                f'-identity {domain} -authz READ -key POOL)" --dry-run=client -o yaml | '
                "kubectl apply -f -",
            )
        else:
            claims = idtokens.claims(query[0] or "")
            self._row(
                Status.OK,
                "secret",
                key,
                f"holds a token for {claims.get('sub')} issued by {claims.get('iss')} ({role})",
            )
        return query

    async def credential_secrets(self, spec: GlideinRequestSpec) -> set[str]:
        """Each credential's Secret holds the keys its type reads; the names that fail."""
        bad: set[str] = set()
        seen: set[tuple[str, str, str | None]] = set()
        for cred in spec.credentials:
            ref = cred.secret_ref
            if ref is None or (ref.name, cred.type, ref.key) in seen:
                continue
            seen.add((ref.name, cred.type, ref.key))
            key = f"{self.namespace}/{ref.name}"
            role = f"{cred.type} credential for trust domain {cred.trust_domain}"
            keys = (ref.key,) if ref.key else CREDENTIAL_SECRET_KEYS[cred.type]
            create = secret_command(self.namespace, ref.name, cred.type, keys)
            values = await self._secret(ref.name, role, create)
            if values is None:
                bad.add(ref.name)
                continue
            lacking = missing_keys(cred.type, values, ref.key)
            binary = [] if ref.key else not_text(cred.type, values)
            if lacking or binary:
                bad.add(ref.name)
                what = (
                    f"lacks {', '.join(lacking)}"
                    if lacking
                    else f"holds binary data under {', '.join(binary)}, where UTF-8 text belongs"
                )
                self._row(Status.FAIL, "secret", key, f"{what} ({role})", replace_command(create))
                continue
            self._row(Status.OK, "secret", key, f"{', '.join(keys)} present ({role})")
        return bad

    # 3. the pool token at the collector ------------------------------------------------

    async def collector(
        self, spec: GlideinRequestSpec, pool_credential: tuple[bytes | None, str | None] | None
    ) -> None:
        subject = spec.collector
        if pool_credential is None:
            self._row(
                Status.SKIP,
                "pool token",
                subject,
                "needs the pool's signing key or token (its Secret failed above)",
            )
            return
        trust_domain = spec.trust_domain()
        signing_key, ready = pool_credential
        if signing_key is not None:
            token = idtokens.mint(
                signing_key,
                identity=idtokens.pilot_identity(CHECK_BATCH, trust_domain),
                issuer=trust_domain,
                lifetime=CHECK_TOKEN_LIFETIME,
                now=int(time.time()),
            )
        else:
            assert ready is not None
            token = ready
        identity = str(idtokens.claims(token).get("sub"))
        pool = IsolatedPool(
            spec.collector,
            token,
            self.scratch / "pilot-token",
            deadline=self.rt.settings.condor_query_deadline,
        )
        try:
            ad = await asyncio.to_thread(pool.ping, PILOT_AUTHZ)
        except CondorError as exc:
            ref = spec.pilot.token_secret_ref
            assert ref is not None
            how = "minted from the signing key" if signing_key is not None else "from the Secret"
            self.key_refused = signing_key is not None and refusal(str(exc)) in (
                Refusal.AUTHENTICATION,
                Refusal.TRUST_DOMAIN,
            )
            self._row(
                Status.FAIL,
                "pool token",
                subject,
                f"a pilot's token ({identity}, {how}) is refused: {exc}",
                token_fix(
                    str(exc),
                    namespace=self.namespace,
                    request=self.name,
                    secret=ref.name,
                    collector=spec.collector,
                    trust_domain=trust_domain,
                    identity=identity,
                    minted=signing_key is not None,
                ),
            )
            return
        finally:
            pool.close()
        self._row(
            Status.OK,
            "pool token",
            subject,
            f"the collector authenticates a pilot's token as {ad.get('MyRemoteUserName')} "
            f"({ad.get('AuthMethods')}, issuer {trust_domain}) and authorizes {PILOT_AUTHZ}",
        )

    # 4. the entries and 5. their images ------------------------------------------------

    @staticmethod
    def _relevant(spec: GlideinRequestSpec, record: EntryRecord) -> bool:
        """Entries the request can use: named, or selected and in the trust domain of one
        of its credentials."""
        held = {c.trust_domain for c in spec.credentials}
        return record.name in spec.entries.names or (
            record.spec.trust_domain in held and selected(spec, record)
        )

    async def entries(
        self, spec: GlideinRequestSpec, world: World, bad_secrets: set[str]
    ) -> _Entries:
        out = _Entries()
        records = [EntryRecord(n, labels, s) for n, (s, labels, _g) in world.entries.items()]
        usable, blocked = candidates(spec, records, world.domains, world.images)
        by_name = {c.name: c for c in usable}
        held = {c.trust_domain for c in spec.credentials}
        names = sorted(
            {r.name for r in records if self._relevant(spec, r)}
            # One that does not validate has no selectable spec: said when named, or when
            # it is in a trust domain the request holds a credential for.
            | {n for n, (td, _e) in self.invalid.items() if n in spec.entries.names or td in held}
            | {n for n in spec.entries.names if n not in world.entries}
        )
        if not names:
            self._row(
                Status.FAIL,
                "entry",
                "(none)",
                f"no CloudEntry this request selects is in the trust domain of one of its "
                f"credentials ({', '.join(sorted(held)) or 'none'})",
                "kubectl get cloudentries -o custom-columns=NAME:.metadata.name,"
                "TRUSTDOMAIN:.spec.trustDomain; then add a credential for one of those trust "
                f"domains (kubectl -n {self.namespace} edit glideinrequest {self.name}), or "
                "apply a CloudEntry in one of its own",
            )
            out.failed = True
            return out
        for name in names:
            if name in self.invalid:
                self._row(
                    Status.FAIL,
                    "entry",
                    name,
                    "CloudEntry invalid: " + "; ".join(self.invalid[name][1]),
                    f"kubectl edit cloudentry {name} (the fields named: the operator ignores "
                    "it until it validates)",
                )
                out.failed = True
            elif name not in world.entries:
                self._row(
                    Status.FAIL,
                    "entry",
                    name,
                    f"no CloudEntry {name!r} (spec.entries.names names it)",
                    f"kubectl apply -f <the CloudEntry {name}>, or take it out of "
                    f"spec.entries.names: kubectl -n {self.namespace} edit glideinrequest "
                    f"{self.name}",
                )
                out.failed = True
            elif name not in by_name:
                entry = world.entries[name][0]
                self._row(
                    Status.FAIL,
                    "entry",
                    name,
                    blocked.get(name, "not usable"),
                    entry_fix(
                        name,
                        entry,
                        spec,
                        world.domains,
                        world.images,
                        self.namespace,
                        self.name,
                    ),
                )
                out.failed = True
            else:
                driver = await self._driver(spec, world, by_name[name], bad_secrets)
                if driver is None:
                    out.failed = True
                    out.broken.append(by_name[name])
                else:
                    out.working.append((by_name[name], driver))
        return out

    async def _driver(
        self, spec: GlideinRequestSpec, world: World, c: Candidate, bad_secrets: set[str]
    ) -> InstrumentedDriver | None:
        """The entry's driver, once it listed the pilots there; None after a row."""
        cred, _why = credential_for(spec, c.spec, world.domains)
        secret = cred.secret_ref.name if cred and cred.secret_ref else ""
        got = await _credential(self.rt, self.namespace, spec, c.spec, world)
        if isinstance(got, str):
            if secret in bad_secrets:
                self._row(
                    Status.SKIP,
                    "entry",
                    c.name,
                    f"needs Secret {self.namespace}/{secret} (failed above)",
                )
            else:
                self._row(Status.FAIL, "entry", c.name, got, "see the Secret rows above")
            return None
        what = f"{c.spec.type} at site {c.spec.site}"
        try:
            driver = self.rt.driver(c.name, c.spec, world.entries[c.name][2], got)
        except DriverError as exc:
            self._row(
                Status.FAIL,
                "entry",
                c.name,
                f"{what}: {exc.reason}: {exc}",
                self._fix(c, got.type, secret, exc),
            )
            return None
        self.drivers.append(driver)
        try:
            pilots = await driver.list_pilots()
        except DriverError as exc:
            self._row(
                Status.FAIL,
                "entry",
                c.name,
                f"{what}: listing pilots with the {got.type} credential failed: "
                f"{exc.reason}: {exc}",
                self._fix(c, got.type, secret, exc),
            )
            return None
        self._row(
            Status.OK,
            "entry",
            c.name,
            f"{what}, valid; the {got.type} credential works (listed {len(pilots)} pilot(s) "
            f"of operator {self.rt.settings.operator_id} there)",
        )
        return driver

    def _fix(self, c: Candidate, credential_type: str, secret: str, exc: DriverError) -> str:
        if isinstance(exc, AuthError) and secret:
            keys = CREDENTIAL_SECRET_KEYS[credential_type]
            return (
                f"the cloud refused the credential in Secret {self.namespace}/{secret}: put "
                "working ones there: "
                + replace_command(secret_command(self.namespace, secret, credential_type, keys))
            )
        if isinstance(exc, Unavailable):
            return (
                f"make the {c.spec.type} endpoint of CloudEntry {c.name} reachable from here "
                f"and from the operator (kubectl get cloudentry {c.name} -o yaml shows it)"
            )
        return f"kubectl edit cloudentry {c.name}, or the credential, as the cloud's words say"

    async def images(self, entries: _Entries) -> list[Candidate]:
        """Each VM entry's image exists where it boots; the entries left for the plan."""
        for c in entries.broken:
            if _location(c) is not None:
                self._row(
                    Status.SKIP,
                    "image",
                    c.name,
                    "needs a working credential at the entry (failed above)",
                )
        out = []
        for c, driver in entries.working:
            location = _location(c)
            if location is None:
                out.append(c)  # pods and grid jobs boot no image of ours
                continue
            where, subject = f"{c.spec.type} {c.spec.image_region}", c.name
            try:
                exists = await driver.image_exists(location.image_id)
            except DriverError as exc:
                self._row(
                    Status.FAIL,
                    "image",
                    subject,
                    f"cannot look up {location.image_id} at {where}: {exc.reason}: {exc}",
                    f"kubectl edit vmimage {c.spec.vm_image}, or the credential, as the cloud's "
                    "words say",
                )
                continue
            if not exists:
                self._row(
                    Status.FAIL,
                    "image",
                    subject,
                    f"{location.image_id} (VMImage {c.spec.vm_image}) does not exist at {where}",
                    f"stage the image there, or correct its id: kubectl edit vmimage "
                    f"{c.spec.vm_image} (spec.locations, cloud {c.spec.type}, region "
                    f"{c.spec.image_region})",
                )
                continue
            self._row(
                Status.OK,
                "image",
                subject,
                f"{location.image_id} (VMImage {c.spec.vm_image}) exists at {where}",
            )
            out.append(c)
        return out

    # 6. the schedds and the plan -------------------------------------------------------

    async def schedds(
        self,
        spec: GlideinRequestSpec,
        query: tuple[str | None, str] | str,
        pool_credential: tuple[bytes | None, str | None] | None,
    ) -> list[JobCluster] | None:
        """The idle job clusters the request's jobConstraint admits, read as the operator
        reads them; None when a schedd could not be read."""
        if isinstance(query, str) or (query[0] is None and pool_credential is None):
            for s in spec.schedds:
                self._row(
                    Status.SKIP,
                    "schedd",
                    s.name,
                    "needs the token the operator reads the pool with (its Secret failed above)",
                )
            return None
        token, source = query
        if self.key_refused and source == "minted":
            for s in spec.schedds:
                self._row(
                    Status.SKIP,
                    "schedd",
                    s.name,
                    "the operator's READ token is minted from the signing key the collector "
                    "refused above",
                )
            return None
        who = str(idtokens.claims(token).get("sub")) if token else "nobody (no token)"
        how = (
            "a READ token minted from the signing key"
            if source == "minted"
            else f"the token in Secret {source.removeprefix('secret:')}"
            if source
            else "no token"
        )
        clusters: list[JobCluster] = []
        failed = False
        for s in spec.schedds:
            collector = s.collector or spec.collector
            reader = self.rt.reader(collector, token, source)
            try:
                found = await reader.clusters(s.name, (spec.job_constraint, spec.match_expression))
            except CondorError as exc:
                self._row(
                    Status.FAIL,
                    "schedd",
                    s.name,
                    f"the operator cannot read its queue as {who} ({how}): {exc}",
                    f"`condor_status -pool {collector} -schedd -af Name` must list {s.name}, "
                    f"and the schedd's and collector's ALLOW_READ admit {who}",
                )
                failed = True
                continue
            admitted = select(found, spec.job_constraint)
            clusters += admitted
            self._row(
                Status.OK,
                "schedd",
                s.name,
                f"read as {who} ({how}): {sum(c.count for c in admitted)} idle job(s) match "
                "jobConstraint",
            )
        return None if failed else clusters

    def plan(
        self,
        request: Resource,
        spec: GlideinRequestSpec,
        entries: list[Candidate],
        clusters: list[JobCluster] | None,
        entries_failed: bool,
    ) -> None:
        key = f"{self.namespace}/{self.name}"
        if clusters is None:
            self._row(Status.SKIP, "plan", key, "needs the schedds' idle jobs (failed above)")
            return
        if not entries:
            self._row(
                Status.SKIP if entries_failed else Status.FAIL,
                "plan",
                key,
                "needs an entry that passed the checks above",
            )
            return
        idle = sum(c.count for c in clusters)
        schedds = ", ".join(s.name for s in spec.schedds)
        if not idle:
            self._row(
                Status.FAIL,
                "plan",
                key,
                f"no idle jobs match jobConstraint {spec.job_constraint!r} at {schedds}",
                f"submit jobs it admits, or change spec.jobConstraint (condor_q -allusers "
                f"-constraint 'JobStatus == 1 && ({spec.job_constraint})' lists those it admits)",
            )
            return
        result = plan(request.uid or key, spec, entries, clusters, [])
        unmatched = [
            f"{u.cluster.count} job(s) of {u.cluster.cpus} cpu(s)/{u.cluster.memory_mb} MB at "
            f"{u.cluster.schedd}: {u.reason}"
            for u in result.unmatched[:5]
        ]
        if result.launches:
            starts = ", ".join(
                f"{e.entry} " + " ".join(f"{n}x {t}" for t, n in e.launch_by_type.items())
                for e in result.entries
                if e.launch
            )
            self._row(
                Status.OK,
                "plan",
                key,
                f"{idle} idle job(s) -> {result.launches} pilot(s): {starts}"
                + (f"; match no entry: {'; '.join(unmatched)}" if unmatched else ""),
            )
            return
        if not any(e.idle_jobs for e in result.entries):
            self._row(
                Status.FAIL,
                "plan",
                key,
                f"jobs match no entry ({', '.join(c.name for c in entries)}): "
                + "; ".join(unmatched),
                "give them an entry that can run them (an instance type large enough, the "
                "attributes their requirements read), or change their requirements or "
                "spec.matchExpression; `glidein-operator plan` shows the same on files",
            )
            return
        bounds = "; ".join(f"{e.entry}: {e.bound_by}" for e in result.entries if e.idle_jobs)
        fix = (
            patch_request(self.namespace, self.name, {"paused": False})
            if spec.paused
            else "raise the limit named (on the request or the entry)"
        )
        self._row(Status.FAIL, "plan", key, f"jobs match, but no pilot would start: {bounds}", fix)


def default_namespace() -> str:
    """The kubeconfig context's namespace (kubectl's default), else ``default``."""
    try:
        _contexts, active = k8s_config.list_kube_config_contexts(
            config_file=os.environ.get("KUBECONFIG")
        )
    except (k8s_config.ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


def run(namespace: str, name: str, settings: Settings | None = None) -> list[Row]:
    """Every check of one request, read only; the scratch folder goes at the end."""
    with tempfile.TemporaryDirectory(prefix="glidein-check-") as folder:
        scratch = Path(folder)
        base = settings or Settings()
        # Grid credentials a driver writes for its schedd stay in the scratch folder.
        settings = base.model_copy(update={"credential_dir": scratch / "credentials"})
        pools: list[IsolatedPool] = []

        def pool_factory(collector: str, token: str | None) -> IsolatedPool:
            pool = IsolatedPool(
                collector,
                token,
                scratch / "operator-token",
                deadline=settings.condor_query_deadline,
            )
            pools.append(pool)
            return pool

        checker = Checker(
            Runtime(settings=settings, pool_factory=pool_factory), namespace, name, scratch
        )
        try:
            return asyncio.run(checker.run())
        finally:
            for pool in pools:
                pool.close()
            for driver in checker.drivers:
                driver.close()
