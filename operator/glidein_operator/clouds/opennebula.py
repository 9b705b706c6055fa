"""OpenNebula VMs through pyone (XML-RPC).

OpenNebula has no metadata server: the contextualization payload travels in the CONTEXT
section (base64 ``USER_DATA``), which OpenNebula hands the VM on its context disk.
Ownership marks are attributes of the VM's USER_TEMPLATE, written in the same
``template.instantiate`` call. There is no multi-create and no client token, so each VM
is named ``glidein-{key}-{index}`` and a batch lists what exists before creating only
the missing ones.

No terminate-on-shutdown either: a pilot that powers off leaves a POWEROFF VM, and a VM
whose host vanished sits in ACTIVE/UNKNOWN; both are reported SHUTDOWN so the controller
reaps them. There is no console API; a pilot posts its boot log through OneGate into
``GLIDEIN_BOOT_LOG`` of its USER_TEMPLATE, which ``console_log`` returns.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import xmlrpc.client
from collections.abc import Sequence
from typing import Any
from xml.parsers.expat import ExpatError

import pyone
import requests

from glidein_operator.api.cloudentry import OpenNebulaSettings
from glidein_operator.clouds.base import (
    AuthError,
    DriverError,
    InvalidConfig,
    NotFound,
    QuotaExceeded,
    Unavailable,
    for_http_status,
)
from glidein_operator.ground import CloudPilot, LaunchBatch, PilotState, Tag, price_from_tags

ATTR = {
    "operator": "GLIDEIN_OPERATOR",
    "entry": "GLIDEIN_ENTRY",
    "request_uid": "GLIDEIN_REQUEST_UID",
    "request": "GLIDEIN_REQUEST",
    "batch": "GLIDEIN_BATCH",
    "pilot_id": "GLIDEIN_PILOT_ID",
    "instance_type": "GLIDEIN_INSTANCE_TYPE",
    # The hourly price it was launched at, as EC2's tag: a later price change in the
    # CloudEntry does not rewrite its history.
    "price": "GLIDEIN_PRICE_PER_HOUR",
}
BOOT_LOG = "GLIDEIN_BOOT_LOG"
# OpenNebula sets no limit of its own on USER_DATA, but it keeps CONTEXT in the VM's
# template for the VM's whole life and sends it back in every listing (infoextended
# returns whole templates): a bound of ours, Nova's, keeps listings of thousands of VMs
# small and refuses a payload gone wrong before a VM is made with it.
USER_DATA_LIMIT = 65535  # bytes of base64

# VM STATE and LCM_STATE numbers (OpenNebula's VirtualMachine::VmState / LcmState)
_PENDING_STATES = {0, 1, 2, 10}  # INIT, PENDING, HOLD, CLONING
POWEROFF = 8
_SHUTDOWN_STATES = {4, 5, POWEROFF, 9}  # STOPPED, SUSPENDED, POWEROFF, UNDEPLOYED
_DONE, _ACTIVE, _CLONING_FAILURE = 6, 3, 11
_LCM_RUNNING, _LCM_UNKNOWN = 3, 16
_LCM_FAILURES = {36, 37, 38, 39, 40, 41, 44, 46, 47, 48, 50, 61}
STATE_NAMES = {
    0: "INIT",
    1: "PENDING",
    2: "HOLD",
    3: "ACTIVE",
    4: "STOPPED",
    5: "SUSPENDED",
    6: "DONE",
    8: "POWEROFF",
    9: "UNDEPLOYED",
    10: "CLONING",
    11: "CLONING_FAILURE",
}


# Seconds. OpenNebula answers an XML-RPC call in well under a second, a large listing in a few.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0


class _Transport(xmlrpc.client.Transport):
    """pyone's XML-RPC transport (requests, one POST per call), with timeouts. pyone's own
    ``timeout`` does not reach its requests: it sets the process-wide socket default
    (``socket.setdefaulttimeout``), which every other client in the operator would
    inherit, and a silent endpoint would still hold a call far longer than wanted."""

    def __init__(self, endpoint: str, connect_timeout: float, read_timeout: float) -> None:
        super().__init__()
        self._scheme = "https" if endpoint.startswith("https") else "http"
        self._timeout = (connect_timeout, read_timeout)

    def request(
        self,
        host: Any,
        handler: str,
        request_body: Any,
        verbose: bool = False,
    ) -> tuple[Any, ...]:
        url = f"{self._scheme}://{host}/{handler.lstrip('/')}"
        response = requests.post(
            url,
            data=request_body,
            headers={"Content-Type": "text/xml", "Accept": "*/*"},
            timeout=self._timeout,
        )
        try:
            response.raise_for_status()
        except requests.RequestException as exc:
            raise xmlrpc.client.ProtocolError(
                url, response.status_code, str(exc), dict(response.headers)
            ) from exc
        parser, unmarshaller = self.getparser()
        parser.feed(response.content)
        parser.close()
        result: tuple[Any, ...] = unmarshaller.close()
        return result


def pilot_state(state: int, lcm: int) -> PilotState:
    if state == _DONE:
        return PilotState.TERMINATED
    if state in _PENDING_STATES:
        return PilotState.PENDING
    if state in _SHUTDOWN_STATES:
        return PilotState.SHUTDOWN
    if state == _CLONING_FAILURE:
        return PilotState.ERROR
    if state == _ACTIVE:
        if lcm == _LCM_RUNNING:
            return PilotState.RUNNING
        if lcm == _LCM_UNKNOWN:
            return PilotState.SHUTDOWN  # host lost: the VM will not come back by itself
        if lcm in _LCM_FAILURES:
            return PilotState.ERROR
        return PilotState.PENDING  # PROLOG, BOOT, ...
    return PilotState.UNKNOWN


def map_sdk_error(exc: BaseException, entry: str) -> DriverError | None:
    """pyone's exceptions (OpenNebula's error codes, and the XML-RPC faults it turns into
    them), the endpoint's HTTP errors and socket errors -> the domain taxonomy; None for
    anything else."""
    if isinstance(exc, pyone.OneException):
        text = str(exc)
        if "quota" in text.lower():
            return QuotaExceeded(text, entry=entry)
        if isinstance(exc, pyone.OneAuthenticationException | pyone.OneAuthorizationException):
            return AuthError(text, entry=entry)
        if isinstance(exc, pyone.OneNoExistsException):
            return NotFound(text, entry=entry)
        if isinstance(exc, pyone.OneInternalException):
            return Unavailable(text, entry=entry)
        return InvalidConfig(text, entry=entry)
    if isinstance(exc, xmlrpc.client.Fault):  # pyone turns these into OneException
        return InvalidConfig(f"OpenNebula: {exc.faultString}", entry=entry)
    if isinstance(exc, xmlrpc.client.ProtocolError):  # an HTTP error status (_Transport)
        return for_http_status(
            exc.errcode, f"OpenNebula endpoint answered {exc.errcode}: {exc.errmsg}", entry
        )
    if isinstance(exc, xmlrpc.client.ResponseError | ExpatError):
        return Unavailable(f"OpenNebula's answer is not XML-RPC: {exc}", entry=entry)
    if isinstance(exc, OSError):  # refused, reset, timed out (requests' errors are OSErrors)
        return Unavailable(f"OpenNebula unreachable: {exc}", entry=entry)
    return None


class OpenNebulaDriver:
    def __init__(
        self,
        entry: str,
        settings: OpenNebulaSettings,
        *,
        username: str,
        password: str,
        operator_id: str,
        page_size: int = 500,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.entry = entry
        self.settings = settings
        self.operator_id = operator_id
        self.page_size = page_size
        # XML-RPC whatever ONEAPI_PROTOCOL says: the endpoint is an XML-RPC one, and so is
        # the error handling here. No ``timeout``: see _Transport.
        self._one = pyone.OneServer(
            settings.endpoint, session=f"{username}:{password}", protocol="xmlrpc"
        )
        # ServerProxy keeps its transport in a private attribute and pyone passes its own
        # to the constructor: replacing it afterwards is the only way in.
        if not hasattr(self._one, "_ServerProxy__transport"):
            raise InvalidConfig("pyone's XML-RPC client changed shape", entry=entry)
        self._one._ServerProxy__transport = _Transport(
            settings.endpoint, connect_timeout, read_timeout
        )

    def map_error(self, exc: BaseException) -> DriverError | None:
        return map_sdk_error(exc, self.entry)

    def _vms(self, batch: str | None = None) -> list[Any]:
        kv = f"USER_TEMPLATE/{ATTR['operator']}={self.operator_id}&USER_TEMPLATE/{ATTR['entry']}={self.entry}"
        if batch:
            kv += f"&USER_TEMPLATE/{ATTR['batch']}={batch}"
        out: list[Any] = []
        offset = 0
        while True:
            pool = self._one.vmpool.infoextended(-2, offset, -self.page_size, -1, kv)
            page = list(pool.VM or [])
            out += page
            if len(page) < self.page_size:
                return out
            offset += self.page_size

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        encoded = 4 * ((len(batch.user_data) + 2) // 3)
        if encoded > USER_DATA_LIMIT:
            raise InvalidConfig(
                f"user data is {encoded} bytes in base64; OpenNebula entries take at most "
                f"{USER_DATA_LIMIT}",
                entry=self.entry,
            )
        if not batch.image_id:
            raise InvalidConfig("no image id for an OpenNebula launch", entry=self.entry)
        existing = {self._pilot(vm).pilot_id: vm for vm in self._vms(batch.key)}
        for index in range(batch.count):
            pilot_id = batch.pilot_id(index)
            if pilot_id in existing:
                continue
            self._one.template.instantiate(
                self.settings.template_id,
                f"glidein-{pilot_id}",
                False,
                {"TEMPLATE": self._template(batch, pilot_id)},
                False,
            )
        return [self._pilot(vm) for vm in self._vms(batch.key)]

    def _template(self, batch: LaunchBatch, pilot_id: str) -> dict[str, Any]:
        shape = batch.shape
        tmpl: dict[str, Any] = {
            "CPU": str(shape.cpus),
            "VCPU": str(shape.cpus),
            "MEMORY": str(shape.memory_mb),
            "DISK": {"IMAGE_ID": str(batch.image_id)},
            "CONTEXT": {
                "NETWORK": "YES",
                "USERDATA_ENCODING": "base64",
                "USER_DATA": base64.b64encode(batch.user_data).decode(),
                "GLIDEIN_PILOT_ID": pilot_id,
                "TOKEN": "YES",  # OneGate token, for the boot log
            },
            ATTR["operator"]: self.operator_id,
            ATTR["entry"]: self.entry,
            ATTR["request_uid"]: batch.request_uid,
            ATTR["request"]: batch.request,
            ATTR["batch"]: batch.key,
            ATTR["pilot_id"]: pilot_id,
            ATTR["instance_type"]: shape.name,
        }
        price = batch.tags().get(Tag.PRICE)
        if price is not None:
            tmpl[ATTR["price"]] = price
        if self.settings.network_ids:
            tmpl["NIC"] = {"NETWORK_ID": str(self.settings.network_ids[0])}
        return tmpl

    def list_pilots(self) -> list[CloudPilot]:
        return [self._pilot(vm) for vm in self._vms()]

    def _pilot(self, vm: Any) -> CloudPilot:
        user = dict(vm.USER_TEMPLATE or {})  # an OrderedDict of the attributes
        state, lcm = int(vm.STATE), int(vm.LCM_STATE)
        pilot_id = user.get(ATTR["pilot_id"]) or re.sub(r"^glidein-", "", str(vm.NAME))
        return CloudPilot(
            pilot_id=pilot_id,
            cloud_id=str(vm.ID),
            entry=user.get(ATTR["entry"], self.entry),
            request_uid=user.get(ATTR["request_uid"], ""),
            batch=user.get(ATTR["batch"], ""),
            instance_type=user.get(ATTR["instance_type"], ""),
            state=pilot_state(state, lcm),
            launched_at=dt.datetime.fromtimestamp(int(vm.STIME), dt.UTC) if vm.STIME else None,
            raw_state=f"{STATE_NAMES.get(state, state)}/{lcm}",
            # The operator never powers a VM off, it terminates: POWEROFF is the guest's
            # own. OpenNebula does not say when in the VM's body (the judgement of pilots
            # that ended unregistered then goes by the launch time).
            shut_itself_down=state == POWEROFF,
            price_per_hour=price_from_tags({Tag.PRICE: user.get(ATTR["price"], "")}),
        )

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        for p in pilots:
            if p.state is PilotState.TERMINATED:
                continue
            try:
                self._one.vm.action("terminate-hard", int(p.cloud_id))
            except pyone.OneNoExistsException:
                continue  # gone already: done
            except pyone.OneActionException as exc:
                if "DONE" not in str(exc):  # DONE: ended already, done too
                    raise

    def console_log(self, pilot: CloudPilot) -> str:
        try:
            vm = self._one.vm.info(int(pilot.cloud_id))
        except pyone.OneNoExistsException:
            return ""
        user = dict(vm.USER_TEMPLATE or {})  # an OrderedDict of the attributes
        text = user.get(BOOT_LOG, "")
        try:
            return base64.b64decode(text).decode("utf-8", errors="replace") if text else ""
        except ValueError:
            return str(text)

    def image_exists(self, image_id: str) -> bool:
        try:
            number = int(image_id)
        except ValueError:
            return False  # OpenNebula's images are numbered: no such image
        try:
            self._one.image.info(number)
        except pyone.OneNoExistsException:
            return False
        return True

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        return 0  # a batch leaves nothing but its pilots here

    def leftovers(self) -> list[str]:
        return []  # no key pairs: SSH keys travel in CONTEXT, with the VM
