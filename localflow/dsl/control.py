"""The branching statements and the list loop: ``if``/``elif``/``else``, ``parallel:``/``race:`` and ``for``.

Each handler reads its opening line, parses its blocks with ``Parser.arm`` (which
reports an empty block) and returns the IR, its id taken before its blocks are
parsed so that ids follow document order. ``parallel first K [keep rest]:`` and
``branch if COND:`` are read here; the trailing options of ``for`` (``parallel N``,
``first K``, ``keep rest``) by ``options``. ``for VAR in signal NAME ...`` is a signal
loop, handed to ``loops``. Branch counts and loop limits are meaning, not syntax:
``checks`` reports them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Union

from localflow import ir
from localflow.dsl import loops
from localflow.dsl.lexer import first_word, skip, word
from localflow.dsl.options import only_options, trailing

if TYPE_CHECKING:
    from localflow.dsl.parser import Node, Parser

_IN = re.compile(r"\s*in(?![A-Za-z0-9_])")
_IF = re.compile(r"\s*if(?![A-Za-z0-9_])")


def condition(p: Parser, node: Node, end: int, what: str, example: str = "") -> ir.Expr:
    """The condition between ``end`` and the ':' of a block-opening line (``if``, ``elif``, ``branch if``)."""
    ll = node.line
    colon = p.colon(ll, what)
    expr = p.expression(ll, end, colon) if colon is not None else None
    if expr is None and colon is not None:
        p.error_at(ll, end, f"'{what}' needs a condition, e.g. {example or what} amount > 100:")
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
            test = condition(p, node, end, kw)
            branches.append(ir.IfBranch(test, p.arm(node, kw), node.line.line, node.line.col))
    return ir.If(if_id, tuple(branches), orelse, first.line, first.col)


def parse_branches(p: Parser, node: Node, end: int, race: bool) -> ir.Parallel:
    """``parallel [first K [keep rest]]:`` or ``race:``, holding ``branch:`` / ``branch if COND:`` blocks."""
    what = "race" if race else "parallel"
    ll = node.line
    parallel_id = p.next_id(what)
    options: dict[str, Union[int, bool]] = {}
    if race or ll.text[skip(ll.text, end):].startswith(":") or skip(ll.text, end) >= len(ll.text):
        p.bare_opener(ll, end, what)
    else:
        colon = p.colon(ll, what)
        options = only_options(p, ll, end, len(ll.text) if colon is None else colon, ("first", "keep"), what)
    branches, conditions = [], []
    for child in node.children:
        kw, child_end = first_word(child.line.text)
        if kw != "branch" or not child_end:
            p.error_at(child.line, 0, f"'{what}:' holds only 'branch:' blocks: put this inside a 'branch:'")
            continue
        found = _IF.match(child.line.text, child_end)
        if found is None:
            p.bare_opener(child.line, child_end, "branch")
            conditions.append(None)
        else:  # a condition in a race is reported by checks (it sees the IR of pinned flows too)
            conditions.append(condition(p, child, found.end(), "branch if", "branch if"))
        branches.append(p.arm(child, "branch"))
    return ir.Parallel(parallel_id, tuple(branches), race, ll.line, ll.col,
                       first=options.get("first"), keep_rest=options.get("keep"),  # type: ignore[arg-type]
                       conditions=tuple(conditions) if any(c is not None for c in conditions) else None)


def parse_for(p: Parser, node: Node, end: int) -> Union[ir.For, ir.SignalLoop]:
    """``for VAR in EXPR [parallel N] [first K [keep rest]]:``, or a signal loop (``for VAR in signal NAME``)."""
    ll, text = node.line, node.line.text
    loop_id = p.next_id("for")
    colon = p.colon(ll, "for")
    stop = len(text) if colon is None else colon
    var, start, var_end = word(text, end, ":")
    items, options = None, {}
    if not var or start >= stop:
        p.error_at(ll, start, "expected a loop variable after 'for', e.g. for item in items:")
    else:
        p.check_name("loop variable", var, ll, start)
        found = _IN.match(text, var_end)
        if found is None or found.end() > stop:
            p.error_at(ll, skip(text, var_end), f"expected 'in' after 'for {var}', e.g. for {var} in items:")
        elif loops.is_signal_source(text, found.end(), stop):
            return loops.parse_signal_loop(p, node, loop_id, var, found.end(), stop)
        else:
            items_stop, options = trailing(p, ll, found.end(), stop, ("parallel", "first", "keep"), "a 'for' loop")
            items = p.expression(ll, found.end(), items_stop)
            if items is None:
                p.error_at(ll, found.end(), f"expected the list to loop over after 'in', e.g. for {var} in items:")
    body = p.arm(node, "for")
    return ir.For(loop_id, var, items or ir.Expr("[]", ll.line, ll.col), body, int(options.get("parallel", 1)),
                  ll.line, ll.col, first=options.get("first"), keep_rest=options.get("keep"))  # type: ignore[arg-type]
