"""Logical lines -> a tree of indented blocks -> ``ir.Flow``: the syntax of the DSL.

Table-driven: every statement keyword has an entry in ``STATEMENTS`` and every step
clause one in ``CLAUSES``; a new statement (if/elif/else, parallel, for, ...) is a
new handler, not a redesign. Each handler reads one logical line (and its block),
reports problems with the exact line and column, and returns IR.

Syntax only: names in scope, duplicates and reachability are ``checks``. Never
raises: every problem becomes a Diagnostic and parsing carries on, so one run
reports everything it can; ``localflow.dsl`` raises the FlowSyntaxError.
"""

from __future__ import annotations

import difflib
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from localflow import ir
from localflow.core.expr import compile_expr, list_elements
from localflow.dsl.lexer import LogicalLine, diagnostic, lex, physical_lines
from localflow.errors import Diagnostic, ExpressionError

DEFAULT_TIMEOUT_MS = 600_000
MAX_DURATION_MS = 3650 * 86_400_000  # ten years: far beyond any sane timer, still exact in JSON
STATEMENT_WORDS = ("input", "step", "sleep", "fail", "return")
FUTURE_WORDS = frozenset(
    "if elif else parallel race for in set wait signal child catch undo branch and or not".split())
KEYWORDS = frozenset(
    "flow input step sleep fail return run timeout retry stdin workflow true false null".split()) | FUTURE_WORDS
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:\d{1,12}(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_BACKOFF = re.compile(r"(\d{1,6}(?:\.\d{1,6})?)x?")
DURATION_HINT = "write e.g. 500ms, 30s, 1m30s, 2h"


def parse_duration(token: str) -> int | None:
    """Milliseconds of a duration like ``500ms``, ``1m30s``; None when it is not one."""
    if not _DURATION.fullmatch(token):
        return None
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(token))


@dataclass
class Node:
    """A logical line and the block indented under it."""

    line: LogicalLine
    children: list[Node] = field(default_factory=list)


class Statement(NamedTuple):
    parse: Callable[[Parser, Node, int], None]
    block: bool  # whether it opens an indented block


class Clause(NamedTuple):
    field: str  # the ir.Activity field it sets
    parse: Callable[[Parser, LogicalLine, int], Any]


def parse(text: str, file: str, expected_name: str | None = None) -> tuple[ir.Flow | None, list[Diagnostic]]:
    """Parse ``text``; the flow (None when there is no header) and every problem found."""
    parser = Parser(text, file)
    lines, problems = lex(text)
    for line, col, message in problems:
        parser.error(line, col, message)
    return parser.flow(build_tree(lines, parser), expected_name), parser.diagnostics


def build_tree(lines: list[LogicalLine], parser: Parser) -> list[Node]:
    """Nest lines into blocks by indentation; a dedent must match an enclosing block."""
    roots: list[Node] = []
    stack: list[tuple[int, list[Node]]] = []
    for ll in lines:
        if not stack:
            stack.append((ll.indent, roots))
        if ll.indent > stack[-1][0] and stack[-1][1]:
            stack.append((ll.indent, stack[-1][1][-1].children))
        elif ll.indent < stack[-1][0]:
            popped = stack[-1][0]
            while len(stack) > 1 and stack[-1][0] > ll.indent:
                popped = stack.pop()[0]
            if stack[-1][0] != ll.indent:
                levels = sorted({stack[-1][0], popped})
                parser.error(ll.line, ll.col, f"inconsistent indentation: this line is indented {ll.indent} "
                             f"spaces but the blocks around it use {' or '.join(map(str, levels))}")
        stack[-1][1].append(Node(ll))
    return roots


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t":
        index += 1
    return index


def _word(text: str, index: int, stops: str) -> tuple[str, int, int]:
    """The next blank-delimited word from ``index``, ending early at any of ``stops``."""
    start = end = _skip(text, index)
    while end < len(text) and not text[end].isspace() and text[end] not in stops:
        end += 1
    return text[start:end], start, end


def _first_word(text: str) -> tuple[str, int]:
    match = IDENT.match(text)
    if match:
        return match.group(), match.end()
    word = text.split(None, 1)[0] if text.strip() else text
    return word[:20], 0


