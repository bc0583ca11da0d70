"""Semantic checks over a parsed ``ir.Flow`` that need no running.

Owns: duplicate and clashing names, names in scope at each expression, constant
input defaults, expressions that fail whatever the data (``1/0``), branch counts,
loop limits and the other bounds (``max N``, ``first K``, ``parallel N``), ``branch if``
in a race, duplicate ``on signal`` handlers in one scope, a signal loop closed by its own
signal, a detached flow step with catches, ``break``/``continue`` outside a loop, and
unreachable statements after return/fail/break/continue in any block.

Scope, in document order (see docs/dsl.md): inputs and ``workflow`` everywhere;
a ``set`` variable after its first ``set``; a step after it appears, except that
a step inside a loop body (for, signal for, while, repeat) or an ``on signal``
handler is visible only inside that body (it runs once per iteration or signal);
a loop or handler variable only inside its body; ``error`` only inside a catch
block. Where a statement reads its expressions: a ``repeat``'s ``until`` after its
body, with the body's steps visible; a signal loop's ``until`` with the names
visible before the loop (and the variables set in it); ``branch if`` conditions
before the branches. A step or variable from a branch that may not run is allowed:
reading it unset is a runtime error.

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
MAX_FIRST = 1000  # parallel first K / for ... first K
CHECK_TIME = "2000-01-01T00:00:00.000Z"  # what now() gives when a constant expression is tried

# The expressions each statement kind evaluates, in the order it evaluates them (where the if, repeat
# and signal loop read theirs: see _Scopes.stmt).
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
    ir.Parallel: lambda s: [c for c in s.conditions or () if c is not None],  # type: ignore[union-attr]
    ir.For: lambda s: [s.items],  # type: ignore[union-attr]
    ir.While: lambda s: [s.condition],  # type: ignore[union-attr]
    ir.Repeat: lambda s: [s.until],  # type: ignore[union-attr]
    ir.SignalLoop: lambda s: [s.until] if s.until is not None else [],  # type: ignore[union-attr]
    ir.Lock: lambda s: [s.name],  # type: ignore[union-attr]
    ir.Scope: lambda s: [],
    ir.Break: lambda s: [],
    ir.Continue: lambda s: [],
}
ENDS_BLOCK = {ir.Return: "return", ir.Fail: "fail", ir.Break: "break", ir.Continue: "continue"}


def check_flow(flow: ir.Flow, source_lines: Sequence[str] = (), file: str | None = None) -> list[Diagnostic]:
    """Every semantic problem of ``flow``, positioned in its source."""
    checker = _Checker(flow, list(source_lines), flow.file if file is None else file)
    checker.duplicates()
    checker.input_defaults()
    checker.shapes()
    checker.bounds()
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
                self.parallel(stmt)
            elif isinstance(stmt, ir.Scope):
                handled: dict[str, int] = {}
                for handler in stmt.handlers:
                    if handler.signal in handled:
                        col = self.col_of(handler.line, handler.col, r"signal\s+({})", handler.signal)
                        self.error(handler.line, col, f"signal '{handler.signal}' already has a handler in this block "
                                   f"(line {handled[handler.signal]})")
                    handled.setdefault(handler.signal, handler.line)
            elif isinstance(stmt, ir.SignalLoop) and stmt.signal and stmt.close_signal == stmt.signal:
                self.error(stmt.line, self.col_of(stmt.line, stmt.col, r"until\s+signals?\s+({})", stmt.signal),
                           f"a signal loop cannot be closed by its own signal '{stmt.signal}': "
                           "'until signal' needs another signal")
            elif isinstance(stmt, ir.Lock):
                for inner in ir.walk(stmt.body):
                    if getattr(inner, "keep_rest", None):
                        self.error(inner.line, self.col_of(inner.line, inner.col, r"(keep)\s+rest", ""),
                                   f"'keep rest' cannot be used inside a lock (line {stmt.line}): the branches it "
                                   "leaves running would go on after the lock is released")
            elif isinstance(stmt, ir.ChildFlow) and stmt.detached and stmt.catches:
                catch = stmt.catches[0]
                self.error(catch.line, catch.col, "a detached flow step cannot have catch clauses: it completes "
                           "as soon as the child has started, so the child's failure never reaches it")

    def parallel(self, stmt: ir.Parallel) -> None:
        least = 2 if stmt.race else 1
        word = "race" if stmt.race else "parallel"
        if len(stmt.branches) < least:
            need = "at least two 'branch:' blocks" if stmt.race else "at least one 'branch:' block"
            self.error(stmt.line, stmt.col, f"'{word}:' needs {need}")
        if stmt.race:
            for condition in stmt.conditions or ():
                if condition is not None:
                    col = self.col_before(condition, "branch")
                    self.error(condition.line, col, "'branch if' is not allowed in 'race:': every branch of a race "
                               "runs (write 'parallel first 1:' to race branches that have conditions)")
        if stmt.first is not None and 1 <= stmt.first <= MAX_FIRST and stmt.first > len(stmt.branches) >= least:
            self.error(stmt.line, self.option_col(stmt, "first", stmt.first),
                       f"'first {stmt.first}' is more than the {len(stmt.branches)} branches of this parallel: "
                       "it would never join")

    def bounds(self) -> None:
        """Counts given on a statement's line: ``parallel N``, ``first K``, ``max N``."""
        for stmt in ir.walk(self.flow.body):
            if isinstance(stmt, (ir.For, ir.SignalLoop)) and not 1 <= stmt.concurrency <= MAX_CONCURRENCY:
                what = "items" if isinstance(stmt, ir.For) else "signals"
                self.error(stmt.line, self.option_col(stmt, "parallel", stmt.concurrency),
                           f"bad concurrency {stmt.concurrency}: a loop runs from 1 to {MAX_CONCURRENCY} "
                           f"{what} at once, e.g. parallel 4")
            first = getattr(stmt, "first", None)
            if first is not None and not 1 <= first <= MAX_FIRST:
                self.error(stmt.line, self.option_col(stmt, "first", first),
                           f"bad first {first}: write from 1 to {MAX_FIRST}, e.g. first 2")
            most = getattr(stmt, "max_iterations", None)
            if most is not None and not 1 <= most <= ir.MAX_ITERATIONS:
                self.error(stmt.line, self.option_col(stmt, "max", most),
                           f"bad max {most}: a loop runs from 1 to {ir.MAX_ITERATIONS} iterations, e.g. max 100")

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

    def source(self, line: int) -> str:
        return self.source_lines[line - 1] if 0 < line <= len(self.source_lines) else ""

    def option_col(self, stmt: ir.Stmt, word: str, value: int) -> int:
        """Column of N in the statement's ``WORD N`` (its last one) when its first line shows it."""
        text = self.source(stmt.line).split("#")[0]
        found = list(re.finditer(rf"(?<![A-Za-z0-9_]){word}\s+0*({value})(?![0-9])", text))
        return found[-1].start(1) + 1 if found else stmt.col

    def col_of(self, line: int, col: int, pattern: str, name: str) -> int:
        """Column of ``name`` where ``pattern`` (its ``{}``) finds it on the line from ``col``; ``col`` when not."""
        found = re.compile(pattern.format(re.escape(name)) + r"(?![A-Za-z0-9_])").search(self.source(line), col - 1)
        return found.start(1) + 1 if found else col

    def col_before(self, expr: ir.Expr, keyword: str) -> int:
        """Column of the last ``keyword`` before the expression on its line (``branch`` of ``branch if``)."""
        at = self.source(expr.line).rfind(keyword, 0, max(expr.col - 1, 0))
        return at + 1 if at >= 0 else expr.col

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
    """What encloses a block: the loops and handlers (outermost first) and whether it is a catch block."""

    frames: tuple = ()  # the For/While/Repeat/SignalLoop/Handler statements around, outermost first
    in_catch: bool = False

    def enter(self, frame: object) -> _Where:
        return replace(self, frames=self.frames + (frame,))

    def frame_of(self, name: str) -> object | None:
        """The loop or handler around whose variable is ``name``."""
        return next((f for f in self.frames if getattr(f, "var", None) == name), None)

    @property
    def in_loop(self) -> bool:
        return any(isinstance(f, ir.LOOP_KINDS) for f in self.frames)


