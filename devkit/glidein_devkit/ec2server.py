"""moto's EC2 in server mode, made to behave like AWS where our code depends on it.

Real boto3 talks HTTP to it. Two things moto does differently from AWS are fixed here:

* ClientToken: AWS answers a repeated RunInstances carrying the same token with the
  first call's reservation and starts nothing; moto starts new instances every time.
* MaxCount: AWS starts as many as it can up to MaxCount; moto starts MinCount.

It can also play an older EC2-compatible cloud: ``refuse`` parameters it does not know
(TagSpecifications, ClientToken, MetadataOptions), which it then answers as such a cloud
does, 400 UnknownParameter, whatever the action.

And it is programmable, like a good fake: queue errors for an action (the next N calls
of RunInstances answer InsufficientInstanceCapacity, say) and read how many calls of
each action it served. Control lives under ``/_glidein/``.

Run: ``python -m glidein_devkit.ec2server --port 5000``; in tests use
``Ec2Server`` (a subprocess on a free port).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from glidein_devkit import leakcheck
from glidein_devkit.controlplane.cluster import free_port

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _patch_moto() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.models.tags import TagBackend
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    # moto looks up each instance's tags by scanning every tag of every resource: quadratic,
    # 30 s to describe 2,000 instances. Same answer, straight from the dict.
    scan = TagBackend.describe_tags

    def describe_tags(
        self: Any, filters: dict[str, list[str]] | None = None
    ) -> list[dict[str, str]]:
        ids = (filters or {}).get("resource-id", [])
        if (
            filters
            and set(filters) == {"resource-id"}
            and len(ids) == 1
            and not set(ids[0]) & set("*?")
        ):
            rid = ids[0]
            kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
            return [
                {"resource_id": rid, "key": k, "value": v, "resource_type": kind}
                for k, v in self.tags.get(rid, {}).items()
            ]
        return scan(self, filters)

    TagBackend.describe_tags = describe_tags  # type: ignore[method-assign]

    original = InstanceResponse.run_instances
    lock = threading.Lock()

    def run_instances(self: Any) -> Any:
        token = self._get_param("ClientToken")
        max_count = int(self._get_param("MaxCount") or self._get_param("MinCount") or 1)
        with lock:
            if token:
                for reservation in list(self.ec2_backend.reservations.values()):
                    if any(
                        getattr(i, "client_token", None) == token for i in reservation.instances
                    ):
                        return ActionResult(reservation)
            backend = self.ec2_backend
            run = backend.run_instances

            def run_max(image_id: str, count: int, *args: Any, **kwargs: Any) -> Any:
                return run(image_id, max(count, max_count), *args, **kwargs)

            backend.run_instances = run_max
            try:
                return original(self)
            finally:
                del backend.run_instances

    InstanceResponse.run_instances = run_instances  # type: ignore[method-assign]

    # moto quotes every spot price as 0.00001; serve the ones a test sets instead.
    from moto.ec2.responses.spot_instances import SpotInstances

    def describe_spot_price_history(self: Any) -> Any:
        prices = self.ec2_backend.describe_spot_price_history(
            self._get_param("InstanceTypes", []), self._filters_from_querystring()
        )
        return ActionResult(
            {
                "SpotPriceHistory": [
                    {
                        "InstanceType": p["InstanceType"],
                        "ProductDescription": "Linux/UNIX",
                        "SpotPrice": SPOT_PRICES.get(p["InstanceType"], "0.00001"),
                        "AvailabilityZone": p["Location"],
                        "Timestamp": "2026-11-01T00:00:00.000Z",
                    }
                    for p in prices
                ]
            }
        )

    SpotInstances.describe_spot_price_history = describe_spot_price_history  # type: ignore[method-assign]

    # moto answers every instance with a canned kernel log; EC2 serves what the machine
    # printed (nothing before it booted). The boot emulator posts each VM's real output.
    from moto.core.types import Base64EncodedString
    from moto.core.utils import utcnow
    from moto.ec2.responses.general import General

    def get_console_output(self: Any) -> Any:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        result: dict[str, Any] = {"InstanceId": instance.id, "Timestamp": utcnow()}
        text = CONSOLE.get(instance.id, "")
        if text:
            result["Output"] = Base64EncodedString.from_raw_string(text)
        return ActionResult(result)

    General.get_console_output = get_console_output  # type: ignore[method-assign]


SPOT_PRICES: dict[str, str] = {}  # instance type -> price per hour, set by a test
CONSOLE: dict[str, str] = {}  # instance id -> its console output, set by the boot emulator


@dataclass
class _Fault:
    code: str
    message: str
    status: int
    times: int  # answered this many times, then gone (ignored when rate is set)
    when: str = ""  # only requests whose body contains this (e.g. "MarketType=spot")
    rate: float = 0.0  # answered to this share of matching requests, at random, until cleared

    def fires(self, body: str, rng: random.Random) -> bool:
        if self.when and self.when not in body:
            return False
        return rng.random() < self.rate if self.rate else True


@dataclass
class FaultInjector:
    app: WsgiApp
    faults: dict[str, deque[_Fault]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(20))  # noqa: S311  (fault dice)
    # Parameters this "older cloud" does not know, by their name in the query
    # (TagSpecification for the SDK's TagSpecifications).
    refused: set[str] = field(default_factory=set)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_glidein/"):
            return self._control(path, environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
        action = (form.get("Action") or [""])[0]
        if action:
            text = urllib.parse.unquote_plus(body.decode("utf-8", errors="replace"))
            with self.lock:
                self.calls[action] += 1
                unknown = sorted(
                    {k.split(".")[0] for k in form} & self.refused,
                )
            if unknown:
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                    f"<Code>UnknownParameter</Code><Message>The parameter {unknown[0]} is "
                    "not recognized</Message></Error></Errors>"
                    "<RequestID>glidein-refused</RequestID></Response>"
                ).encode()
                start_response("400 Bad Request", [("Content-Type", "text/xml")])
                return [xml]
            with self.lock:
                queue = self.faults.get(action, deque())
                fault = next((f for f in queue if f.fires(text, self.rng)), None)
                if fault and not fault.rate:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.remove(fault)
            if fault:
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                    f"<Code>{fault.code}</Code><Message>{fault.message}</Message>"
                    "</Error></Errors><RequestID>glidein-fault</RequestID></Response>"
                ).encode()
                start_response(f"{fault.status} Injected", [("Content-Type", "text/xml")])
                return [xml]
        return self.app(environ, start_response)

    def _control(
        self, path: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        out: Any = {}
        if path == "/_glidein/faults" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            spec = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self.lock:
                self.faults.setdefault(spec["action"], deque()).append(
                    _Fault(
                        spec["code"],
                        spec.get("message", "injected"),
                        int(spec.get("status", 400)),
                        int(spec.get("times", 1)),
                        spec.get("when", ""),
                        float(spec.get("rate", 0.0)),
                    )
                )
        elif path == "/_glidein/refuse" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            with self.lock:
                self.refused = set(json.loads(environ["wsgi.input"].read(length)))
        elif path == "/_glidein/spot-prices" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            SPOT_PRICES.update(json.loads(environ["wsgi.input"].read(length)))
        elif path == "/_glidein/interrupt" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            out = {"interrupted": _interrupt(json.loads(environ["wsgi.input"].read(length)))}
        elif path == "/_glidein/faults" and method == "DELETE":
            with self.lock:
                self.faults.clear()
                self.refused.clear()
        elif path == "/_glidein/calls" and method == "DELETE":
            with self.lock:
                self.calls.clear()
        elif path == "/_glidein/calls":
            with self.lock:
                out = dict(self.calls)
        elif path == "/_glidein/states":
            out = _states()
        elif path == "/_glidein/instances":
            out = _instances()
        elif path == "/_glidein/console" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            spec = json.loads(environ["wsgi.input"].read(length))
            CONSOLE[spec["instance"]] = spec["output"]
        elif path == "/_glidein/shutdown" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            out = {"state": _shutdown(json.loads(environ["wsgi.input"].read(length))["instance"])}
        elif path == "/_glidein/leftovers":
            out = _leftovers()
        elif path == "/_glidein/health":
            out = {"ok": True}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(out).encode()]


def _leftovers() -> dict[str, list[str]]:
    """Instances not terminated, and key pairs, in every region (the leak check)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    machines, pairs = [], []
    for backend in ec2_backends[DEFAULT_ACCOUNT_ID].values():
        for reservation in list(backend.reservations.values()):
            machines += [i.id for i in reservation.instances if i.state != "terminated"]
        pairs += list(backend.key_pairs)
    return {"machines": machines, "keyPairs": pairs}


