"""``step NAME:`` and its clauses: which kind of step it is, its options, and its catches.

A step is one of four kinds, chosen by the one clause that says what it does:
``run LIST`` or ``call module.function(name=EXPR, ...)`` (``ir.Activity``),
``wait signal NAME [timeout D]`` (``ir.WaitSignal``) or ``flow NAME [detached]`` (``ir.ChildFlow``).
Every clause in ``CLAUSES`` lists the kinds it applies to; ``catch`` clauses come after the
others and each holds a block. Every wait step is parsed with ``tells_ending`` set (its value
says how the wait ended); a detached flow step with catches is reported by ``checks``.

Syntax only, like ``parser``: reports Diagnostics through the Parser, never raises.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from localflow import ir
from localflow.core.expr import evaluate, list_elements
from localflow.dsl.lexer import LogicalLine, first_word, skip, word
from localflow.errors import ExpressionError

if TYPE_CHECKING:
    from localflow.dsl.parser import Node, Parser

DEFAULT_TIMEOUT_MS = 600_000
KINDS = {"run": "a run step", "call": "a call step", "wait": "a wait step",
         "flow": "a flow step"}  # kind clause -> how to name it
CATCHES = {"run": ("exit", "timeout", "error", "any"), "call": ("timeout", "error", "any"),
           "wait": ("timeout", "any"), "flow": ("error", "any")}
_TARGET = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*")
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
_BACKOFF = re.compile(r"(\d{1,6}(?:\.\d{1,6})?)x?")
_STRING = r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\''
_VALUE = re.compile(rf"({_STRING}|[^,\s]+)\s*")
_RETRY_OPTIONS = {"every": "every 1s", "backoff": "backoff 2x", "max": "max 30s", "jitter": "jitter 20%"}
_JITTER = re.compile(r"(\d{1,3}(?:\.\d{1,2})?)%")
DEFAULTABLE = ("timeout", "retry", "no")  # the clauses a flow's 'defaults:' block may give its run and call steps


class Clause(NamedTuple):
    field: str  # the key it fills in the step's fields
    parse: Callable[[Parser, LogicalLine, int], Any]
    kinds: tuple[str, ...]  # the step kinds it applies to


def parse_step(p: Parser, node: Node, end: int) -> ir.Activity | ir.WaitSignal | ir.ChildFlow:
    ll, text = node.line, node.line.text
    name, start, stop = word(text, end, ":")
    if name:
        p.check_name("step", name, ll, start)
    else:
        p.error_at(ll, start, "expected a step name after 'step'")
    colon, inline = skip(text, stop), False
    if text[colon:colon + 1] != ":":
        p.error_at(ll, colon, f"expected ':' after 'step {name}'")
    elif skip(text, colon + 1) < len(text):
        inline = True
        p.error_at(ll, skip(text, colon + 1), f"put each clause on its own line, indented under 'step {name}:'")
    kind = _kind(p, node)
    fields, catches = _clauses(p, node, name, kind or "run")
    fields = _with_defaults(p, fields, kind or "run")
    if inline:
        pass  # the clause on the header line is the problem to report, not a missing block
    elif not node.children:
        p.error_at(ll, start, f"step '{name}' needs an indented block of clauses, starting with 'run [...]'")
    elif kind is None:
        p.error_at(ll, start, f"step '{name}' needs one of 'run [...]', 'call module.function(...)', "
                   "'wait signal NAME' or 'flow NAME'")
    where = {"catches": catches, "line": ll.line, "col": ll.col}
    if kind == "wait":
        signal, timeout_ms = fields.get("wait", ("", None))
        return ir.WaitSignal(name, signal, timeout_ms, **where, tells_ending=True)
    if kind == "flow":
        flow, detached = fields.get("flow", ("", None))
        return ir.ChildFlow(name, flow, fields.get("input"), **where, detached=detached)
    return ir.Activity(
        name=name, argv=fields.get("argv", ()), timeout_ms=fields.get("timeout_ms", DEFAULT_TIMEOUT_MS),
        retry=_no_retry(fields.get("retry", ir.Retry()), fields.get("no_retry")), stdin=fields.get("stdin"),
        undo=fields.get("undo"), total_timeout_ms=fields.get("total_timeout_ms"),
        call=fields.get("call") if kind == "call" else None,
        heartbeat_ms=fields.get("heartbeat_ms"), concurrency=fields.get("concurrency"),
        env=fields.get("env"), cwd=fields.get("cwd"), **where)


def _kind(p: Parser, node: Node) -> str | None:
    """The step's kind from its first kind clause; a second, different one is reported."""
    first: LogicalLine | None = None
    for child in node.children:
        kw, end = first_word(child.line.text)
        if not end or kw not in KINDS:
            continue
        if first is None:
            first = child.line
        elif kw != first_word(first.text)[0]:
            p.error_at(child.line, 0, f"'{kw}' cannot be combined with '{first_word(first.text)[0]}' "
                       f"(line {first.line}): a step has exactly one of run, call, wait signal or flow")
    return None if first is None else first_word(first.text)[0]


