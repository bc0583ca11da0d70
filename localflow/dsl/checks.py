"""Semantic checks over a parsed ``ir.Flow`` that need no running.

Owns: duplicate names, names in scope at each expression (inputs, ``workflow``
and the steps that run earlier), constant input defaults, expressions that fail
whatever the data (``1/0``), and unreachable statements after return/fail.

Works on the IR alone (``source_lines`` only sharpens columns), so a flow read back
from a history can be checked the same way. Returns diagnostics; never raises.
"""

from __future__ import annotations

import difflib
from typing import Callable, Sequence

from localflow import ir
from localflow.core.expr import evaluate, names_used
from localflow.dsl.lexer import diagnostic
from localflow.errors import Diagnostic, ExpressionError

# The expressions each statement kind evaluates, in the order it evaluates them.
EXPRESSIONS: dict[type, Callable[[ir.Stmt], list[ir.Expr]]] = {
    ir.Activity: lambda s: [*s.argv, *([s.stdin] if s.stdin is not None else [])],  # type: ignore[union-attr]
    ir.Sleep: lambda s: [],
    ir.Fail: lambda s: [s.message],  # type: ignore[union-attr]
    ir.Return: lambda s: [s.value],  # type: ignore[union-attr]
}
ENDS_BLOCK = {ir.Return: "return", ir.Fail: "fail"}


def check_flow(flow: ir.Flow, source_lines: Sequence[str] = (), file: str | None = None) -> list[Diagnostic]:
    """Every semantic problem of ``flow``, positioned in its source."""
    checker = _Checker(flow, list(source_lines), flow.file if file is None else file)
    checker.duplicates()
    checker.input_defaults()
    checker.scopes()
    checker.reachability()
    return checker.diagnostics


class _Checker:
    def __init__(self, flow: ir.Flow, source_lines: list[str], file: str) -> None:
        self.flow, self.source_lines, self.file = flow, source_lines, file
        self.diagnostics: list[Diagnostic] = []

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
        for stmt in self.flow.body:
            if not isinstance(stmt, ir.Activity) or not stmt.name:
                continue
            col = self.name_col(stmt.line, stmt.col, "step")
            if stmt.name in steps:
                self.error(stmt.line, col, f"step '{stmt.name}' is defined twice (first at line {steps[stmt.name]})")
            elif stmt.name in inputs:
                self.error(stmt.line, col, f"step '{stmt.name}' has the same name as an input "
                           f"(line {inputs[stmt.name]})")
            steps.setdefault(stmt.name, stmt.line)

    def input_defaults(self) -> None:
        for item in self.flow.inputs:
            if item.default is None:
                continue
            used = self.names(item.default)
            for name, line, col in used or ():
                self.error(line, col, f"input defaults must be constants: '{name}' cannot be used here")
            if used == []:
                self.constant(item.default)

    def scopes(self) -> None:
        scope = {item.name for item in self.flow.inputs} | {"workflow"}
        steps = set(self.flow.step_names())
        known = sorted(scope | steps)
        for stmt in self.flow.body:
            for expr in EXPRESSIONS[type(stmt)](stmt):
                used = self.names(expr)
                for name, line, col in used or ():
                    if name not in scope:
                        self.error(line, col, _out_of_scope(name, steps, known))
                if used == []:
                    self.constant(expr)
            if isinstance(stmt, ir.Activity):
                scope.add(stmt.name)

    def reachability(self) -> None:
        body = self.flow.body
        for stmt, after in zip(body, body[1:]):
            word = ENDS_BLOCK.get(type(stmt))
            if word is not None:
                self.error(after.line, after.col, f"unreachable: this statement comes after {word} at line {stmt.line}")
                return

    def names(self, expr: ir.Expr) -> list[tuple[str, int, int]] | None:
        """The names ``expr`` reads, or None (reported) when it does not compile."""
        try:
            return names_used(expr)
        except ExpressionError as exc:
            self.error(exc.line, exc.col, exc.message)
            return None

    def constant(self, expr: ir.Expr) -> None:
        """An expression that reads no names fails the same way every run: report it now."""
        try:
            evaluate(expr, {})
        except ExpressionError as exc:
            self.error(exc.line, exc.col, exc.message)


def _out_of_scope(name: str, steps: set[str], known: list[str]) -> str:
    if name in steps:
        return f"step '{name}' has not run yet here"
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown name '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")
