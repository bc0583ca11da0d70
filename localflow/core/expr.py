"""The safe expression language: compile and validate flow expressions, and the built-ins.

Owns which subset of Python-expression syntax a flow may use, the built-in
functions (validated by name and arity at compile time), and the public entry
points: ``compile_expr``, ``evaluate``, ``names_used``, ``list_elements``,
``to_text``. Every error an expression can cause is an ``ExpressionError``
positioned in the flow file. What each construct means at run time is
``localflow.core.expr_eval``.

Pure: no I/O, clock or randomness (``now()`` reads ``env["__now__"]``, workflow
time supplied by the engine); never calls Python's ``eval``/``exec``. Sizes are
capped so that no expression can allocate gigabytes or run for minutes.
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from localflow import ir
from localflow.core import secrets
from localflow.core.expr_eval import (
    ALIASES, BINOPS, MAX_FORMAT_NUMBER, MAX_INT_BITS, MAX_INT_DIGITS, MAX_LEN, MAX_RANGE, MAX_UNITS, NEWER_CHAR,
    NEWLINE, Evaluator, Problem, add_up, attr_at, change_case, check_number, contains, is_int, kind, node_at,
    node_index, position, read_float, read_int, run, text_of,
)
from localflow.errors import ExpressionError

__all__ = ["ALIASES", "BUILTINS", "MAX_FORMAT_NUMBER", "MAX_INT_BITS", "MAX_LEN", "MAX_RANGE", "MAX_SOURCE_CHARS",
           "MAX_UNITS", "compile_expr", "evaluate", "kind", "list_elements", "names_used", "secrets_used", "to_text"]

MAX_SOURCE_CHARS = 100_000
MAX_DEPTH = 100  # ast nesting; keeps the recursive walk far from Python's recursion limit


class _Invalid(Exception):
    def __init__(self, message: str, lineno: int, col: int) -> None:
        super().__init__(message)
        self.message, self.lineno, self.col = message, lineno, col


# --- positions ---------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    """One parsed source: the tree (or the error) and how to map ast offsets back to it."""

    tree: ast.Expression | None
    lines: tuple[str, ...]  # lines of the parsed text (source minus leading blanks)
    starts: tuple[int, ...]  # index in the parsed text where each line starts
    shift: int  # leading blanks removed from the source before parsing
    error: tuple[str, int] | None = None  # message, index into the source

    def index(self, lineno: int, byte_col: int) -> int:
        """Index into the source of an ast (lineno, UTF-8 byte col_offset) position."""
        row = min(max(lineno, 1), len(self.lines)) - 1
        chars = len(self.lines[row].encode("utf-8")[: max(byte_col, 0)].decode("utf-8", "ignore"))
        return self.shift + self.starts[row] + chars


# --- compiling and validating ------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _compile_source(source: str) -> _Compiled:
    shift = len(source) - len(source.lstrip(" \t"))  # ast.parse refuses leading blanks
    text = source[shift:]
    lines = tuple(NEWLINE.split(text))
    ok = _Compiled(None, lines, (0, *(m.end() for m in NEWLINE.finditer(text))), shift)

    def failed(message: str, index: int = 0) -> _Compiled:
        return _Compiled(None, ok.lines, ok.starts, shift, (message, index))

    if not text.strip():
        return failed("empty expression")
    if len(source) > MAX_SOURCE_CHARS:
        return failed("expression is too long")
    if "\x00" in text:  # Python 3.12 calls it a SyntaxError, 3.10 and 3.11 a ValueError
        return failed("expression is not valid text", shift + text.index("\x00"))
    try:
        _check_portable(text)
    except _Unportable as bad:
        return failed(bad.message, shift + bad.index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "invalid escape sequence": not the user's problem here
            tree = ast.parse(text, mode="eval")
        _validate(tree.body, 0)
    except SyntaxError as exc:
        row = min(max(exc.lineno or 1, 1), len(lines))
        col = min(max((exc.offset or 1) - 1, 0), len(lines[row - 1]))
        return failed(f"invalid expression: {exc.msg}", shift + ok.starts[row - 1] + col)
    except _Invalid as bad:
        return failed(bad.message, ok.index(bad.lineno, bad.col))
    except (RecursionError, MemoryError):  # Python's own parser gave up on the nesting
        return failed(f"expression is nested too deeply (over {MAX_DEPTH} levels)")
    except ValueError:
        return failed("expression is not valid text")
    return _Compiled(tree, lines, ok.starts, shift)


# --- source that every supported Python reads alike ------------------------------------
#
# Python 3.12 (PEP 701) parses f-strings that 3.10 and 3.11 refuse (the f-string's own
# quote, a backslash or a '#' inside {...}, deeper nesting), and 3.11+ accept names and
# \N{...} escapes with characters newer than Unicode 13.0. A flow checked on one Python
# must compile on the others, or its history would not replay there; so the rules of
# 3.10/3.11 are checked here, the same way on every version, before Python parses.

class _Unportable(Exception):
    def __init__(self, message: str, index: int) -> None:  # index into the parsed text
        super().__init__(message)
        self.message, self.index = message, index


_STRING_PREFIXES = {"", "r", "u", "b", "br", "rb", "f", "fr", "rf"}
_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*")
_NUMBER = re.compile(r"[0-9](?:[eE][+-]|[0-9A-Za-z_.])*")
_ESCAPE = re.compile(r"\\(N\{[^}]*\}|.)", re.DOTALL)
_OPENING = {")": "(", "]": "[", "}": "{"}
_LONG_DIGITS = re.compile(f"[0-9_]{{{MAX_INT_DIGITS + 1}}}")


def _check_portable(text: str, base: int = 0) -> None:
    """Raise _Unportable where ``text`` (code, as given to ast.parse) would not read the same
    on Python 3.10-3.13; ``base`` is the index of ``text`` in the whole expression."""
    if not ("'" in text or '"' in text or NEWER_CHAR.search(text) or _LONG_DIGITS.search(text)):
        return
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif ch in "0123456789":
            number = _NUMBER.match(text, i).group()  # type: ignore[union-attr]
            digits = number.replace("_", "")
            if digits.isdigit() and len(digits) > MAX_INT_DIGITS:  # Python's own limit is configurable
                raise _Unportable("number is too large", base + i)
            i += len(number)
        elif ch in "'\"":
            i = _check_string(text, i, i, base)
        elif (word := _WORD.match(text, i)) is not None:
            end = word.end()
            if end < len(text) and text[end] in "'\"" and word.group().lower() in _STRING_PREFIXES:
                i = _check_string(text, i, end, base)
                continue
            newer = NEWER_CHAR.search(word.group())
            if newer is not None:
                raise _Unportable(f"invalid expression: invalid character '{newer.group()}' "
                                  f"(U+{ord(newer.group()):04X})", base + i + newer.start())
            i = end
        else:
            i += 1


def _check_string(text: str, start: int, quote_at: int, base: int) -> int:
    """Check the string literal at ``start`` (prefix) / ``quote_at`` (quote), tokenized as
    Python 3.11 does; return the index after it."""
    prefix = text[start:quote_at].lower()
    delimiter = text[quote_at] * 3 if text.startswith(text[quote_at] * 3, quote_at) else text[quote_at]
    i = quote_at + len(delimiter)
    while not text.startswith(delimiter, i):
        if i >= len(text) or (len(delimiter) == 1 and text[i] in "\r\n"):
            if "f" in prefix:  # Python 3.12 may read on, into the next line
                raise _Unportable("invalid expression: unterminated f-string", base + start)
            return len(text)  # Python reports it, alike on every version
        i += (3 if text.startswith("\r\n", i + 1) else 2) if text[i] == "\\" else 1
    body_at, end = quote_at + len(delimiter), i
    if "f" in prefix:
        _FString(text[body_at:end], "r" in prefix, base + body_at).check()
    elif "r" not in prefix and "b" not in prefix:
        for escape in _ESCAPE.finditer(text, body_at, end):
            _check_name_escape(escape.group(1), base + escape.start())
    return end + len(delimiter)


def _check_name_escape(escape: str, at: int) -> None:
    r"""\N{NAME} for a character newer than Unicode 13.0 is an unknown name to Python 3.10."""
    if not escape.startswith("N{"):
        return
    try:
        char = unicodedata.lookup(escape[2:-1])
    except KeyError:
        char = ""  # refused by every version, in words that differ
    if len(char) != 1 or NEWER_CHAR.match(char):
        raise _Unportable(f"invalid expression: unknown Unicode character name '{escape[2:-1]}'", at)


class _FString:
    """The body of one f-string literal, read by Python 3.11's rules (its fstring_find_literal
    and fstring_find_expr, pegen/action_helpers.c): the errors are 3.11's."""

    def __init__(self, body: str, raw: bool, base: int) -> None:
        self.body, self.raw, self.base, self.i = body, raw, base, 0

    def fail(self, message: str) -> _Unportable:
        return _Unportable(f"invalid expression: {message}", self.base + self.i)

    def check(self, level: int = 0) -> None:
        body = self.body
        while True:
            self._literal(level)
            if self.i >= len(body) or body[self.i] == "}":
                break
            self._field(level)
        if level and (self.i >= len(body) or body[self.i] != "}"):
            raise self.fail("f-string: expecting '}'")

    def _literal(self, level: int) -> None:
        body = self.body
        while self.i < len(body):
            ch = body[self.i]
            self.i += 1
            if not self.raw and ch == "\\" and self.i < len(body):
                ch = body[self.i]
                self.i += 1
                if ch == "N":
                    start = self.i - 2
                    if self.i < len(body) and body[self.i] == "{":
                        close = body.find("}", self.i)
                        self.i = len(body) if close < 0 else close + 1
                        _check_name_escape(body[start + 1:self.i], self.base + start)
                    elif self.i < len(body):
                        self.i += 1
                    continue
            if ch in "{}":
                if level == 0:
                    if self.i < len(body) and body[self.i] == ch:
                        self.i += 1
                        continue
                    if ch == "}":
                        self.i -= 1
                        raise self.fail("f-string: single '}' is not allowed")
                self.i -= 1
                return

    def _field(self, level: int) -> None:
        body = self.body
        if level >= 2:
            raise self.fail("f-string: expressions nested too deeply")
        self.i += 1  # the '{'
        start, quote, triple, stack = self.i, "", False, []
        while self.i < len(body):
            ch = body[self.i]
            if ch == "\\":
                raise self.fail("f-string expression part cannot include a backslash")
            if quote:
                if ch == quote and (not triple or body.startswith(quote * 3, self.i)):
                    self.i += 2 if triple else 0
                    quote = ""
            elif ch in "'\"":
                triple = body.startswith(ch * 3, self.i)
                self.i += 2 if triple else 0
                quote = ch
            elif ch in "[{(":
                if len(stack) >= 200:
                    raise self.fail("f-string: too many nested parenthesis")
                stack.append(ch)
            elif ch == "#":
                raise self.fail("f-string expression part cannot include '#'")
            elif not stack and ch in "!:}=<>":
                if body.startswith("=", self.i + 1) and ch in "!=<>":
                    self.i += 2
                    continue
                if ch not in "<>":
                    break
            elif ch in ")]}":
                if not stack:
                    raise self.fail(f"f-string: unmatched '{ch}'")
                opening = stack.pop()
                if opening != _OPENING[ch]:
                    raise self.fail(f"f-string: closing parenthesis '{ch}' does not match opening parenthesis "
                                    f"'{opening}'")
            self.i += 1
        if quote:
            raise self.fail("f-string: unterminated string")
        if stack:
            raise self.fail(f"f-string: unmatched '{stack[-1]}'")
        if self.i >= len(body):
            raise self.fail("f-string: expecting '}'")
        expression = body[start:self.i]
        if not expression.strip(" \t\n\f"):
            before = f"expression required before '{body[self.i]}'" if body[self.i] in "!:=" else ""
            raise self.fail(f"f-string: {before or 'empty expression not allowed'}")
        _check_portable(expression, self.base + start)
        if body[self.i] == "=":
            self.i += 1
            while self.i < len(body) and body[self.i] in " \t\n\r\f\v":
                self.i += 1
        if self.i < len(body) and body[self.i] == "!":
            if self.i + 1 >= len(body):
                raise self.fail("f-string: expecting '}'")
            if body[self.i + 1] not in "sra":
                raise self.fail("f-string: invalid conversion character: expected 's', 'r', or 'a'")
            self.i += 2
        if self.i < len(body) and body[self.i] == ":":
            self.i += 1
            if self.i >= len(body):
                raise self.fail("f-string: expecting '}'")
            self.check(level + 1)
        if self.i >= len(body) or body[self.i] != "}":
            raise self.fail("f-string: expecting '}'")
        self.i += 1