def _clauses(p: Parser, node: Node, step: str, kind: str) -> tuple[dict[str, Any], tuple[ir.Catch, ...]]:
    fields: dict[str, Any] = {}
    seen: dict[str, int] = {}
    catches: list[tuple[ir.Catch, LogicalLine]] = []
    caught: dict[tuple[str, Any], int] = {}
    for child in node.children:
        ll = child.line
        kw, end = first_word(ll.text)
        if end and kw == "catch":
            found = _catch(p, child, kind, caught)
            if found is not None:
                catches.append((found, ll))
            continue
        clause = CLAUSES.get(kw) if end else None
        if clause is None:
            p.unknown(ll, "clause", [w if w != "no" else "no retry on" for w, c in CLAUSES.items() if kind in c.kinds]
                      + ["catch"], f" in step '{step}'")
            continue
        if child.children:
            p.error_at(child.children[0].line, 0, f"unexpected indent: '{kw}' does not open a block")
        if kind not in clause.kinds:
            if kw in KINDS:
                continue  # reported by _kind: a second thing for the step to do
            hint = ": write it on the wait line, e.g. wait signal approve timeout 30s" if kw == "timeout" else ""
            p.error_at(ll, 0, f"'{kw}' does not apply to {KINDS[kind]}{hint}")
        elif kw in seen:
            p.error_at(ll, 0, f"'{kw}' is given twice in step '{step}' (first at line {seen[kw]})")
        elif catches:
            p.error_at(ll, 0, f"'{kw}' must come before the catch clauses of step '{step}' "
                       f"(first catch at line {catches[0][1].line})")
        else:
            seen[kw] = ll.line
            value = clause.parse(p, ll, end)
            if value is not None:
                fields[clause.field] = value
    _check_catches(p, step, kind, fields, catches)
    return fields, tuple(c for c, _ in catches)


def _check_catches(p: Parser, step: str, kind: str, fields: dict[str, Any],
                   catches: list[tuple[ir.Catch, LogicalLine]]) -> None:
    for index, (catch, ll) in enumerate(catches):
        label = "catch:" if catch.match == "any" else f"catch {catch.match}"
        if catch.match not in CATCHES[kind]:
            p.error_at(ll, 0, f"'{label}' does not apply to {KINDS[kind]}")
        elif catch.match == "timeout" and kind == "wait" and fields.get("wait", ("", 0))[1] is None:
            p.error_at(ll, 0, "'catch timeout' never runs: the wait has no timeout "
                       "(write e.g. wait signal approve timeout 30s)")
        if catch.match == "any" and index < len(catches) - 1:
            p.error_at(ll, 0, f"a bare 'catch:' must be the last catch of step '{step}': "
                       "it catches everything, so no catch after it could run")


# --- catch -----------------------------------------------------------------------


