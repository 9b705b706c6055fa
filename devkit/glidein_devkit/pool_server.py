"""A simulated pool (FakePool) served over HTTP, and the Pool client for it.

For tests that run the operator as a separate process (to SIGKILL it, say): the test
keeps the FakePool in its own process, serves it here, and starts the operator with
``GLIDEIN_POOL_URL`` pointing at it. Ads travel as ClassAd JSON (expressions included)
and constraints are still evaluated by classad2 on the serving side.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import classad2

from glidein_devkit.controlplane.cluster import free_port
from glidein_devkit.fake_pool import FakePool
from glidein_operator.condor.classads import ads_from_json
from glidein_operator.condor.interface import CondorError


def _dump(ads: list[classad2.ClassAd]) -> bytes:
    return ("[" + ",".join(ad.printJson() for ad in ads) + "]").encode()


def _load(data: bytes) -> list[classad2.ClassAd]:
    return ads_from_json(data.decode())


class PoolServer:
    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        handler = type("H", (_Handler,), {"pool": pool})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PoolServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    pool: FakePool

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        try:
            if self.path == "/idle_jobs":
                ads = self.pool.idle_jobs(body["schedd"], body["constraint"], body["projection"])
            elif self.path == "/slot_ads":
                ads = self.pool.slot_ads(body["constraint"], body["projection"])
            else:
                self.send_error(404)
                return
        except CondorError as exc:
            data = json.dumps({"error": str(exc)}).encode()
            self.send_response(503)
        else:
            data = _dump(ads)
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class HttpPool:
    """The Pool interface over a PoolServer."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _post(self, path: str, body: dict[str, Any]) -> list[classad2.ClassAd]:
        req = urllib.request.Request(  # noqa: S310  (a loopback test server)
            self.url + path, data=json.dumps(body).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return _load(resp.read())
        except urllib.error.HTTPError as exc:
            raise CondorError(json.loads(exc.read() or b"{}").get("error", str(exc))) from None
        except (OSError, ValueError) as exc:
            raise CondorError(f"pool server: {exc}") from None

    def idle_jobs(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        return self._post(
            "/idle_jobs",
            {"schedd": schedd, "constraint": constraint, "projection": list(projection)},
        )

    def slot_ads(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        return self._post("/slot_ads", {"constraint": constraint, "projection": list(projection)})
