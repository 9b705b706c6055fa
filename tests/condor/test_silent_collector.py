"""One hung pool costs only its own requests: the operator process serves a request whose
collector accepts connections and never answers, and a healthy request on the real pool.
The healthy one reacts to its jobs as fast as ever; the other says which daemon did not
answer, within the query deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glidein_devkit.condor_pool import CondorInstall, CondorPool, job
from glidein_devkit.ec2server import Ec2Server
from glidein_devkit.resources import ec2_entry, trust_domain, vm_image
from tests.condor.support import eventually, operator_on, request_status
from tests.condor.test_story_ec2 import _request, open_pool  # noqa: F401 (a fixture)
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration

DEADLINE = 10


@pytest.fixture
def silent() -> Iterator[str]:
    """A 127.0.0.1 port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"127.0.0.1:{s.getsockname()[1]}"


def test_a_silent_collector_does_not_slow_the_other_requests(
    cluster: Cluster,
    namespace: str,
    condor: CondorInstall,
    condor_tmp: Path,
    open_pool: CondorPool,  # noqa: F811
    silent: str,
) -> None:
    pool = open_pool
    hung = f"{namespace}-hung"
    entry, td, image = f"{namespace}-east", f"{namespace}-aws", f"{namespace}-img"
    with Ec2Server() as ec2:
        healthy = _request(namespace, pool, entry, td, {})
        stuck = _request(hung, pool, entry, td, {})
        stuck[-1]["spec"]["collector"] = silent
        stuck[-1]["spec"]["schedds"] = [{"name": "schedd@nowhere"}]
        docs = [
            trust_domain(td, ["ec2-access-key"]),
            vm_image(image, [{"cloud": "ec2", "region": "us-east-1", "imageId": ec2.image_id()}]),
            ec2_entry(
                entry,
                endpoint=ec2.url,
                trust_domain=td,
                image=image,
                site="EAST",
                instance_types=[{"name": "t3.small", "cpus": 1, "memory": "2Gi"}],
                limits={"maxPilots": 10},
            ),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": hung}},
            *healthy,
            *stuck,
        ]
        env = {"GLIDEIN_CONDOR_QUERY_DEADLINE": str(DEADLINE)}
        with operator_on(cluster, namespace, condor_tmp, docs, env):

            def hung_says() -> str | None:
                for c in request_status(cluster, hung).get("conditions", []):
                    if c["type"] == "Ready" and "did not answer" in c.get("message", ""):
                        return str(c["message"])
                return None

            message = eventually(hung_says, 60, "the hung request saying why", interval=1)
            assert f"within {DEADLINE}s" in message, message
            assert silent.split(":")[1] in message, message
            # The healthy request, while the other keeps timing out: jobs -> a launch.
            t0 = time.monotonic()
            pool.submit(job(arguments="5", extra=['+Story = "ec2"']), 2)
            eventually(lambda: ec2.instances(), 30, "a pilot for the healthy request", interval=0.2)
            reaction = time.monotonic() - t0
            print(f"\nhealthy request reacted in {reaction:.1f}s beside a silent collector")
            assert reaction < DEADLINE / 2, f"the healthy request waited {reaction:.1f}s"
            pool.tool("condor_rm", "-all")