def _catch(p: Parser, node: Node, kind: str, caught: dict[tuple[str, Any], int]) -> ir.Catch | None:
    """``catch [exit N, ... | timeout | error "T", ...]:`` and its block."""
    ll, text = node.line, node.line.text
    colon = p.colon(ll, "catch")
    stop = len(text) if colon is None else colon
    match, start, match_end = word(text, len("catch"), ":")
    values: list[tuple[Any, int]] = []
    if not match or start >= stop:
        match, start = "any", 0
    elif match == "timeout":
        if skip(text, match_end) < stop:
            p.error_at(ll, skip(text, match_end), "'catch timeout' takes no values: write 'catch timeout:'")
    elif match in ("exit", "error"):
        values = _catch_values(p, ll, match, match_end, stop)
    else:
        p.error_at(ll, start, f"unknown catch '{match}': expected 'catch exit CODE, ...:', 'catch timeout:', "
                   "'catch error \"Type\", ...:' or a bare 'catch:'")
        p.nested(node.children)
        return None
    for value, at in values if match in ("exit", "error") else [(None, start)]:
        if (match, value) in caught:
            p.error_at(ll, at, f"duplicate catch: {_caught(match, value)} is already caught at line "
                       f"{caught[match, value]}")
        caught.setdefault((match, value), ll.line)
    body = p.arm(node, "catch")
    return ir.Catch(match, tuple(v for v, _ in values), body, ll.line, ll.col)


def _caught(match: str, value: Any) -> str:
    if match == "any":
        return "everything"
    if match == "error":
        return f'error "{value}"'
    return match if value is None else f"{match} {value}"


def _catch_values(p: Parser, ll: LogicalLine, what: str, start: int, stop: int) -> list[tuple[Any, int]]:
    """The comma-separated exit codes or error types of a catch, each with where it is."""
    text = ll.text[:stop]
    things = "exit codes" if what == "exit" else "error types"
    example = "catch exit 2, 3:" if what == "exit" else 'catch error "CardDeclined", "Fraud":'
    at = skip(text, start)
    if at >= len(text):
        p.error_at(ll, at, f"'catch {what}' needs one or more {things}, e.g. {example}")
        return []
    values = []
    while True:
        found = _VALUE.match(text, at)
        if found is None:
            p.error_at(ll, at, f"expected one of the {things} here, e.g. {example}")
            return values
        value = (_exit_code if what == "exit" else _error_type)(p, ll, found.group(1), at)
        if value is not None:
            values.append((value, at))
        at = found.end()
        if at >= len(text):
            return values
        if text[at] != ",":
            p.error_at(ll, at, f"separate the {things} with commas, e.g. {example}")
            return values
        at = skip(text, at + 1)
        if at >= len(text):
            p.error_at(ll, at, f"expected one of the {things} after ',', e.g. {example}")
            return values


def _exit_code(p: Parser, ll: LogicalLine, token: str, at: int) -> int | None:
    if re.fullmatch(r"\d{1,3}", token) and 1 <= int(token) <= 255:
        return int(token)
    p.error_at(ll, at, f"bad exit code '{token}': write a whole number from 1 to 255")
    return None


def _error_type(p: Parser, ll: LogicalLine, token: str, at: int) -> str | None:
    if re.fullmatch(_STRING, token):
        try:
            value = evaluate(ir.Expr(token, *ll.position(at)), {})
        except ExpressionError as exc:
            p.error(exc.line, exc.col, exc.message)
            return None
        if isinstance(value, str) and value:
            return value
    p.error_at(ll, at, f"bad error type {token[:40]}: write a non-empty string in quotes, "
               "e.g. catch error \"CardDeclined\":")
    return None


# --- clauses ---------------------------------------------------------------------


