"""docs/kind.md: the chart renders with its values file as the doc describes, and every
resource it shows is one the operator accepts and that fits the rest of the doc (the
images it builds and loads, the namespaces the chart grants)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec
from glidein_operator.api.objects import parse
from glidein_operator.api.trustdomain import TrustDomainSpec
from tests.integration.chart import render

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/kind.md").read_text()
VALUES = yaml.safe_load((ROOT / "docs/kind/values.yaml").read_text())


def _shown() -> list[dict[str, Any]]:
    return [
        d
        for block in re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
        for d in yaml.safe_load_all(block)
        if d
    ]


def _commands(tool: str) -> list[str]:
    return re.findall(rf"^{tool} .*$", DOC, re.MULTILINE)


def test_the_chart_renders_with_the_docs_values() -> None:
    docs: list[dict[str, Any]] = render(values=VALUES)
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 1
    [container] = dep["spec"]["template"]["spec"]["containers"]
    # The image kind loaded, never pulled: there is no registry behind it.
    assert container["imagePullPolicy"] == "Never"
    image = container["image"]
    assert any(image in c for c in _commands("docker build"))
    assert any(image in c for c in _commands("kind load docker-image"))
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    # The operator may run pods in the pilots' namespace, which the doc creates first.
    pilot_roles = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-pilots")
    ]
    assert [r["metadata"]["namespace"] for r in pilot_roles] == ["glidein-pilots"]
    created = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all((ROOT / "examples/00-namespace.yaml").read_text())
        if d and d["kind"] == "Namespace"
    }
    assert "examples/00-namespace.yaml" in DOC
    assert {"glidein-pilots", "cms"} <= created
    # The teardown hook, for the request's namespace.
    [job] = [d for d in docs if d["kind"] == "Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["teardown", "--namespace=cms", "--timeout=120"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert "-f docs/kind/values.yaml" in DOC


def test_the_resources_the_doc_shows_are_valid_and_fit_together() -> None:
    shown = {d["kind"]: parse(d) for d in _shown()}
    assert set(shown) == {"TrustDomain", "CloudEntry", "GlideinRequest"}
    entry, request = shown["CloudEntry"].spec, shown["GlideinRequest"].spec
    domain, domain_spec = shown["TrustDomain"], shown["TrustDomain"].spec
    assert isinstance(entry, CloudEntrySpec)
    assert isinstance(request, GlideinRequestSpec)
    assert isinstance(domain_spec, TrustDomainSpec)
    assert entry.type == "kubernetes"
    assert entry.kubernetes is not None
    assert entry.kubernetes.namespace in VALUES["pilotNamespaces"]
    assert any(entry.kubernetes.pilot_image in c for c in _commands("docker build"))
    assert any(entry.kubernetes.pilot_image in c for c in _commands("kind load docker-image"))
    assert entry.trust_domain == domain.name
    [credential] = request.credentials
    assert (credential.trust_domain, credential.type) == (domain.name, "in-cluster")
    assert credential.type in domain_spec.credential_types
    assert shown["GlideinRequest"].namespace in VALUES["uninstall"]["teardown"]["namespaces"]
    assert request.pilot.token_secret_ref is not None
    assert f"secret generic {request.pilot.token_secret_ref.name} " in DOC
    # Pod addresses are not reachable from outside kind's node: CCB by default.
    assert request.pilot.ccb is True
