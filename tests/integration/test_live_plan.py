"""``glidein-operator plan --kubeconfig``: the dry run against a live cluster agrees with
what the operator would do. On a real API server and the EC2 test server: the pilots the
cloud lists now fill "Pilots now", and the request's budget gates the launches, where
the dry run on the same resources as files sees no pilot and no spend."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from glidein_operator.api.cloudentry import Ec2Settings
from glidein_operator.clouds.ec2 import Ec2Driver
from glidein_operator.ground import LaunchBatch, Shape
from tests.support.cluster import Cluster

JOBS = "\n".join(
    f'ClusterId = 1\nProcId = {i}\nJobStatus = 1\nJobUniverse = 5\nOwner = "u"\n'
    "RequestCpus = 4\nRequestMemory = 4000\nRequestDisk = 1000\n"
    "Requirements = TARGET.Cpus >= RequestCpus\n"
    for i in range(20)
)


@pytest.fixture
def ec2_server() -> Iterator[Any]:
    from glidein_devkit.ec2server import Ec2Server

    with Ec2Server() as server:
        server.check_leaks = False  # the test ends its pilots below, the leak check aside
        yield server


def _resources(ns: str, tag: str, server: Any) -> list[dict[str, Any]]:
    meta = {"labels": {"live-plan": tag}}
    return [
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "TrustDomain",
            "metadata": {"name": f"aws-{tag}"},
            "spec": {"credentialTypes": ["ec2-access-key"]},
        },
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "VMImage",
            "metadata": {"name": f"img-{tag}"},
            "spec": {
                "owner": {"name": "t", "contact": "t@example.org"},
                "version": "1",
                "patchDate": "2026-11-01",
                "locations": [
                    {"cloud": "ec2", "region": "us-east-1", "imageId": server.image_id()}
                ],
            },
        },
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "CloudEntry",
            "metadata": {"name": f"east-{tag}", **meta},
            "spec": {
                "type": "ec2",
                "trustDomain": f"aws-{tag}",
                "site": "T3_TEST",
                "vmImage": f"img-{tag}",
                "ec2": {"region": "us-east-1", "endpointUrl": server.url},
                "instanceTypes": [
                    {"name": "m5.xlarge", "cpus": 4, "memory": "16Gi", "pricePerHour": 0.5}
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aws", "namespace": ns},
            "stringData": {"accessKeyId": "testing", "secretAccessKey": "testing"},
        },
        {
            "apiVersion": "glidein.dev/v1alpha1",
            "kind": "GlideinRequest",
            "metadata": {"name": "vo", "namespace": ns},
            "spec": {
                "collector": "pool.example.org:9618",
                "schedds": [{"name": "schedd@submit.example.org"}],
                "entries": {"selector": {"matchLabels": {"live-plan": tag}}},
                "credentials": [
                    {
                        "trustDomain": f"aws-{tag}",
                        "type": "ec2-access-key",
                        "secretRef": {"name": "aws"},
                    }
                ],
                "pilot": {"tokenSecretRef": {"name": "pool"}, "lifetime": "24h"},
                "budget": {"limit": 40, "period": "monthly"},
            },
        },
    ]


def test_plan_against_the_cluster_counts_the_pilots_there_and_applies_the_budget(
    cluster: Cluster, namespace: str, ec2_server: Any, tmp_path: Path
) -> None:
    from glidein_operator.cli import app

    tag = uuid.uuid4().hex[:6]
    docs = _resources(namespace, tag, ec2_server)
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    )
    jobs = tmp_path / "jobs.classads"
    jobs.write_text(JOBS)
    got = cluster.kubectl("get", "greq", "vo", "-n", namespace, "-o", "json").stdout
    uid = json.loads(got)["metadata"]["uid"]
    driver = Ec2Driver(
        f"east-{tag}",
        Ec2Settings(region="us-east-1", endpointUrl=ec2_server.url),
        access_key_id="testing",
        secret_access_key="testing",
        operator_id="glidein-operator",
    )
    pilots = driver.launch(
        LaunchBatch(
            key=f"{uid[:8]}-live-1",
            request_uid=uid,
            request=f"{namespace}/vo",
            entry=f"east-{tag}",
            shape=Shape("m5.xlarge", 4, 16384, 100, price_per_hour=Decimal("0.5")),
            count=3,
            image_id=ec2_server.image_id(),
            user_data=b"#!/bin/sh\n",
        )
    )
    # The budget state the operator wrote: 39.90 of 40 spent this month already.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    spend = {
        "period": "monthly",
        "periodStart": now.replace(day=1, hour=0, minute=0, second=0).isoformat(),
        "accountedUntil": now.isoformat(),
        "spent": 39.9,
        "pilotHours": 79.8,
        "coreHours": 319.2,
        "entries": [{"name": f"east-{tag}", "spent": 39.9, "pilotHours": 79.8, "coreHours": 319.2}],
    }
    cluster.kubectl(
        "patch",
        "greq",
        "vo",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"spend": spend}}),
    )
    try:
        runner = CliRunner()
        live = runner.invoke(
            app,
            ["plan", "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "--jobs", str(jobs)],
            env={"COLUMNS": "250"},
        )
        assert live.exit_code == 0, live.output
        row = next(line for line in live.output.splitlines() if f"east-{tag}" in line)
        cells = [c.strip() for c in row.split("│") if c.strip()]
        # Entry, Type, Site, Idle jobs, Demand, Pilots now, Launch, ...
        assert cells[5] == "3", row  # the pilots the cloud lists now
        assert cells[6] == "0", live.output  # the budget allows no more
        assert "budget" in row
        assert "budget (monthly): spent 39.90 of 40.00" in live.output
        assert "launch(es) held back by the budget" in live.output

        # The same resources as files: no pilot there, no spend, launches for every job.
        files = tmp_path / "res.yaml"
        files.write_text("\n---\n".join(json.dumps(d) for d in docs if d["kind"] != "Secret"))
        offline = runner.invoke(
            app, ["plan", str(files), "--jobs", str(jobs)], env={"COLUMNS": "250"}
        )
        assert offline.exit_code == 0, offline.output
        row = next(line for line in offline.output.splitlines() if f"east-{tag}" in line)
        cells = [c.strip() for c in row.split("│") if c.strip()]
        assert cells[5] == "0"
        assert int(cells[6]) > 0
    finally:
        driver.terminate(pilots)
        for kind, name in (
            ("cloudentry", f"east-{tag}"),
            ("vmimage", f"img-{tag}"),
            ("trustdomain", f"aws-{tag}"),
        ):
            cluster.kubectl("delete", kind, name, "--wait=false", check=False)