def _argv(p: Parser, ll: LogicalLine, end: int, what: str, example: str) -> tuple[ir.Expr, ...] | None:
    expr = p.expression(ll, end)
    if expr is None:
        p.error_at(ll, end, f"'{what}' needs a list: the program and its arguments, e.g. {example}")
        return None
    try:
        items = list_elements(expr)
    except ExpressionError:
        return None  # already reported by p.expression
    if items is None:
        p.error(expr.line, expr.col, f"'{what}' needs a list [...]: the program and its arguments, e.g. {example}")
    elif not items:
        p.error(expr.line, expr.col, f"'{what}' needs at least the program to run, e.g. {example}")
    return items or None


def _run(p: Parser, ll: LogicalLine, end: int) -> tuple[ir.Expr, ...] | None:
    return _argv(p, ll, end, "run", "run [\"python3\", \"job.py\", order_id]")


def _call(p: Parser, ll: LogicalLine, end: int) -> ir.Call | None:
    """``call package.module.function(name=EXPR, ...)``: keyword arguments only, each an expression."""
    text, example = ll.text, "call payments.charge(order_id=order_id, amount=amount)"
    start = skip(text, end)
    found = _TARGET.match(text, start)
    path = re.sub(r"\s+", "", found.group(1)) if found else ""
    if not found or "." not in path:
        p.error_at(ll, start, f"'call' needs a function in a module, then its arguments, e.g. {example}")
        return None
    parts = path.split(".")
    if any(part.startswith("_") for part in parts):
        p.error_at(ll, start, f"'call {path}': names starting with '_' are private; call a public function")
        return None
    opening = found.end()
    if text[opening:opening + 1] != "(":
        p.error_at(ll, opening, f"expected '(' after 'call {path}', e.g. {example}")
        return None
    pieces = _arguments(text, opening + 1)
    if pieces is None:
        p.error_at(ll, opening, "this '(' is never closed: the arguments must end with ')' on the same line")
        return None
    closing, spans = pieces
    if skip(text, closing + 1) < len(text):
        p.error_at(ll, skip(text, closing + 1), "nothing may follow the call's ')'")
    kwargs: list[tuple[str, ir.Expr]] = []
    for lo, hi in spans:
        keyword = _KEYWORD.match(text, lo, hi)
        if keyword is None:
            p.error_at(ll, skip(text, lo), f"pass each argument by name, e.g. {example}")
            continue
        name = keyword.group(1)
        if name in (k for k, _ in kwargs):
            p.error_at(ll, keyword.start(1), f"argument '{name}' is given twice")
            continue
        expr = p.expression(ll, keyword.end(), hi)
        if expr is None:
            p.error_at(ll, keyword.end(), f"argument '{name}' needs a value after '='")
            continue
        kwargs.append((name, expr))
    target = ".".join(parts[:-1]) + ":" + parts[-1]
    return ir.Call(target, tuple(kwargs), *ll.position(start))


def _arguments(text: str, at: int) -> tuple[int, list[tuple[int, int]]] | None:
    """From just after '(': the index of the matching ')' and the spans of the comma-separated
    arguments (brackets and strings respected); None if the ')' never comes."""
    depth, spans, begin, i = 0, [], at, at
    while i < len(text):
        char = text[i]
        if char in "\"'":
            i = _string_end(text, i)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                if text[begin:i].strip():
                    spans.append((begin, i))
                return i, spans
            depth -= 1
        elif char == "," and depth == 0:
            spans.append((begin, i))
            begin = i + 1
        i += 1
    return None  # (a comma after the last argument leaves an empty last span: it is not kept)


def _string_end(text: str, at: int) -> int:
    quote, i = text[at], at + 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _undo(p: Parser, ll: LogicalLine, end: int) -> tuple[ir.Expr, ...] | None:
    return _argv(p, ll, end, "undo", "undo [\"flows/activities/release.sh\", order_id]")


