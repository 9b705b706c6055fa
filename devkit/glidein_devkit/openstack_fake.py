"""A small OpenStack (Keystone v3 + Nova + Glance) over HTTP, for the real openstacksdk.

No emulator can be installed here, so this keeps just the parts our driver uses, with
the behaviour that matters: tokens and a service catalogue, version discovery,
servers with tags, metadata and multi-create naming (``name-1 .. name-N``), key pairs,
console output, flavours, images, and errors in Nova's own shapes (404 itemNotFound,
403 quota, 429 overLimit, 401 from Keystone). Servers go BUILD -> ACTIVE; a test can shut
one off (SHUTOFF, as OpenStack does when a VM powers itself off: it ignores
terminate-on-shutdown).

At scale, as Nova:

- ``/servers/detail`` is paginated: ``limit`` (capped at ``[api] max_limit``, 1000),
  ``marker`` (the last server of the previous page; a server deleted since still marks
  its place, as Nova reads deleted rows for markers), newest first (``created_at``, then
  the row id, descending), server-side tag filtering, and a ``servers_links`` "next"
  whenever a page is full, carrying the request's own parameters;
- quotas (``quota``: instances, cores, ram; none by default) are checked at create the
  way Nova's API does for a multi-create: as many as fit between ``min_count`` and
  ``max_count``, else 403 "Quota exceeded for instances: Requested N, but already used M
  of L instances";
- a latency model (``latency``; none by default): a cost per compute request, per server
  in a listing page and per server a create asks for, slept outside the lock so that
  concurrent requests overlap as on a Nova API with several workers.

Programmable under ``/_fake/``: queue faults, read call counts, shut servers off.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from glidein_devkit import leakcheck
from glidein_devkit.controlplane.cluster import free_port

MAX_LIMIT = 1000  # Nova's [api] max_limit
MICROVERSION = "2.96"


@dataclass
class Latency:
    """Seconds Nova takes to answer. ``base``: any compute request (auth middleware, an
    API worker, a database round trip). ``per_listed``: each server of a listing page
    (Nova joins each instance's metadata, tags, flavour, and its addresses from the
    network info cache, then builds its view: what makes large listings slow).
    ``per_created``: each server a create asks for (a build request and request spec
    each, before the API answers 202)."""

    base: float = 0.0
    per_listed: float = 0.0
    per_created: float = 0.0


@dataclass
class Quota:
    """The project's Nova quotas; None: unlimited (-1 in Nova)."""

    instances: int | None = None
    cores: int | None = None
    ram: int | None = None


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    body: dict[str, Any]
    times: int


