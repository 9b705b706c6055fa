"""Pilot pods as the kubernetes driver makes them, read back from a real kube-apiserver:
what the entry's settings change in the pod spec, and what the server keeps of it."""

from __future__ import annotations

import uuid

import pytest

from glidein_operator.api.cloudentry import KubernetesSettings
from glidein_operator.clouds.kubernetes import KubernetesDriver, api_client
from glidein_operator.ground import LaunchBatch
from tests.support.cluster import Cluster
from tests.support.harness import SHAPE


def _launch(cluster: Cluster, namespace: str, **settings: object) -> dict[str, object]:
    driver = KubernetesDriver(
        "e1",
        KubernetesSettings.model_validate(
            {"namespace": namespace, "pilotImage": "example.org/pilot:1", **settings}
        ),
        api=api_client(cluster.kubeconfig.read_text()),
        operator_id="op-test",
    )
    batch = LaunchBatch(
        key=f"b{uuid.uuid4().hex[:10]}",
        request_uid="uid-0001",
        request="ns1/req1",
        entry="e1",
        shape=SHAPE,
        count=1,
        image_id=None,
        user_data=b"#!/bin/sh\necho pilot\n",
    )
    [pilot] = driver.launch(batch)
    pod = driver._core.read_namespaced_pod(pilot.cloud_id, namespace)
    spec: dict[str, object] = driver._core.api_client.sanitize_for_serialization(pod.spec)
    driver.terminate([pilot])
    return spec


@pytest.mark.integration
def test_pilots_use_the_nodes_network_only_when_the_entry_says_so(
    cluster: Cluster, namespace: str
) -> None:
    on = _launch(cluster, namespace, hostNetwork=True)
    assert on["hostNetwork"] is True
    # The node's resolver does not know the cluster's Services; this policy keeps them.
    assert on["dnsPolicy"] == "ClusterFirstWithHostNet"
    off = _launch(cluster, namespace)
    assert "hostNetwork" not in off  # the pod network, as before
    assert off["dnsPolicy"] == "ClusterFirst"  # the server's default, not ours


@pytest.mark.integration
def test_the_payload_is_readable_by_the_pilot_images_group_only(
    cluster: Cluster, namespace: str
) -> None:
    """The pilot runs as its image's non-root user; the payload Secret's files are root's,
    so the pod's fsGroup (the entry's pilotGroup) is what lets that user read them, and
    nobody else in the image may (a real node found the pilot refused at 0400)."""
    spec = _launch(cluster, namespace)
    assert spec["securityContext"]["fsGroup"] == 64  # type: ignore[index]
    (volume,) = spec["volumes"]  # type: ignore[misc]
    assert volume["secret"]["defaultMode"] == 0o440
    other = _launch(cluster, namespace, pilotGroup=1000)
    assert other["securityContext"]["fsGroup"] == 1000  # type: ignore[index]
