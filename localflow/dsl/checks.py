"""Semantic checks over a parsed ``ir.Flow`` that need no running.

Owns: duplicate and clashing names, names in scope at each expression, constant
input defaults, expressions that fail whatever the data (``1/0``), branch counts
and loop limits, and unreachable statements after return/fail in any block.

Scope, in document order (see docs/dsl.md): inputs and ``workflow`` everywhere;
a ``set`` variable after its first ``set``; a step after it appears, except that
a step inside a ``for`` body is visible only inside that loop body; a loop
variable only inside its loop; ``error`` only inside a catch block. A step or
variable from a branch that may not run is allowed: reading it unset is a
runtime error.

Works on the IR alone (``source_lines`` only sharpens columns), so a flow read back
from a history can be checked the same way. Returns diagnostics; never raises.
Whether a child flow exists is not known here: ``lf validate`` checks that.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

from localflow import ir
from localflow.core import secrets
from localflow.core.decide import parse_timestamp
from localflow.core.expr import evaluate, names_used, to_text
from localflow.dsl.lexer import diagnostic
from localflow.errors import Diagnostic, ExpressionError, InvalidValue

MAX_CONCURRENCY = 1000
CHECK_TIME = "2000-01-01T00:00:00.000Z"  # what now() gives when a constant expression is tried

# The expressions each statement kind evaluates, in the order it evaluates them (if: see _Scopes.stmt).
EXPRESSIONS: dict[type, Callable[[ir.Stmt], list[ir.Expr]]] = {
    ir.Activity: lambda s: [*s.argv, *([s.stdin] if s.stdin is not None else []), *(s.undo or ()),  # type: ignore
                            *(e for _, e in (s.call.kwargs if s.call is not None else ())),
                            *(e for e in (s.env, s.cwd) if e is not None)],
    ir.WaitSignal: lambda s: [],
    ir.ChildFlow: lambda s: [s.input] if s.input is not None else [],  # type: ignore[union-attr]
    ir.Sleep: lambda s: [s.until] if s.until is not None else [],  # type: ignore[union-attr]
    ir.Fail: lambda s: [s.message],  # type: ignore[union-attr]
    ir.Return: lambda s: [s.value],  # type: ignore[union-attr]
    ir.Set: lambda s: [s.value],  # type: ignore[union-attr]
    ir.If: lambda s: [b.condition for b in s.branches],  # type: ignore[union-attr]
    ir.Parallel: lambda s: [],
    ir.For: lambda s: [s.items],  # type: ignore[union-attr]
}
ENDS_BLOCK = {ir.Return: "return", ir.Fail: "fail"}


def check_flow(flow: ir.Flow, source_lines: Sequence[str] = (), file: str | None = None) -> list[Diagnostic]:
    """Every semantic problem of ``flow``, positioned in its source."""
    checker = _Checker(flow, list(source_lines), flow.file if file is None else file)
    checker.duplicates()
    checker.input_defaults()
    checker.shapes()
    checker.env_and_cwd()
    checker.sleep_until()
    _Scopes(checker).block(flow.body, _Where())
    checker.reachability()
    return checker.diagnostics


def blocks(body: tuple) -> Iterator[tuple]:
    """``body`` and every block nested in it, in document order."""
    yield body
    for stmt in body:
        for _, inner in ir.child_blocks(stmt):
            yield from blocks(inner)


class _Checker:
    def __init__(self, flow: ir.Flow, source_lines: list[str], file: str) -> None:
        self.flow, self.source_lines, self.file = flow, source_lines, file
        self.diagnostics: list[Diagnostic] = []
        self.inputs = {item.name: item.line for item in flow.inputs}
        self.steps: dict[str, int] = {}
        for stmt in ir.walk(flow.body):
            if isinstance(stmt, ir.STEP_KINDS) and stmt.name:
                self.steps.setdefault(stmt.name, stmt.line)

    def error(self, line: int, col: int, message: str) -> None:
        self.diagnostics.append(diagnostic(self.file, self.source_lines, line, col, message))

    def name_col(self, line: int, col: int, keyword: str) -> int:
        """Column of the name after ``keyword`` at (line, col); ``col`` without the source."""
        if not 0 < line <= len(self.source_lines):
            return col
        text, index = self.source_lines[line - 1], col - 1 + len(keyword)
        while index < len(text) and text[index] in " \t":
            index += 1
        return index + 1

    def duplicates(self) -> None:
        inputs: dict[str, int] = {}
        for item in self.flow.inputs:
            if item.name in inputs:
                col = self.name_col(item.line, item.col, "input")
                self.error(item.line, col, f"input '{item.name}' is declared twice (first at line {inputs[item.name]})")
            inputs.setdefault(item.name, item.line)
        steps: dict[str, int] = {}
        for stmt in ir.walk(self.flow.body):
            if not isinstance(stmt, ir.STEP_KINDS) or not stmt.name:
                continue
            col = self.name_col(stmt.line, stmt.col, "step")
            if stmt.name in steps:
                self.error(stmt.line, col, f"step '{stmt.name}' is defined twice (first at line {steps[stmt.name]})")
            elif stmt.name in inputs:
                self.error(stmt.line, col, f"step '{stmt.name}' has the same name as an input "
                           f"(line {inputs[stmt.name]})")
            steps.setdefault(stmt.name, stmt.line)

    def clash(self, name: str, line: int, col: int, what: str) -> None:
        """A variable or loop variable may not share its name with an input or a step."""
        if name in self.inputs:
            self.error(line, col, f"{what} '{name}' has the same name as an input (line {self.inputs[name]})")
        elif name in self.steps:
            self.error(line, col, f"{what} '{name}' has the same name as a step (line {self.steps[name]})")

    def input_defaults(self) -> None:
        for item in self.flow.inputs:
            if item.default is None:
                continue
            used = self.names(item.default)
            for name, line, col in used or ():
                self.error(line, col, f"input defaults must be constants: '{name}' cannot be used here")
            if used == []:
                self.constant(item.default, {}, "input defaults must be constants: ")

    def shapes(self) -> None:
        for stmt in ir.walk(self.flow.body):
            if isinstance(stmt, ir.Parallel):
                least = 2 if stmt.race else 1
                if len(stmt.branches) < least:
                    word = "race" if stmt.race else "parallel"
                    need = "at least two 'branch:' blocks" if stmt.race else "at least one 'branch:' block"
                    self.error(stmt.line, stmt.col, f"'{word}:' needs {need}")
            elif isinstance(stmt, ir.For) and not 1 <= stmt.concurrency <= MAX_CONCURRENCY:
                self.error(stmt.line, self.concurrency_col(stmt),
                           f"bad concurrency {stmt.concurrency}: a loop runs from 1 to {MAX_CONCURRENCY} "
                           "items at once, e.g. parallel 4")

    def env_and_cwd(self) -> None:
        """A constant ``env`` or ``cwd`` clause is checked now (docs/activities-env.md): a bad name, a
        path that is absolute or goes up with '..' is a flow error; others are checked when scheduled."""
        for stmt in ir.walk(self.flow.body):
            if not isinstance(stmt, ir.Activity):
                continue
            for expr, check in ((stmt.env, lambda v: secrets.check_env(v, to_text)), (stmt.cwd, secrets.check_cwd)):
                if expr is None or self.names(expr) != []:
                    continue
                try:
                    check(evaluate(expr, {"__now__": CHECK_TIME}))
                except ExpressionError:
                    pass  # reported where every constant expression is tried
                except InvalidValue as exc:
                    self.error(expr.line, expr.col, str(exc))

    def sleep_until(self) -> None:
        """A constant ``sleep until "..."`` that is no timestamp fails every run: report it now."""
        for stmt in ir.walk(self.flow.body):
            if not isinstance(stmt, ir.Sleep) or stmt.until is None or self.names(stmt.until) != []:
                continue
            try:
                parse_timestamp(evaluate(stmt.until, {"__now__": CHECK_TIME}), stmt.until)
            except ExpressionError as exc:
                if exc.message.startswith("sleep until"):  # (others are reported with every constant)
                    self.error(exc.line, exc.col, exc.message)

    def concurrency_col(self, loop: ir.For) -> int:
        """Column of N in the loop's ``parallel N:`` when the source shows it on the loop's first line."""
        if 0 < loop.line <= len(self.source_lines):
            pattern = rf"\sparallel\s+0*({loop.concurrency})\s*:\s*$"
            found = re.search(pattern, self.source_lines[loop.line - 1].split("#")[0])
            if found:
                return found.start(1) + 1
        return loop.col

    def reachability(self) -> None:
        for body in blocks(self.flow.body):
            for stmt, after in zip(body, body[1:]):
                word = ENDS_BLOCK.get(type(stmt))
                if word is not None:
                    self.error(after.line, after.col,
                               f"unreachable: this statement comes after {word} at line {stmt.line}")
                    break

    def names(self, expr: ir.Expr) -> list[tuple[str, int, int]] | None:
        """The names ``expr`` reads, or None (reported) when it does not compile."""
        try:
            return names_used(expr)
        except ExpressionError as exc:
            self.error(exc.line, exc.col, exc.message)
            return None

    def constant(self, expr: ir.Expr, env: dict, now_hint: str = "") -> None:
        """An expression that reads no names fails the same way every run: report it now."""
        try:
            evaluate(expr, env)
        except ExpressionError as exc:
            unavailable = now_hint and exc.message.startswith("now()")
            self.error(exc.line, exc.col, f"{now_hint}now() cannot be used here" if unavailable else exc.message)


@dataclass(frozen=True)
class _Where:
    """What encloses a block: the loops (outermost first) and whether it is a catch block."""

    loops: tuple[ir.For, ...] = ()
    in_catch: bool = False


class _Scopes:
    """Walks the flow in document order, checking each expression against what is visible there."""

    def __init__(self, checker: _Checker) -> None:
        self.c = checker
        self.steps: dict[str, tuple[ir.Step, tuple[ir.For, ...]]] = {}  # seen so far, with their loops
        self.variables: dict[str, int] = {}  # set so far: name -> line of the first set
        self.later_variables = {s.name: s.line for s in ir.walk(checker.flow.body) if isinstance(s, ir.Set)}
        self.loop_vars = {s.var: s.line for s in ir.walk(checker.flow.body) if isinstance(s, ir.For)}

    def block(self, body: tuple, where: _Where) -> None:
        for stmt in body:
            self.stmt(stmt, where)

    def stmt(self, stmt: ir.Stmt, where: _Where) -> None:
        if isinstance(stmt, ir.If):  # each condition is read just before its own arm, in document order
            for branch in stmt.branches:
                self.expressions([branch.condition], where)
                self.block(branch.body, where)
            self.block(stmt.orelse or (), where)
            return
        self.expressions(EXPRESSIONS[type(stmt)](stmt), where)
        if isinstance(stmt, ir.For):
            self.loop(stmt, where)
        elif isinstance(stmt, ir.Parallel):
            for branch in stmt.branches:
                self.block(branch, where)
        elif isinstance(stmt, ir.STEP_KINDS):
            for catch in stmt.catches:
                self.block(catch.body, replace(where, in_catch=True))
            self.steps.setdefault(stmt.name, (stmt, where.loops))
        elif isinstance(stmt, ir.Set):
            self.assign(stmt, where)

    def loop(self, stmt: ir.For, where: _Where) -> None:
        col = self.c.name_col(stmt.line, stmt.col, "for")
        outer = next((loop for loop in where.loops if loop.var == stmt.var), None)
        if outer is not None:
            self.c.error(stmt.line, col, f"loop variable '{stmt.var}' is already the variable of the loop "
                         f"at line {outer.line}: choose another name")
        self.c.clash(stmt.var, stmt.line, col, "loop variable")
        self.block(stmt.body, replace(where, loops=where.loops + (stmt,)))

    def assign(self, stmt: ir.Set, where: _Where) -> None:
        col = self.c.name_col(stmt.line, stmt.col, "set")
        loop = next((loop for loop in where.loops if loop.var == stmt.name), None)
        if loop is not None:
            self.c.error(stmt.line, col, f"cannot set '{stmt.name}': it is the variable of the loop at line {loop.line}")
        elif stmt.name not in self.variables:
            self.c.clash(stmt.name, stmt.line, col, "variable")
        self.variables.setdefault(stmt.name, stmt.line)

    def expressions(self, exprs: list[ir.Expr], where: _Where) -> None:
        for expr in exprs:
            used = self.c.names(expr)
            for name, line, col in used or ():
                problem = self.problem(name, where)
                if problem:
                    self.c.error(line, col, problem)
            if used == []:
                self.c.constant(expr, {"__now__": CHECK_TIME})

    def problem(self, name: str, where: _Where) -> str | None:
        """Why ``name`` cannot be read at ``where``; None when it can."""
        if name in self.c.inputs or name == "workflow" or name in self.variables:
            return None
        if name == "error":
            return None if where.in_catch else "'error' is only defined inside a catch block"
        if any(loop.var == name for loop in where.loops):
            return None
        if name in self.steps:
            return self.step_problem(name, where)
        if name in self.c.steps:
            return f"step '{name}' has not run yet here"
        if name in self.later_variables:
            return f"variable '{name}' is not set yet here (it is set at line {self.later_variables[name]})"
        if name in self.loop_vars:
            return f"'{name}' is the variable of the loop at line {self.loop_vars[name]}: it exists only inside that loop"
        known = sorted({*self.c.inputs, "workflow", *self.c.steps, *self.variables,
                        *(loop.var for loop in where.loops), *(["error"] if where.in_catch else [])})
        close = difflib.get_close_matches(name, known, n=1)
        return f"unknown name '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")

    def step_problem(self, name: str, where: _Where) -> str | None:
        _, loops = self.steps[name]
        inside = [loop.id for loop in where.loops]
        for depth, loop in enumerate(loops):
            if depth >= len(inside) or inside[depth] != loop.id:
                return f"step '{name}' runs inside a loop (line {loop.line}); read its results inside the loop"
        return None
