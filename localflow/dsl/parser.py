"""Logical lines -> a tree of indented blocks -> ``ir.Flow``: the syntax of the DSL.

Table-driven: every statement keyword has an entry in ``STATEMENTS``; steps and their
clauses are ``localflow.dsl.steps``, if/parallel/race/for ``localflow.dsl.control``,
while/repeat/signal loops/break/continue ``localflow.dsl.loops``, lock and ``on signal``
handlers ``localflow.dsl.scopes``, the trailing options of a block line (``parallel N``,
``first K``, ``max N``, ``global``...) ``localflow.dsl.options``. Each handler reads one
logical line and the block under it, reports problems with the exact line and column,
and returns IR. Block-holding statements parse their blocks with ``Parser.nested``; ids
(``sleep-N``, ``if-N``, ``parallel-N``, ``race-N``, ``for-N`` (signal loops too),
``while-N``, ``repeat-N``, ``lock-N``, ``scope-N``) count each kind in document order.

``Parser.block`` groups what belongs together: an ``if`` with the ``elif``/``else``
lines after it, a ``repeat`` with its ``until`` line, and the ``on signal`` handlers
that start a block with the rest of that block (one ``ir.Scope``; its body is the same
block, so no extra nesting level). The new statement words (``while``, ``repeat``,
``until``, ``break``, ``continue``, ``lock``, ``on``) are keywords only where a statement
starts, never reserved names.

Syntax only: names in scope, duplicates, branch counts, loop limits and
reachability are ``checks``. Never raises: every problem becomes a Diagnostic and
parsing carries on, so one run reports everything it can; ``localflow.dsl`` raises
the FlowSyntaxError.
"""

from __future__ import annotations

import difflib
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

from localflow import ir
from localflow.core.expr import compile_expr
from localflow.dsl import control, loops, scopes, steps
from localflow.dsl.lexer import IDENT, LogicalLine, diagnostic, first_word, lex, physical_lines, skip, word
from localflow.dsl.steps import DEFAULT_TIMEOUT_MS
from localflow.errors import Diagnostic, ExpressionError

__all__ = ["DEFAULT_TIMEOUT_MS", "KEYWORDS", "MAX_NESTING", "STATEMENTS", "Node", "Parser", "parse", "parse_duration"]

MAX_DURATION_MS = 3650 * 86_400_000  # ten years: far beyond any sane timer, still exact in JSON
MAX_NESTING = 32  # blocks inside blocks; keeps every recursive walk of the IR far from Python's recursion limit
KEYWORDS = frozenset(
    "flow input step sleep fail return run timeout retry stdin workflow true false null "
    "undo catch wait signal branch parallel race if elif else for in set error now child and or not".split())
