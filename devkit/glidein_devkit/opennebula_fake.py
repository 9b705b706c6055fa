"""A small OpenNebula over XML-RPC, for the real pyone client.

Keeps what the driver uses, the way ``oned`` answers it: ``[ok, result, error code]``
triples, XML documents for VMs and pools, session checks (0x0100 authentication),
missing objects (0x0400), quota refusals. VMs go PENDING -> ACTIVE/RUNNING; a test can
power one off (POWEROFF) or lose its host (ACTIVE/UNKNOWN): the states the seeds say
leave VMs behind, since OpenNebula has no terminate-on-shutdown.

``template.instantiate`` takes the extra template as XML (what pyone sends for nested
dicts); unknown top-level attributes land in USER_TEMPLATE, as in oned.
``vmpool.infoextended`` honours the kv filter on USER_TEMPLATE and both of oned's ways
to take part of the pool (PoolSharedAPI::dump, PoolSQL::oid_filter): with ``end < -1``,
``start`` is an offset and ``-end`` a page size (``LIMIT start,-end``); otherwise, with
``start != -1``, the ids from ``start`` to ``end`` (-1: no end). Ordered by id, ascending,
or descending with ``list_order = "DESC"`` (oned.conf's API_LIST_ORDER).

``latency`` (none by default): a cost per call and per VM in a pool listing, slept
outside the lock, so that a listing of thousands is as slow as a loaded oned's.
"""

from __future__ import annotations

import itertools
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from glidein_devkit import leakcheck
from glidein_devkit.controlplane.cluster import free_port

AUTH, AUTHZ, NO_EXISTS, ACTION = 0x0100, 0x0200, 0x0400, 0x0800
# STATE / LCM_STATE numbers as oned uses them
PENDING, ACTIVE, DONE, POWEROFF = 1, 3, 6, 8
LCM_RUNNING, LCM_UNKNOWN = 3, 16


@dataclass
class Latency:
    """Seconds oned takes: ``base`` per call, ``per_vm`` per VM a pool listing returns
    (each VM's body read from the database and written out as XML)."""

    base: float = 0.0
    per_vm: float = 0.0


@dataclass
class _Vm:
    id: int
    name: str
    template: dict[str, Any]
    user_template: dict[str, str]
    state: int = PENDING
    lcm_state: int = 0
    stime: int = field(default_factory=lambda: int(time.time()))
    etime: int = 0
    polls: int = 0


