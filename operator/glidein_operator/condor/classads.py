"""ClassAds with HTCondor's full function library, and truth as HTCondor sees it.

Plain classad2 lacks the functions HTCondor daemons add (stringListMember, split,
userHome, ...): they evaluate to Error until htcondor2 is imported, which registers them.
Every module that evaluates job or machine expressions imports ClassAd support from here
so it evaluates exactly what the negotiator would.
"""

from __future__ import annotations

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
