"""docs/conditions.md lists every condition type and reason the operator sets, and no other.

The reasons are read from the code, not from a list kept beside it: every call of
``set_condition`` (and of ``flag``, which sets one of two reasons) in the package, with
each argument at the type and reason positions followed to the string literals it can be
(literals, ``x if c else y``, local assignments, tuple unpacking, ``for`` loops over
literal rows, module constants, imported constants, and calls of the package's own
functions, to what they return). An argument it cannot follow fails
the test: a reason must be something the doc can be checked against. The per-entry
reasons of ``Degraded`` come from the ``DriverError`` classes' ``reason`` and the
``"Reason: ..."`` prefixes written into ``degraded[entry]``.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from glidein_operator.api.resources import KINDS, Kind

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator/glidein_operator"
DOC = ROOT / "docs/conditions.md"

# Function name -> (type position, type keyword, reason position, reason keyword).
SETTERS = {
    "set_condition": (1, "type_", 3, "reason"),
    "flag": (1, "type_", 3, "reasons"),  # (reason when True, reason when False)
}


class Unresolved(Exception):
    pass


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def function_of(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def _modules() -> dict[str, Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return out


MODULES = _modules()


def _names(target: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


class Resolver:
    """Follows an expression to the string literals it can evaluate to."""

    def __init__(self, module: Module, scope: ast.FunctionDef | ast.AsyncFunctionDef | None):
        self.module = module
        self.scope = scope

    def strings(self, expr: ast.expr) -> set[str]:
        return {s for node in self.values(expr) for s in self._literal(node)}

    def _literal(self, node: ast.expr) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Tuple | ast.List):
            return {s for e in node.elts for s in self.strings(e)}
        raise Unresolved(f"{self.module.where(node)}: {ast.unparse(node)}")

    def values(self, expr: ast.expr) -> list[ast.expr]:
        """The expressions ``expr`` may stand for, as literal as they can be made."""
        if isinstance(expr, ast.IfExp):
            return self.values(expr.body) + self.values(expr.orelse)
        if isinstance(expr, ast.Await):
            return self.values(expr.value)
        if isinstance(expr, ast.Call):
            called = self._function(expr.func)
            if called is not None:
                return called.returns()
        if isinstance(expr, ast.Name):
            return self._name(expr.id, expr)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            target = self._imported_module(expr.value.id)
            if target is not None:
                return Resolver(MODULES[target], None)._name(expr.attr, expr)
        return [expr]

    def _function(self, func: ast.expr) -> Resolver | None:
        """The package's function a call calls (by its name here, imported, or as an
        attribute of an imported module), as a resolver of its body."""
        module, name = self.module, None
        if isinstance(func, ast.Name):
            name = func.id
            for node in module.tree.body:
                if isinstance(node, ast.ImportFrom) and node.module in MODULES:
                    for a in node.names:
                        if (a.asname or a.name) == name:
                            module, name = MODULES[node.module], a.name
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = self._imported_module(func.value.id)
            if target is not None:
                module, name = MODULES[target], func.attr
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return Resolver(module, node)
        return None

    def returns(self) -> list[ast.expr]:
        """What the function (``scope``) may return, followed; a tuple's members are
        followed here, in the function's own scope, one tuple per combination."""
        assert self.scope is not None
        out: list[ast.expr] = []
        for node in ast.walk(self.scope):
            if (
                not isinstance(node, ast.Return)
                or node.value is None
                or self.module.function_of(node) is not self.scope
            ):
                continue
            for value in self.values(node.value):
                if not isinstance(value, ast.Tuple):
                    out.append(value)
                    continue
                members = [self._followed(e) for e in value.elts]
                for combination in itertools.product(*members):
                    out.append(ast.Tuple(list(combination), ast.Load(), lineno=value.lineno))
        return out

    def _followed(self, expr: ast.expr) -> list[ast.expr]:
        # A member that is not followed (a message from a parameter) stays as it is: an
        # error only where it is used as a type or reason.
        try:
            return self.values(expr)
        except Unresolved:
            return [expr]

    def _imported_module(self, alias: str) -> str | None:
        for node in ast.walk(self.module.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    if (a.asname or a.name) == alias and f"{node.module}.{a.name}" in MODULES:
                        return f"{node.module}.{a.name}"
            if isinstance(node, ast.Import):
                for a in node.names:
                    if (a.asname or a.name) == alias and a.name in MODULES:
                        return a.name
        return None

    def _name(self, name: str, at: ast.expr) -> list[ast.expr]:
        if self.scope is not None:
            found = self._bindings(self.scope, name)
            if found:
                return found
        found = self._bindings(self.module.tree, name, top_level=True)
        if found:
            return [v for node in found for v in Resolver(self.module, None).values(node)]
        for node in self.module.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module in MODULES:
                for a in node.names:
                    if (a.asname or a.name) == name:
                        return Resolver(MODULES[node.module], None)._name(a.name, at)
        raise Unresolved(f"{self.module.where(at)}: cannot follow {name!r}")

    def _bindings(self, scope: ast.AST, name: str, top_level: bool = False) -> list[ast.expr]:
        nodes = scope.body if top_level and isinstance(scope, ast.Module) else ast.walk(scope)
        out: list[ast.expr] = []
        for node in nodes:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    out += self._unpack(target, node.value, name)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                out += self._unpack(node.target, node.value, name)
            elif isinstance(node, ast.For) and name in _names(node.target):
                for row in self._rows(node.iter):
                    out += self._unpack(node.target, row, name)
        return out

    def _unpack(self, target: ast.expr, value: ast.expr, name: str) -> list[ast.expr]:
        if isinstance(target, ast.Name):
            return self.values(value) if target.id == name else []
        if isinstance(target, ast.Tuple):
            names = [t.id if isinstance(t, ast.Name) else None for t in target.elts]
            if name not in names:
                return []
            if isinstance(value, ast.Tuple) and len(value.elts) == len(names):
                return self.values(value.elts[names.index(name)])
            out: list[ast.expr] = []
            for node in self.values(value):
                if isinstance(node, ast.Constant) and node.value is None:
                    continue  # a function's "nothing": not unpacked where it is returned
                if not (isinstance(node, ast.Tuple) and len(node.elts) == len(names)):
                    raise Unresolved(
                        f"{self.module.where(value)}: cannot unpack {ast.unparse(value)}"
                    )
                out += self.values(node.elts[names.index(name)])
            return out
        return []

    def _rows(self, iterable: ast.expr) -> list[ast.expr]:
        rows: list[ast.expr] = []
        for node in self.values(iterable):
            if not isinstance(node, ast.List | ast.Tuple):
                raise Unresolved(f"{self.module.where(node)}: loop over {ast.unparse(node)}")
            rows += node.elts
        return rows


def _is_setter_parameter(expr: ast.expr, scope: ast.AST | None) -> bool:
    # Inside set_condition's and flag's own bodies, the reason is their parameter: the
    # call sites are what is checked.
    if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) or scope.name not in SETTERS:
        return False
    params = {a.arg for a in scope.args.args + scope.args.kwonlyargs}
    used = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    return bool(used) and used <= params


