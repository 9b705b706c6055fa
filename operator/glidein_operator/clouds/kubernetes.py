"""Pilots as pods, on this cluster or another one (GlideinWMS has no such entry).

A pod per pilot, named ``glidein-{batch key}-{index}`` so a retry after a crash finds the
pod instead of making a second (409 AlreadyExists is success). Resources come from the
instance type; the contextualization payload sits in one Secret per batch, mounted
read-only, deleted once no pod of the batch is left.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from glidein_operator.api.cloudentry import KubernetesSettings
from glidein_operator.clouds.base import (
    DriverError,
    QuotaExceeded,
    Unavailable,
    for_http_status,
    old_enough,
)
from glidein_operator.ground import ALIVE_STATES, CloudPilot, LaunchBatch, PilotState, Tag

PAYLOAD_KEY = "user-data"
_IMAGE_ERRORS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
}


def map_sdk_error(exc: BaseException, entry: str) -> DriverError | None:
    """The API server's refusals (ApiException) and the transport's errors (urllib3,
    sockets) -> the domain taxonomy; None for anything else, the client's own ApiTypeError
    and ApiValueError included (arguments of ours it refused: a bug)."""
    if isinstance(exc, ApiException):
        text = f"{exc.status} {exc.reason}: {_message(exc)}"
        if exc.status == 403 and ("exceeded quota" in text or "forbidden: exceeded" in text):
            return QuotaExceeded(text, entry=entry)
        if exc.status == 403 and "error looking up service account" in text:
            # A namespace younger than its service-account controller: it passes.
            return Unavailable(text, entry=entry)
        return for_http_status(int(exc.status or 0), text, entry)
    if isinstance(exc, HTTPError | OSError):
        return Unavailable(f"Kubernetes API unreachable: {exc}", entry=entry)
    return None


def _message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message", ""))
    except ValueError:
        return str(exc.body or "")[:500]


def api_client(kubeconfig_text: str) -> k8s.ApiClient:
    """A client from a kubeconfig (a Secret's content): another cluster's, so a client of
    its own. The operator's own cluster (an ``in-cluster`` credential) is reached through
    the process's one client (``Runtime.client``), never a second one loaded here."""
    import yaml

    return k8s_config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))


def _label_value(text: str) -> str:
    return text[:63].strip("-.")


