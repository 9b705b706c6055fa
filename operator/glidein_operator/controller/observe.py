"""Observe: one look at everything a request's decision needs, and nothing decided.

The request's Secrets (each credential, the pool's signing key or token, the operator's
own token), a driver per usable entry with its listing, the collector's pilots and the
schedds' idle jobs. Level-based: every cycle starts from the clouds and the pool, never
from memory, so a restart in the middle of anything resumes correctly; what the process
does remember (pilots it saw registered, pilots it judged) is handed over explicitly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes import client as k8s

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.clouds.factory import missing_keys, under_defined_key
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.condor.interface import CondorError
from glidein_operator.condor.pilots import RegisteredPilot
from glidein_operator.condor.reader import select
from glidein_operator.controller import fixes
from glidein_operator.controller.keeper import Credential
from glidein_operator.controller.listings import Listing
from glidein_operator.controller.runtime import Runtime
from glidein_operator.controller.stopwatch import Stopwatch
from glidein_operator.credentials import idtokens
from glidein_operator.ground import CloudPilot
from glidein_operator.provisioning.cycle import EntryState, Observed
from glidein_operator.provisioning.eligibility import (
    NO_POOL_CREDENTIAL,
    EntryRecord,
    candidates,
    credential_for,
)
from glidein_operator.provisioning.lifecycle import shared_phases
from glidein_operator.provisioning.planner import PilotPhase

# Entries set up (credential, driver) between two yields to the event loop.
YIELD_EVERY = 10


def _patience(watch: Stopwatch) -> float | None:
    """How long a listing is waited for: until the request's time budget is spent, and at
    least a tenth of it (a request whose setup took its budget still reads its clouds)."""
    left = watch.timeout()
    return None if left is None else max(left, watch.budget / 10)


@dataclass
class World:
    """The cluster-scoped resources, as the watches last saw them."""

    entries: dict[str, tuple[CloudEntrySpec, Mapping[str, str], int]] = field(default_factory=dict)
    domains: dict[str, TrustDomainSpec] = field(default_factory=dict)
    images: dict[str, VMImageSpec] = field(default_factory=dict)


@dataclass
class Sight:
    """What was observed, the drivers it was observed through, and the pool credential
    the pilots' tokens come from (kept out of ``Observed``: it is a Secret's bytes)."""

    observed: Observed
    drivers: dict[str, InstrumentedDriver]
    pool_credential: tuple[bytes | None, str | None] | None
    listed_at: dict[str, float]


async def observe(
    rt: Runtime,
    *,
    namespace: str,
    uid: str,
    spec: GlideinRequestSpec,
    world: World,
    watch: Stopwatch | None = None,
) -> Sight:
    """One look; with ``watch``, each listing and pool query is timed, and a listing not
    in when the request's time budget is spent is not waited for (controller/stopwatch.py)."""
    watch = watch or Stopwatch(budget=float("inf"))
    now = rt.clock()
    records = [EntryRecord(n, labels, s) for n, (s, labels, _g) in world.entries.items()]
    usable, blocked = candidates(spec, records, world.domains, world.images)

    # Drivers for usable entries (a missing or incomplete Secret blocks only its entries).
    drivers: dict[str, InstrumentedDriver] = {}
    for i, c in enumerate(list(usable)):
        if i and not i % YIELD_EVERY:
            await asyncio.sleep(0)  # 200 entries are 0.2 s of CPU: let other requests in
        got = await credential(rt, namespace, spec, c.spec, world)
        if isinstance(got, str):
            blocked[c.name] = got
            usable.remove(c)
            continue
        try:
            drivers[c.name] = rt.driver(c.name, c.spec, world.entries[c.name][2], got)
        except DriverError as exc:
            blocked[c.name] = str(exc)
            usable.remove(c)
            continue
        try:
            # Before anything is launched with it: whatever happens to the Secret, the
            # pilots can still be found and terminated (controller/keeper.py).
            await rt.keeper.keep(c.name, got)
        except k8s.exceptions.ApiException as exc:
            blocked[c.name] = (
                f"cannot keep a copy of the credential for cleanup in namespace "
                f"{rt.keeper.namespace!r} ({exc.status} {exc.reason}): nothing is launched "
                "that could not be cleaned up"
            )
            usable.remove(c)
            del drivers[c.name]

    # One listing per entry and credential, shared with every request that uses them
    # (controller/listings.py): calls to a cloud do not grow with the requests.
    listings: dict[str, list[CloudPilot]] = {}
    listing_errors: dict[str, str] = {}
    listed_at: dict[str, float] = {}
    as_of: dict[str, dt.datetime] = {}

    async def list_one(entry: str, d: InstrumentedDriver) -> None:
        # Shielded: a listing this request stops waiting for goes on, and serves whoever
        # reads the entry next (this request's next cycle included).
        task = rt.listings.begin(d, uid)
        got: Listing | None
        try:
            with watch.step(f"listing {entry}"):
                got = await asyncio.wait_for(asyncio.shield(task), _patience(watch))
        except DriverError as exc:
            listing_errors[entry] = f"{exc.reason}: {exc}"
            return
        except TimeoutError:
            got = rt.listings.last(d, uid)
            if got is None:
                watch.unlisted.append(entry)
                listing_errors[entry] = (
                    f"ListingOverBudget: the cloud's listing did not come within the "
                    f"request's time budget ({watch.budget:g}s); it goes on, and the next "
                    "cycle reads it. Nothing is launched or cancelled here until then"
                )
                return
            watch.stood_in.append(entry)
        listings[entry], listed_at[entry], as_of[entry] = got.pilots, got.began, got.as_of

    await asyncio.gather(*(list_one(e, d) for e, d in drivers.items()))

    # The pool credential: pilots' tokens come from it, and so may the operator's own.
    token_problem = await pool_token(rt, namespace, spec)
    token_error = token_problem if isinstance(token_problem, str) else ""
    pool_credential = None if isinstance(token_problem, str) else token_problem
    query = await query_token(rt, namespace, spec, pool_credential)
    pool_error: tuple[str, str] | None = None
    clusters = []
    registered: dict[str, RegisteredPilot] | None = None
    if isinstance(query, str):
        pool_error = ("OperatorTokenInvalid", query)
    elif query[0] is None and token_error:
        # No key to mint pilots' tokens and none to read the pool with: nothing can be
        # launched until the admin adds it (the Ready condition says how), and a read now
        # would only send traffic, unauthenticated, to a pool still being set up.
        pass
    else:
        token, source = query
        reason = "ScheddUnreachable"
        try:
            reader = rt.reader(spec.collector, token, source)
            try:
                with watch.step(f"collector {spec.collector}"):
                    registered = await reader.registered(now.timestamp())
            except CondorError:
                reason = "CollectorUnreachable"
                raise
            for schedd in spec.schedds:
                with watch.step(f"schedd {schedd.name}"):
                    found = await rt.reader(
                        schedd.collector or spec.collector, token, source
                    ).clusters(schedd.name, (spec.job_constraint, spec.match_expression))
                clusters += select(found, spec.job_constraint)
        except CondorError as exc:
            pool_error = (reason, str(exc))

    return Sight(
        observed=Observed(
            now=now,
            usable=usable,
            blocked=blocked,
            listings=listings,
            listing_errors=listing_errors,
            entries={
                entry: EntryState(
                    launch_room=d.launch_room(),
                    launch_hold=d.launch_hold(),
                    released=frozenset(d.released),
                )
                for entry, d in drivers.items()
            },
            registered=registered,
            clusters=clusters,
            pool_error=pool_error,
            token_error=token_error,
            seen_registered=frozenset(rt.registered_once.get(uid, set())),
            judged=frozenset(rt.judged),
            started=rt.started,
            announced=frozenset(rt.interruptions.get(uid, set())),
            idle_since=dict(rt.idle_since.get(uid, {})),
            listed_as_of=min(as_of.values(), default=None),
            phases_at={e: _phases(ps, registered) for e, ps in listings.items()},
        ),
        drivers=drivers,
        pool_credential=pool_credential,
        listed_at=listed_at,
    )