_DURATION = re.compile(r"(?:\d{1,12}(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_INLINE = re.compile(r":[ \t]*([A-Za-z_]+)")  # "if x: sleep 1s"
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
    parse: Callable[[Parser, Node, int], Any]  # returns the statement's IR, or None
    block: bool  # whether it opens an indented block


def parse(text: str, file: str, expected_name: str | None = None) -> tuple[ir.Flow | None, list[Diagnostic]]:
    """Parse ``text``; the flow (None when there is no header) and every problem found."""
    parser = Parser(text, file)
    lines, problems = lex(text)
    for line, col, message in problems:
        parser.error(line, col, message)
    flow = parser.flow(build_tree(lines, parser), expected_name)
    # Past the nesting limit the IR lacks the deepest blocks: checking it would only report false problems.
    return (None if parser.too_deep else flow), parser.diagnostics


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


def _keyword(node: Node) -> str:
    found, end = first_word(node.line.text)
    return found if end else ""


class Parser:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.source_lines = physical_lines(text)
        self.diagnostics: list[Diagnostic] = []
        self.inputs: list[ir.Input] = []
        self.timeout: tuple[int, int] | None = None  # the workflow timeout: (ms, line)
        self.concurrency: tuple[int, int] | None = None  # the flow's activity bound: (n, line)
        self.started = False  # a statement other than input/timeout was seen in the flow's body
        self.depth = 0  # how many blocks enclose the statements being parsed (0: the flow's body)
        self.too_deep = False  # a block past MAX_NESTING was reported (and left out)
        self.counts: dict[str, int] = {}
        self.inline_lines: set[int] = set()  # lines reported for holding their block after the ':'

    # --- reporting -----------------------------------------------------------

    def error(self, line: int, col: int, message: str) -> None:
        self.diagnostics.append(diagnostic(self.file, self.source_lines, line, col, message))

    def error_at(self, ll: LogicalLine, offset: int, message: str) -> None:
        self.error(*ll.position(offset), message)

    def unknown(self, ll: LogicalLine, what: str, names: Iterable[str], where: str = "") -> None:
        found, _ = first_word(ll.text)
        names = list(names)
        close = difflib.get_close_matches(found, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.error_at(ll, 0, f"unknown {what} '{found}'{where}: expected one of {', '.join(names)}{hint}")

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

    def next_id(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}-{self.counts[kind]}"

    # --- pieces ----------------------------------------------------------------

    def expression(self, ll: LogicalLine, offset: int, stop: int | None = None) -> ir.Expr | None:
        """The expression in ``ll.text[offset:stop]`` (the rest of the line); None when blank."""
        rest = ll.text[offset:stop]
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
        token, start, end = word(ll.text, offset, "")
        if not token:
            self.error_at(ll, start, f"'{what}' needs a duration: {DURATION_HINT}")
            return None
        if skip(ll.text, end) < len(ll.text):
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

    def colon(self, ll: LogicalLine, what: str) -> int | None:
        """Where the ':' ending a block-opening line is; None (reported) when it is missing."""
        end = len(ll.text.rstrip())
        if ll.text[end - 1:end] == ":":
            return end - 1
        for inline in _INLINE.finditer(ll.text):
            if inline.group(1) in STATEMENTS:
                return self.inline_block(ll, inline.start(1), what)
        self.error_at(ll, end, f"expected ':' at the end of the '{what}' line")
        return None

    def inline_block(self, ll: LogicalLine, offset: int, what: str) -> None:
        self.inline_lines.add(ll.line)  # its block is the problem, not that the block is missing
        self.error_at(ll, offset, f"put the block on its own lines, indented under the '{what}' line")

    def bare_opener(self, ll: LogicalLine, end: int, what: str) -> None:
        """A line that is exactly ``WORD:`` (else:, branch:, parallel:, race:)."""
        at = skip(ll.text, end)
        rest = ll.text[at:].rstrip()
        if rest == ":":
            return
        if not rest:
            self.error_at(ll, at, f"expected ':' after '{what}'")
        elif rest.startswith(":"):
            self.inline_block(ll, skip(ll.text, at + 1), what)
        elif what == "else":
            self.error_at(ll, at, "'else' takes no condition: write 'elif CONDITION:'")
        else:
            self.error_at(ll, at, f"unexpected text after '{what}': write '{what}:'")

    def nested(self, nodes: list[Node]) -> tuple:
        """The statements of a block inside a statement; one past MAX_NESTING is reported, not parsed."""
        if self.depth >= MAX_NESTING:
            if nodes:
                self.too_deep = True
                self.error_at(nodes[0].line, 0, f"blocks are nested too deeply: a flow may nest at most "
                              f"{MAX_NESTING} levels of blocks (if, for, while, branch, catch, lock...); move "
                              "some of this into a child flow")
            return ()
        self.depth += 1
        try:
            return self.block(nodes)
        finally:
            self.depth -= 1

    def arm(self, node: Node, what: str) -> tuple:
        """The block under a block-opening line; it must not be empty."""
        if not node.children and node.line.line not in self.inline_lines:
            self.error_at(node.line, 0, f"'{what}' needs an indented block of statements")
        return self.nested(node.children)

    # --- the flow --------------------------------------------------------------

    def flow(self, roots: list[Node], expected_name: str | None) -> ir.Flow | None:
        headers = [i for i, node in enumerate(roots) if first_word(node.line.text)[0] == "flow"]
        if not roots:
            blank = all(not line.strip() for line in self.source_lines)
            self.error(1, 1, "the flow file is empty" + ("" if blank else " (only blank lines and comments)")
                       + ": start it with 'flow NAME' and indent the flow's statements under it")
            return None
        if not headers:
            self.error(1, 1, "expected 'flow NAME' header")
            return None
        if headers[0] > 0:
            self.error_at(roots[0].line, 0, "expected 'flow NAME' header before any other statement")
        header = roots[headers[0]]
        name = self.header(header.line, expected_name)
        body = list(header.children)
        for index, node in enumerate(roots[headers[0] + 1:]):
            if first_word(node.line.text)[0] == "flow":
                self.error_at(node.line, 0, "only one flow per file")
                break
            if index == 0:
                self.error_at(node.line, 0, f"statements must be indented under 'flow {name}'")
            body.append(node)
        statements = self.block(body)
        timeout = self.timeout[0] if self.timeout else None
        concurrency = self.concurrency[0] if self.concurrency else None
        return ir.Flow(name, tuple(self.inputs), statements, self.file, timeout, concurrency)

    def header(self, ll: LogicalLine, expected_name: str | None) -> str:
        text = ll.text
        name, start, end = word(text, len("flow"), ":")
        if not name:
            self.error_at(ll, start, "expected a flow name after 'flow'")
            return ""
        self.check_name("flow", name, ll, start)
        rest = skip(text, end)
        rest = skip(text, rest + 1) if text[rest:rest + 1] == ":" else rest
        if rest < len(text):
            self.error_at(ll, rest, "unexpected text after the flow name")
        if expected_name is not None and name != expected_name:
            self.error_at(ll, start, f"flow '{name}' must be named after its file: write 'flow {expected_name}' "
                          f"or rename the file to {name}.flow")
        return name

    def block(self, nodes: list[Node]) -> tuple:
        """The statements of one block; an ``if`` takes the ``elif``/``else`` lines that follow it, a
        ``repeat`` its ``until`` line, and handlers at the block's start make it one ``ir.Scope``."""
        out: list = []
        handlers = _Handlers()
        index = 0
        while index < len(nodes):
            node, after = nodes[index], index + 1
            kw = _keyword(node)
            if kw == "if":
                while after < len(nodes) and _keyword(nodes[after]) in ("elif", "else") \
                        and _keyword(nodes[after - 1]) != "else":
                    after += 1
                stmt = control.parse_if(self, nodes[index:after])
            elif kw == "repeat":
                until = nodes[after] if after < len(nodes) and _keyword(nodes[after]) == "until" else None
                after += until is not None
                stmt = loops.parse_repeat(self, node, first_word(node.line.text)[1], until)
            elif kw == "on":
                stmt = handlers.take(self, node, started=handlers.others)
            elif kw in MISPLACED:
                stmt = self.misplaced(node, kw, nodes[index - 1] if index else None)
            else:
                stmt = self.statement(node)
            handlers.others = handlers.others or kw not in ("on", *SETTINGS)
            if stmt is not None:
                out.append(stmt)
                self.started = self.started or self.depth == 0
            index = after
        return handlers.scope(self, tuple(out))

    def statement(self, node: Node) -> Any:
        kw, end = first_word(node.line.text)
        statement = STATEMENTS.get(kw) if end else None
        if statement is None:
            self.unknown(node.line, "statement", STATEMENTS)
            return None
        stmt = statement.parse(self, node, end)
        if node.children and not statement.block:
            self.error_at(node.children[0].line, 0, f"unexpected indent: '{kw}' does not open a block")
        return stmt

    def misplaced(self, node: Node, kw: str, previous: Node | None) -> None:
        """An ``elif``/``else`` that follows no ``if``, an ``until`` no ``repeat``, or a ``branch``
        outside parallel/race."""
        if kw == "branch":
            self.error_at(node.line, 0, "'branch:' belongs directly inside 'parallel:' or 'race:'")
        elif kw == "until":
            self.error_at(node.line, 0, "'until' without a matching 'repeat': it goes on the line right after "
                          "the repeat's block, at the same indentation as 'repeat'")
        else:
            ended = previous is not None and _keyword(previous) == "else"
            detail = f": the 'else' at line {previous.line.line} ends that if" if ended and previous else ""
            self.error_at(node.line, 0, f"'{kw}' without a matching 'if'{detail}")
        self.nested(node.children)  # still report what is wrong inside
        return None


class _Handlers:
    """The ``on signal`` handlers that start a block, gathered into one ``ir.Scope`` around the rest."""

    def __init__(self) -> None:
        self.handlers: list[ir.Handler] = []
        self.scope_id = ""
        self.at: tuple[int, int] = (0, 0)
        self.others = False  # a statement other than a handler or a flow setting was seen in the block

    def take(self, p: Parser, node: Node, started: bool) -> None:
        """Parse a handler: kept when it starts the block, reported (and dropped) when it does not."""
        if started:
            p.error_at(node.line, 0, "'on signal' handlers come first in their block: move this one above "
                       "the block's other statements")
            p.statement(node)  # still report what is wrong in it
            return
        if not self.scope_id:
            self.scope_id, self.at = p.next_id("scope"), (node.line.line, node.line.col)
        handler = p.statement(node)
        if handler is not None:
            self.handlers.append(handler)
        p.started = p.started or p.depth == 0

    def scope(self, p: Parser, body: tuple) -> tuple:
        if not self.scope_id:
            return body
        if not self.others:
            p.error(*self.at, "'on signal' handlers need statements after them in their block: they run "
                    "while the rest of the block runs")
        return (ir.Scope(self.scope_id, tuple(self.handlers), body, *self.at),)


# --- statements ------------------------------------------------------------------


def _input(p: Parser, node: Node, end: int) -> None:
    ll, text = node.line, node.line.text
    if p.started or p.depth:
        p.error_at(ll, 0, "inputs must come before the first step")
    name, start, stop = word(text, end, "=")
    if not name:
        p.error_at(ll, start, "expected an input name after 'input'")
        return
    p.check_name("input", name, ll, start)
    default, at = None, skip(text, stop)
    if at < len(text) and text[at] != "=":
        p.error_at(ll, at, "expected '= DEFAULT' or the end of the line after the input name")
    elif at < len(text):
        default = p.expression(ll, at + 1)
        if default is None:
            p.error_at(ll, at, "expected a default value after '='")
    p.inputs.append(ir.Input(name, default, ll.line, ll.col))


def _flow_setting(p: Parser, node: Node, end: int, word: str, whose: str, parse) -> None:
    """``timeout D`` or ``concurrency N`` at the top of a flow: once, among the inputs (``p.<word>``)."""
    ll, given = node.line, getattr(p, word)
    if p.depth:
        p.error_at(ll, 0, f"{whose} '{word}' belongs at the top of the flow, with the inputs "
                   f"(a step's {word} goes under the step)")
    elif p.started:
        p.error_at(ll, 0, f"{whose} '{word}' must come before the first step, with the inputs")
    elif given is not None:
        p.error_at(ll, 0, f"'{word}' is given twice (first at line {given[1]})")
    else:
        value = parse(p, ll, end)
        if value is not None:
            setattr(p, word, (value, ll.line))


def _flow_timeout(p: Parser, node: Node, end: int) -> None:
    _flow_setting(p, node, end, "timeout", "the workflow",
                  lambda p, ll, end: steps.positive_duration(p, ll, end, "timeout"))


def _flow_concurrency(p: Parser, node: Node, end: int) -> None:
    _flow_setting(p, node, end, "concurrency", "the flow's", steps.concurrency_bound)


def _sleep(p: Parser, node: Node, end: int) -> ir.Sleep | None:
    sleep_id = p.next_id("sleep")
    until, _, after = word(node.line.text, end, "")
    if until == "until":  # sleep until EXPR: an ISO-8601 timestamp, read when the sleep starts
        moment = p.expression(node.line, after)
        if moment is None:
            p.error_at(node.line, after, "'sleep until' needs a timestamp, e.g. sleep until deliver_at "
                       "or sleep until \"2026-11-25T20:00:00Z\"")
            return None
        return ir.Sleep(sleep_id, 0, node.line.line, node.line.col, until=moment)
    ms = p.duration(node.line, end, "sleep")
    return None if ms is None else ir.Sleep(sleep_id, ms, node.line.line, node.line.col)


def _fail(p: Parser, node: Node, end: int) -> ir.Fail | None:
    message = p.expression(node.line, end)
    if message is None:
        p.error_at(node.line, end, "'fail' needs a message, e.g. fail f\"order {order_id} was refused\"")
        return None
    return ir.Fail(message, node.line.line, node.line.col)


def _return(p: Parser, node: Node, end: int) -> ir.Return | None:
    value = p.expression(node.line, end)
    if value is None:
        p.error_at(node.line, end, "'return' needs a value (write 'return null' to return nothing)")
        return None
    return ir.Return(value, node.line.line, node.line.col)


def _set(p: Parser, node: Node, end: int) -> ir.Set | None:
    ll, text = node.line, node.line.text
    name, start, stop = word(text, end, "=")
    if not name:
        p.error_at(ll, start, "expected a variable name after 'set', e.g. set total = amount * 2")
        return None
    p.check_name("variable", name, ll, start)
    at = skip(text, stop)
    if text[at:at + 1] != "=":
        p.error_at(ll, at, f"expected '=' after 'set {name}', e.g. set {name} = 1")
        return None
    value = p.expression(ll, at + 1)
    if value is None:
        p.error_at(ll, at, "expected a value after '='")
        return None
    return ir.Set(name, value, ll.line, ll.col)


STATEMENTS: dict[str, Statement] = {
    "input": Statement(_input, block=False),
    "timeout": Statement(_flow_timeout, block=False),
    "concurrency": Statement(_flow_concurrency, block=False),
    "defaults": Statement(steps.parse_defaults, block=True),
    "step": Statement(steps.parse_step, block=True),
    "set": Statement(_set, block=False),
    "sleep": Statement(_sleep, block=False),
    "if": Statement(lambda p, node, end: control.parse_if(p, [node]), block=True),
    "parallel": Statement(lambda p, node, end: control.parse_branches(p, node, end, race=False), block=True),
    "race": Statement(lambda p, node, end: control.parse_branches(p, node, end, race=True), block=True),
    "for": Statement(control.parse_for, block=True),
    "while": Statement(loops.parse_while, block=True),
    "repeat": Statement(lambda p, node, end: loops.parse_repeat(p, node, end, None), block=True),
    "break": Statement(loops.parse_jump, block=False),
    "continue": Statement(loops.parse_jump, block=False),
    "lock": Statement(scopes.parse_lock, block=True),
    "on": Statement(scopes.parse_handler, block=True),
    "fail": Statement(_fail, block=False),
    "return": Statement(_return, block=False),
}
MISPLACED = ("elif", "else", "branch", "until")  # words that only make sense right after / inside another statement
SETTINGS = ("input", "timeout", "concurrency", "defaults")  # the flow's own settings: no statements
