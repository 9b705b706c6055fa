"""/healthz and /readyz as a replica answers them, active or standby, and a standby's
answers to admission reviews (it is Ready, so the webhook's Service reaches it)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from glidein_operator.controller import webhook
from glidein_operator.controller.health import Health, serve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readiness_of_a_standby_and_of_the_active_replica() -> None:
    clock = Clock()
    h = Health(clock=clock)
    assert h.readiness() == (False, "starting")
    h.standing_by(lease_period=15)
    assert not h.readiness()[0]  # the Lease not read yet
    h.lease_checked()
    assert h.readiness() == (True, "standby: waiting for the Lease")
    clock.now += 16  # could not read the Lease for a lease period: could not take over
    assert h.readiness() == (False, "standby: the Lease not read for 16s")
    h.lease_checked()
    h.acting()
    assert h.readiness() == (False, "starting: kopf is listing the resources")
    h.indices_filled()
    assert h.readiness() == (True, "active")
    h.stopping = True
    assert not h.readiness()[0]


def test_the_probes_are_served_on_the_loop() -> None:
    h = Health()
    port = _port()

    async def scenario() -> list[tuple[str, int, str]]:
        runner = await serve(f"127.0.0.1:{port}", h)
        seen = []
        try:
            async with aiohttp.ClientSession() as http:
                for step in ("starting", "standby", "active"):
                    if step == "standby":
                        h.standing_by(15)
                        h.lease_checked()
                    if step == "active":
                        h.acting()
                        h.indices_filled()
                    for path in ("/healthz", "/readyz"):
                        async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                            seen.append((f"{step} {path}", r.status, (await r.text()).strip()))
        finally:
            await runner.cleanup()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [
        ("starting /healthz", 200, "ok"),
        ("starting /readyz", 503, "starting"),
        ("standby /healthz", 200, "ok"),
        ("standby /readyz", 200, "standby: waiting for the Lease"),
        ("active /healthz", 200, "ok"),
        ("active /readyz", 200, "active"),
    ]


def _review(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "abc", "operation": "CREATE", "object": obj},
    }


BAD = {
    "apiVersion": "glidein.dev/v1alpha1",
    "kind": "TrustDomain",
    "metadata": {"name": "td"},
    "spec": {"credentialTypes": "not a list"},
}


def test_a_standby_answers_admission_reviews_over_tls(tmp_path: Path) -> None:
    port = _port()
    certfile, _key = webhook.self_signed(tmp_path, "127.0.0.1")
    server = webhook.server(port, tmp_path, "127.0.0.1", make_certificate=False)

    async def scenario() -> dict[str, Any]:
        serving = asyncio.create_task(webhook.standby(server))
        context = ssl.create_default_context(cafile=str(certfile))
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(100):  # until it listens
                    try:
                        async with http.post(
                            f"https://127.0.0.1:{port}/validate-trustdomains",
                            data=json.dumps(_review(BAD)),
                            ssl=context,
                        ) as r:
                            return dict(await r.json())
                    except aiohttp.ClientConnectorError:
                        await asyncio.sleep(0.05)
            raise AssertionError("the standby's webhook never listened")
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    answer = asyncio.run(scenario())
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "abc"
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 422
    assert "credentialTypes" in answer["response"]["status"]["message"]
    good = {**BAD, "spec": {"credentialTypes": ["ec2-access-key"]}}
    assert webhook.review(_review(good))["response"] == {"uid": "abc", "allowed": True}