class FakeOpenNebula:
    def __init__(self, users: dict[str, str] | None = None, vm_quota: int = 10_000) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/RPC2"
        self.users = users or {"glidein": "secret"}
        self.vm_quota = vm_quota
        self.check_leaks = True  # glidein_devkit/leakcheck.py
        self.vms: dict[int, _Vm] = {}
        self.images = {1342: "glidein-el9"}
        self.templates = {42: "glidein-base"}
        self.calls: Counter[str] = Counter()
        # The latest calls with their arguments (session left out), oldest first.
        self.log: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=10_000)
        self.list_order = "ASC"  # oned.conf's API_LIST_ORDER: "ASC" (its default) or "DESC"
        self.latency = Latency()
        self._ids = itertools.count(100)
        self._lock = threading.RLock()
        self._server = SimpleXMLRPCServer(
            ("127.0.0.1", self.port),
            requestHandler=SimpleXMLRPCRequestHandler,
            logRequests=False,
            allow_none=True,
        )
        for name in (
            "template.instantiate",
            "vmpool.infoextended",
            "vmpool.info",
            "vm.info",
            "vm.action",
            "vm.update",
            "image.info",
        ):
            self._server.register_function(self._wrap(name), f"one.{name}")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- programming ------------------------------------------------------------------

    def power_off(self, vm_id: int) -> None:
        with self._lock:
            self.vms[vm_id].state, self.vms[vm_id].lcm_state = POWEROFF, 0

    def lose_host(self, vm_id: int) -> None:
        with self._lock:
            self.vms[vm_id].state, self.vms[vm_id].lcm_state = ACTIVE, LCM_UNKNOWN

    def live(self) -> list[int]:
        with self._lock:
            return [v.id for v in self.vms.values() if v.state != DONE]

    def reset(self) -> None:
        """Forget every VM and call (a leak check first, as ``stop``)."""
        with self._lock:
            if self.check_leaks:
                leakcheck.note("the OpenNebula double", [str(v) for v in self.live()], [])
            self.vms.clear()
            self.calls.clear()
            self.log.clear()

    def start(self) -> FakeOpenNebula:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.check_leaks:
            leakcheck.note("the OpenNebula double", [str(v) for v in self.live()], [])
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenNebula:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- plumbing ---------------------------------------------------------------------

    def _wrap(self, name: str) -> Any:
        method = getattr(self, "_" + name.replace(".", "_"))

        def call(session: str, *args: Any) -> list[Any]:
            with self._lock:
                self.calls[name] += 1
                self.log.append((name, args))
            if self.latency.base:
                time.sleep(self.latency.base)
            user, _, password = str(session).partition(":")
            if self.users.get(user) != password:
                return [False, f"[one.{name}] User couldn't be authenticated, aborting call.", AUTH]
            try:
                return [True, method(*args), 0]
            except _OneError as err:
                return [False, f"[one.{name}] {err.message}", err.code]

        return call

    # --- methods --------------------------------------------------------------------------

    def _template_instantiate(
        self,
        template_id: int,
        name: str,
        hold: bool = False,
        extra: str = "",
        persistent: bool = False,
    ) -> int:
        if template_id not in self.templates:
            raise _OneError(NO_EXISTS, f"Error getting template [{template_id}].")
        with self._lock:
            if len(self.live()) >= self.vm_quota:
                # As oned's Quota::check_quota, prefixed by the user (SharedAPI).
                raise _OneError(
                    AUTHZ, f"User [2] limit of {self.vm_quota} reached for VMS quota in VM"
                )
            tmpl: dict[str, Any] = {}
            user: dict[str, str] = {}
            if extra.strip().startswith("<"):
                root = ET.fromstring(extra)  # noqa: S314  (our own client's request, on loopback)
                for child in root:
                    if len(child):
                        tmpl[child.tag] = {c.tag: (c.text or "") for c in child}
                    elif child.tag in ("CPU", "VCPU", "MEMORY"):
                        tmpl[child.tag] = child.text or ""
                    else:
                        user[child.tag] = child.text or ""
            vm = _Vm(next(self._ids), name, tmpl, user)
            self.vms[vm.id] = vm
            return vm.id

    def _advance(self, vm: _Vm) -> None:
        vm.polls += 1
        if vm.state == PENDING and vm.polls > 1:
            vm.state, vm.lcm_state = ACTIVE, LCM_RUNNING

    def _vmpool_infoextended(self, flt: int, start: int, end: int, state: int, kv: str = "") -> str:
        with self._lock:
            vms = sorted(self.vms.values(), key=lambda v: v.id, reverse=self.list_order == "DESC")
            for v in vms:
                self._advance(v)
            if state == -1:
                vms = [v for v in vms if v.state != DONE]
            elif state >= 0:
                vms = [v for v in vms if v.state == state]
            for cond in filter(None, (kv or "").split("&")):
                key, _, value = cond.partition("=")
                attr = key.removeprefix("USER_TEMPLATE/").removeprefix("VM.USER_TEMPLATE/")
                vms = [v for v in vms if v.user_template.get(attr) == value]
            if end < -1:  # LIMIT start,-end: an offset and a page size
                vms = vms[max(start, 0) : max(start, 0) - end]
            elif start != -1:  # an id range
                vms = [v for v in vms if v.id >= start and (end == -1 or v.id <= end)]
            body = "<VM_POOL>" + "".join(self._xml(v) for v in vms) + "</VM_POOL>"
        if self.latency.per_vm:
            time.sleep(self.latency.per_vm * len(vms))
        return body

    _vmpool_info = _vmpool_infoextended

    def _get(self, vm_id: int) -> _Vm:
        vm = self.vms.get(vm_id)
        if vm is None:
            raise _OneError(NO_EXISTS, f"Error getting virtual machine [{vm_id}].")
        return vm

    def _vm_info(self, vm_id: int, decrypt: bool = False) -> str:
        with self._lock:
            return self._xml(self._get(vm_id))

    def _vm_action(self, action: str, vm_id: int) -> int:
        with self._lock:
            vm = self._get(vm_id)
            if action in ("terminate-hard", "terminate"):
                if vm.state == DONE:
                    raise _OneError(ACTION, f'Error performing action "{action}": Wrong state DONE')
                vm.state, vm.lcm_state, vm.etime = DONE, 0, int(time.time())
            elif action == "poweroff":
                vm.state, vm.lcm_state = POWEROFF, 0
            else:
                raise _OneError(ACTION, f"action {action} not supported by the fake")
            return vm_id

    def _vm_update(self, vm_id: int, template: str, merge: int = 1) -> int:
        # What a VM writes through OneGate (e.g. its boot log) lands in USER_TEMPLATE.
        with self._lock:
            vm = self._get(vm_id)
            for line in template.splitlines():
                key, _, value = line.partition("=")
                if key.strip():
                    vm.user_template[key.strip()] = value.strip().strip('"')
            return vm_id

    def _image_info(self, image_id: int, decrypt: bool = False) -> str:
        if image_id not in self.images:
            raise _OneError(NO_EXISTS, f"Error getting image [{image_id}].")
        return f"<IMAGE><ID>{image_id}</ID><NAME>{self.images[image_id]}</NAME><STATE>1</STATE></IMAGE>"

    @staticmethod
    def _xml(vm: _Vm) -> str:
        def elems(d: dict[str, Any]) -> str:
            out = ""
            for k, v in d.items():
                out += f"<{k}>{elems(v) if isinstance(v, dict) else escape(str(v))}</{k}>"
            return out

        return (
            f"<VM><ID>{vm.id}</ID><UID>2</UID><GID>1</GID><UNAME>glidein</UNAME><GNAME>users</GNAME>"
            f"<NAME>{escape(vm.name)}</NAME><LAST_POLL>0</LAST_POLL><STATE>{vm.state}</STATE>"
            f"<LCM_STATE>{vm.lcm_state}</LCM_STATE><PREV_STATE>0</PREV_STATE><PREV_LCM_STATE>0</PREV_LCM_STATE>"
            f"<RESCHED>0</RESCHED><STIME>{vm.stime}</STIME><ETIME>{vm.etime}</ETIME><DEPLOY_ID></DEPLOY_ID>"
            f"<TEMPLATE>{elems(vm.template)}</TEMPLATE><USER_TEMPLATE>{elems(vm.user_template)}</USER_TEMPLATE>"
            "</VM>"
        )


class _OneError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
