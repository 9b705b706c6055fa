"""The boot emulator for OpenStack: servers that reach ACTIVE on the Nova fake become "VMs"
on this host that run the real ``glidein-pilot`` (as glidein_devkit/boot.py does for EC2).

Each VM gets a folder, the pilot image's base HTCondor configuration (glidein_devkit/
condor_pool.PilotMachine) and a metadata service of its own on 127.0.0.1, serving what
Nova's does under ``/openstack/latest``: the server's user data and ``meta_data.json``
(uuid, name, launch index, metadata, key). A server created with a config drive also gets
one, a folder with the same files (``openstack/latest/...``); every other such server's
pilot is pointed at its drive (``--config-drive``), the rest at the metadata service
(``--metadata-url``), so that both ways are exercised. What the pilot prints becomes the
server's console output (os-getConsoleOutput). When the pilot powers the VM off, the
server goes SHUTOFF and stays, as on OpenStack (no terminate-on-shutdown): the operator
deletes it. Deleting a server pulls the VM's plug. Images listed in ``broken_images`` do
not boot the pilot: the machine prints a kernel panic and powers itself off. Bounded: at
most ``max_vms`` VMs at once, each at most ``max_seconds``; every socket on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from glidein_devkit.boot import BootEmulator, LoopbackServer, Machine, Vm
from glidein_devkit.condor_pool import CondorInstall, PilotMachine
from glidein_devkit.openstack_fake import FakeOpenStack


def openstack_files(server: dict[str, Any], public_keys: dict[str, str]) -> dict[str, bytes]:
    """What Nova's metadata service and config drive hold under ``openstack/latest``."""
    meta = {
        "uuid": server["id"],
        "name": server["name"],
        "hostname": server["name"],
        "launch_index": server.get("OS-EXT-SRV-ATTR:launch_index", 0),
        "availability_zone": "nova",
        "project_id": server.get("tenant_id", ""),
        "meta": dict(server.get("metadata") or {}),
        "public_keys": public_keys,
        "keys": [{"name": k, "type": "ssh", "data": v} for k, v in public_keys.items()],
        "devices": [],
    }
    files = {"meta_data.json": json.dumps(meta).encode()}
    user_data = server.get("OS-EXT-SRV-ATTR:user_data")
    if user_data:  # Nova serves no user_data file for a server launched without
        files["user_data"] = base64.b64decode(user_data)
    return files


class NovaMetadata(LoopbackServer):
    """Nova's metadata service for one server: GET ``/openstack/latest/<file>``. Anything
    else (the pilot's EC2 attempt first: PUT ``/latest/api/token``) is a quick 404."""

    def __init__(self, files: dict[str, bytes]) -> None:
        paths = {f"/openstack/latest/{name}": body for name, body in files.items()}
        paths["/openstack/latest"] = "\n".join(sorted(files)).encode()

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                body = paths.get(self.path.rstrip("/"))
                self._send(200, body) if body is not None else self._send(404, b"")

            def do_PUT(self) -> None:
                self._send(404, b"")

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


class OpenStackBootEmulator(BootEmulator):
    """Nova: a metadata service per VM and, for servers launched with one, a config drive
    (every other such pilot reads the drive, the rest the service); power-off leaves the
    server SHUTOFF, as Nova does, for the operator to reap."""

    def __init__(
        self, nova: FakeOpenStack, install: CondorInstall, folder: Path, **kw: Any
    ) -> None:
        super().__init__(install, folder, **kw)
        self.nova = nova
        self.sources: dict[str, str] = {}  # server id -> "metadata" / "drive"
        self.shut_off: list[str] = []  # servers their own pilot powered off
        self._preamble: dict[str, str] = {}

    def machines(self) -> list[Machine]:
        st = self.nova.state
        with st.lock:
            servers = {sid: dict(s) for sid, s in st.servers.items()}
            keys = {name: str(kp.get("public_key", "")) for name, kp in st.keypairs.items()}
        return [
            Machine(sid, s["status"] == "ACTIVE", {"server": s, "keys": keys})
            for sid, s in servers.items()
        ]

    def boot(self, m: Machine) -> Vm:
        server, keys = m.info["server"], m.info["keys"]
        key = server.get("key_name")
        files = openstack_files(server, {key: keys.get(key, "")} if key else {})
        metadata = NovaMetadata(files)
        machine = PilotMachine(self.install, self.folder / m.key, str(server["name"]))
        machine.prepare()
        drive = machine.folder / "config-2"
        if server.get("config_drive"):
            latest = drive / "openstack" / "latest"
            latest.mkdir(parents=True, exist_ok=True)
            for name, body in files.items():
                (latest / name).write_bytes(body)
        self._preamble[m.key] = str(server.get("_console", ""))
        use_drive = bool(server.get("config_drive")) and len(self.vms) % 2 == 1
        self.sources[m.key] = "drive" if use_drive else "metadata"
        where = ("--config-drive", str(drive)) if use_drive else ()
        vm = Vm(m.key, machine, time.monotonic(), metadata)
        image = str((server.get("image") or {}).get("id"))
        return self.boot_pilot(vm, image, ("--metadata-url", metadata.url, *where))

    def powered_off(self, vm: Vm) -> None:
        with contextlib.suppress(KeyError):  # deleted meanwhile
            self.nova.shut_off(vm.instance_id)
            self.shut_off.append(vm.instance_id)

    def publish_console(self, vm: Vm) -> None:
        with contextlib.suppress(OSError):
            text = vm.machine.boot_log.read_text(errors="replace")
            if text != vm.console:
                self.nova.set_console(vm.instance_id, self._preamble[vm.instance_id] + text)
                vm.console = text