async def credential(
    rt: Runtime, namespace: str, spec: GlideinRequestSpec, entry: CloudEntrySpec, world: World
) -> Credential | str:
    """The credential the request uses at the entry, or the sentence saying why none."""
    cred, why = credential_for(spec, entry, world.domains)
    if cred is None:
        return why
    if cred.secret_ref is None:
        return Credential(cred.type, None, {}, "")
    found = await rt.secret(namespace, cred.secret_ref.name)
    if found is None:
        return (
            f"Secret {cred.secret_ref.name!r} not found in namespace {namespace!r}; create it: "
            + fixes.secret_command(
                namespace,
                cred.secret_ref.name,
                cred.type,
                (cred.secret_ref.key,) if cred.secret_ref.key else None,
            )
        )
    values, _version = found
    lacking = missing_keys(cred.type, values, cred.secret_ref.key)
    if lacking:
        return f"Secret {cred.secret_ref.name!r} lacks {', '.join(lacking)} for a {cred.type} credential"
    values = dict(under_defined_key(cred.type, values, cred.secret_ref.key))
    return Credential(
        cred.type, cred.secret_ref.name, values, f"{namespace}/{cred.secret_ref.name}"
    )


async def query_token(
    rt: Runtime,
    namespace: str,
    spec: GlideinRequestSpec,
    pool_credential: tuple[bytes | None, str | None] | None,
) -> tuple[str | None, str] | str:
    """(the token the operator reads the pool with, or None; where it comes from), or the
    sentence saying why the pool cannot be read."""
    ref = spec.operator_token_secret_ref
    if ref is not None:
        found = await rt.secret(namespace, ref.name)
        if found is None:
            return f"Secret {ref.name!r} (spec.operatorTokenSecretRef) not found in namespace {namespace!r}"
        values, _version = found
        key = ref.key or "token"
        try:
            token = values.get(key, b"").decode("ascii").strip()
        except UnicodeDecodeError:
            token = ""
        if token.count(".") != 2:
            return f"Secret {ref.name!r} key {key!r} (spec.operatorTokenSecretRef) holds no IDTOKEN"
        return token, f"secret:{namespace}/{ref.name}"
    if pool_credential is not None and pool_credential[0] is not None:
        return rt.query_token(spec.trust_domain(), pool_credential[0]), "minted"
    return None, ""


