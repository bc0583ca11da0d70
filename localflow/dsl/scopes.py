"""Blocks that hold something while they run: ``lock EXPR [global]:`` and ``on signal`` handlers.

``lock EXPR:`` is ``ir.Lock`` (scope ``workflow``; a trailing ``global``, found like
``parallel N`` by ``options``, makes it ``home``). ``on signal NAME [as VAR]:`` reads
one ``ir.Handler``; handlers only start a block, and ``Parser.block`` turns a block that
starts with them into one ``ir.Scope`` around the rest of it. Duplicate signals and the
variable's scope are ``checks``'. Never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from localflow import ir
from localflow.dsl.lexer import skip, word
from localflow.dsl.options import trailing

if TYPE_CHECKING:
    from localflow.dsl.parser import Node, Parser

HANDLER_EXAMPLE = "on signal cancel as reason:"


def parse_lock(p: Parser, node: Node, end: int) -> ir.Lock:
    ll = node.line
    lock_id = p.next_id("lock")
    colon = p.colon(ll, "lock")
    name, options = None, {}
    if colon is not None:
        name_end, options = trailing(p, ll, end, colon, ("global",), "'lock'")
        name = p.expression(ll, end, name_end)
        if name is None:
            p.error_at(ll, end, "'lock' needs the lock's name, e.g. lock \"printer\": "
                       "or lock f\"customer-{cid}\" global:")
    body = p.arm(node, "lock")
    scope = "home" if options.get("global") else "workflow"
    return ir.Lock(lock_id, name or ir.Expr('""', ll.line, ll.col), body, scope, ll.line, ll.col)


def parse_handler(p: Parser, node: Node, end: int) -> Union[ir.Handler, None]:
    """``on signal NAME [as VAR]:`` and its block; None when it is not one (reported)."""
    ll, text = node.line, node.line.text
    colon = p.colon(ll, "on signal")
    stop = len(text) if colon is None else colon
    kw, start, kw_end = word(text, end, ":")
    if kw != "signal" or start >= stop:
        p.error_at(ll, start, f"expected 'signal' after 'on', e.g. {HANDLER_EXAMPLE}")
        p.nested(node.children)  # still report what is wrong inside
        return None
    name, start, name_end = word(text, kw_end, ":")
    var = None
    if not name or start >= stop:
        p.error_at(ll, start, f"expected a signal name after 'on signal', e.g. {HANDLER_EXAMPLE}")
        name = ""
    else:
        p.check_name("signal", name, ll, start)
        var = _variable(p, node, name_end, stop)
    return ir.Handler(name, var, p.arm(node, "on signal"), ll.line, ll.col)


def _variable(p: Parser, node: Node, at: int, stop: int) -> Union[str, None]:
    """The ``as VAR`` after the signal's name, if any."""
    ll, text = node.line, node.line.text
    kw, start, kw_end = word(text, at, ":")
    if not kw or start >= stop:
        return None
    if kw != "as":
        p.error_at(ll, start, f"expected 'as VARIABLE' or ':' after the signal name, e.g. {HANDLER_EXAMPLE}")
        return None
    var, start, var_end = word(text, kw_end, ":")
    if not var or start >= stop:
        p.error_at(ll, start, f"expected a variable name after 'as', e.g. {HANDLER_EXAMPLE}")
        return None
    p.check_name("variable", var, ll, start)
    if skip(text, var_end) < stop:
        p.error_at(ll, skip(text, var_end), f"unexpected text after 'as {var}': write e.g. {HANDLER_EXAMPLE}")
    return var