def _compiled(expr: ir.Expr) -> _Compiled:
    if not isinstance(expr.source, str):
        raise ExpressionError("expression source must be text", expr.line, expr.col)
    c = _compile_source(expr.source)
    if c.error is not None:
        message, index = c.error
        raise ExpressionError(message, *position(expr, index))
    return c


def compile_expr(expr: ir.Expr) -> ast.Expression:
    """Parse and validate ``expr``; the tree is shared (cached by source): never mutate it."""
    tree = _compiled(expr).tree
    assert tree is not None
    return tree


_BAD_BINOPS = {ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.LShift: "<<",
               ast.RShift: ">>", ast.MatMult: "@"}
_FORBIDDEN = {
    "Lambda": "lambda is not allowed",
    "NamedExpr": "':=' is not allowed: expressions cannot assign",
    "ListComp": "comprehensions are not supported",
    "SetComp": "comprehensions are not supported",
    "DictComp": "comprehensions are not supported",
    "GeneratorExp": "comprehensions are not supported",
    "Set": "set literals are not allowed: use a list [...]",
    "Starred": "'*' unpacking is not allowed",
    "Await": "'await' is not allowed",
    "Yield": "'yield' is not allowed",
    "YieldFrom": "'yield' is not allowed",
}


def _validate(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Invalid(f"expression is nested too deeply (over {MAX_DEPTH} levels)", *node_at(node))
    check = _VALIDATORS.get(type(node))
    if check is None:
        name = type(node).__name__
        raise _Invalid(_FORBIDDEN.get(name, f"this kind of expression ({name}) is not allowed"), *node_at(node))
    check(node)
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            _validate(child, depth + 1)


def _v_constant(node: ast.Constant) -> None:
    value = node.value
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int) and value.bit_length() <= MAX_INT_BITS:
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    if isinstance(value, (int, float)):
        raise _Invalid("number is too large", *node_at(node))
    what = {bytes: "bytes literals are", complex: "complex numbers are"}.get(type(value), "'...' is")
    raise _Invalid(f"{what} not allowed", *node_at(node))


