"""The boot emulator: instances that reach running on the EC2 test server become "VMs"
on this host that run the real ``glidein-pilot``.

Each VM gets a folder, the pilot image's base HTCondor configuration (testing/
condor_pool.PilotMachine) and an IMDSv2 of its own on 127.0.0.1, serving the instance's
user data, AMI launch index and id (token PUT first, as EC2 requires); the pilot is
pointed at it through ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, the AWS tools' standard
override. What the pilot prints becomes the instance's console output. When the pilot
powers the VM off, EC2 does what the instance was launched for: terminate (the operator's
InstanceInitiatedShutdownBehavior) or stop. Terminating an instance pulls the VM's plug.
Images listed in ``broken_images`` do not boot the pilot: the machine prints a kernel
panic and powers itself off, as a VM from a bad image does. Bounded: at most ``max_vms``
VMs at once, each at most ``max_seconds``; every socket on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from glidein_operator.testing.condor_pool import CondorInstall, PilotMachine
from glidein_operator.testing.ec2server import Ec2Server


class Imds:
    """IMDSv2 for one instance: PUT /latest/api/token, then GETs with that token."""

    def __init__(self, instance_id: str, launch_index: int, user_data: bytes) -> None:
        token = secrets.token_urlsafe(24)
        paths = {
            "/latest/user-data": user_data,
            "/latest/meta-data/ami-launch-index": str(launch_index).encode(),
            "/latest/meta-data/instance-id": instance_id.encode(),
        }

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(400, b"")
                    return
                self._send(200, token.encode())

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != token:
                    self._send(401, b"")  # IMDSv2 only, like the instances we launch
                    return
                body = paths.get(self.path)
                self._send(200, body) if body is not None else self._send(404, b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Vm:
    instance_id: str
    machine: PilotMachine
    imds: Imds
    booted: float
    console: str = ""
    gone: bool = False


@dataclass
class Ec2BootEmulator:
    """Boots a VM for every running instance of ``ec2``, in a thread, until stopped."""

    ec2: Ec2Server
    install: CondorInstall
    folder: Path
    max_vms: int = 40
    max_seconds: float = 1800.0
    interval: float = 0.5
    pilot_args: tuple[str, ...] = ("--interval", "2")
    broken_images: frozenset[str] = frozenset()
    vms: dict[str, Vm] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Ec2BootEmulator:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        self._thread = threading.Thread(target=self._run, name="ec2-boot", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        for vm in self.vms.values():
            self._power_cut(vm)

    def __enter__(self) -> Ec2BootEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> list[Vm]:
        return [vm for vm in self.vms.values() if not vm.gone]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # a test reads these; the loop must go on
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def tick(self) -> None:
        now = time.monotonic()
        for inst in self.ec2.instances():
            vm = self.vms.get(inst["id"])
            if vm is None:
                if inst["state"] == "running" and len(self.alive) < self.max_vms:
                    self.vms[inst["id"]] = self._boot(inst)
                continue
            if vm.gone:
                continue
            self._publish_console(vm)
            if inst["state"] not in ("pending", "running"):
                self._power_cut(vm)  # terminated or stopped from outside
            elif vm.machine.powered_off:
                self._power_cut(vm)
                self.ec2.shutdown(vm.instance_id)
            elif now - vm.booted > self.max_seconds:
                self._power_cut(vm)
                self.errors.append(f"{vm.instance_id} ran past {self.max_seconds:.0f}s")

    def _boot(self, inst: dict[str, object]) -> Vm:
        iid = str(inst["id"])
        user_data = base64.b64decode(str(inst["userData"]) or "")
        imds = Imds(iid, int(str(inst["launchIndex"])), user_data)
        machine = PilotMachine(self.install, self.folder / iid, iid)
        if str(inst.get("imageId")) in self.broken_images:
            machine.crash_at_boot("Kernel panic - not syncing: VFS: Unable to mount root fs")
        else:
            machine.boot(
                None,
                extra_args=self.pilot_args,
                env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url},
            )
        return Vm(iid, machine, imds, time.monotonic())

    def _publish_console(self, vm: Vm) -> None:
        with contextlib.suppress(OSError):
            text = vm.machine.boot_log.read_text(errors="replace")
            if text != vm.console:
                self.ec2.set_console(vm.instance_id, text)
                vm.console = text

    def _power_cut(self, vm: Vm) -> None:
        if vm.gone:
            return
        vm.gone = True
        self._publish_console(vm)
        vm.machine.stop()
        vm.imds.stop()
