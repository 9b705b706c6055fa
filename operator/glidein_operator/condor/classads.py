"""ClassAds with HTCondor's full function library, and truth as HTCondor sees it.

Plain classad2 lacks the functions HTCondor daemons add (stringListMember, split,
userHome, ...): they evaluate to Error until htcondor2 is imported, which registers them.
Every module that evaluates job or machine expressions imports ClassAd support from here
so it evaluates exactly what the negotiator would.
"""

from __future__ import annotations

import json

import classad2
import htcondor2  # noqa: F401  (registers HTCondor's ClassAd functions)

ClassAd = classad2.ClassAd
ExprTree = classad2.ExprTree


def is_true(value: object) -> bool:
    """HTCondor's reading of a Requirements-like result: true, or a non-zero number.
    Undefined and Error (classad2.Value, an IntEnum) are false."""
    if isinstance(value, classad2.Value):
        return False
    if isinstance(value, bool):
        return value
    return isinstance(value, int | float) and value != 0


def evaluates_true(expr: classad2.ExprTree, ad: classad2.ClassAd) -> bool:
    return is_true(expr.eval(ad))


def ads_from_json(text: str) -> list[classad2.ClassAd]:
    """ClassAds from JSON as ``condor_q -json`` writes it (a list) or as a stream of objects.

    classad2's JSON parser reads one object, or objects one after another, but not a list
    of several: list elements are built one by one.
    """
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        return [_ad_from_dict(item) for item in json.loads(stripped)]
    return list(classad2.parseAds(stripped, classad2.ParserType.JSON))


def _ad_from_dict(item: dict[str, object]) -> classad2.ClassAd:
    ad = classad2.ClassAd()
    for key, value in item.items():
        # HTCondor's JSON writes expressions as "\/Expr(...)\/"; once json.loads has read
        # the string, the backslashes are gone.
        if isinstance(value, str) and value.startswith("/Expr(") and value.endswith(")/"):
            ad[key] = classad2.ExprTree(value[len("/Expr(") : -len(")/")])
        else:
            ad[key] = value
    return ad
