"""The models accept what users write and reject what the API server rejects."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from glidein_operator.api.base import DurationRange, parse_duration, parse_quantity
from glidein_operator.api.classad import EXPRESSION_MAX_LENGTH, SHOWN, expression_problem
from glidein_operator.api.cloudentry import CloudEntrySpec, CloudEntryStatus
from glidein_operator.api.glideinrequest import (
    GlideinRequestSpec,
    GlideinRequestStatus,
    PilotSettings,
    RequestLimits,
)
from glidein_operator.api.objects import InvalidResource, load, parse
from glidein_operator.api.resources import KINDS_BY_NAME
from glidein_operator.api.vmimage import VMImageSpec
from tests.malformed_cases import CASES, EXAMPLE_IDS, Case, example

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
    assert len({c.id for c in CASES}) == len(CASES)
    # Both kinds: what the server rejects too, and what only the models (webhook) can.
    assert {c.server for c in CASES} == {True, False}


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


def test_a_fraction_of_a_byte_rounds_up_as_kubernetes_does() -> None:
    assert parse_quantity("1.0001k") == 1001
    assert parse_quantity("0.5") == 1
    assert parse_quantity("0") == 0


@pytest.mark.parametrize(
    "text", ["", "lots", "1e3", "-1Gi", "+1Gi", ".5Gi", "16 Gi", "16GB", "1Ei", "500m", "NaN", "1K"]
)
def test_quantities_outside_the_crd_pattern_are_refused(text: str) -> None:
    # kubernetes.utils.parse_quantity alone would take several of these (1e3, 500m, NaN).
    with pytest.raises(ValueError, match="is not a quantity of bytes"):
        parse_quantity(text)


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


# --- durations ------------------------------------------------------------------------

DURATION_FIELDS = {
    "lifetime": "1m",
    "idleTimeout": "1s",
    "registrationTimeout": "1s",
    "retireBeforeEnd": "10s",
}


def _request_with(pilot: dict[str, str], budget: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = example("GlideinRequest", "cms-production")
    obj["spec"]["pilot"].update(pilot)
    obj["spec"]["budget"].update(budget or {})
    return obj


@pytest.mark.parametrize(
    "pilot",
    [
        # What the stories and the simulated clouds run: real users test with these too.
        {"lifetime": "75s", "retireBeforeEnd": "50s", "idleTimeout": "60s"},
        {"idleTimeout": "20s", "registrationTimeout": "40s"},
        {
            "idleTimeout": "4s",
            "registrationTimeout": "3s",
            "lifetime": "2h",
            "retireBeforeEnd": "10m",
        },
        # Each documented minimum, and the common maximum.
        {"lifetime": "1m", "retireBeforeEnd": "10s", "idleTimeout": "1s"},
        {"registrationTimeout": "1s"},
        {"lifetime": "8760h", "idleTimeout": "8760h", "registrationTimeout": "8760h"},
        {"lifetime": "1h30m", "retireBeforeEnd": "1.5m"},
    ],
)
def test_durations_people_use_are_accepted(pilot: dict[str, str]) -> None:
    parse(_request_with(pilot))


def test_kill_grace_period_may_be_zero() -> None:
    # "Kill now" is a sane wish; the bound is the year every duration shares.
    parse(_request_with({}, {"killGracePeriod": "0s"}))


@pytest.mark.parametrize(("field", "minimum"), DURATION_FIELDS.items())
def test_durations_below_their_minimum_are_refused_naming_the_field(
    field: str, minimum: str
) -> None:
    below = parse_duration(minimum) - dt.timedelta(milliseconds=1)
    text = f"{int(below.total_seconds() * 1000)}ms"
    with pytest.raises(InvalidResource) as err:
        parse(
            _request_with({field: text, "lifetime": "2h"} if field != "lifetime" else {field: text})
        )
    assert f"spec.pilot.{field}: must be between {minimum} and 8760h" in str(err.value)


@pytest.mark.parametrize(
    "text", ["99999999999999999h", "9999999999999999999999ms", "8760h1ms", "999999h999999h"]
)
def test_huge_durations_are_a_value_error_never_an_overflow(text: str) -> None:
    with pytest.raises(InvalidResource) as err:
        parse(_request_with({"lifetime": text}))
    assert "spec.pilot.lifetime" in str(err.value)
    with pytest.raises(ValidationError):
        PilotSettings.model_validate({"idleTimeout": text})


def test_duration_bounds_are_stated_where_kubectl_explain_shows_them() -> None:
    fields = PilotSettings.model_fields
    for name, field in fields.items():
        ranges = [m for m in field.metadata if isinstance(m, DurationRange)]
        for r in ranges:
            assert r.minimum in (field.description or ""), name
            assert r.maximum in (field.description or ""), name


# --- ClassAd expressions ----------------------------------------------------------------


def test_classad_expressions_of_the_examples_parse() -> None:
    # stringListMember and friends come from htcondor2; parsing does not need them.
    req = parse(example("GlideinRequest", "cms-production")).spec
    assert isinstance(req, GlideinRequestSpec)
    assert "stringListMember" in req.match_expression


@pytest.mark.parametrize(
    "text",
    [
        "true); Rank = (1",  # a second attribute smuggled into the ad the parser reads
        "true)] [Rank = (1",  # a second ad
        "true // the rest is a comment",
        '"unterminated',
        "a b",
        "x\x00y",
        "(" * 300 + "1" + ")" * 300,  # deeper than the parser goes
    ],
)
def test_not_one_classad_expression(text: str) -> None:
    assert expression_problem(text) is not None


def test_classad_errors_quote_little_of_a_long_expression() -> None:
    text = "JobUniverse == 5 && " * 200 + "("
    assert len(text) < EXPRESSION_MAX_LENGTH
    obj = example("GlideinRequest", "cms-production")
    obj["spec"]["jobConstraint"] = text
    with pytest.raises(InvalidResource) as err:
        parse(obj)
    message = str(err.value)
    assert "spec.jobConstraint: not a ClassAd expression" in message
    assert "parser" in message
    assert len(message) < SHOWN + 300


def test_the_api_package_stands_on_its_own() -> None:
    # The ground floor: parsing resources pulls in neither the operator's HTCondor layer
    # nor htcondor2.
    code = (
        "import sys\n"
        "from glidein_operator.api.objects import load\n"
        "from pathlib import Path\n"
        f"load([Path({str(EXAMPLES)!r})])\n"
        "bad = [m for m in sys.modules if m == 'htcondor2' or m.startswith(("
        "'glidein_operator.condor', 'glidein_operator.controller', "
        "'glidein_operator.clouds', 'glidein_operator.provisioning'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- types as strict as the schema's ---------------------------------------------------


def test_numbers_as_yaml_writes_them_pass() -> None:
    obj = example("CloudEntry", "aws-us-east-1")
    it = obj["spec"]["instanceTypes"][0]
    it.update(pricePerHour=1, cpus=4.0)  # an int price; a float kubectl sends as 4
    obj["spec"]["limits"]["maxPilots"] = 1e3
    spec = parse(obj).spec
    assert isinstance(spec, CloudEntrySpec)
    assert spec.instance_types[0].price_per_hour == Decimal(1)
    assert spec.instance_types[0].cpus == 4
    assert spec.limits.max_pilots == 1000


def test_null_means_absent_as_on_the_server() -> None:
    obj = example("CloudEntry", "osg-nebraska")
    obj["spec"].update(limits=None, enabled=None, attributes={"X": None})
    spec = parse(obj).spec
    assert isinstance(spec, CloudEntrySpec)
    assert spec.enabled is True
    assert spec.limits.max_launch_per_cycle == 100
    assert spec.attributes == {}


class _View(Mapping[str, Any]):
    """A read-only mapping, as kopf hands specs over."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(("kind", "name"), EXAMPLE_IDS, ids=lambda v: str(v))