def concurrency_bound(p: Parser, ll: LogicalLine, end: int) -> int | None:
    """``concurrency N``: a whole number from 1 to 10,000."""
    token, start, stop = word(ll.text, end, "")
    if not re.fullmatch(r"[0-9]{1,5}", token or "") or not 1 <= int(token) <= 10_000 \
            or skip(ll.text, stop) < len(ll.text):
        p.error_at(ll, start, "'concurrency' needs a whole number from 1 to 10000: how many may run at once, "
                   "e.g. concurrency 2")
        return None
    return int(token)


def positive_duration(p: Parser, ll: LogicalLine, end: int, what: str) -> int | None:
    ms = p.duration(ll, end, what)
    if ms == 0:
        p.error_at(ll, skip(ll.text, end), f"{what} must be more than 0")
        return None
    return ms


def _stdin(p: Parser, ll: LogicalLine, end: int) -> ir.Expr | None:
    value = p.expression(ll, end)
    if value is None:
        p.error_at(ll, end, "'stdin' needs a value, e.g. stdin {\"order\": order_id}")
    return value


def _value_clause(p: Parser, ll: LogicalLine, end: int, what: str, example: str) -> ir.Expr | None:
    """``env EXPR`` (an object of variable names to strings) or ``cwd EXPR`` (a folder in the home);
    their shapes are checked by dsl/checks.py when constant, else when the step is scheduled."""
    value = p.expression(ll, end)
    if value is None:
        p.error_at(ll, end, f"'{what}' needs a value, e.g. {example}")
    return value


def _child_input(p: Parser, ll: LogicalLine, end: int) -> ir.Expr | None:
    value = p.expression(ll, end)
    if value is None:
        p.error_at(ll, end, "'input' needs a value: the child flow's input object, e.g. input {\"order\": order_id}")
    return value


def _wait(p: Parser, ll: LogicalLine, end: int) -> tuple[str, int | None] | None:
    text = ll.text
    kw, start, stop = word(text, end, "")
    if kw != "signal":
        p.error_at(ll, start, "expected 'signal' after 'wait', e.g. wait signal approve timeout 30s")
        return None
    name, start, stop = word(text, stop, "")
    if not name:
        p.error_at(ll, start, "expected a signal name after 'wait signal', e.g. wait signal approve")
        return None
    p.check_name("signal", name, ll, start)
    kw, start, stop = word(text, stop, "")
    if not kw:
        return name, None
    if kw != "timeout":
        p.error_at(ll, start, "expected 'timeout DURATION' or the end of the line after the signal name")
        return None
    ms = positive_duration(p, ll, stop, "timeout")
    return None if ms is None else (name, ms)


def _child_flow(p: Parser, ll: LogicalLine, end: int) -> tuple[str, bool | None] | None:
    """``flow NAME [detached]``: (the child flow's name, True when detached else None)."""
    name, start, stop = word(ll.text, end, "")
    if not name:
        p.error_at(ll, start, "expected the child flow's name after 'flow', e.g. flow ShipFlow")
        return None
    p.check_name("flow", name, ll, start)
    detached, _, after = word(ll.text, stop, "")
    if detached == "detached":
        stop = after
    if skip(ll.text, stop) < len(ll.text):
        p.error_at(ll, skip(ll.text, stop), "unexpected text after the flow name: write 'flow NAME' or "
                   "'flow NAME detached'")
    return name, (True if detached == "detached" else None)


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
    for (kw, at), value in zip(pairs[::2], pairs[1::2] + [None]):
        if kw not in _RETRY_OPTIONS:
            return p.error_at(ll, at, f"unknown retry option '{kw}': expected every, backoff, max or jitter")
        if kw in options:
            return p.error_at(ll, at, f"'{kw}' is given twice")
        if value is None:
            return p.error_at(ll, at, f"'{kw}' needs a value, e.g. {_RETRY_OPTIONS[kw]}")
        parsed = _retry_value(p, ll, kw, *value)
        if parsed is None:
            return None
        options[kw] = (parsed, value[1])
    return _retry_policy(p, ll, int(tokens[0][0]), options)


