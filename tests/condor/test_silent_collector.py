"""One hung pool costs only its own requests: the operator process serves a request whose
collector accepts connections and never answers, and a healthy request on the real pool.
The healthy one reacts to its jobs as fast as ever; the other says which daemon did not
answer, within the query deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from glidein_devkit.condor_pool import CondorPool, job
from glidein_devkit.ec2server import Ec2Server
from tests.condor.support import (
    Stage,
    ec2_docs,
    ec2_names,
    eventually,
    operator_on,
    request_status,
    story_request,
)
from tests.support.documents import EC2_TESTING, namespace_doc, secret

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
    stage: Stage, open_pool: CondorPool, silent: str
) -> None:
    pool, cluster = open_pool, stage.cluster
    ns, names = stage.namespace, ec2_names(stage.namespace)
    hung = f"{ns}-hung"
    with Ec2Server() as ec2:
        healthy = story_request(ns, pool, names, "ec2", secret(ns, "aws", EC2_TESTING))
        stuck = story_request(hung, pool, names, "ec2", secret(hung, "aws", EC2_TESTING))
        stuck[-1]["spec"]["collector"] = silent
        stuck[-1]["spec"]["schedds"] = [{"name": "schedd@nowhere"}]
        no_disk = {"name": "t3.small", "cpus": 1, "memory": "2Gi"}
        docs = [*ec2_docs(names, ec2, no_disk), namespace_doc(hung), *healthy, *stuck]
        env = {"GLIDEIN_CONDOR_QUERY_DEADLINE": str(DEADLINE)}
        with operator_on(stage, docs, env):

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