def test_objects_read_back_from_the_api_server_validate(kind: str, name: str) -> None:
    # The operator reads JSON (and kopf Mappings); strict types must not refuse it.
    model = KINDS_BY_NAME[kind].spec
    spec = parse(example(kind, name)).spec
    wire = json.loads(json.dumps(spec.to_wire()))
    assert model.model_validate(_View(wire)) == spec


def test_status_read_back_from_the_api_server_validates() -> None:
    status = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": "2026-11-30T12:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "spend": {
            "spent": 12.5,
            "periodStart": "2026-11-01T00:00:00Z",
            "entries": [{"name": "aws-us-east-1", "spent": 12.5, "pilotHours": 3}],
        },
        "pilotLogs": [
            {
                "pilotId": "b-1-0",
                "entry": "aws-us-east-1",
                "reason": "stuck",
                "at": "2026-11-30T11:00:00.123456+00:00",
                "log": "boot",
            }
        ],
    }
    parsed = GlideinRequestStatus.model_validate(status)
    assert parsed.conditions[0].last_transition_time == dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    assert GlideinRequestStatus.model_validate(json.loads(json.dumps(parsed.to_wire()))) == parsed
    CloudEntryStatus.model_validate({"pilots": 2, "conditions": []})


@pytest.mark.parametrize(
    ("name", "namespace", "fault"),
    [
        ("OSG", None, "metadata.name"),
        ("a" * 254, None, "metadata.name"),
        ("cms-production", "team.cms", "metadata.namespace"),
        (7, None, "metadata.name"),
    ],
)
def test_metadata_names_are_checked_like_the_server_does(
    name: Any, namespace: str | None, fault: str
) -> None:
    obj = example("GlideinRequest", "cms-production")
    obj["metadata"]["name"] = name
    if namespace:
        obj["metadata"]["namespace"] = namespace
    with pytest.raises(InvalidResource, match=fault):
        parse(obj)
