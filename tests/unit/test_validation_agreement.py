"""Properties of the models alone, over mutations of the examples and arbitrary text.

The verdicts themselves are compared with a real API server in
tests/integration/test_validation_agreement.py; here: whatever is thrown at them, the
models answer with a clean error naming a field, never a crash (OverflowError from a
huge duration was one), and what they accept survives the trip through the API server's
JSON that the operator reads back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import classad2
from hypothesis import given, settings
from hypothesis import strategies as st

from glidein_operator.api.base import DURATION_MAX_LENGTH, DURATION_PATTERN, parse_duration
from glidein_operator.api.classad import (
    ATTRIBUTE_NAME_PATTERN,
    attribute_name_problem,
    expression_problem,
)
from glidein_operator.api.objects import InvalidResource, Resource, parse
from tests.malformed_cases import Mutation, mutated_examples

PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True, database=None)
# Go's time.Duration is int64 nanoseconds: CEL's duration() fails beyond this.
GO_MAX_DURATION = dt.timedelta(microseconds=(2**63 - 1) // 1000)


@PROPERTIES
@given(case=mutated_examples())
def test_models_answer_every_mutation_with_errors_naming_fields(
    case: tuple[dict[str, Any], list[Mutation]],
) -> None:
    obj, _ = case
    try:
        resource: Resource | None = parse(obj)
        errors: list[str] = []
    except InvalidResource as exc:
        resource, errors = None, exc.errors
    if resource is None:
        assert errors
        for error in errors:
            assert re.match(r"(spec|metadata)\b\S*: \S", error), error
    else:
        wire = json.loads(json.dumps(resource.spec.to_wire()))
        assert type(resource.spec).model_validate(wire) == resource.spec


@PROPERTIES
@given(
    text=st.one_of(
        st.text(max_size=DURATION_MAX_LENGTH + 4),
        st.from_regex(r"([0-9]{1,25}(\.[0-9]{1,12})?(ms|s|m|h)){1,4}", fullmatch=True),
    )
)
def test_durations_parse_within_go_limits_or_fail_cleanly(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        assert not (len(text) <= DURATION_MAX_LENGTH and re.fullmatch(DURATION_PATTERN, text))
        return
    assert dt.timedelta(0) <= value < GO_MAX_DURATION


@PROPERTIES
@given(text=st.text(max_size=300))
def test_the_classad_check_answers_any_text(text: str) -> None:
    problem = expression_problem(text)
    assert problem is None or "parser" in problem


@PROPERTIES
@given(
    name=st.one_of(
        st.text(max_size=12),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
        st.sampled_from(["true", "ERROR", "isnt", "My", "target", "parent", "Is_x"]),
    )
)
def test_attribute_names_the_classad_parser_takes(name: str) -> None:
    # What the check allows, HTCondor's parser reads as one attribute of that name; what
    # it refuses on syntax, the parser refuses too (reserved words aside: it takes MY).
    ok = attribute_name_problem(name) is None
    try:
        keys = list(classad2.ClassAd(f"[{name} = 1]").keys())
    except Exception:
        keys = []
    if ok:
        assert keys == [name]
    elif not re.fullmatch(ATTRIBUTE_NAME_PATTERN, name):
        assert keys != [name]
