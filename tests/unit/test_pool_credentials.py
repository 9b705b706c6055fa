"""The pool's credentials as the operator reads them: binary signing keys stay bytes, a
token from the wrong issuer is named, and a collector that cannot be read judges nobody
stuck."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from glidein_operator.api.objects import parse
from glidein_operator.controller import observe
from glidein_operator.controller.runtime import Runtime, Settings
from glidein_operator.credentials import idtokens
from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.provisioning.lifecycle import Reap, Timeouts, classify
from glidein_operator.provisioning.planner import PilotPhase
from tests.malformed_cases import example

# A POOL file as the collector writes it: binary, NUL and high bytes included.
POOL_FILE = bytes([0x00, 0xDE, 0xFF, 0x80, 0x7F, 0xC3, 0x28]) * 9 + b"\x00"


class _Secrets(Runtime):
    def __init__(self, values: dict[str, bytes]) -> None:
        super().__init__(settings=Settings(), pool_factory=lambda _c, _t: None)  # type: ignore[arg-type,return-value]
        self.values = values

    async def secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str] | None:
        return (self.values, "1") if name == "pool" else None


def _spec(**pilot: Any):  # type: ignore[no-untyped-def]
    doc = example("GlideinRequest", "cms-production")
    doc["spec"]["pilot"]["tokenSecretRef"] = {"name": "pool", **pilot}
    return parse(doc).spec


def test_a_binary_signing_key_is_used_as_its_bytes() -> None:
    rt = _Secrets({"signingKey": POOL_FILE})
    spec = _spec()
    got = asyncio.run(observe.pool_token(rt, "ns", spec))
    assert got == (POOL_FILE, None)
    # The operator reads the pool with a READ token minted from the same key.
    query = asyncio.run(observe.query_token(rt, "ns", spec, got))
    assert not isinstance(query, str)
    token, source = query
    assert token is not None
    assert source == "minted"
    assert idtokens.verify(token, POOL_FILE)
    assert idtokens.claims(token)["scope"] == "condor:/READ"
    assert idtokens.claims(token)["iss"] == spec.trust_domain()
    # Minted once, kept (renewed only at half-life).
    assert asyncio.run(observe.query_token(rt, "ns", spec, got)) == query


def test_the_issuer_is_the_collector_string_with_its_port_unless_set() -> None:
    spec = _spec()
    assert spec.collector == "cms-pool.example.org:9618"
    assert spec.trust_domain() == "cms-pool.example.org:9618"
    doc = example("GlideinRequest", "cms-production")
    doc["spec"]["poolTrustDomain"] = "cms-pool.example.org"
    assert parse(doc).spec.trust_domain() == "cms-pool.example.org"


def test_a_ready_token_from_another_issuer_is_named() -> None:
    other = idtokens.mint(
        POOL_FILE, identity="p@x", issuer="elsewhere.example.org", lifetime=60, now=0
    )
    rt = _Secrets({"token": other.encode()})
    why = asyncio.run(observe.pool_token(rt, "ns", _spec()))
    assert why == (
        "the token in Secret 'pool' was issued by 'elsewhere.example.org', but the pool's "
        "TRUST_DOMAIN is 'cms-pool.example.org:9618' (spec.poolTrustDomain): pilots "
        "would ignore it"
    )


def test_binary_garbage_where_a_token_belongs_is_named_without_its_bytes() -> None:
    rt = _Secrets({"token": POOL_FILE})
    why = asyncio.run(observe.pool_token(rt, "ns", _spec()))
    assert why == "Secret 'pool' key 'token' is not a token (binary data)"


def test_an_unreadable_collector_judges_nobody_stuck() -> None:
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    old = CloudPilot(
        pilot_id="b-0",
        cloud_id="i-1",
        entry="a",
        request_uid="u",
        batch="b",
        instance_type="4c",
        state=PilotState.RUNNING,
        launched_at=now - dt.timedelta(hours=2),
    )
    timeouts = Timeouts(registration=dt.timedelta(minutes=15), lifetime=dt.timedelta(hours=24))
    known = classify([old], {}, now, timeouts)
    assert known.reap == [(old, Reap.STUCK)]
    unknown = classify([old], None, now, timeouts)
    assert unknown.reap == []
    assert [v.phase for v in unknown.views] == [PilotPhase.BOOTING]


def test_a_schedd_is_read_through_its_own_collector_when_it_names_one() -> None:
    from tests.support.simulation import Sim

    sim = Sim(budget=None)
    sim.spec = sim.spec.model_copy(
        update={
            "schedds": [
                sim.spec.schedds[0].model_copy(update={"collector": "flock-cm.example.org:9618"})
            ]
        }
    )
    reader = sim.rt.reader(sim.spec.collector)
    asked: list[tuple[str, str | None, str]] = []

    def record(collector: str, token: str | None = None, source: str = "") -> Any:
        asked.append((collector, token, source))
        return reader

    sim.rt.reader = record  # type: ignore[method-assign]
    sim.set_idle_jobs(4)
    sim.cycle()
    collectors = [c for c, _t, _s in asked]
    # Pilots are looked for in the request's pool; the schedd where it advertises.
    assert collectors == [sim.spec.collector, "flock-cm.example.org:9618"]
    # Both as the operator, with the READ token minted from the pool's signing key.
    token = asked[0][1]
    assert token is not None
    assert {t for _c, t, _s in asked} == {token}
    assert idtokens.claims(token)["sub"] == "glidein-operator@pool.sim.example.org"
