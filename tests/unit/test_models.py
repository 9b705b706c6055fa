"""The models accept what users write and reject what the API server rejects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from glidein_operator.api.base import parse_duration, parse_quantity
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import GlideinRequestSpec, RequestLimits
from glidein_operator.api.objects import InvalidResource, load, parse
from glidein_operator.api.vmimage import VMImageSpec
from tests.malformed_cases import CASES, Case, example

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_validates() -> None:
    resources = load([EXAMPLES])
    kinds = {r.kind.kind for r in resources}
    assert kinds == {"GlideinRequest", "CloudEntry", "TrustDomain", "VMImage"}
    entry_types = {r.spec.type for r in resources if isinstance(r.spec, CloudEntrySpec)}
    assert entry_types == {"ec2", "openstack", "opennebula", "grid", "kubernetes"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_resource_is_rejected_naming_the_field(case: Case) -> None:
    with pytest.raises(InvalidResource) as err:
        parse(case.build())
    text = str(err.value)
    assert case.leaf in text, f"error does not name {case.leaf}: {text}"


def test_malformed_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert {c.kind for c in CASES} == {"GlideinRequest", "CloudEntry", "TrustDomain", "VMImage"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1h30m", 5400), ("48h", 172800), ("250ms", 0.25), ("1.5h", 5400)],
)
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "2d", "ten minutes", "-5m", "1h 30m"])
def test_bad_durations_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("16Gi", 16 * 2**30), ("500M", 500 * 10**6), ("1024", 1024), ("1.5Gi", 3 * 2**29)],
)
def test_quantities(text: str, value: int) -> None:
    assert parse_quantity(text) == value


def test_prices_are_decimal_and_serialise_as_numbers() -> None:
    spec = parse(example("CloudEntry", "aws-us-east-1")).spec
    assert isinstance(spec, CloudEntrySpec)
    assert spec.instance_types[0].price_per_hour == Decimal("0.192")
    assert spec.to_wire()["instanceTypes"][0]["pricePerHour"] == 0.192


def test_defaults_a_user_relies_on() -> None:
    req = GlideinRequestSpec.model_validate(
        {
            "collector": "pool:9618",
            "schedds": [{"name": "s@h"}],
            "credentials": [{"trustDomain": "local", "type": "in-cluster"}],
        }
    )
    assert req.job_constraint == "true"
    assert req.pilot.lifetime == "24h"
    assert req.limits.idle_cap == req.limits.max_pilots
    assert not req.paused
    assert req.budget is None


def test_limits_without_idle_cap_accept_small_max() -> None:
    # A user who writes only maxPilots must not trip over a default idle cap above it.
    limits = RequestLimits.model_validate({"maxPilots": 3})
    assert limits.idle_cap == 3


def test_wire_form_round_trips() -> None:
    spec = parse(example("GlideinRequest", "cms-production")).spec
    again = GlideinRequestSpec.model_validate(spec.to_wire())
    assert again == spec


def test_image_location_lookup() -> None:
    img = parse(example("VMImage", "glidein-el9-2026.11")).spec
    assert isinstance(img, VMImageSpec)
    loc = img.location("ec2", "us-west-2")
    assert loc is not None
    assert loc.image_id.startswith("ami-")
    assert img.location("ec2", "eu-west-1") is None


def test_entry_knows_its_image_region() -> None:
    for name, region in [
        ("aws-us-east-1", "us-east-1"),
        ("hlt-openstack", "RegionOne"),
        ("fermicloud-one", "fermicloud"),
        ("osg-nebraska", None),
    ]:
        spec = parse(example("CloudEntry", name)).spec
        assert isinstance(spec, CloudEntrySpec)
        assert spec.image_region == region
