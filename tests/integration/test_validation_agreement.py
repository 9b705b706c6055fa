"""The models and the API server give the same verdict on the same object.

Hypothesis draws mutations of the examples by family (see ``mutated_examples``) and each
object goes both ways: as JSON through ``kubectl create --dry-run=server`` (what a user's
``kubectl apply`` does, strict field validation included) and through ``objects.parse``.
The one asymmetry allowed is the webhook's: a ClassAd expression only HTCondor's parser
can judge, which the models reject and the schema cannot.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from glidein_operator.api.objects import InvalidResource, parse
from tests.malformed_cases import Mutation, mutated_examples
from tests.support.cluster import Cluster

# The mark of an error only the admission webhook's parse() can raise (api/classad.py).
WEBHOOK_ONLY = "not a ClassAd expression"


@pytest.fixture(scope="module")
def agreement_namespace(cluster: Cluster) -> Iterator[str]:
    # Module-scoped: hypothesis runs many examples in one test call, and a namespace per
    # example would cost more than the dry runs.
    name = f"agree-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def server_verdict(cluster: Cluster, obj: dict[str, Any]) -> tuple[bool, str]:
    # JSON, not YAML: PyYAML and kubectl's YAML parser disagree on scalars such as 1e3
    # (a string to one, a number to the other), and that is not what is tested here.
    text = json.dumps(obj)
    result = cluster.kubectl(
        "create", "--dry-run=server", "-o", "name", "-f", "-", stdin=text, check=False
    )
    # Other tests leave the examples on the session's cluster. The server checks an object
    # before it looks for one of the same name: AlreadyExists means it passed.
    if result.returncode != 0 and "(AlreadyExists)" in result.stderr:
        return True, ""
    return result.returncode == 0, result.stderr.strip()


def model_verdict(obj: dict[str, Any]) -> tuple[bool, list[str]]:
    try:
        parse(obj)
    except InvalidResource as exc:
        return False, exc.errors
    return True, []


# About 15 s: each example is one kubectl dry run (some 60 ms) and one parse.
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=mutated_examples())
def test_models_and_api_server_agree_on_mutated_examples(
    cluster: Cluster, agreement_namespace: str, case: tuple[dict[str, Any], list[Mutation]]
) -> None:
    obj, mutations = case
    if obj["kind"] == "GlideinRequest":
        obj["metadata"]["namespace"] = agreement_namespace
    server_ok, server_says = server_verdict(cluster, obj)
    model_ok, model_says = model_verdict(obj)
    if server_ok and not model_ok and all(WEBHOOK_ONLY in e for e in model_says):
        return
    assert server_ok == model_ok, (
        f"after {mutations}: API server {'accepts' if server_ok else 'rejects'} "
        f"({server_says or 'no error'}), models {'accept' if model_ok else 'reject'} "
        f"({'; '.join(model_says) or 'no error'})"
    )
