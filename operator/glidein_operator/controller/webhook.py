"""The validating admission webhook's server: what the API server cannot check itself
(ClassAd expressions, parsed by the real ClassAd parser), checked at ``kubectl apply``.

In a cluster the chart makes the certificate, the Service and the
ValidatingWebhookConfiguration (``webhook.enabled``), and the operator only serves. For
development and tests the operator can make a self-signed certificate for a host and let
kopf write the configuration itself, pointing at ``https://host:port``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from glidein_operator.api.objects import InvalidResource, parse

CERT, KEY = "tls.crt", "tls.key"
log = logging.getLogger(__name__)


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for ``host`` (a name or an IP address) and its key, in files only
    this process can read."""
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    certfile, keyfile = directory / CERT, directory / KEY
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.touch(mode=0o600)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def server(
    port: int, cert_dir: Path, host: str | None, make_certificate: bool
) -> kopf.WebhookServer:
    """The webhook server: with the chart's certificate from ``cert_dir``, or (for
    development) a self-signed one for ``host`` made there."""
    if make_certificate:
        if host is None:
            raise ValueError("a self-signed webhook certificate needs GLIDEIN_WEBHOOK_HOST")
        certfile, keyfile = self_signed(cert_dir, host)
    else:
        certfile, keyfile = cert_dir / CERT, cert_dir / KEY
    return kopf.WebhookServer(
        addr=host or "0.0.0.0",  # noqa: S104 (in a pod: the Service reaches it on the pod IP)
        port=port,
        host=host,
        certfile=certfile,
        pkeyfile=keyfile,
        cadata=certfile.read_bytes() if make_certificate else None,
    )


def review(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one AdmissionReview, as the active replica's kopf handlers give it
    (handlers._admit): allowed, or refused with 422 naming the fields."""
    payload = request.get("request") or {}
    answer: dict[str, Any] = {"uid": payload.get("uid", ""), "allowed": True}
    try:
        parse(dict(payload.get("object") or {}))
    except InvalidResource as exc:
        answer["allowed"] = False
        answer["status"] = {"code": 422, "message": str(exc)}
    return {
        "apiVersion": request.get("apiVersion", "admission.k8s.io/v1"),
        "kind": request.get("kind", "AdmissionReview"),
        "response": answer,
    }


async def standby(server: kopf.WebhookServer) -> None:
    """Answer reviews while standing by, until cancelled (before kopf starts serving the
    same port). A standby is Ready (health.py), so the webhook's Service reaches it too;
    a validation needs nothing of the cluster, so it answers as the active replica would
    rather than refuse the connection, which would let the object through unchecked
    (failurePolicy Ignore) or refuse it (Fail)."""

    async def answer(request: Any, **_: Any) -> Any:
        return review(dict(request))

    try:
        async for _config in server(answer):
            pass  # serving; the server yields again only to restart with renewed certificates
    except Exception:  # the active replica's kopf will say what is wrong, if it still is
        log.exception("the standby's admission webhook does not serve")


async def not_served(_fn: Any) -> AsyncIterator[Any]:
    """The webhook "server" when none is configured: it never yields an address, so
    nothing is served and no configuration is written."""
    await asyncio.Event().wait()
    yield  # unreachable: makes this an async generator, as kopf expects