class Parser:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.source_lines = physical_lines(text)
        self.diagnostics: list[Diagnostic] = []
        self.inputs: list[ir.Input] = []
        self.body: list[ir.Stmt] = []
        self.sleeps = 0

    # --- reporting -----------------------------------------------------------

    def error(self, line: int, col: int, message: str) -> None:
        self.diagnostics.append(diagnostic(self.file, self.source_lines, line, col, message))

    def error_at(self, ll: LogicalLine, offset: int, message: str) -> None:
        self.error(*ll.position(offset), message)

    def unknown(self, ll: LogicalLine, what: str, table: dict[str, Any], where: str = "") -> None:
        word, _ = _first_word(ll.text)
        note = " (not supported yet)" if word in FUTURE_WORDS else ""
        close = difflib.get_close_matches(word, list(table), n=1)
        hint = f"; did you mean '{close[0]}'?" if close and not note else ""
        self.error_at(ll, 0, f"unknown {what} '{word}'{where}{note}: expected one of {', '.join(table)}{hint}")

    def check_name(self, kind: str, name: str, ll: LogicalLine, offset: int) -> None:
        if not IDENT.fullmatch(name):
            message = f"bad {kind} name '{name}': use letters, digits and _, starting with a letter"
        elif name.startswith("_"):
            message = f"{kind} names may not start with '_' ('{name}')"
        elif name in KEYWORDS or keyword.iskeyword(name):
            message = f"'{name}' is a reserved word and cannot be a {kind} name"
        else:
            return
        self.error_at(ll, offset, message)

    # --- pieces ----------------------------------------------------------------

    def expression(self, ll: LogicalLine, offset: int) -> ir.Expr | None:
        """The expression making up the rest of the line from ``offset``; None when blank."""
        rest = ll.text[offset:]
        source = rest.strip()
        if not source:
            return None
        expr = ir.Expr(source, *ll.position(offset + len(rest) - len(rest.lstrip())))
        try:
            compile_expr(expr)
        except ExpressionError as exc:
            self.error(exc.line, exc.col, exc.message)
        return expr

    def duration(self, ll: LogicalLine, offset: int, what: str) -> int | None:
        token, start, end = _word(ll.text, offset, "")
        if not token:
            self.error_at(ll, start, f"'{what}' needs a duration: {DURATION_HINT}")
            return None
        if _skip(ll.text, end) < len(ll.text):
            token = ll.text[start:].strip()
        return self.duration_token(ll, token, start)

    def duration_token(self, ll: LogicalLine, token: str, offset: int) -> int | None:
        ms = parse_duration(token)
        if ms is None:
            self.error_at(ll, offset, f"bad duration '{token}': {DURATION_HINT}")
        elif ms > MAX_DURATION_MS:
            self.error_at(ll, offset, f"duration '{token}' is too long: the most is 3650d")
            return None
        return ms

    # --- the flow --------------------------------------------------------------

    def flow(self, roots: list[Node], expected_name: str | None) -> ir.Flow | None:
        headers = [i for i, node in enumerate(roots) if _first_word(node.line.text)[0] == "flow"]
        if not headers:
            self.error(1, 1, "expected 'flow NAME' header")
            return None
        if headers[0] > 0:
            self.error_at(roots[0].line, 0, "expected 'flow NAME' header before any other statement")
        header = roots[headers[0]]
        name = self.header(header.line, expected_name)
        body = list(header.children)
        for index, node in enumerate(roots[headers[0] + 1:]):
            if _first_word(node.line.text)[0] == "flow":
                self.error_at(node.line, 0, "only one flow per file")
                break
            if index == 0:
                self.error_at(node.line, 0, f"statements must be indented under 'flow {name}'")
            body.append(node)
        for node in body:
            self.statement(node)
        return ir.Flow(name, tuple(self.inputs), tuple(self.body), self.file)

    def header(self, ll: LogicalLine, expected_name: str | None) -> str:
        text = ll.text
        name, start, end = _word(text, len("flow"), ":")
        if not name:
            self.error_at(ll, start, "expected a flow name after 'flow'")
            return ""
        self.check_name("flow", name, ll, start)
        rest = _skip(text, end)
        rest = _skip(text, rest + 1) if text[rest:rest + 1] == ":" else rest
        if rest < len(text):
            self.error_at(ll, rest, "unexpected text after the flow name")
        if expected_name is not None and name != expected_name:
            self.error_at(ll, start, f"flow '{name}' must be named after its file: write 'flow {expected_name}' "
                          f"or rename the file to {name}.flow")
        return name

    def statement(self, node: Node) -> None:
        word, end = _first_word(node.line.text)
        statement = STATEMENTS.get(word) if end else None
        if statement is None:
            self.unknown(node.line, "statement", STATEMENTS)
            return
        statement.parse(self, node, end)
        if node.children and not statement.block:
            self.error_at(node.children[0].line, 0, f"unexpected indent: '{word}' does not open a block")

    def clauses(self, node: Node, step: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for child in node.children:
            ll = child.line
            word, end = _first_word(ll.text)
            clause = CLAUSES.get(word) if end else None
            if clause is None:
                self.unknown(ll, "clause", CLAUSES, f" in step '{step}'")
                continue
            if word in seen:
                self.error_at(ll, 0, f"'{word}' is given twice in step '{step}' (first at line {seen[word]})")
                continue
            seen[word] = ll.line
            if child.children:
                self.error_at(child.children[0].line, 0, f"unexpected indent: '{word}' does not open a block")
            value = clause.parse(self, ll, end)
            if value is not None:
                fields[clause.field] = value
        return fields


# --- statements ------------------------------------------------------------------


def _input(p: Parser, node: Node, end: int) -> None:
    ll, text = node.line, node.line.text
    if p.body:
        p.error_at(ll, 0, "inputs must come before the first step")
    name, start, stop = _word(text, end, "=")
    if not name:
        p.error_at(ll, start, "expected an input name after 'input'")
        return
    p.check_name("input", name, ll, start)
    default, at = None, _skip(text, stop)
    if at < len(text) and text[at] != "=":
        p.error_at(ll, at, "expected '= DEFAULT' or the end of the line after the input name")
    elif at < len(text):
        default = p.expression(ll, at + 1)
        if default is None:
            p.error_at(ll, at, "expected a default value after '='")
    p.inputs.append(ir.Input(name, default, ll.line, ll.col))


def _step(p: Parser, node: Node, end: int) -> None:
    ll, text = node.line, node.line.text
    name, start, stop = _word(text, end, ":")
    if name:
        p.check_name("step", name, ll, start)
    else:
        p.error_at(ll, start, "expected a step name after 'step'")
    colon, inline = _skip(text, stop), False
    if text[colon:colon + 1] != ":":
        p.error_at(ll, colon, f"expected ':' after 'step {name}'")
    elif _skip(text, colon + 1) < len(text):
        inline = True
        p.error_at(ll, _skip(text, colon + 1), f"put each clause on its own line, indented under 'step {name}:'")
    fields = p.clauses(node, name)
    if inline:
        pass  # the clause on the header line is the problem to report, not a missing block
    elif not node.children:
        p.error_at(ll, start, f"step '{name}' needs an indented block of clauses, starting with 'run [...]'")
    elif "argv" not in fields and not any(_first_word(c.line.text)[0] == "run" for c in node.children):
        p.error_at(ll, start, f"step '{name}' has no 'run' clause")
    p.body.append(ir.Activity(
        name=name, argv=fields.get("argv", ()), timeout_ms=fields.get("timeout_ms", DEFAULT_TIMEOUT_MS),
        retry=fields.get("retry", ir.Retry()), stdin=fields.get("stdin"), line=ll.line, col=ll.col))


def _sleep(p: Parser, node: Node, end: int) -> None:
    p.sleeps += 1
    ms = p.duration(node.line, end, "sleep")
    if ms is not None:
        p.body.append(ir.Sleep(f"sleep-{p.sleeps}", ms, node.line.line, node.line.col))


def _fail(p: Parser, node: Node, end: int) -> None:
    message = p.expression(node.line, end)
    if message is None:
        p.error_at(node.line, end, "'fail' needs a message, e.g. fail f\"order {order_id} was refused\"")
        return
    p.body.append(ir.Fail(message, node.line.line, node.line.col))


def _return(p: Parser, node: Node, end: int) -> None:
    value = p.expression(node.line, end)
    if value is None:
        p.error_at(node.line, end, "'return' needs a value (write 'return null' to return nothing)")
        return
    p.body.append(ir.Return(value, node.line.line, node.line.col))


STATEMENTS: dict[str, Statement] = {
    "input": Statement(_input, block=False),
    "step": Statement(_step, block=True),
    "sleep": Statement(_sleep, block=False),
    "fail": Statement(_fail, block=False),
    "return": Statement(_return, block=False),
}


# --- step clauses ------------------------------------------------------------------


def _run(p: Parser, ll: LogicalLine, end: int) -> tuple[ir.Expr, ...] | None:
    example = "e.g. run [\"python3\", \"job.py\", order_id]"
    expr = p.expression(ll, end)
    if expr is None:
        p.error_at(ll, end, f"'run' needs a list: the program and its arguments, {example}")
        return None
    try:
        items = list_elements(expr)
    except ExpressionError:
        return None  # already reported by p.expression
    if items is None:
        p.error(expr.line, expr.col, f"'run' needs a list [...]: the program and its arguments, {example}")
    elif not items:
        p.error(expr.line, expr.col, f"'run' needs at least the program to run, {example}")
    return items or None


def _timeout(p: Parser, ll: LogicalLine, end: int) -> int | None:
    ms = p.duration(ll, end, "timeout")
    if ms == 0:
        p.error_at(ll, _skip(ll.text, end), "timeout must be more than 0")
        return None
    return ms


def _stdin(p: Parser, ll: LogicalLine, end: int) -> ir.Expr | None:
    value = p.expression(ll, end)
    if value is None:
        p.error_at(ll, end, "'stdin' needs a value, e.g. stdin {\"order\": order_id}")
    return value


_RETRY_OPTIONS = {"every": "every 1s", "backoff": "backoff 2x", "max": "max 30s"}


def _retry(p: Parser, ll: LogicalLine, end: int) -> ir.Retry | None:
    tokens = [(m.group(), end + m.start()) for m in re.finditer(r"\S+", ll.text[end:])]
    if not tokens:
        p.error_at(ll, end, "'retry' needs a count, e.g. retry 3")
        return None
    if not re.fullmatch(r"\d{1,6}", tokens[0][0]):
        p.error_at(ll, tokens[0][1], f"bad retry count '{tokens[0][0]}': write how many times to retry "
                   "after the first attempt, e.g. retry 3")
        return None
    options: dict[str, tuple[Any, int]] = {}
    pairs = tokens[1:]
    for (word, at), value in zip(pairs[::2], pairs[1::2] + [None]):
        if word not in _RETRY_OPTIONS:
            return p.error_at(ll, at, f"unknown retry option '{word}': expected every, backoff or max")
        if word in options:
            return p.error_at(ll, at, f"'{word}' is given twice")
        if value is None:
            return p.error_at(ll, at, f"'{word}' needs a value, e.g. {_RETRY_OPTIONS[word]}")
        parsed = _retry_value(p, ll, word, *value)
        if parsed is None:
            return None
        options[word] = (parsed, value[1])
    return _retry_policy(p, ll, int(tokens[0][0]), options)


def _retry_value(p: Parser, ll: LogicalLine, word: str, token: str, at: int) -> Any:
    if word != "backoff":
        return p.duration_token(ll, token, at)
    match = _BACKOFF.fullmatch(token)
    if match is None or float(match.group(1)) < 1:
        p.error_at(ll, at, f"bad backoff '{token}': write a factor of at least 1, e.g. 2x or 1.5x")
        return None
    return float(match.group(1))


def _retry_policy(p: Parser, ll: LogicalLine, retries: int, options: dict[str, tuple[Any, int]]) -> ir.Retry | None:
    every = options.get("every", (1000, 0))[0]
    cap, cap_at = options.get("max", (None, 0))
    if cap is not None and cap == 0:
        return p.error_at(ll, cap_at, "'max' must be more than 0")
    if cap is not None and cap < every:
        return p.error_at(ll, cap_at, "'max' is shorter than 'every': the first retry would already wait longer")
    return ir.Retry(max_attempts=retries + 1, initial_ms=every,
                    backoff=options.get("backoff", (ir.Retry().backoff, 0))[0], max_interval_ms=cap)


CLAUSES: dict[str, Clause] = {
    "run": Clause("argv", _run),
    "timeout": Clause("timeout_ms", _timeout),
    "retry": Clause("retry", _retry),
    "stdin": Clause("stdin", _stdin),
}