class KubernetesDriver:
    def __init__(
        self,
        entry: str,
        settings: KubernetesSettings,
        *,
        api: k8s.ApiClient,
        operator_id: str,
        page_size: int = 500,
    ) -> None:
        self.entry = entry
        self.settings = settings
        self.operator_id = operator_id
        self.page_size = page_size
        self._core = k8s.CoreV1Api(api)

    def map_error(self, exc: BaseException) -> DriverError | None:
        return map_sdk_error(exc, self.entry)

    def _selector(self, extra: dict[str, str] | None = None) -> str:
        labels = {Tag.OPERATOR: _label_value(self.operator_id), Tag.ENTRY: _label_value(self.entry)}
        labels.update(extra or {})
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        ns = self.settings.namespace
        labels = {
            Tag.OPERATOR: _label_value(self.operator_id),
            Tag.ENTRY: _label_value(self.entry),
            Tag.REQUEST_UID: _label_value(batch.request_uid),
            Tag.BATCH: _label_value(batch.key),
            Tag.INSTANCE_TYPE: _label_value(batch.shape.name),
        }
        secret_name = f"glidein-{batch.key}"[:253]
        self._create(
            lambda: self._core.create_namespaced_secret(
                ns,
                k8s.V1Secret(
                    metadata=k8s.V1ObjectMeta(name=secret_name, labels=labels),
                    type="Opaque",
                    data={PAYLOAD_KEY: base64.b64encode(batch.user_data).decode()},
                ),
            )
        )
        out = []
        for index in range(batch.count):
            pod = self._pod(batch, index, labels, secret_name)
            name = pod.metadata.name
            created = self._create(lambda pod=pod: self._core.create_namespaced_pod(ns, pod))
            if created is None:  # a retry: the pod is already there
                created = self._core.read_namespaced_pod(name, ns)
            out.append(self._pilot(created))
        return out

    @staticmethod
    def _create(call: Any) -> Any:
        try:
            return call()
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def _pod(
        self, batch: LaunchBatch, index: int, labels: dict[str, str], secret: str
    ) -> k8s.V1Pod:
        s, shape = self.settings, batch.shape
        pilot_id = batch.pilot_id(index)
        resources: dict[str, str] = {
            "cpu": str(shape.cpus),
            "memory": f"{shape.memory_mb}Mi",
            "ephemeral-storage": f"{shape.disk_gb}Gi",
        }
        if shape.gpus:
            resources["nvidia.com/gpu"] = str(shape.gpus)
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(
                name=f"glidein-{pilot_id}"[:253],
                labels={**labels, Tag.PILOT_ID: _label_value(pilot_id)},
            ),
            spec=k8s.V1PodSpec(
                restart_policy="Never",
                automount_service_account_token=False,
                service_account_name=s.service_account_name,
                node_selector=s.node_selector or None,
                priority_class_name=s.priority_class_name,
                runtime_class_name=s.runtime_class_name,
                host_network=s.host_network or None,
                # With the node's network a pod's default DNS is the node's resolver, which
                # does not know the cluster's Services; this keeps them resolvable.
                dns_policy="ClusterFirstWithHostNet" if s.host_network else None,
                security_context=k8s.V1PodSecurityContext(
                    run_as_non_root=True,
                    # The payload's files are root's; this group (the image user's) may read.
                    fs_group=s.pilot_group,
                    seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
                ),
                containers=[
                    k8s.V1Container(
                        name="pilot",
                        image=s.pilot_image,
                        env=[
                            k8s.V1EnvVar(name="GLIDEIN_PILOT_ID", value=pilot_id),
                            k8s.V1EnvVar(
                                name="GLIDEIN_PAYLOAD_FILE", value=f"/etc/glidein/{PAYLOAD_KEY}"
                            ),
                        ],
                        resources=k8s.V1ResourceRequirements(requests=resources, limits=resources),
                        volume_mounts=[
                            k8s.V1VolumeMount(
                                name="payload", mount_path="/etc/glidein", read_only=True
                            )
                        ],
                        security_context=k8s.V1SecurityContext(
                            allow_privilege_escalation=False,
                            capabilities=k8s.V1Capabilities(drop=["ALL"]),
                        ),
                    )
                ],
                volumes=[
                    k8s.V1Volume(
                        name="payload",
                        secret=k8s.V1SecretVolumeSource(secret_name=secret, default_mode=0o440),
                    )
                ],
            ),
        )

    def list_pilots(self) -> list[CloudPilot]:
        out: list[CloudPilot] = []
        token = None
        while True:
            page = self._core.list_namespaced_pod(
                self.settings.namespace,
                label_selector=self._selector(),
                limit=self.page_size,
                _continue=token,
            )
            out += [self._pilot(p) for p in page.items]
            token = page.metadata._continue
            if not token:
                return out

    def _pilot(self, pod: k8s.V1Pod) -> CloudPilot:
        labels = pod.metadata.labels or {}
        phase = (pod.status.phase if pod.status else None) or "Pending"
        state = {
            "Pending": PilotState.PENDING,
            "Running": PilotState.RUNNING,
            "Succeeded": PilotState.TERMINATED,
            "Failed": PilotState.ERROR,
        }.get(phase, PilotState.UNKNOWN)
        if pod.metadata.deletion_timestamp is not None:
            state = PilotState.TERMINATED
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason in _IMAGE_ERRORS:
                state = PilotState.ERROR
        return CloudPilot(
            pilot_id=labels.get(Tag.PILOT_ID, pod.metadata.name),
            cloud_id=pod.metadata.name,
            entry=labels.get(Tag.ENTRY, self.entry),
            request_uid=labels.get(Tag.REQUEST_UID, ""),
            batch=labels.get(Tag.BATCH, ""),
            instance_type=labels.get(Tag.INSTANCE_TYPE, ""),
            state=state,
            launched_at=pod.metadata.creation_timestamp,
            raw_state=phase,
        )

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        ns = self.settings.namespace
        for p in pilots:
            try:
                self._core.delete_namespaced_pod(p.cloud_id, ns, grace_period_seconds=30)
            except ApiException as exc:
                if exc.status != 404:  # 404: gone already, done
                    raise
        self._collect_secrets({p.batch for p in pilots if p.batch})

    def _collect_secrets(self, batches: set[str]) -> None:
        if not batches:
            return
        ns = self.settings.namespace
        alive = {
            p.batch
            for p in self.list_pilots()
            if p.state in (PilotState.PENDING, PilotState.RUNNING)
        }
        for batch in batches - alive:
            try:
                self._core.delete_namespaced_secret(f"glidein-{batch}"[:253], ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        extra = {Tag.REQUEST_UID: _label_value(request_uid)} if request_uid else None
        secrets = self._core.list_namespaced_secret(
            self.settings.namespace, label_selector=self._selector(extra)
        ).items
        if not secrets:
            return 0
        alive = {p.batch for p in self.list_pilots() if p.state in ALIVE_STATES}
        deleted = 0
        for secret in secrets:
            batch = (secret.metadata.labels or {}).get(Tag.BATCH)
            if batch in alive or not old_enough(
                secret.metadata.creation_timestamp, min_age_seconds
            ):
                continue
            try:
                self._core.delete_namespaced_secret(secret.metadata.name, self.settings.namespace)
                deleted += 1
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return deleted

    def leftovers(self) -> list[str]:
        """Payload Secrets of this entry still present."""
        secrets = self._core.list_namespaced_secret(
            self.settings.namespace, label_selector=self._selector()
        )
        return sorted(s.metadata.name for s in secrets.items)

    def console_log(self, pilot: CloudPilot) -> str:
        try:
            # An API server with no kubelet behind the pod answers no body at all (None).
            # The raw body: the client's own decoding hands back the repr of the bytes
            # ("b'Traceback...\\n'"), escapes and all.
            response = self._core.read_namespaced_pod_log(
                pilot.cloud_id, self.settings.namespace, tail_lines=2000, _preload_content=False
            )
            text = response.data.decode("utf-8", errors="replace") if response.data else ""
            if text:
                return text
        except ApiException as exc:
            if exc.status == 404:  # gone
                return ""
            if exc.status != 400:
                raise
        # Not started: no log yet. Why it waits (unschedulable, an image it cannot pull)
        # is in its status, which is what a pod left Pending has to say.
        try:
            pod = self._core.read_namespaced_pod(pilot.cloud_id, self.settings.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return ""
            raise
        return pod_story(pod)

    def image_exists(self, image_id: str) -> bool:
        # Registries are not ours to query; a missing image shows as ErrImagePull on the
        # pod, which list_pilots() reports as ERROR.
        return True


def pod_story(pod: Any) -> str:
    """A pod that has not started, in words: its phase, its conditions that are not true
    and its containers' waiting reasons, with the cluster's messages."""
    status = pod.status
    lines = [
        f"pod {pod.metadata.name}: {getattr(status, 'phase', None) or 'Pending'} (not started)"
    ]
    for c in getattr(status, "conditions", None) or []:
        if c.status != "True":
            lines.append(f"{c.type}={c.status} {c.reason or ''}: {c.message or ''}".rstrip(": "))
    for cs in getattr(status, "container_statuses", None) or []:
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None:
            lines.append(f"container {cs.name} waiting: {waiting.reason}: {waiting.message or ''}")
    if len(lines) == 1 and not getattr(pod.spec, "node_name", None):
        lines.append("not scheduled to a node yet")
    return "\n".join(lines)