def _retry_value(p: Parser, ll: LogicalLine, kw: str, token: str, at: int) -> Any:
    if kw == "jitter":
        match = _JITTER.fullmatch(token)
        if match is None or not 0 < float(match.group(1)) <= 100:
            p.error_at(ll, at, f"bad jitter '{token}': write a percentage above 0 and at most 100, e.g. jitter 20%")
            return None
        return float(match.group(1))
    if kw != "backoff":
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
    jitter = options.get("jitter", (None, 0))[0]
    return ir.Retry(max_attempts=retries + 1, initial_ms=every,
                    backoff=options.get("backoff", (ir.Retry().backoff, 0))[0], max_interval_ms=cap,
                    jitter=None if jitter is None else jitter / 100)


def _no_retry(policy: ir.Retry, given: tuple | None) -> ir.Retry:
    """The step's retry policy with its ``no retry on`` exit codes and error types."""
    if not given:
        return policy
    exits, errors = given
    return replace(policy, no_retry_exit=exits or None, no_retry_errors=errors or None)


def _no_retry_clause(p: Parser, ll: LogicalLine, end: int) -> tuple | None:
    """``no retry on exit 2, 3``, ``no retry on error "CardDeclined", ...``, or both: ``... exit 2 or error "T"``.

    Returns ``(exit codes, error types)``; a failure that matches is final at once.
    """
    text, example = ll.text, 'no retry on exit 2, 3 or error "CardDeclined"'
    words = re.match(r"\s*retry\s+on(?![A-Za-z0-9_])", text[end:])
    if words is None:
        p.error_at(ll, skip(text, end), f"expected 'retry on' after 'no', e.g. {example}")
        return None
    found: dict[str, list] = {"exit": [], "error": []}
    at = end + words.end()
    while True:
        what, start, stop = word(text, at, "")
        if what not in found:
            p.error_at(ll, start, f"expected 'exit' or 'error' here, e.g. {example}")
            return None
        if found[what]:
            p.error_at(ll, start, f"'{what}' is given twice: list all its values after one '{what}'")
            return None
        values, at = _listed(p, ll, what, stop)
        if values is None:
            return None
        found[what] = values
        if at >= len(text):
            break
    return tuple(found["exit"]), tuple(found["error"])


def _listed(p: Parser, ll: LogicalLine, what: str, start: int) -> tuple[list | None, int]:
    """The comma-separated values after ``exit``/``error`` up to an ``or`` or the end of the line."""
    text = ll.text
    things = "exit codes" if what == "exit" else "error types"
    example = "no retry on exit 2, 3" if what == "exit" else 'no retry on error "CardDeclined", "Fraud"'
    values: list = []
    at = skip(text, start)
    while True:
        found = _VALUE.match(text, at) if at < len(text) else None
        if found is None:
            p.error_at(ll, at, f"expected one of the {things} here, e.g. {example}")
            return None, at
        value = (_exit_code if what == "exit" else _error_type)(p, ll, found.group(1), at)
        if value is None:
            return None, at
        if value in values:
            p.error_at(ll, at, f"{found.group(1)} is listed twice")
            return None, at
        values.append(value)
        at = found.end()
        if at >= len(text):
            return values, at
        if text[at] == ",":
            at = skip(text, at + 1)
            continue
        joiner, _, after = word(text, at, "")
        if joiner != "or":
            p.error_at(ll, at, f"separate the {things} with commas, and 'exit' from 'error' with 'or', "
                       'e.g. no retry on exit 2, 3 or error "CardDeclined"')
            return None, at
        return values, skip(text, after)


def _timeout(p: Parser, ll: LogicalLine, end: int) -> tuple | None:
    """``timeout D`` (each attempt), ``timeout D total T`` or ``timeout total T`` (every attempt
    and the waits between them, from the first attempt's scheduling): ``(D or None, T or None)``."""
    text = ll.text
    first, start, stop = word(text, end, "")
    per_attempt = None
    if first != "total":
        found = re.search(r"\s+total(?![A-Za-z0-9_])", text[start:])
        cut = start + found.start() if found else len(text)
        per_attempt = positive_duration(p, replace(ll, text=text[:cut]), end, "timeout")
        if per_attempt is None or found is None:
            return None if per_attempt is None else (per_attempt, None)
        stop = start + found.end()
    total = positive_duration(p, ll, stop, "total timeout")
    return None if total is None else (per_attempt, total)