def _whose(frame: object) -> str:
    """'loop' or ''on signal' handler', for messages about a frame's variable or steps."""
    return "'on signal' handler" if isinstance(frame, ir.Handler) else "loop"


def _frame_var_col(c: _Checker, frame: object) -> int:
    if isinstance(frame, ir.Handler):
        return c.col_of(frame.line, frame.col, r"as\s+({})", frame.var or "")
    return c.name_col(frame.line, frame.col, "for")  # type: ignore[attr-defined]


class _Scopes:
    """Walks the flow in document order, checking each expression against what is visible there."""

    def __init__(self, checker: _Checker) -> None:
        self.c = checker
        self.steps: dict[str, tuple[ir.Step, tuple]] = {}  # seen so far, with the loops/handlers around them
        self.variables: dict[str, int] = {}  # set so far: name -> line of the first set
        self.later_variables = {s.name: s.line for s in ir.walk(checker.flow.body) if isinstance(s, ir.Set)}
        self.frame_vars: dict[str, object] = {}  # every loop or handler variable -> its first loop or handler
        for stmt in ir.walk(checker.flow.body):
            frames = stmt.handlers if isinstance(stmt, ir.Scope) else (stmt,)
            for frame in frames:
                if getattr(frame, "var", None):
                    self.frame_vars.setdefault(frame.var, frame)  # type: ignore[attr-defined]

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
        if isinstance(stmt, ir.Repeat):  # until is read after each iteration: the body's steps are visible
            inside = where.enter(stmt)
            self.block(stmt.body, inside)
            self.expressions([stmt.until], inside)
            return
        if isinstance(stmt, ir.SignalLoop):  # until: the names visible before the loop, and variables set in it
            self.frame(stmt, where)
            self.expressions(EXPRESSIONS[ir.SignalLoop](stmt), where)
            return
        self.expressions(EXPRESSIONS[type(stmt)](stmt), where)
        if isinstance(stmt, (ir.For, ir.While)):
            self.frame(stmt, where)
        elif isinstance(stmt, ir.Parallel):
            for branch in stmt.branches:
                self.block(branch, where)
        elif isinstance(stmt, ir.Lock):
            self.block(stmt.body, where)
        elif isinstance(stmt, ir.Scope):
            for handler in stmt.handlers:
                self.frame(handler, where)
            self.block(stmt.body, where)
        elif isinstance(stmt, (ir.Break, ir.Continue)) and not where.in_loop:
            word = ENDS_BLOCK[type(stmt)]
            self.c.error(stmt.line, stmt.col, f"'{word}' is only allowed inside a loop (for, while, repeat)")
        elif isinstance(stmt, ir.STEP_KINDS):
            for catch in stmt.catches:
                self.block(catch.body, replace(where, in_catch=True))
            self.steps.setdefault(stmt.name, (stmt, where.frames))
        elif isinstance(stmt, ir.Set):
            self.assign(stmt, where)

    def frame(self, frame: ir.For | ir.While | ir.SignalLoop | ir.Handler, where: _Where) -> None:
        """A loop's or handler's variable (if any), then its body, inside it."""
        var = getattr(frame, "var", None)
        if var:
            col = _frame_var_col(self.c, frame)
            what = "variable" if isinstance(frame, ir.Handler) else "loop variable"
            outer = where.frame_of(var)
            if outer is not None:
                self.c.error(frame.line, col, f"{what} '{var}' is already the variable of the {_whose(outer)} "
                             f"at line {outer.line}: choose another name")  # type: ignore[attr-defined]
            self.c.clash(var, frame.line, col, what)
        self.block(frame.body, where.enter(frame))

    def assign(self, stmt: ir.Set, where: _Where) -> None:
        col = self.c.name_col(stmt.line, stmt.col, "set")
        frame = where.frame_of(stmt.name)
        if frame is not None:
            self.c.error(stmt.line, col, f"cannot set '{stmt.name}': it is the variable of the {_whose(frame)} "
                         f"at line {frame.line}")  # type: ignore[attr-defined]
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
        if where.frame_of(name) is not None:
            return None
        if name in self.steps:
            return self.step_problem(name, where)
        if name in self.c.steps:
            return f"step '{name}' has not run yet here"
        if name in self.later_variables:
            return f"variable '{name}' is not set yet here (it is set at line {self.later_variables[name]})"
        if name in self.frame_vars:
            frame = self.frame_vars[name]
            inside = "handler" if isinstance(frame, ir.Handler) else "loop"
            return (f"'{name}' is the variable of the {_whose(frame)} at line "
                    f"{frame.line}: it exists only inside that {inside}")  # type: ignore[attr-defined]
        known = sorted({*self.c.inputs, "workflow", *self.c.steps, *self.variables,
                        *(f.var for f in where.frames if getattr(f, "var", None)),
                        *(["error"] if where.in_catch else [])})
        close = difflib.get_close_matches(name, known, n=1)
        return f"unknown name '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")

    def step_problem(self, name: str, where: _Where) -> str | None:
        _, frames = self.steps[name]
        for depth, frame in enumerate(frames):
            if depth >= len(where.frames) or where.frames[depth] is not frame:
                if isinstance(frame, ir.Handler):
                    return (f"step '{name}' runs inside an 'on signal' handler (line {frame.line}); "
                            "read its results inside that handler")
                return f"step '{name}' runs inside a loop (line {frame.line}); read its results inside the loop"
        return None