@dataclass
class OpenStackState:
    users: dict[str, str] = field(default_factory=lambda: {"glidein": "secret"})
    app_credentials: dict[str, str] = field(
        default_factory=lambda: {"appcred-id": "appcred-secret"}
    )
    project: str = "glidein-project"
    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Deleted servers' places in the listing order (id -> row id): a marker still
    # resolves after its server is gone.
    deleted: dict[str, int] = field(default_factory=dict)
    keypairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    faults: deque[Fault] = field(default_factory=deque)
    calls: Counter[str] = field(default_factory=Counter)
    # The latest requests, "METHOD path?query", oldest first.
    log: deque[str] = field(default_factory=lambda: deque(maxlen=10_000))
    quota: Quota = field(default_factory=Quota)
    latency: Latency = field(default_factory=Latency)
    rows: Any = field(default_factory=lambda: itertools.count(1))  # Nova's instances.id
    lock: threading.RLock = field(default_factory=threading.RLock)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the restart-safety test SIGKILLs the operator) is
        # what a real Nova sees too: not an error of the service.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenStack:
    """Start with ``start()``; ``auth_url`` is the Keystone v3 URL to give the SDK."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth_url = f"{self.base}/identity/v3"
        self.state = OpenStackState()
        self.check_leaks = True  # glidein_devkit/leakcheck.py
        self.add_flavor("m1.small", 1, 2048, 20)
        self.add_flavor("m5.large", 2, 8192, 20)
        self.add_flavor("m1.xlarge", 8, 16384, 80)
        self.image_id = self.add_image("glidein-el9")
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- programming ------------------------------------------------------------------

    def add_flavor(self, name: str, vcpus: int, ram: int, disk: int) -> str:
        fid = f"flavor-{name}"
        self.state.flavors[fid] = {
            "id": fid,
            "name": name,
            "vcpus": vcpus,
            "ram": ram,
            "disk": disk,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "swap": 0,
            "rxtx_factor": 1.0,
            "os-flavor-access:is_public": True,
            "links": [],
        }
        return fid

    def add_image(self, name: str) -> str:
        iid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
        self.state.images[iid] = {
            "id": iid,
            "name": name,
            "status": "active",
            "visibility": "public",
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": 1,
            "created_at": _now(),
            "updated_at": _now(),
            "tags": [],
        }
        return iid

    def fail(
        self, method: str, pattern: str, status: int, body: dict[str, Any], times: int = 1
    ) -> None:
        """The next ``times`` requests whose path matches ``pattern`` answer this error."""
        with self.state.lock:
            self.state.faults.append(Fault(method, pattern, status, body, times))

    def set_console(self, server_id: str, text: str) -> None:
        """What os-getConsoleOutput answers for this server from now on (a VM's console)."""
        with self.state.lock:
            if server_id in self.state.servers:
                self.state.servers[server_id]["_console"] = text

    def shut_off(self, server_id: str) -> None:
        with self.state.lock:
            self.state.servers[server_id]["status"] = "SHUTOFF"
            self.state.servers[server_id]["OS-EXT-STS:vm_state"] = "stopped"
            self.state.servers[server_id]["updated"] = _now()

    def calls(self) -> dict[str, int]:
        with self.state.lock:
            return dict(self.state.calls)

    def requests(self, prefix: str = "") -> list[str]:
        """The latest requests ("GET /compute/v2.1/servers/detail?..."), oldest first."""
        with self.state.lock:
            return [r for r in self.state.log if r.startswith(prefix)]

    def set_quota(
        self, instances: int | None = None, cores: int | None = None, ram: int | None = None
    ) -> None:
        with self.state.lock:
            self.state.quota = Quota(instances, cores, ram)

    def set_latency(
        self, base: float = 0.0, per_listed: float = 0.0, per_created: float = 0.0
    ) -> None:
        with self.state.lock:
            self.state.latency = Latency(base, per_listed, per_created)

    def reset(self) -> None:
        with self.state.lock:
            if self.check_leaks:
                leakcheck.note(
                    "the OpenStack double", sorted(self.state.servers), sorted(self.state.keypairs)
                )
            self.state.servers.clear()
            self.state.deleted.clear()
            self.state.keypairs.clear()
            self.state.faults.clear()
            self.state.calls.clear()
            self.state.log.clear()
            self.state.quota = Quota()
            self.state.latency = Latency()

    def start(self) -> FakeOpenStack:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.state.lock:
            if self.check_leaks:
                leakcheck.note(
                    "the OpenStack double", sorted(self.state.servers), sorted(self.state.keypairs)
                )
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- service logic ----------------------------------------------------------------

    def catalog(self) -> list[dict[str, Any]]:
        def svc(kind: str, name: str, path: str) -> dict[str, Any]:
            return {
                "type": kind,
                "name": name,
                "id": name,
                "endpoints": [
                    {
                        "id": f"{name}-{i}",
                        "interface": i,
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": f"{self.base}{path}",
                    }
                    for i in ("public", "internal", "admin")
                ],
            }

        return [
            svc("identity", "keystone", "/identity/v3"),
            svc("compute", "nova", "/compute/v2.1"),
            svc("image", "glance", "/image"),
        ]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenStack
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    # plumbing
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.path.startswith("/compute"):
            self.send_header("OpenStack-API-Version", f"compute {MICROVERSION}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query)
        st = self.fake.state
        body = self._body() if method in ("POST", "PUT") else {}
        if path.startswith("/_fake"):
            return self._send(200, {"calls": self.fake.calls()})
        with st.lock:
            st.calls[f"{method} {re.sub(r'/[0-9a-f-]{36}', '/{id}', path)}"] += 1
            st.log.append(f"{method} {self.path}")
            for fault in list(st.faults):
                if fault.method == method and re.search(fault.pattern, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        st.faults.remove(fault)
                    headers = {"Retry-After": "0"} if fault.status == 429 else None
                    return self._send(fault.status, fault.body, headers)
        if path.startswith("/identity"):
            return self._identity(method, path, body)
        token = self.headers.get("X-Auth-Token")
        if token not in st.tokens:
            return self._send(
                401,
                {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The request you have made requires authentication.",
                    }
                },
            )
        if path.startswith("/compute"):
            if st.latency.base:
                time.sleep(st.latency.base)
            return self._compute(method, path.removeprefix("/compute"), query, body)
        if path.startswith("/image"):
            return self._image(method, path.removeprefix("/image"))
        return self._send(404, {"error": "no such service"})

    # Keystone
    def _identity(self, method: str, path: str, body: dict[str, Any]) -> None:
        f = self.fake
        version = {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{f.base}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }
        if method == "GET" and path == "/identity":
            return self._send(300, {"versions": {"values": [version]}})
        if method == "GET" and path == "/identity/v3":
            return self._send(200, {"version": version})
        if method == "POST" and path == "/identity/v3/auth/tokens":
            ident = body.get("auth", {}).get("identity", {})
            ok = False
            if "password" in ident.get("methods", []):
                user = ident.get("password", {}).get("user", {})
                ok = f.state.users.get(user.get("name", "")) == user.get("password")
            elif "application_credential" in ident.get("methods", []):
                cred = ident.get("application_credential", {})
                ok = f.state.app_credentials.get(cred.get("id", "")) == cred.get("secret")
            if not ok:
                return self._send(
                    401,
                    {
                        "error": {
                            "code": 401,
                            "title": "Unauthorized",
                            "message": "The request you have made requires authentication.",
                        }
                    },
                )
            token = uuid.uuid4().hex
            with f.state.lock:
                f.state.tokens.add(token)
            expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime(
                "%Y-%m-%dT%H:%M:%S.000000Z"
            )
            return self._send(
                201,
                {
                    "token": {
                        "methods": ident.get("methods", []),
                        "expires_at": expires,
                        "issued_at": _now(),
                        "user": {
                            "id": "uid-glidein",
                            "name": "glidein",
                            "domain": {"id": "default", "name": "Default"},
                        },
                        "project": {
                            "id": "pid-glidein",
                            "name": f.state.project,
                            "domain": {"id": "default", "name": "Default"},
                        },
                        "roles": [{"id": "r1", "name": "member"}],
                        "catalog": f.catalog(),
                    }
                },
                {"X-Subject-Token": token},
            )
        return self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})

    # Nova
    def _compute(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> None:
        f, st = self.fake, self.fake.state
        root = {
            "id": "v2.1",
            "status": "CURRENT",
            "version": MICROVERSION,
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{f.base}/compute/v2.1/"}],
        }
        if method == "GET" and path in ("", "/"):
            return self._send(200, {"versions": [root]})
        if not path.startswith("/v2.1"):
            return self._send(404, {"itemNotFound": {"code": 404, "message": "no such version"}})
        path = path.removeprefix("/v2.1") or "/"
        if method == "GET" and path == "/":
            return self._send(200, {"version": root})
        if path.startswith("/flavors"):
            rest = path.removeprefix("/flavors").strip("/")
            if rest in ("", "detail"):
                return self._send(200, {"flavors": list(st.flavors.values())})
            flavor = st.flavors.get(rest) or next(
                (v for v in st.flavors.values() if v["name"] == rest), None
            )
            if flavor is None:
                return self._send(
                    404,
                    {
                        "itemNotFound": {
                            "code": 404,
                            "message": f"Flavor {rest} could not be found.",
                        }
                    },
                )
            return self._send(200, {"flavor": flavor})
        if path.startswith("/os-keypairs"):
            return self._keypairs(method, path.removeprefix("/os-keypairs").strip("/"), body)
        if path == "/servers" and method == "POST":
            return self._create(body.get("server", {}))
        if path in ("/servers", "/servers/detail") and method == "GET":
            return self._list(query, path.strip("/"))
        m = re.fullmatch(r"/servers/([^/]+)(/action)?", path)
        if m:
            sid, action = m.groups()
            with st.lock:
                server = st.servers.get(sid)
            if server is None:
                return self._send(
                    404,
                    {
                        "itemNotFound": {
                            "code": 404,
                            "message": f"Instance {sid} could not be found.",
                        }
                    },
                )
            if method == "GET" and not action:
                self._advance(server)
                return self._send(
                    200, {"server": {k: v for k, v in server.items() if not k.startswith("_")}}
                )
            if method == "DELETE" and not action:
                with st.lock:
                    gone = st.servers.pop(sid, None)
                    if gone is not None:
                        st.deleted[sid] = gone["_row"]
                return self._send(204)
            if method == "POST" and action:
                if "os-getConsoleOutput" in body:
                    # Nova's length: that many lines from the end (all without it).
                    length = (body["os-getConsoleOutput"] or {}).get("length")
                    lines = str(server["_console"]).splitlines(keepends=True)
                    tail = lines[-int(length) :] if length else lines
                    return self._send(200, {"output": "".join(tail)})
                return self._send(202)
        return self._send(404, {"itemNotFound": {"code": 404, "message": f"no route {path}"}})

    def _advance(self, server: dict[str, Any]) -> None:
        if server["status"] == "BUILD":
            server["status"] = "ACTIVE"
            server["OS-EXT-STS:vm_state"] = "active"

    def _create(self, req: dict[str, Any]) -> None:
        st = self.fake.state
        for key in ("name", "imageRef", "flavorRef"):
            if not req.get(key):
                return self._send(400, {"badRequest": {"code": 400, "message": f"Missing {key}"}})
        flavor = st.flavors.get(req["flavorRef"])
        if flavor is None:
            return self._send(
                400,
                {"badRequest": {"code": 400, "message": f"Flavor {req['flavorRef']} not found"}},
            )
        if req["imageRef"] not in st.images:
            return self._send(
                400, {"badRequest": {"code": 400, "message": f"Image {req['imageRef']} not found"}}
            )
        if req.get("key_name") and req["key_name"] not in st.keypairs:
            return self._send(
                400, {"badRequest": {"code": 400, "message": f"Invalid key_name {req['key_name']}"}}
            )
        max_count = int(req.get("max_count") or req.get("min_count") or 1)
        min_count = int(req.get("min_count") or 1)
        if req.get("user_data"):
            base64.b64decode(req["user_data"], validate=True)  # Nova rejects non-base64
        if st.latency.per_created:
            time.sleep(st.latency.per_created * max_count)
        reservation = f"r-{uuid.uuid4().hex[:8]}"
        first = None
        with st.lock:
            count, refusal = self._fit_quota(flavor, min_count, max_count)
            if refusal:
                return self._send(403, {"forbidden": {"code": 403, "message": refusal}})
            for n in range(1, count + 1):
                sid = str(uuid.uuid4())
                name = req["name"] if count == 1 else f"{req['name']}-{n}"
                st.servers[sid] = {
                    "id": sid,
                    "name": name,
                    "status": "BUILD",
                    "OS-EXT-STS:vm_state": "building",
                    "tenant_id": "pid-glidein",
                    "user_id": "uid-glidein",
                    "metadata": dict(req.get("metadata") or {}),
                    "tags": list(req.get("tags") or []),
                    "flavor": {
                        "original_name": flavor["name"],
                        "vcpus": flavor["vcpus"],
                        "ram": flavor["ram"],
                        "disk": flavor["disk"],
                        "ephemeral": 0,
                        "swap": 0,
                        "extra_specs": {},
                    },
                    "image": {"id": req["imageRef"], "links": []},
                    "key_name": req.get("key_name"),
                    "created": _now(),
                    "updated": _now(),
                    "addresses": {},
                    "links": [],
                    "config_drive": "True" if req.get("config_drive") else "",
                    # Nova (2.3+) shows it to admins in base64; the boot emulator reads it.
                    "OS-EXT-SRV-ATTR:user_data": req.get("user_data") or None,
                    "OS-EXT-SRV-ATTR:reservation_id": reservation,
                    "OS-EXT-SRV-ATTR:launch_index": n - 1,
                    "_console": f"[fake-nova] booting {name}\ncloud-init: user data {len(req.get('user_data') or '')} bytes\n",
                    "_row": next(st.rows),
                }
                first = first or st.servers[sid]
        assert first is not None
        return self._send(
            202,
            {
                "server": {
                    "id": first["id"],
                    "links": [],
                    "adminPass": "x",
                    "OS-DCF:diskConfig": "MANUAL",
                    "security_groups": [{"name": "default"}],
                },
                "reservation_id": reservation,
            },
        )

    def _fit_quota(self, flavor: dict[str, Any], min_count: int, max_count: int) -> tuple[int, str]:
        """(servers to create, "") or (0, Nova's 403 message), as nova.compute.api's
        _check_num_instances_quota: all of max_count if they fit, else as many as fit if
        that is at least min_count, else TooManyInstances. The caller holds the lock."""
        st = self.fake.state
        servers = st.servers.values()
        used = {
            "instances": len(servers),
            "cores": sum(int(s["flavor"]["vcpus"]) for s in servers),
            "ram": sum(int(s["flavor"]["ram"]) for s in servers),
        }
        each = {"instances": 1, "cores": int(flavor["vcpus"]), "ram": int(flavor["ram"])}
        limits = {
            k: v
            for k, v in (
                ("instances", st.quota.instances),
                ("cores", st.quota.cores),
                ("ram", st.quota.ram),
            )
            if v is not None
        }
        allowed = min(
            (max(0, (limits[k] - used[k]) // each[k]) for k in limits if each[k]),
            default=max_count,
        )
        if allowed >= max_count:
            return max_count, ""
        if allowed >= min_count:
            return allowed, ""
        overs = sorted(k for k in limits if used[k] + each[k] * max_count > limits[k])
        wanted = {
            "instances": str(min_count) if min_count == max_count else f"{min_count}-{max_count}",
            "cores": str(each["cores"] * max_count),
            "ram": str(each["ram"] * max_count),
        }
        what = ", ".join(overs)
        return 0, (
            f"Quota exceeded for {what}: Requested {', '.join(wanted[k] for k in overs)}, "
            f"but already used {', '.join(str(used[k]) for k in overs)} of "
            f"{', '.join(str(limits[k]) for k in overs)} {what}"
        )

    def _list(self, query: dict[str, list[str]], collection: str = "servers/detail") -> None:
        st = self.fake.state
        try:
            limit = min(int(query.get("limit", [str(MAX_LIMIT)])[0]), MAX_LIMIT)
        except ValueError:
            limit = -1
        if limit < 0:
            return self._send(
                400, {"badRequest": {"code": 400, "message": "limit must be an integer >= 0"}}
            )
        marker = query.get("marker", [""])[0]
        tags = set(",".join(query.get("tags", [])).split(",")) - {""}
        name_re = query.get("name", [""])[0]
        with st.lock:
            if marker and marker not in st.servers and marker not in st.deleted:
                return self._send(
                    400, {"badRequest": {"code": 400, "message": f"marker [{marker}] not found"}}
                )
            after = (
                (st.servers[marker]["_row"] if marker in st.servers else st.deleted[marker])
                if marker
                else None
            )
            # Nova's default order: created_at desc, then id (the row's) desc; a second's
            # servers in reverse creation order, which is the row order.
            servers = sorted(st.servers.values(), key=lambda s: s["_row"], reverse=True)
            for s in servers:  # a listing moves every server on (BUILD -> ACTIVE)
                self._advance(s)
            if after is not None:
                servers = [s for s in servers if s["_row"] < after]
            servers = [s for s in servers if tags <= set(s["tags"])]
            if name_re:
                servers = [s for s in servers if re.search(name_re, s["name"])]
            page = servers[:limit]
            out: dict[str, Any] = {
                "servers": [{k: v for k, v in s.items() if not k.startswith("_")} for s in page]
            }
        if page and len(page) == limit:
            # As Nova's _get_collection_links: a full page gets a "next" link, with the
            # request's own parameters (sorted) and the page's last server as the marker.
            params = {k: v for k, v in sorted(query.items()) if k != "marker"}
            params["marker"] = [page[-1]["id"]]
            href = f"{self.fake.base}/compute/v2.1/{collection}?{urlencode(params, doseq=True)}"
            out["servers_links"] = [{"rel": "next", "href": href}]
        if st.latency.per_listed:
            time.sleep(st.latency.per_listed * len(page))
        return self._send(200, out)

    def _keypairs(self, method: str, name: str, body: dict[str, Any]) -> None:
        st = self.fake.state
        with st.lock:
            if method == "GET" and not name:
                return self._send(
                    200,
                    {
                        "keypairs": [
                            {"keypair": {k: v for k, v in kp.items() if k != "private_key"}}
                            for kp in st.keypairs.values()
                        ]
                    },
                )
            if method == "POST":
                req = body.get("keypair", {})
                kname = req.get("name", "")
                if kname in st.keypairs:
                    return self._send(
                        409,
                        {
                            "conflictingRequest": {
                                "code": 409,
                                "message": f"Key pair '{kname}' already exists.",
                            }
                        },
                    )
                kp = {
                    "name": kname,
                    "type": req.get("type", "ssh"),
                    "fingerprint": uuid.uuid4().hex,
                    "public_key": req.get("public_key")
                    or f"ssh-ed25519 AAAA{uuid.uuid4().hex} generated",
                    "user_id": "uid-glidein",
                    "created_at": _now(),
                }
                st.keypairs[kname] = kp
                return self._send(200, {"keypair": kp})
            if method == "GET":
                found = st.keypairs.get(name)
                if found is None:
                    return self._send(
                        404,
                        {"itemNotFound": {"code": 404, "message": f"Keypair {name} not found."}},
                    )
                return self._send(200, {"keypair": found})
            if method == "DELETE":
                if st.keypairs.pop(name, None) is None:
                    return self._send(
                        404,
                        {"itemNotFound": {"code": 404, "message": f"Keypair {name} not found."}},
                    )
                return self._send(202)
        return self._send(405, {})

    # Glance
    def _image(self, method: str, path: str) -> None:
        st = self.fake.state
        version = {
            "id": "v2.16",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": f"{self.fake.base}/image/v2/"}],
        }
        if path in ("", "/"):
            return self._send(300, {"versions": [version]})
        m = re.fullmatch(r"/v2/images/([^/]+)", path)
        if m and method == "GET":
            image = st.images.get(m.group(1))
            if image is None:
                return self._send(404, {"message": "No image found", "code": "404 Not Found"})
            return self._send(200, image)
        if path == "/v2/images" and method == "GET":
            return self._send(200, {"images": list(st.images.values())})
        return self._send(404, {"message": f"no route {path}"})