def _with_defaults(p: Parser, fields: dict[str, Any], kind: str) -> dict[str, Any]:
    """A run or call step's clauses over the flow's ``defaults:`` (each clause replaces the default's
    whole), with ``timeout`` split into ``timeout_ms`` and ``total_timeout_ms``."""
    if kind in ("run", "call"):
        fields = {**getattr(p, "step_defaults", {}), **fields}
    if "timeout" in fields:
        per_attempt, total = fields.pop("timeout")
        if per_attempt is not None:
            fields["timeout_ms"] = per_attempt
        if total is not None:
            fields["total_timeout_ms"] = total
    return fields


def parse_defaults(p: Parser, node: Node, end: int) -> None:
    """``defaults:`` and its block of ``timeout``, ``retry`` and ``no retry on`` clauses: what every
    run and call step of the flow has unless it gives that clause itself. Before the first step."""
    ll = node.line
    p.bare_opener(ll, end, "defaults")
    if p.depth:
        return p.error_at(ll, 0, "'defaults:' belongs at the top of the flow, with the inputs")
    if p.started:
        return p.error_at(ll, 0, "'defaults:' must come before the first step, with the inputs")
    if getattr(p, "defaults_line", None) is not None:
        return p.error_at(ll, 0, f"'defaults:' is given twice (first at line {p.defaults_line})")
    p.defaults_line = ll.line
    if not node.children:
        return p.error_at(ll, 0, "'defaults:' needs an indented block of step clauses, e.g. retry 3 every 1s")
    fields: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for child in node.children:
        kw, stop = first_word(child.line.text)
        if child.children:
            p.error_at(child.children[0].line, 0, f"unexpected indent: '{kw}' does not open a block")
        if kw not in DEFAULTABLE:
            p.error_at(child.line, 0, f"'{kw}' cannot be a default: 'defaults:' holds timeout, retry and "
                       "no retry on (the clauses every run and call step may share)")
        elif kw in seen:
            p.error_at(child.line, 0, f"'{kw}' is given twice in 'defaults:' (first at line {seen[kw]})")
        else:
            seen[kw] = child.line.line
            clause = CLAUSES[kw]
            value = clause.parse(p, child.line, stop)
            if value is not None:
                fields[clause.field] = value
    p.step_defaults = fields
    return None


CLAUSES: dict[str, Clause] = {
    "run": Clause("argv", _run, ("run",)),
    "call": Clause("call", _call, ("call",)),
    "wait": Clause("wait", _wait, ("wait",)),
    "flow": Clause("flow", _child_flow, ("flow",)),
    "timeout": Clause("timeout", _timeout, ("run", "call")),
    "retry": Clause("retry", _retry, ("run", "call")),
    "no": Clause("no_retry", _no_retry_clause, ("run", "call")),  # no retry on exit 2 / error "T"
    "stdin": Clause("stdin", _stdin, ("run",)),
    "undo": Clause("undo", _undo, ("run", "call")),
    "env": Clause("env", lambda p, ll, end: _value_clause(p, ll, end, "env", 'env {"LANG": "C"}'), ("run", "call")),
    "cwd": Clause("cwd", lambda p, ll, end: _value_clause(p, ll, end, "cwd", 'cwd "work"'), ("run",)),
    "heartbeat": Clause("heartbeat_ms", lambda p, ll, end: positive_duration(p, ll, end, "heartbeat"), ("run", "call")),
    "concurrency": Clause("concurrency", concurrency_bound, ("run", "call")),
    "input": Clause("input", _child_input, ("flow",)),
}