@dataclass(frozen=True)
class Use:
    kind: str | None  # the kind whose handler sets it, when known
    where: str


def _handler_kind(scope: ast.AST | None) -> str | None:
    """The kind a kopf handler is for, from its decorator's plural (``@kopf.timer(G, V,
    "cloudentries")``); None for functions that are not handlers."""
    if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    plurals = {k.plural: k.kind for k in KINDS}
    for deco in scope.decorator_list:
        if isinstance(deco, ast.Call):
            for arg in deco.args:
                if isinstance(arg, ast.Constant) and arg.value in plurals:
                    return plurals[arg.value]
    return None


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _set_in_code() -> tuple[dict[str, list[Use]], dict[str, list[Use]], list[str]]:
    """(reason -> uses, type -> uses, what could not be followed)."""
    reasons: dict[str, list[Use]] = {}
    types: dict[str, list[Use]] = {}
    problems: list[str] = []
    for module in MODULES.values():
        for call in ast.walk(module.tree):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called not in SETTERS:
                continue
            scope = module.function_of(call)
            use = Use(_handler_kind(scope), module.where(call))
            type_pos, type_kw, reason_pos, reason_kw = SETTERS[called]
            for pos, kw, into in ((type_pos, type_kw, types), (reason_pos, reason_kw, reasons)):
                arg = _argument(call, pos, kw)
                if arg is None:
                    problems.append(f"{use.where}: no {kw} argument")
                    continue
                if _is_setter_parameter(arg, scope):
                    continue
                try:
                    for text in Resolver(module, scope).strings(arg):
                        into.setdefault(text, []).append(use)
                except Unresolved as exc:
                    problems.append(f"{use.where}: {kw} is not a literal or constant ({exc})")
    return reasons, types, problems


def _names_degraded(target: ast.expr) -> bool:
    """``degraded[...]`` or ``acted.degraded[...]``/``acted.health[...]`` (controller/act.py),
    or ``listing_errors[...]`` (controller/observe.py: report puts them in Degraded)."""
    if isinstance(target, ast.Name):
        return target.id in ("degraded", "listing_errors")
    return isinstance(target, ast.Attribute) and target.attr in ("degraded", "health")


