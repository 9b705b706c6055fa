"""The CRDs on a real kube-apiserver: established, accepting every example, rejecting
malformed resources at apply time with the field named, explained and printed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from glidein_operator.api.resources import KINDS
from tests.malformed_cases import CASES, Case
from tests.support.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def test_all_crds_established(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)
    ours = {
        item["metadata"]["name"]: item
        for item in out["items"]
        if item["spec"]["group"] == "glidein.dev"
    }
    assert set(ours) == {k.crd_name for k in KINDS}
    for crd in ours.values():
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds.get("Established") == "True", crd["metadata"]["name"]
        assert conds.get("NamesAccepted") == "True"


def test_kubectl_apply_crds_folder_is_idempotent(cluster: Cluster) -> None:
    # What a user types: `kubectl apply -f crds/`, twice.
    for _ in range(2):
        out = cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
        )
        assert "serverside-applied" in out.stdout


def test_every_example_is_accepted(cluster: Cluster) -> None:
    out = cluster.kubectl("apply", "-f", str(ROOT / "examples"))
    applied = out.stdout
    for doc_kind in ("trustdomain", "vmimage", "cloudentry", "glideinrequest"):
        assert f"{doc_kind}.glidein.dev/" in applied
    got = json.loads(cluster.kubectl("get", "glidein", "-A", "-o", "json").stdout)
    names = {(i["kind"], i["metadata"]["name"]) for i in got["items"]}
    assert ("GlideinRequest", "cms-production") in names
    assert ("CloudEntry", "local-pods") in names
    assert len([n for n in names if n[0] == "CloudEntry"]) == 5


def test_defaults_are_applied_by_the_server(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "examples"))
    entry = json.loads(cluster.kubectl("get", "cloudentry", "osg-nebraska", "-o", "json").stdout)
    assert entry["spec"]["enabled"] is True
    assert entry["spec"]["limits"]["maxLaunchPerCycle"] == 100
    assert entry["spec"]["instanceTypes"][0]["gpus"] == 0
    # No price is not a price of 0: the server writes none (the operator reads the type).
    assert "pricePerHour" not in entry["spec"]["instanceTypes"][0]


# Cases with server=False are the validating admission webhook's to reject (ClassAd
# expressions: only HTCondor's parser can judge them, and the webhook runs it through
# objects.parse) or kubectl's (NaN and Infinity, test_nan_and_infinity_never_reach_the_server);
# tests/unit/test_models.py runs every case through the models.
@pytest.mark.parametrize("case", [c for c in CASES if c.server], ids=lambda c: c.id)
def test_malformed_resource_is_rejected_at_apply(
    cluster: Cluster, namespace: str, case: Case
) -> None:
    obj = case.build(f"bad-{uuid.uuid4().hex[:8]}")
    name = obj["metadata"]["name"]
    if case.kind == "GlideinRequest":
        obj["metadata"]["namespace"] = namespace
    result = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj), check=False)
    assert result.returncode != 0, f"{case.id} was accepted: {result.stdout}"
    assert case.field in result.stderr, (
        f"{case.id}: error does not name {case.field}: {result.stderr}"
    )
    # Nothing half-stored.
    args = ["get", case.kind.lower(), name, "--ignore-not-found", "-o", "name"]
    if case.kind == "GlideinRequest":
        args += ["-n", namespace]
    assert cluster.kubectl(*args, check=False).stdout.strip() == ""


@pytest.mark.parametrize(
    "case", [c for c in CASES if "nan" in c.id or "infinite" in c.id], ids=lambda c: c.id
)
def test_nan_and_infinity_never_reach_the_server(
    cluster: Cluster, namespace: str, case: Case
) -> None:
    # YAML's .nan and .inf have no JSON form: kubectl fails converting the file, before
    # any request, and its message names no field (docs/design.md says so); the models
    # name it (tests/unit/test_models.py).
    obj = case.build(f"bad-{uuid.uuid4().hex[:8]}")
    if case.kind == "GlideinRequest":
        obj["metadata"]["namespace"] = namespace
    text = yaml.safe_dump(obj)
    assert ".nan" in text or ".inf" in text
    result = cluster.kubectl("apply", "-f", "-", stdin=text, check=False)
    assert result.returncode != 0
    assert "error converting YAML to JSON" in result.stderr, result.stderr


def test_explain_shows_descriptions(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "glideinrequest.spec.pilot.registrationTimeout").stdout
    assert "stuck" in out
    out = cluster.kubectl("explain", "cloudentry.spec.instanceTypes").stdout
    assert "smallest that fits" in out
    # Defaults are in the descriptions, written as in YAML.
    out = cluster.kubectl("explain", "glideinrequest.spec.pilot.lifetime").stdout
    assert "Default: 24h." in out
    out = cluster.kubectl("explain", "glideinrequest.spec.jobConstraint").stdout
    assert 'Default: "true".' in out
    out = cluster.kubectl("explain", "vmimage.spec.owner").stdout
    assert "answers for the image" in out


def test_printer_columns(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "examples"))
    header = cluster.kubectl("get", "cloudentries").stdout.splitlines()[0].split()
    assert header[:4] == ["NAME", "TYPE", "SITE", "TRUST"]
    assert "READY" in header
    wide = cluster.kubectl("get", "glideinrequests", "-n", "cms", "-o", "wide").stdout
    for column in ("IDLE JOBS", "WANTED", "SPENT", "REASON"):
        assert column in wide
    assert "cms-production" in wide
    images = cluster.kubectl("get", "gvmi").stdout
    assert "2026.11.1" in images
    assert "2026-11-15" in images


def test_short_names_and_category(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "examples"))
    assert "aws" in cluster.kubectl("get", "gtd").stdout
    assert "hlt-openstack" in cluster.kubectl("get", "gentry").stdout
    assert "cms-production" in cluster.kubectl("get", "greq", "-A").stdout
    # Names other projects own (KubeVirt's vmi, an HTCondor-CE) are not ours.
    for theirs in ("ce", "vmi", "td", "gr"):
        assert cluster.kubectl("get", theirs, check=False).returncode != 0, theirs
    everything = cluster.kubectl("get", "glidein", "-A").stdout
    for name in ("cms-production", "aws-us-east-1", "fermicloud", "glidein-el9-2026.11"):
        assert name in everything


def test_status_subresource_is_separate(cluster: Cluster, namespace: str) -> None:
    doc = next(
        d for d in yaml.safe_load_all((ROOT / "examples/40-glideinrequest.yaml").read_text()) if d
    )
    doc["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    patch = json.dumps({"status": {"totals": {"idleJobs": 7, "wanted": 3}}})
    # A status write through the main resource is ignored ...
    cluster.kubectl("patch", "greq", "cms-production", "-n", namespace, "--type=merge", "-p", patch)
    got = json.loads(
        cluster.kubectl("get", "greq", "cms-production", "-n", namespace, "-o", "json").stdout
    )
    assert "status" not in got or got["status"].get("totals", {}).get("idleJobs") != 7
    # ... and lands through the status subresource.
    cluster.kubectl(
        "patch",
        "greq",
        "cms-production",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )
    got = json.loads(
        cluster.kubectl("get", "greq", "cms-production", "-n", namespace, "-o", "json").stdout
    )
    assert got["status"]["totals"]["idleJobs"] == 7
