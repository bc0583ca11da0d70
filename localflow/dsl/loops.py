"""The condition and signal loops, and the jumps out of loops: ``while``, ``repeat``/``until``,
``for VAR in signal NAME ...``, ``break`` and ``continue``.

``while COND [max N]:`` and ``repeat [max N]:`` take their bound like ``for`` takes
``parallel N`` (``options``). ``until COND`` is its own line right after the repeat's
block, at the same indentation: ``Parser.block`` hands it over with the ``repeat``. A
signal loop (``for VAR in signal NAME [until signal CLOSE | until COND] [max N]
[parallel N]:``, ``signals`` accepted for ``signal``) is found by ``control.parse_for``
and counted with the for loops (``for-N``). Whether ``break``/``continue`` sit in a loop,
and every bound, are ``checks``'. Never raises.
"""

from __future__ import annotations

import keyword
import re
from typing import TYPE_CHECKING, Union

from localflow import ir
from localflow.dsl.lexer import IDENT, LogicalLine, first_word, skip, word
from localflow.dsl.options import WORDS, only_options, trailing

if TYPE_CHECKING:
    from localflow.dsl.parser import Node, Parser

_SIGNAL = re.compile(r"\s*(signals?)(?![A-Za-z0-9_])")
_STAND_IN = "false"  # the condition of a loop whose condition could not be read (the error is reported)


def parse_while(p: Parser, node: Node, end: int) -> ir.While:
    ll = node.line
    loop_id = p.next_id("while")
    colon = p.colon(ll, "while")
    condition, options = None, {}
    if colon is not None:
        condition_end, options = trailing(p, ll, end, colon, ("max",), "a 'while' loop")
        condition = p.expression(ll, end, condition_end)
        if condition is None:
            p.error_at(ll, end, "'while' needs a condition, e.g. while pending > 0:")
    body = p.arm(node, "while")
    return ir.While(loop_id, condition or ir.Expr(_STAND_IN, ll.line, ll.col), body,
                    int(options.get("max", ir.DEFAULT_MAX_ITERATIONS)), ll.line, ll.col)


def parse_repeat(p: Parser, node: Node, end: int, until: Union[Node, None]) -> ir.Repeat:
    """``repeat [max N]:``, its block, and the ``until COND`` line after it (None when missing)."""
    ll = node.line
    loop_id = p.next_id("repeat")
    colon = p.colon(ll, "repeat")
    options = only_options(p, ll, end, colon, ("max",), "repeat") if colon is not None else {}
    body = p.arm(node, "repeat")
    if until is None:
        p.error_at(ll, 0, "'repeat' needs an 'until CONDITION' line right after its block, "
                   "at the same indentation as 'repeat'")
    condition = _until(p, until) if until is not None else None
    return ir.Repeat(loop_id, body, condition or ir.Expr("true", ll.line, ll.col),
                     int(options.get("max", ir.DEFAULT_MAX_ITERATIONS)), ll.line, ll.col)


def _until(p: Parser, node: Node) -> Union[ir.Expr, None]:
    ll = node.line
    _, end = first_word(ll.text)
    stop = len(ll.text.rstrip())
    if node.children:
        p.error_at(node.children[0].line, 0, "unexpected indent: 'until' does not open a block")
    if ll.text[stop - 1:stop] == ":" and stop - 1 >= end:
        stop -= 1
        p.error_at(ll, stop, "'until' takes no ':' and no block: write 'until CONDITION' on the line "
                   "after the repeat's block")
    condition = p.expression(ll, end, stop)
    if condition is None:
        p.error_at(ll, end, "'until' needs a condition, e.g. until check.result.done")
    return condition


def parse_jump(p: Parser, node: Node, end: int) -> Union[ir.Break, ir.Continue]:
    """``break`` or ``continue``: nothing may follow the word."""
    ll = node.line
    kw = first_word(ll.text)[0]
    at = skip(ll.text, end)
    if at < len(ll.text):
        p.error_at(ll, at, f"'{kw}' takes nothing after it: write '{kw}' alone on its line")
    return (ir.Break if kw == "break" else ir.Continue)(ll.line, ll.col)


# --- signal loops ---------------------------------------------------------------------------


def _names_a_signal(text: str, at: int, stop: int) -> bool:
    """Whether a signal name follows at ``at`` (not an option word nor an operator like ``and``)."""
    found = IDENT.match(text, skip(text, at))
    return (found is not None and found.start() > at and found.end() <= stop and found.group() not in WORDS
            and found.group() != "until" and not keyword.iskeyword(found.group()))


def is_signal_source(text: str, at: int, stop: int) -> bool:
    """Whether ``for VAR in`` continues with ``signal NAME`` (a signal loop) rather than a list.

    ``signal`` is a reserved word, so always; ``signals`` may also be a variable holding a
    list (``for s in signals:``), so only when a signal name follows it.
    """
    found = _SIGNAL.match(text, at)
    if found is None or found.end() > stop:
        return False
    return found.group(1) == "signal" or _names_a_signal(text, found.end(), stop)


def parse_signal_loop(p: Parser, node: Node, loop_id: str, var: str, at: int, stop: int) -> ir.SignalLoop:
    """From just after ``in``: ``signal NAME [until signal CLOSE | until COND] [max N] [parallel N]``."""
    ll, text = node.line, node.line.text
    source = _SIGNAL.match(text, at)
    assert source is not None
    name, start, name_end = word(text, source.end(), ":")
    if not name or start >= stop:
        p.error_at(ll, start, f"expected a signal name after '{source.group(1)}', e.g. for {var} in signal order:")
        name, name_end = "", source.end()
    else:
        name_end = min(name_end, stop)
        p.check_name("signal", name, ll, start)
    close, until, options = _loop_options(p, ll, name_end, stop)
    body = p.arm(node, "for")
    return ir.SignalLoop(loop_id, var, name, body, int(options.get("parallel", 1)), close, until,
                         int(options.get("max", ir.DEFAULT_MAX_ITERATIONS)), ll.line, ll.col,
                         True if options.get("keep") else None)


def _loop_options(p: Parser, ll: LogicalLine, at: int, stop: int) -> tuple:
    """(close signal, until condition, {max, parallel}) from the text after the signal's name."""
    text, what = ll.text, "a signal loop"
    kw, start, kw_end = word(text, at, ":")
    close, until = None, None
    if kw == "until" and start < stop:
        closing = _SIGNAL.match(text, kw_end)
        if closing is not None and closing.end() <= stop and _names_a_signal(text, closing.end(), stop):
            close, close_at, close_end = word(text, closing.end(), ":")
            p.check_name("signal", close, ll, close_at)
            at = close_end
        elif closing is not None and skip(text, closing.end()) >= stop:
            p.error_at(ll, skip(text, closing.end()), "expected the closing signal's name after 'until signal', "
                       "e.g. until signal done")
            return None, None, {}
        else:
            condition_end, options = trailing(p, ll, kw_end, stop, ("max", "parallel", "keep"), what)
            until = p.expression(ll, kw_end, condition_end)
            if until is None:
                p.error_at(ll, kw_end, "'until' needs a condition or a closing signal, e.g. until signal done "
                           "or until len(orders) >= 10")
            return None, until, options
    end, options = trailing(p, ll, at, stop, ("max", "parallel", "keep"), what, expression=False)
    rest = text[at:end].strip()
    if rest:
        p.error_at(ll, at + text[at:end].index(rest[0]), "unexpected text after the signal name: write "
                   "'until signal CLOSE', 'until CONDITION', 'max N', 'parallel N' or 'keep rest', e.g. "
                   "for order in signal order until signal done parallel 4:")
    return close, until, options
