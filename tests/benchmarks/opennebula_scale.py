"""2,000 OpenNebula pilots: one request from 0 to N VMs and back to 0 through the real
driver (pyone, XML-RPC) and the controller's wrapper, against the OpenNebula double:
``one.vmpool.infoextended`` paged by offset (500 a page, the driver's), one
``template.instantiate`` per VM (OpenNebula has no multi-create), one
``vm.action terminate-hard`` per VM.

    .venv/bin/python -m tests.benchmarks.opennebula_scale [--pilots 2000] [--per-cycle 100]
        [--base 0.005] [--per-vm 0.0005] [--no-latency] [--terminate-per-cycle 0]
        [--user-data 4096] [--tracemalloc]

Reports as tests/benchmarks/openstack_scale.py: time up and down, cycles, the slowest
listing, driver calls by kind, XML-RPC calls by method, peak resident memory of the
operator side (the double runs in a child process).

Latency defaults: 5 ms a call, 0.5 ms a listed VM (oned reads each VM's body from its
database and writes it out as XML).
"""

from __future__ import annotations

import argparse
import multiprocessing.connection
from typing import Any

from glidein_operator.api.cloudentry import OpenNebulaSettings
from glidein_operator.clouds.opennebula import OpenNebulaDriver
from tests.benchmarks.cloud_ramp import Child, run, show


def serve(conn: multiprocessing.connection.Connection, latency: tuple[float, float]) -> None:
    from glidein_devkit.opennebula_fake import FakeOpenNebula, Latency

    with FakeOpenNebula() as fake:
        fake.check_leaks = False
        fake.latency = Latency(*latency)
        conn.send({"endpoint": fake.endpoint, "image": "1342"})
        while True:
            command, _args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "reset":
                fake.reset()
                conn.send(None)
            elif command == "calls":
                conn.send(dict(fake.calls))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilots", type=int, default=2000)
    parser.add_argument("--per-cycle", type=int, default=100, help="maxLaunchPerCycle")
    parser.add_argument("--terminate-per-cycle", type=int, default=0, help="0: all at once")
    parser.add_argument("--base", type=float, default=0.005)
    parser.add_argument("--per-vm", type=float, default=0.0005)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--user-data", type=int, default=4096, help="bytes per pilot")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    latency = (0.0, 0.0) if args.no_latency else (args.base, args.per_vm)

    def serve_it(conn: multiprocessing.connection.Connection) -> None:
        serve(conn, latency)

    child = Child(serve_it)
    try:
        info: dict[str, Any] = child.info
        settings = OpenNebulaSettings.model_validate(
            {"endpoint": info["endpoint"], "templateId": 42}
        )

        def make() -> OpenNebulaDriver:
            return OpenNebulaDriver(
                "bench", settings, username="glidein", password="secret", operator_id="bench-op"
            )

        print(
            f"OpenNebula: 0 -> {args.pilots} -> 0, {args.per_cycle} a cycle, latency "
            f"base/per-vm = {latency}"
        )
        show(
            run(
                "opennebula",
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
