"""2,000 OpenStack pilots: one request from 0 to N servers and back to 0 through the real
driver (openstacksdk) and the controller's wrapper, against the Nova double with its
latency model on: paginated listings (1,000 a page, as Nova's max_limit), a cost per
request and per listed server.

    .venv/bin/python -m tests.benchmarks.openstack_scale [--pilots 2000] [--per-cycle 100]
        [--base 0.03] [--per-listed 0.002] [--per-created 0.002] [--no-latency]
        [--terminate-per-cycle 0] [--user-data 4096] [--tracemalloc]

Reports the time up and down (and reconcile-like cycles), the slowest listing, driver
calls by kind (the operator's metrics), Nova API calls by kind (the double's count), and
peak resident memory of the operator side (VmHWM of this process, started over after
set-up; the double runs in a child process and reports its own). ``--tracemalloc``
adds the peak of Python allocations (it slows openstacksdk down a lot).

Latency defaults: 30 ms a request, 2 ms a listed server (a page of 1,000 takes 2 s, as
Nova's do in deployments of a few thousand instances), 2 ms a server to create.
"""

from __future__ import annotations

import argparse
import multiprocessing.connection
import re
from typing import Any

from glidein_operator.api.cloudentry import OpenStackSettings
from glidein_operator.clouds.openstack import OpenStackDriver
from tests.benchmarks.cloud_ramp import Child, run, show


def serve(conn: multiprocessing.connection.Connection, latency: tuple[float, float, float]) -> None:
    from glidein_devkit.openstack_fake import FakeOpenStack

    with FakeOpenStack() as fake:
        fake.check_leaks = False
        fake.set_latency(*latency)
        conn.send({"auth_url": fake.auth_url, "image": fake.image_id})
        while True:
            command, _args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "reset":
                fake.reset()
                fake.set_latency(*latency)
                conn.send(None)
            elif command == "calls":
                by_kind: dict[str, int] = {}
                for call, n in fake.calls().items():
                    kind = re.sub(r"/os-keypairs/[^/]+", "/os-keypairs/{name}", call)
                    by_kind[kind] = by_kind.get(kind, 0) + n
                conn.send(by_kind)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilots", type=int, default=2000)
    parser.add_argument("--per-cycle", type=int, default=100, help="maxLaunchPerCycle")
    parser.add_argument("--terminate-per-cycle", type=int, default=0, help="0: all at once")
    parser.add_argument("--base", type=float, default=0.03)
    parser.add_argument("--per-listed", type=float, default=0.002)
    parser.add_argument("--per-created", type=float, default=0.002)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--user-data", type=int, default=4096, help="bytes per pilot")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    latency = (0.0, 0.0, 0.0) if args.no_latency else (args.base, args.per_listed, args.per_created)

    def serve_it(conn: multiprocessing.connection.Connection) -> None:
        serve(conn, latency)

    child = Child(serve_it)
    try:
        info: dict[str, Any] = child.info
        settings = OpenStackSettings.model_validate(
            {"authUrl": info["auth_url"], "region": "RegionOne", "projectName": "glidein-project"}
        )

        def make() -> OpenStackDriver:
            return OpenStackDriver(
                "bench",
                settings,
                credentials={"username": "glidein", "password": "secret"},
                operator_id="bench-op",
            )

        print(
            f"OpenStack: 0 -> {args.pilots} -> 0, {args.per_cycle} a cycle, latency "
            f"base/per-listed/per-created = {latency}"
        )
        show(
            run(
                "openstack",
                child,
                make,
                info["image"],
                pilots=args.pilots,
                per_cycle=args.per_cycle,
                terminate_per_cycle=args.terminate_per_cycle,
                user_data_bytes=args.user_data,
                trace=args.tracemalloc,
            )
        )
    finally:
        child.stop()


if __name__ == "__main__":
    main()