def _states() -> dict[str, int]:
    """Instances by state, without rendering them all (a benchmark polling DescribeInstances
    at 5,000 instances would be the bottleneck it measures)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    out: dict[str, int] = {}
    for backend in ec2_backends[DEFAULT_ACCOUNT_ID].values():
        for reservation in list(backend.reservations.values()):
            for inst in reservation.instances:
                out[inst.state] = out.get(inst.state, 0) + 1
    return out


def _all_instances() -> Iterator[Any]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    for region, backend in ec2_backends[DEFAULT_ACCOUNT_ID].items():
        for reservation in list(backend.reservations.values()):
            for inst in reservation.instances:
                yield region, inst


def _instances() -> list[dict[str, Any]]:
    """What a hypervisor knows of each instance: state, launch index, user data (base64),
    what to do on shutdown. Read without an API call, so no test's call counts change."""
    out = []
    for region, inst in _all_instances():
        data = inst.user_data
        if isinstance(data, list):
            data = data[0] if data else ""
        out.append(
            {
                "id": inst.id,
                "region": region,
                "state": inst.state,
                "launchIndex": int(inst.ami_launch_index),
                "imageId": inst.image_id,
                "userData": str(data or ""),
                "shutdownBehavior": inst.instance_initiated_shutdown_behavior,
                "httpTokens": inst.metadata_options.http_tokens,
            }
        )
    return out


