"""Which entries a request may use (with reasons) and the `plan` dry run on the examples."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from glidein_operator.api.objects import load
from glidein_operator.cli import app
from glidein_operator.provisioning.eligibility import EntryRecord, candidates
from tests.malformed_cases import example

ROOT = Path(__file__).resolve().parents[2]


def _world(mutate_request=None, mutate_image=None):  # type: ignore[no-untyped-def]
    resources = load([ROOT / "examples"])
    domains = {r.name: r.spec for r in resources if r.kind.kind == "TrustDomain"}
    images = {r.name: r.spec for r in resources if r.kind.kind == "VMImage"}
    entries = [
        EntryRecord(r.name, r.labels, r.spec) for r in resources if r.kind.kind == "CloudEntry"
    ]
    req = next(r.spec for r in resources if r.kind.kind == "GlideinRequest")
    if mutate_request:
        req = mutate_request(req)
    if mutate_image:
        images = mutate_image(images)
    return req, entries, domains, images


def test_examples_request_can_use_every_example_entry() -> None:
    usable, blocked = candidates(*_world())
    assert blocked == {}
    assert {c.name for c in usable} == {
        "aws-us-east-1",
        "hlt-openstack",
        "fermicloud-one",
        "osg-nebraska",
        "local-pods",
    }


def test_missing_credential_and_wrong_type_are_named() -> None:
    def drop_aws_and_wrong_grid(req):  # type: ignore[no-untyped-def]
        creds = [c for c in req.credentials if c.trust_domain != "aws"]
        for c in creds:
            if c.trust_domain == "osg":
                object.__setattr__(c, "type", "kubeconfig")
        return req.model_copy(update={"credentials": creds})

    _, blocked = candidates(*_world(mutate_request=drop_aws_and_wrong_grid))
    assert blocked["aws-us-east-1"] == "no credential for trust domain 'aws'"
    assert (
        "credential type kubeconfig cannot drive this grid entry in trust domain 'osg'"
        in blocked["osg-nebraska"]
    )


def test_image_absent_in_region_is_named() -> None:
    def only_us_west(images):  # type: ignore[no-untyped-def]
        img = images["glidein-el9-2026.11"]
        locs = [loc for loc in img.locations if loc.region != "us-east-1"]
        return {**images, "glidein-el9-2026.11": img.model_copy(update={"locations": locs})}

    _, blocked = candidates(*_world(mutate_image=only_us_west))
    assert blocked == {
        "aws-us-east-1": "VMImage 'glidein-el9-2026.11' has no ec2 location in region 'us-east-1'"
    }


def test_entry_selection_by_label() -> None:
    req, entries, domains, images = _world()
    data = example("GlideinRequest", "cms-production")["spec"]
    data["entries"] = {"selector": {"matchLabels": {"glidein.dev/cloud": "commercial"}}}
    picked = req.model_validate(data)
    usable, _ = candidates(picked, entries, domains, images)
    assert [c.name for c in usable] == ["aws-us-east-1"]


def test_plan_command_on_the_examples() -> None:
    result = CliRunner().invoke(
        app,
        ["plan", str(ROOT / "examples"), "--jobs", str(ROOT / "examples/jobs/idle-jobs.classads")],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "aws-us-east-1" in out
    # placement "cost": the free grid site takes the small jobs both it and AWS could run;
    # AWS gets only the big-memory job nobody else can take.
    assert "│ 1x r5.2xlarge  │   0.50 │" in out
    assert "m5.xlarge" not in out
    assert "idle jobs: 4   launch: 2   cancel: 0   launches cost 0.50/h" in out
    assert "Requirements match no entry" in out  # the 500 GB job


def test_plan_command_reports_a_missing_request_clearly() -> None:
    result = CliRunner().invoke(
        app,
        [
            "plan",
            str(ROOT / "examples"),
            "--jobs",
            str(ROOT / "examples/jobs/idle-jobs.classads"),
            "--request",
            "nope",
        ],
    )
    assert result.exit_code == 2


def test_credential_must_fit_the_entry_type_not_only_the_trust_domain() -> None:
    # fermicloud accepts OpenNebula and OpenStack credentials; the request holds only an
    # OpenNebula one, which cannot drive the OpenStack entry of the same trust domain.
    req, entries, domains, images = _world()
    req = req.model_copy(
        update={
            "credentials": [
                c for c in req.credentials if c.type != "openstack-application-credential"
            ]
        }
    )
    usable, blocked = candidates(req, entries, domains, images)
    assert "fermicloud-one" in {c.name for c in usable}
    assert "hlt-openstack" not in {c.name for c in usable}
    assert blocked["hlt-openstack"] == (
        "credential type opennebula-user-password cannot drive this openstack entry in trust domain "
        "'fermicloud' (usable: openstack-application-credential, openstack-password)"
    )


def test_plan_command_reads_condor_q_json_too() -> None:
    classads = CliRunner().invoke(
        app,
        ["plan", str(ROOT / "examples"), "--jobs", str(ROOT / "examples/jobs/idle-jobs.classads")],
    )
    as_json = CliRunner().invoke(
        app, ["plan", str(ROOT / "examples"), "--jobs", str(ROOT / "examples/jobs/idle-jobs.json")]
    )
    assert as_json.exit_code == 0, as_json.output
    assert "idle jobs: 4   launch: 2" in as_json.output
    assert as_json.output == classads.output