def _v_name(node: ast.Name) -> None:
    if node.id.startswith("_"):
        raise _Invalid(f"names starting with '_' are not allowed ('{node.id}')", *node_at(node))


def _v_attribute(node: ast.Attribute) -> None:
    if node.attr.startswith("_"):
        raise _Invalid(f"attributes starting with '_' are not allowed ('.{node.attr}')", *attr_at(node))


def _v_dict(node: ast.Dict) -> None:
    if any(key is None for key in node.keys):
        raise _Invalid("'**' unpacking is not allowed", *node_at(node))


def _v_binop(node: ast.BinOp) -> None:
    if type(node.op) not in BINOPS:
        raise _Invalid(f"operator '{_BAD_BINOPS.get(type(node.op), '?')}' is not allowed", *node_at(node))


def _v_unaryop(node: ast.UnaryOp) -> None:
    if isinstance(node.op, ast.Invert):
        raise _Invalid("operator '~' is not allowed", *node_at(node))


def _v_compare(node: ast.Compare) -> None:
    if any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
        raise _Invalid("'is' is not allowed: use == or != (e.g. x == null)", *node_at(node))


def _v_call(node: ast.Call) -> None:
    func = node.func
    if isinstance(func, ast.Attribute):
        raise _Invalid(_method_call_message(func), *attr_at(func))
    if not isinstance(func, ast.Name):
        raise _Invalid("only built-in functions can be called, by name, e.g. len(x)", *node_at(node))
    if func.id.startswith("_"):
        raise _Invalid(f"names starting with '_' are not allowed ('{func.id}')", *node_at(func))
    if func.id not in BUILTINS:
        close = difflib.get_close_matches(func.id, list(BUILTINS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; the functions are {', '.join(BUILTINS)}"
        raise _Invalid(f"unknown function '{func.id}'{hint}", *node_at(func))
    if node.keywords:
        raise _Invalid("keyword arguments are not allowed", *node_at(node.keywords[0]))
    low, high, _ = BUILTINS[func.id]
    given = len(node.args)
    if not low <= given <= high:
        want = str(low) if low == high else (f"at least {low}" if high > 99 else f"{low} to {high}")
        plural = "" if want == "1" else "s"
        raise _Invalid(f"{func.id}() takes {want} argument{plural} ({given} given)", *node_at(func))
    if func.id == "secret" and not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                                    and secrets.NAME.fullmatch(node.args[0].value)):
        raise _Invalid("secret() takes the secret's name as a string literal, e.g. secret(\"API_TOKEN\") "
                       "(letters, digits and _)", *node_at(node.args[0]))


def _method_call_message(func: ast.Attribute) -> str:
    if func.attr in BUILTINS:
        return f"method calls are not allowed: use {func.attr}(x) instead of x.{func.attr}()"
    return f"method calls are not allowed (.{func.attr}(...)): call a built-in function by name, e.g. len(x)"


def _v_ok(node: ast.AST) -> None:
    return None


_VALIDATORS: dict[type, Callable[[Any], None]] = {
    ast.Constant: _v_constant, ast.Name: _v_name, ast.Attribute: _v_attribute, ast.Dict: _v_dict,
    ast.BinOp: _v_binop, ast.UnaryOp: _v_unaryop, ast.Compare: _v_compare, ast.Call: _v_call,
    ast.BoolOp: _v_ok, ast.IfExp: _v_ok, ast.Subscript: _v_ok, ast.Slice: _v_ok, ast.List: _v_ok,
    ast.Tuple: _v_ok, ast.JoinedStr: _v_ok, ast.FormattedValue: _v_ok,
}


# --- public helpers over compiled expressions --------------------------------


def names_used(expr: ir.Expr) -> list[tuple[str, int, int]]:
    """Free names the expression reads, as (name, line, col) in source order."""
    c = _compiled(expr)
    assert c.tree is not None
    callees = {id(n.func) for n in ast.walk(c.tree) if isinstance(n, ast.Call)}
    found = [
        (n.id, *position(expr, node_index(c, n)))
        for n in ast.walk(c.tree)
        if isinstance(n, ast.Name) and id(n) not in callees and n.id not in ALIASES
    ]
    return sorted(found, key=lambda item: (item[1], item[2]))


def secrets_used(expr: ir.Expr) -> list[str]:
    """The names of the secrets ``expr`` reads with ``secret("NAME")`` (always literals), sorted."""
    c = _compiled(expr)
    assert c.tree is not None
    return sorted({n.args[0].value for n in ast.walk(c.tree)  # type: ignore[attr-defined]
                   if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "secret"})


def list_elements(expr: ir.Expr) -> tuple[ir.Expr, ...] | None:
    """If ``expr`` is a list literal, its elements as Exprs positioned where written, else None."""
    c = _compiled(expr)
    assert c.tree is not None
    if not isinstance(c.tree.body, ast.List):
        return None
    source = expr.source
    items = []
    for elt in c.tree.body.elts:
        start = node_index(c, elt)
        end = c.index(elt.end_lineno or elt.lineno, elt.end_col_offset or 0)
        start, end = _widen_parens(source, start, end)
        items.append(ir.Expr(source[start:end], *position(expr, start)))
    return tuple(items)


def _widen_parens(source: str, start: int, end: int) -> tuple[int, int]:
    """A bare parenthesised element's ast span leaves out its parens; put them back."""
    while True:
        before = len(source[:start].rstrip())
        after = len(source) - len(source[end:].lstrip())
        if before > 0 and after < len(source) and source[before - 1] == "(" and source[after] == ")":
            start, end = before - 1, after + 1
        else:
            return start, end


def to_text(value: Any) -> str:
    """How a value reads as text: a string as itself, anything else as JSON (``true``, ``{"a": 1}``)."""
    try:
        return text_of(None, value)
    except Problem as p:
        raise ExpressionError(p.message) from None
    except RecursionError:
        raise ExpressionError("value is nested too deeply to turn into text") from None


# --- evaluation ----------------------------------------------------------------


def evaluate(expr: ir.Expr, env: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` over the JSON values in ``env``; only ever raises ExpressionError."""
    c = _compiled(expr)
    assert c.tree is not None
    return run(expr, c, c.tree, env, _FUNCTIONS)


# --- built-in functions ----------------------------------------------------------


def _need(function: str, value: Any, *kinds: str) -> Any:
    if kind(value) in kinds:
        return value
    raise Problem(f"{function}() needs a {' or '.join(kinds)}, not {kind(value)}")


def _convert(function: str, convert: Callable[[Any], Any], read: Callable[[str], Any], value: Any) -> Any:
    _need(function, value, "string", "number", "boolean")
    try:
        return check_number(read(value.strip()) if isinstance(value, str) else convert(value))
    except ValueError:
        raise Problem(f"{function}() cannot read {text_of(None, value, quoted=True)[:40]} as a number") from None


def _extreme(function: str, pick: Callable[..., Any], args: tuple) -> Any:
    items = _need(function, args[0], "list") if len(args) == 1 else args
    if not items:
        raise Problem(f"{function}() of an empty list")
    return _ordered(function, pick, items)


def _ordered(function: str, apply: Callable[..., Any], items: Any) -> Any:
    try:
        return apply(items)
    except TypeError:
        raise Problem(f"{function}() needs values that compare with each other (all numbers or all strings)") from None


def _b_round(ev: Evaluator, value: Any, digits: Any = None) -> Any:
    _need("round", value, "number")
    if digits is None:
        return check_number(round(value))
    if not is_int(digits):
        raise Problem(f"round() needs a whole number of digits, not {kind(digits)}")
    if is_int(value) and -digits > value.bit_length() // 3 + 2:
        return 0  # |value| < 2**bits <= 10**-digits / 2; Python would compute 10**-digits first
    return check_number(round(value, digits))


def _b_sum(ev: Evaluator, items: Any) -> Any:
    if not all(kind(item) == "number" for item in _need("sum", items, "list")):
        raise Problem("sum() needs a list of numbers")
    return check_number(add_up(items))


def _b_range(ev: Evaluator, *args: Any) -> list:
    if not all(is_int(a) for a in args):
        raise Problem("range() needs whole numbers")
    if len(args) == 3 and args[2] == 0:
        raise Problem("range() step cannot be 0")
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise Problem(f"range() is limited to {MAX_RANGE:,} numbers")
    return list(numbers)


def _b_join(ev: Evaluator, sep: Any, items: Any) -> str:
    _need("join", sep, "string")
    parts, total = [], 0
    for item in _need("join", items, "list"):
        parts.append(text_of(ev, item))
        total += len(parts[-1]) + len(sep)
        if total > MAX_LEN + len(sep):
            raise Problem(f"join() result would be over the limit of {MAX_LEN:,} characters")
    return sep.join(parts)


def _b_now(ev: Evaluator) -> Any:
    """Workflow time: the engine puts it in the environment, so replay sees the same value."""
    try:
        return ev.env["__now__"]
    except KeyError:
        raise Problem("now() is not available here") from None


def _b_secret(ev: Evaluator, name: Any) -> str:
    """A reference to a secret (core/secrets.py): the runner puts the value in at spawn."""
    if not isinstance(name, str) or not secrets.NAME.fullmatch(name):
        raise Problem("secret() takes the secret's name as a string (letters, digits and _)")
    return secrets.reference(name)


def _b_split(ev: Evaluator, text: Any, sep: Any = None) -> list:
    _need("split", text, "string")
    if sep is not None and _need("split", sep, "string") == "":
        raise Problem("split() separator cannot be empty")
    return text.split(sep)


_ANY = 255
BUILTINS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "len": (1, 1, lambda ev, x: len(_need("len", x, "string", "list", "object"))),
    "str": (1, 1, lambda ev, x: text_of(ev, x)),
    "int": (1, 1, lambda ev, x: _convert("int", int, read_int, x)),
    "float": (1, 1, lambda ev, x: _convert("float", float, read_float, x)),
    "bool": (1, 1, lambda ev, x: bool(x)),
    "round": (1, 2, _b_round),
    "abs": (1, 1, lambda ev, x: abs(_need("abs", x, "number"))),
    "min": (1, _ANY, lambda ev, *args: _extreme("min", min, args)),
    "max": (1, _ANY, lambda ev, *args: _extreme("max", max, args)),
    "sum": (1, 1, _b_sum),
    "sorted": (1, 1, lambda ev, x: _ordered("sorted", sorted, _need("sorted", x, "list"))),
    "keys": (1, 1, lambda ev, x: list(_need("keys", x, "object"))),
    "values": (1, 1, lambda ev, x: list(_need("values", x, "object").values())),
    "items": (1, 1, lambda ev, x: [[k, v] for k, v in _need("items", x, "object").items()]),
    "list": (1, 1, lambda ev, x: list(_need("list", x, "list", "string", "object"))),
    "range": (1, 3, _b_range),
    "lower": (1, 1, lambda ev, x: change_case(_need("lower", x, "string"), upper=False)),
    "upper": (1, 1, lambda ev, x: change_case(_need("upper", x, "string"), upper=True)),
    "join": (2, 2, _b_join),
    "split": (1, 2, _b_split),
    "contains": (2, 2, lambda ev, container, item: contains(container, item)),
    "json": (1, 1, lambda ev, x: text_of(ev, x, canonical=True)),
    "now": (0, 0, _b_now),
    "secret": (1, 1, _b_secret),
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {name: entry[2] for name, entry in BUILTINS.items()}
