"""Uninstalling the operator deletes nothing of the users': install the chart, run the
operator under its RBAC, requests in two namespaces launch pilots; remove everything the
chart made (what `helm uninstall`, or a GitOps tool pruning the release, does). Requests,
their Secrets and their pilots are all still there. Reinstall: the operator adopts the
running pilots (none launched twice, none lost), and deleting the requests then empties
the clouds."""

from __future__ import annotations

import time

import pytest
import yaml

from glidein_devkit.kube import kubectl
from tests.integration.chart import NS, RELEASE, render, sa_kubeconfig
from tests.integration.process_world import OperatorProcess, World, world_fixture

pytestmark = pytest.mark.integration

COMMUNITIES = ("cms-un", "atlas-un")


world = world_fixture("un-base", "op-uninstall", {"maxPilots": 100})


def _install(w: World) -> tuple[list[dict[str, object]], OperatorProcess]:
    docs = [d for d in render() if d["kind"] != "CustomResourceDefinition"]
    kubectl(w.cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    env = {**w.operator.env, "KUBECONFIG": str(sa_kubeconfig(w.cp.kubeconfig))}
    operator = OperatorProcess(
        env, w.cp.kubeconfig.parent / "chart-operator.log", ("--lease", f"{RELEASE}-lease")
    )
    operator.start()
    return docs, operator


def _alive(w: World) -> dict[str, int]:
    return dict(w.pilot_ids())


def test_uninstall_deletes_nothing_and_a_reinstall_adopts_the_pilots(world: World) -> None:
    w = world
    docs, operator = _install(w)
    try:
        for ns in COMMUNITIES:
            w.add_request(ns, "east", 3)
        deadline = time.monotonic() + 60
        while sum(_alive(w).values()) < 6 and time.monotonic() < deadline:
            time.sleep(0.3)
        before = _alive(w)
        assert sum(before.values()) == 6
    finally:
        operator.stop()
    # Uninstall: everything the chart made goes, nothing else.
    kubectl(w.cp.kubeconfig, "delete", "-f", "-", "--wait=true", stdin=yaml.safe_dump_all(docs))
    assert (
        kubectl(
            w.cp.kubeconfig, "get", "deploy", "-n", NS, "--ignore-not-found", "-o", "name"
        ).stdout.strip()
        == ""
    )
    for ns in COMMUNITIES:
        assert kubectl(w.cp.kubeconfig, "get", "greq", "vo", "-n", ns, "-o", "name").stdout.strip()
        assert kubectl(w.cp.kubeconfig, "get", "secret", "aws", "-n", ns, "-o", "name").stdout
    time.sleep(2)
    assert _alive(w) == before, "uninstalling touched the pilots"

    # Reinstall: the same pilots, adopted; nothing new, nothing twice.
    docs, operator = _install(w)
    try:

        def reported() -> int:
            total = 0
            for ns in COMMUNITIES:
                out = kubectl(
                    w.cp.kubeconfig,
                    "get",
                    "greq",
                    "vo",
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={.status.totals.launching}",
                ).stdout
                total += int(out or 0)
            return total

        deadline = time.monotonic() + 60
        while reported() < 6 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # a few more cycles: nothing more may start
        assert _alive(w) == before
        # And the requests still end cleanly through the reinstalled operator.
        for ns in COMMUNITIES:
            kubectl(w.cp.kubeconfig, "delete", "greq", "vo", "-n", ns, "--timeout=60s")
        deadline = time.monotonic() + 60
        while _alive(w) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _alive(w) == {}
        assert w.key_pairs_left() == []
    finally:
        operator.stop()