def _shutdown(instance_id: str) -> str:
    """The machine powered itself off: EC2 terminates it when it was launched with
    InstanceInitiatedShutdownBehavior=terminate, stops it otherwise."""
    from moto.ec2.models.instances import StateReason

    for _region, inst in _all_instances():
        if inst.id == instance_id and inst.state in ("pending", "running"):
            if inst.instance_initiated_shutdown_behavior == "terminate":
                inst.terminate()
            else:
                inst.stop()
            inst.state_reason = StateReason(
                "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
                "Client.InstanceInitiatedShutdown",
            )
            return str(inst.state)
    return ""


def _interrupt(instance_ids: list[str]) -> int:
    """Take spot instances back as AWS does: terminated, reason Server.SpotInstanceTermination."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    n = 0
    for iid in instance_ids:
        inst = backend.get_instance(iid)
        inst.terminate()
        inst.state_reason = StateReason(
            "Server.SpotInstanceTermination: Spot instance termination",
            "Server.SpotInstanceTermination",
        )
        n += 1
    return n


def build_app() -> FaultInjector:
    _patch_moto()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return FaultInjector(DomainDispatcherApplication(create_backend_app))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="moto EC2, AWS-faithful on ClientToken and MaxCount"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, build_app(), threaded=True)
    print(f"ec2 test server on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


class Ec2Server:
    """The server in a subprocess on a free port, for tests and the demo."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._image = ""
        # The suite's leak check (glidein_devkit/leakcheck.py); off where tests start from reset().
        self.check_leaks = True

    def start(self) -> Ec2Server:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "glidein_devkit.ec2server", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError("ec2 test server exited at start")
            try:
                self._get("/_glidein/health")
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("ec2 test server did not start in 30 s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._note_leftovers()
            self._proc.terminate()
            self._proc.wait(10)

    def _get(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")

    def fail(
        self,
        action: str,
        code: str,
        *,
        times: int = 1,
        status: int = 400,
        message: str = "injected",
        when: str = "",
        rate: float = 0.0,
    ) -> None:
        """The next ``times`` calls of ``action`` (those whose parameters contain ``when``)
        answer the error ``code``; with ``rate``, that share of them does, at random, until
        ``clear_faults``."""
        self._get(
            "/_glidein/faults",
            "POST",
            {
                "action": action,
                "code": code,
                "times": times,
                "status": status,
                "message": message,
                "when": when,
                "rate": rate,
            },
        )

    def refuse(self, *parameters: str) -> None:
        """Play an older EC2-compatible cloud that does not know these parameters (by their
        query name: "TagSpecification", "ClientToken", "MetadataOptions"): any call
        carrying one is answered 400 UnknownParameter, until ``clear_faults`` or ``reset``."""
        self._get("/_glidein/refuse", "POST", sorted(parameters))

    def states(self) -> dict[str, int]:
        """How many instances are in each state, all regions."""
        return {k: int(v) for k, v in self._get("/_glidein/states").items()}

    def set_spot_prices(self, prices: dict[str, str]) -> None:
        """What DescribeSpotPriceHistory quotes from now on, by instance type."""
        self._get("/_glidein/spot-prices", "POST", prices)

    def instances(self) -> list[dict[str, Any]]:
        """Every instance as its hypervisor sees it (see ``_instances``)."""
        return list(self._get("/_glidein/instances"))

    def set_console(self, instance_id: str, output: str) -> None:
        self._get("/_glidein/console", "POST", {"instance": instance_id, "output": output})

    def shutdown(self, instance_id: str) -> str:
        """The instance powered itself off; its state afterwards."""
        return str(self._get("/_glidein/shutdown", "POST", {"instance": instance_id})["state"])

    def interrupt(self, instance_ids: list[str]) -> int:
        """Take these spot instances back, as AWS does with two minutes' notice."""
        return int(self._get("/_glidein/interrupt", "POST", instance_ids)["interrupted"])

    def client(self, region: str = "us-east-1") -> Any:
        """A boto3 EC2 client for this server (any credentials are accepted)."""
        import boto3

        return boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106  (the test server accepts any)
        )

    def image_id(self) -> str:
        """The first AMI of moto's catalogue (the same after every reset)."""
        if not self._image:
            self._image = str(
                self.client().describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            )
        return self._image

    def clear_faults(self) -> None:
        """Forget queued faults and refused parameters."""
        self._get("/_glidein/faults", "DELETE")

    def calls(self) -> dict[str, int]:
        return dict(self._get("/_glidein/calls"))

    def _note_leftovers(self) -> None:
        if not self.check_leaks:
            return
        try:
            left = self._get("/_glidein/leftovers")
        except OSError:
            return  # a server a test broke on purpose says nothing
        leakcheck.note("the EC2 test server", left["machines"], left["keyPairs"])

    def reset(self) -> None:
        """Forget every instance, key pair, fault and count."""
        self._note_leftovers()
        self._get("/_glidein/calls", "DELETE")
        self.clear_faults()
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310

    def __enter__(self) -> Ec2Server:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()