def _entry_reasons() -> tuple[set[str], list[str]]:
    """The per-entry reasons of Degraded: DriverError classes' ``reason``, and the
    ``"Reason: ..."`` prefixes written into ``degraded[...]``."""
    classes: dict[str, tuple[list[str], str | None]] = {}
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                reason = None
                for stmt in node.body:
                    target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
                    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                        target = stmt.targets[0]
                    value = getattr(stmt, "value", None)
                    if (
                        isinstance(target, ast.Name)
                        and target.id == "reason"
                        and isinstance(value, ast.Constant)
                    ):
                        reason = value.value
                classes[node.name] = (bases, reason)
    driver_errors = {"DriverError"}
    while True:
        more = {n for n, (bases, _) in classes.items() if set(bases) & driver_errors}
        if more <= driver_errors:
            break
        driver_errors |= more
    out = {str(classes[n][1]) for n in driver_errors if classes[n][1]}
    problems = []
    prefix = re.compile(r"^([A-Z][A-Za-z]+): ")
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if not (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Subscript)
                and _names_degraded(node.targets[0].value)
            ):
                continue
            value = node.value
            first = value.values[0] if isinstance(value, ast.JoinedStr) else value
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                m = prefix.match(first.value)
                if m:
                    out.add(m.group(1))
                    continue
            if (
                isinstance(first, ast.FormattedValue)
                and isinstance(first.value, ast.Attribute)
                and first.value.attr == "reason"
            ):
                continue  # a DriverError's reason, listed above
            problems.append(f"{module.where(node)}: a Degraded message without 'Reason: '")
    return out, problems


# --- the document -------------------------------------------------------------------------


def _tables() -> Iterator[tuple[str, dict[str, str]]]:
    """(section heading, row by column name) for every table row of the doc."""
    section, header = "", None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            section, header = line.lstrip("#").strip(), None
            continue
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set("".join(cells)) <= set("-: "):
            yield section, dict(zip(header, cells, strict=False))


def _word(cell: str) -> str | None:
    m = re.fullmatch(r"`([A-Za-z]+)`", cell)
    return m.group(1) if m else None


def _documented() -> tuple[dict[str, set[str]], set[str], set[str]]:
    """(kind -> reasons in its condition tables, condition types, per-entry reasons)."""
    by_kind: dict[str, set[str]] = {}
    types: set[str] = set()
    entry: set[str] = set()
    for section, row in _tables():
        reason = _word(row.get("Reason", ""))
        if reason is None:
            continue
        if "Type" in row:
            by_kind.setdefault(section, set()).add(reason)
            types.add(_word(row["Type"]) or "")
        else:
            entry.add(reason)
    return by_kind, types, entry


def test_the_code_is_read() -> None:
    reasons, types, problems = _set_in_code()
    assert not problems, "\n".join(problems)
    # Spot checks that the walk finds what it must (literal, variable, loop row, constant).
    for reason in ("InvalidSpec", "ScheddUnreachable", "ImageNotInRegion", "KillSwitch"):
        assert reason in reasons, reason
    assert {"Ready", "Degraded", "JobsUnmatched", "BudgetKill"} <= set(types)
    entry, problems = _entry_reasons()
    assert not problems, "\n".join(problems)
    assert {
        "AuthFailed",
        "PilotsRefused",
        "PilotsNotRegistering",
        "PilotsFailing",
        "ListingOverBudget",
    } <= entry


def test_every_reason_the_operator_sets_is_documented() -> None:
    reasons, _types, _ = _set_in_code()
    by_kind, _, _ = _documented()
    anywhere = set().union(*by_kind.values())
    missing = {r: [u.where for u in uses] for r, uses in reasons.items() if r not in anywhere}
    assert not missing, f"reasons set in the code but not in docs/conditions.md: {missing}"
    # A handler of one kind: its reasons are in that kind's section.
    misplaced = [
        f"{r} ({u.where}) under {u.kind}"
        for r, uses in reasons.items()
        for u in uses
        if u.kind is not None and r not in by_kind.get(u.kind, set())
    ]
    assert not misplaced, f"reasons missing from their kind's table: {misplaced}"


def test_every_condition_type_is_documented() -> None:
    _, types, _ = _set_in_code()
    _, documented, _ = _documented()
    assert set(types) <= documented, f"types not in docs/conditions.md: {set(types) - documented}"
    assert documented <= set(types), f"types the code never sets: {documented - set(types)}"


def test_every_degraded_entry_reason_is_documented() -> None:
    entry, _ = _entry_reasons()
    _, _, documented = _documented()
    assert entry <= documented, f"per-entry reasons not documented: {sorted(entry - documented)}"
    assert documented <= entry, f"documented, never set: {sorted(documented - entry)}"


def test_the_doc_lists_no_reason_the_operator_does_not_set() -> None:
    reasons, _, _ = _set_in_code()
    by_kind, _, _ = _documented()
    stale = {k: sorted(v - set(reasons)) for k, v in by_kind.items() if v - set(reasons)}
    assert not stale, f"docs/conditions.md lists reasons the code never sets: {stale}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_kind_has_a_section(kind: Kind) -> None:
    by_kind, _, _ = _documented()
    assert kind.kind in by_kind
