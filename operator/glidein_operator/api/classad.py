"""ClassAd expressions and attribute names in resource fields, checked with HTCondor's
own parser (classad2).

The API server cannot run the ClassAd parser: expressions are checked here, which the
operator does for every object it reads and the validating admission webhook (through
``objects.parse``) does at ``kubectl apply``. Attribute *names* are plain syntax, so the
CRD checks them as well (a CEL rule), and the two agree.

Parsing needs no htcondor2 (and this module does not import it): HTCondor's extra
functions (stringListMember, ...) matter only when an expression is evaluated, and an
unknown function name parses.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import classad2
from pydantic import AfterValidator, Field

from glidein_operator.api.base import Checked, CheckedKeys, at_most

# Long enough for any constraint a person writes; far below what crashes the parser
# (left-deep chains of a few hundred thousand terms overflow its stack).
EXPRESSION_MAX_LENGTH = 4096
# How much of a bad expression an error quotes back.
SHOWN = 80
# These expressions become lines of the pilot's HTCondor configuration: a line break
# would end the line and start another configuration entry.
SINGLE_LINE_PATTERN = r"^[^\n\r]*$"

ATTRIBUTE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# The parser's keywords, and the two scopes a match evaluates in: an attribute by one of
# these names cannot be referred to.
RESERVED_NAME_PATTERN = r"^(?i:true|false|undefined|error|is|isnt|my|target)$"
# A submit-description command that sets a job attribute: +Name or MY.Name.
SUBMIT_ATTRIBUTE_PREFIX = r"^([+]|(?i:my)[.])"

# The parser keeps its last complaint in one global; one parse at a time keeps it ours.
_PARSER = threading.Lock()


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def expression_problem(text: str) -> str | None:
    """Why ``text`` is not one ClassAd expression, in the parser's words, or None."""
    if len(text) > EXPRESSION_MAX_LENGTH:
        return f"longer than {EXPRESSION_MAX_LENGTH} characters"
    # Parsed as an attribute of an ad, in parentheses and followed by a sentinel attribute,
    # so that text cannot end the expression early and smuggle in more (`1; Other = 2`,
    # `1)] [X = (2`: the parser ignores what follows the first ad) without the ad's names
    # showing it. Twice, with other names: no text can fit both. classad2.ClassAd, not
    # parseAds, which imports htcondor2 (and so reads HTCondor's configuration).
    for name, sentinel in (("a", "b"), ("c", "d")):
        with _PARSER:
            before = classad2.lastError()
            try:
                ad = classad2.ClassAd(f"[{name} = ({text}); {sentinel} = 0]")
            except Exception as exc:  # any refusal of the parser is the verdict
                after = classad2.lastError()
                detail = after if after and after != before else str(exc)
                return f"HTCondor's ClassAd parser refuses it ({detail.strip()})"
        if sorted(ad.keys()) != [name, sentinel]:
            return "HTCondor's ClassAd parser does not read it as one expression"
    return None


def check_expression(text: str) -> str:
    problem = expression_problem(text)
    if problem:
        raise ValueError(f"not a ClassAd expression: {problem}: {_shown(text)}")
    return text


def attribute_name_problem(name: str) -> str | None:
    """Why ``name`` is not a ClassAd attribute name HTCondor's configuration takes, or None."""
    if not re.fullmatch(ATTRIBUTE_NAME_PATTERN, name):
        return "use a letter or _ then letters, digits or _"
    if re.fullmatch(RESERVED_NAME_PATTERN, name):
        return "a reserved word"
    return None


# A ClassAd expression evaluated by the operator or the schedd.
ClassAdExpression = Annotated[
    str, Field(max_length=EXPRESSION_MAX_LENGTH), AfterValidator(check_expression)
]


class _OneLine(Checked):
    """One line of text: a pattern for the server, a plainer message here."""

    def schema(self) -> dict[str, Any]:
        return {"pattern": SINGLE_LINE_PATTERN}

    @staticmethod
    def check(text: str) -> str:
        if not re.fullmatch(SINGLE_LINE_PATTERN, text):
            raise ValueError(
                "must be one line: it becomes a line of the pilot's HTCondor configuration"
            )
        return text


# A ClassAd expression written into the pilot's configuration, one line.
ConfigClassAdExpression = Annotated[
    str,
    Field(max_length=EXPRESSION_MAX_LENGTH),
    _OneLine(),
    AfterValidator(check_expression),
]


def _cel(pattern: str) -> str:
    # A CEL string literal takes the regex as it is only without quotes and backslashes.
    if "'" in pattern or "\\" in pattern:
        raise ValueError(f"cannot quote {pattern!r} for CEL")
    return f"'{pattern}'"


@dataclass(frozen=True)
class AttributeMap(CheckedKeys):
    """A map of ClassAd attribute names to expressions (an entry's attributes, an image's
    provides). Names are checked here and by a CEL rule; values here only."""

    def key_problem(self, key: str) -> str | None:
        problem = attribute_name_problem(key)
        return f"{_shown(key)} is not a ClassAd attribute name: {problem}" if problem else None

    def key_rule(self) -> dict[str, str]:
        return {
            "rule": (
                f"self.all(k, k.matches({_cel(ATTRIBUTE_NAME_PATTERN)}) && "
                f"!k.matches({_cel(RESERVED_NAME_PATTERN)}))"
            ),
            "message": (
                "every key must be a ClassAd attribute name (a letter or _ then letters, "
                "digits or _; not a reserved word such as true, error or MY)"
            ),
        }


@dataclass(frozen=True)
class SubmitCommands(Checked):
    """Extra submit-description commands for a grid job. Those that set a job attribute
    (``+Name`` or ``MY.Name``) take a ClassAd expression: their names are checked here and
    by a CEL rule, their values here. Other commands are HTCondor's to judge."""

    max_properties: int = 256

    def check(self, value: dict[str, str]) -> dict[str, str]:
        at_most(value, self.max_properties)
        for key, text in value.items():
            prefix = re.match(SUBMIT_ATTRIBUTE_PREFIX, key)
            if not prefix:
                continue
            problem = attribute_name_problem(key[prefix.end() :])
            if problem:
                raise ValueError(f"{_shown(key)} does not name a ClassAd attribute: {problem}")
            expression = expression_problem(text)
            if expression:
                raise ValueError(
                    f"{_shown(key)}: not a ClassAd expression: {expression}: {_shown(text)}"
                )
        return value

    def schema(self) -> dict[str, Any]:
        prefix = SUBMIT_ATTRIBUTE_PREFIX.removeprefix("^")
        name = ATTRIBUTE_NAME_PATTERN.removeprefix("^")
        reserved = RESERVED_NAME_PATTERN.removeprefix("^")
        return {
            "maxProperties": self.max_properties,
            "x-kubernetes-validations": [
                {
                    "rule": (
                        f"self.all(k, !k.matches({_cel('^' + prefix)}) || "
                        f"(k.matches({_cel('^' + prefix + name)}) && "
                        f"!k.matches({_cel('^' + prefix + reserved)})))"
                    ),
                    "message": (
                        "+Name and MY.Name keys must name a ClassAd attribute (a letter or _ then "
                        "letters, digits or _; not a reserved word such as true, error or MY)"
                    ),
                }
            ],
        }