async def pool_token(
    rt: Runtime, namespace: str, spec: GlideinRequestSpec
) -> tuple[bytes | None, str | None] | str:
    """(signing key, ready token), or the sentence saying why pilots could not join."""
    ref = spec.pilot.token_secret_ref
    if ref is None:
        return NO_POOL_CREDENTIAL
    found = await rt.secret(namespace, ref.name)
    if found is None:
        return (
            f"Secret {ref.name!r} (spec.pilot.tokenSecretRef) not found in namespace "
            f"{namespace!r}; create it from the pool's signing key: "
            + fixes.pool_key_command(namespace, ref.name)
        )
    values, _ = found
    if values.get("signingKey"):
        # Bytes as stored: a POOL key file is binary.
        return values["signingKey"], None
    key = ref.key or "token"
    if values.get(key):
        try:
            token = values[key].decode("ascii").strip()
        except UnicodeDecodeError:
            return f"Secret {ref.name!r} key {key!r} is not a token (binary data)"
        try:
            issuer = idtokens.claims(token).get("iss")
        except (ValueError, IndexError):
            return f"Secret {ref.name!r} key {key!r} is not an IDTOKEN (not a JWT)"
        if issuer != spec.trust_domain():
            return (
                f"the token in Secret {ref.name!r} was issued by {issuer!r}, but the pool's "
                f"TRUST_DOMAIN is {spec.trust_domain()!r} (spec.poolTrustDomain): pilots "
                "would ignore it"
            )
        return None, token
    return f"Secret {ref.name!r} has neither signingKey nor {key}"


# Phase counts per (listing, collector answer): both are shared by every request reading
# them in a cycle, so each is counted once, not once per request (the objects are kept
# with their counts, so an id is not reused while it is a key).
_PHASES: dict[tuple[int, int], tuple[object, object, Counter[PilotPhase]]] = {}


def _phases(
    listing: list[CloudPilot], registered: dict[str, RegisteredPilot] | None
) -> Counter[PilotPhase]:
    key = (id(listing), id(registered))
    found = _PHASES.get(key)
    if found is None:
        if len(_PHASES) > 4096:
            _PHASES.clear()
        counts: Counter[PilotPhase] = Counter()
        for by_phase in shared_phases(listing, registered).values():
            counts += by_phase
        found = _PHASES[key] = (listing, registered, counts)
    return found[2]
