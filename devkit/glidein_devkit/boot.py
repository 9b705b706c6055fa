"""The boot emulator: instances that reach running on the EC2 test server become "VMs"
on this host that run the real ``glidein-pilot``.

Each VM gets a folder, the pilot image's base HTCondor configuration (glidein_devkit/
condor_pool.PilotMachine) and an IMDSv2 of its own on 127.0.0.1, serving the instance's
user data, AMI launch index and id (token PUT first, as EC2 requires); the pilot is
pointed at it through ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, the AWS tools' standard
override. An older EC2-compatible cloud's metadata service, without session tokens
(``imds_v2=False``), refuses the token PUT (405) and serves plain GETs. What the pilot prints becomes the instance's console output. When the pilot
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
from typing import Any, Self

from glidein_devkit.condor_pool import CondorInstall, PilotMachine
from glidein_devkit.ec2server import Ec2Server


class LoopbackServer:
    """An HTTP service of a cloud's (metadata, OneGate) on 127.0.0.1, a free port, served
    from a daemon thread until ``stop``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Imds(LoopbackServer):
    """IMDSv2 for one instance: PUT /latest/api/token, then GETs with that token.

    ``tokens``: "required" (IMDSv2 only, as the operator launches on AWS), "optional"
    (both, AWS's default), or "absent" (an older cloud's IMDSv1: the token PUT is answered
    ``refusal``, 405 or 404 as such clouds do, and plain GETs are served)."""

    def __init__(
        self,
        instance_id: str,
        launch_index: int,
        user_data: bytes,
        *,
        tokens: str = "required",
        refusal: int = 405,
    ) -> None:
        assert tokens in ("required", "optional", "absent"), tokens
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
                if tokens == "absent":
                    self._send(refusal, b"")
                    return
                if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(400, b"")
                    return
                self._send(200, token.encode())

            def do_GET(self) -> None:
                sent = self.headers.get("X-aws-ec2-metadata-token")
                if tokens == "required" and sent != token:
                    self._send(401, b"")  # IMDSv2 only, like the instances we launch
                    return
                if tokens == "optional" and sent is not None and sent != token:
                    self._send(401, b"")  # a wrong token is refused even where v1 works
                    return
                body = paths.get(self.path)
                self._send(200, body) if body is not None else self._send(404, b"")

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


@dataclass
class Vm:
    instance_id: str
    machine: PilotMachine
    booted: float
    service: LoopbackServer | None = None  # the metadata service it reads, if any
    console: str = ""
    gone: bool = False


@dataclass
class Machine:
    """One instance as its hypervisor sees it: running or not, and what to boot it with."""

    key: str
    running: bool
    info: dict[str, Any]


@dataclass
class BootEmulator:
    """The loop every cloud's emulator shares: boot a VM for each instance that reaches
    running, publish its console, map its power-off to the cloud, pull the plug when the
    cloud ends it, and keep within ``max_vms`` and ``max_seconds``. Subclasses say how to
    see the cloud's machines (``machines``), boot one (``boot``), what the cloud does when
    one powers itself off (``powered_off``) and how its console is published."""

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

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        self._thread = threading.Thread(target=self._run, name="boot", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        for vm in self.vms.values():
            self._power_cut(vm)

    def __enter__(self) -> Self:
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
        seen: dict[str, Machine] = {}
        for m in self.machines():
            seen[m.key] = m
            if m.key not in self.vms and m.running and len(self.alive) < self.max_vms:
                self.vms[m.key] = self.boot(m)
        for key, vm in list(self.vms.items()):
            if vm.gone:
                continue
            self.publish_console(vm)
            found = seen.get(key)
            if found is None or not found.running:
                self._power_cut(vm)  # ended (or stopped) from outside
            elif vm.machine.powered_off:
                self._power_cut(vm)
                self.powered_off(vm)
            elif now - vm.booted > self.max_seconds:
                self._power_cut(vm)
                self.errors.append(f"{key} ran past {self.max_seconds:.0f}s")

    def boot_pilot(
        self,
        vm: Vm,
        image: str,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Vm:
        """Start the real pilot on ``vm`` (or, from a broken image, a boot that panics)."""
        if image in self.broken_images:
            vm.machine.crash_at_boot("Kernel panic - not syncing: VFS: Unable to mount root fs")
        else:
            vm.machine.boot(None, extra_args=(*self.pilot_args, *extra_args), env=env)
        return vm

    def machines(self) -> list[Machine]:
        raise NotImplementedError

    def boot(self, m: Machine) -> Vm:
        raise NotImplementedError

    def powered_off(self, vm: Vm) -> None:
        """What the cloud does when the machine powers itself off."""
        raise NotImplementedError

    def publish_console(self, vm: Vm) -> None:
        """Make what the machine printed its console output (where the cloud keeps one)."""

    def _power_cut(self, vm: Vm) -> None:
        if vm.gone:
            return
        vm.gone = True
        self.publish_console(vm)
        vm.machine.stop()
        if vm.service:
            vm.service.stop()


class Ec2BootEmulator(BootEmulator):
    """EC2: IMDSv2 per VM (tokens required or optional, as the instance was launched;
    ``imds_v2=False``: an older cloud's IMDSv1); power-off terminates or stops as the
    instance was launched."""

    def __init__(
        self,
        ec2: Ec2Server,
        install: CondorInstall,
        folder: Path,
        *,
        imds_v2: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(install, folder, **kw)
        self.ec2 = ec2
        self.imds_v2 = imds_v2

    def machines(self) -> list[Machine]:
        return [Machine(str(i["id"]), i["state"] == "running", i) for i in self.ec2.instances()]

    def boot(self, m: Machine) -> Vm:
        user_data = base64.b64decode(str(m.info["userData"]) or "")
        tokens = str(m.info.get("httpTokens") or "optional") if self.imds_v2 else "absent"
        imds = Imds(m.key, int(str(m.info["launchIndex"])), user_data, tokens=tokens)
        machine = PilotMachine(self.install, self.folder / m.key, m.key)
        vm = Vm(m.key, machine, time.monotonic(), imds)
        return self.boot_pilot(
            vm, str(m.info.get("imageId")), env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        )

    def powered_off(self, vm: Vm) -> None:
        self.ec2.shutdown(vm.instance_id)

    def publish_console(self, vm: Vm) -> None:
        with contextlib.suppress(OSError):
            text = vm.machine.boot_log.read_text(errors="replace")
            if text != vm.console:
                self.ec2.set_console(vm.instance_id, text)
                vm.console = text
