"""The control-flow statements: ``if``/``elif``/``else``, ``parallel:``/``race:`` and ``for``.

Each handler reads its opening line, parses its blocks with ``Parser.arm`` (which
reports an empty block) and returns the IR, its id taken before its blocks are
parsed so that ids follow document order. Branch counts and loop limits are
meaning, not syntax: ``checks`` reports them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from localflow import ir
from localflow.core.expr import compile_expr
from localflow.dsl.lexer import LogicalLine, first_word, skip, word
from localflow.errors import ExpressionError

if TYPE_CHECKING:
    from localflow.dsl.parser import Node, Parser

_IN = re.compile(r"\s*in(?![A-Za-z0-9_])")
_CONCURRENCY = re.compile(r"(?s)(.*\S)\s+parallel(?:\s+(\S+))?\s*")  # greedy: the last 'parallel'


def _condition(p: Parser, node: Node, end: int, what: str) -> ir.Expr:
    ll = node.line
    colon = p.colon(ll, what)
    expr = p.expression(ll, end, colon) if colon is not None else None
    if expr is None and colon is not None:
        p.error_at(ll, end, f"'{what}' needs a condition, e.g. {what} amount > 100:")
    return expr or ir.Expr("false", ll.line, ll.col)  # a stand-in; the error is already reported


def parse_if(p: Parser, nodes: list[Node]) -> ir.If:
    """``if`` and the ``elif``/``else`` lines that directly follow it (``Parser.block`` groups them)."""
    first = nodes[0].line
    if_id = p.next_id("if")
    branches, orelse = [], None
    for node in nodes:
        kw, end = first_word(node.line.text)
        if kw == "else":
            p.bare_opener(node.line, end, "else")
            orelse = p.arm(node, "else")
        else:
            condition = _condition(p, node, end, kw)
            branches.append(ir.IfBranch(condition, p.arm(node, kw), node.line.line, node.line.col))
    return ir.If(if_id, tuple(branches), orelse, first.line, first.col)


def parse_branches(p: Parser, node: Node, end: int, race: bool) -> ir.Parallel:
    what = "race" if race else "parallel"
    ll = node.line
    parallel_id = p.next_id(what)
    p.bare_opener(ll, end, what)
    branches = []
    for child in node.children:
        kw, child_end = first_word(child.line.text)
        if kw != "branch" or not child_end:
            p.error_at(child.line, 0, f"'{what}:' holds only 'branch:' blocks: put this inside a 'branch:'")
            continue
        p.bare_opener(child.line, child_end, "branch")
        branches.append(p.arm(child, "branch"))
    return ir.Parallel(parallel_id, tuple(branches), race, ll.line, ll.col)


def parse_for(p: Parser, node: Node, end: int) -> ir.For:
    ll, text = node.line, node.line.text
    loop_id = p.next_id("for")
    colon = p.colon(ll, "for")
    stop = len(text) if colon is None else colon
    var, start, var_end = word(text, end, ":")
    items, concurrency = None, 1
    if not var or start >= stop:
        p.error_at(ll, start, "expected a loop variable after 'for', e.g. for item in items:")
    else:
        p.check_name("loop variable", var, ll, start)
        found = _IN.match(text, var_end)
        if found is None or found.end() > stop:
            p.error_at(ll, skip(text, var_end), f"expected 'in' after 'for {var}', e.g. for {var} in items:")
        else:
            items_stop, concurrency = _concurrency(p, ll, found.end(), stop)
            items = p.expression(ll, found.end(), items_stop)
            if items is None:
                p.error_at(ll, found.end(), f"expected the list to loop over after 'in', e.g. for {var} in items:")
    body = p.arm(node, "for")
    return ir.For(loop_id, var, items or ir.Expr("[]", ll.line, ll.col), body, concurrency, ll.line, ll.col)


def _concurrency(p: Parser, ll: LogicalLine, start: int, stop: int) -> tuple[int, int]:
    """(where the items expression ends, N) for a trailing ``parallel N``; (stop, 1) without one."""
    source = ll.text[start:stop]
    if _compiles(source):
        return stop, 1  # a whole expression: any 'parallel' in it is inside a string
    found = _CONCURRENCY.fullmatch(source)
    if found is None:
        return stop, 1
    items_stop, count = start + found.end(1), found.group(2)
    if count is None:
        p.error_at(ll, items_stop, "'parallel' needs how many items may run at once, e.g. parallel 4")
    elif not re.fullmatch(r"\d{1,9}", count):
        p.error_at(ll, start + found.start(2), f"bad concurrency '{count}': write how many items may run at once, "
                   "from 1 to 1000, e.g. parallel 4")
    else:
        return items_stop, int(count)
    return items_stop, 1


def _compiles(source: str) -> bool:
    try:
        compile_expr(ir.Expr(source))
    except ExpressionError:
        return False
    return True
