"""Evaluating flow expressions over JSON values: the tree walker and its value helpers.

Owns what each allowed construct means over JSON values (dict, list, str, int,
float, bool, None), the size limits, and the runtime messages. ``localflow.core.expr``
compiles and validates, and owns the built-in functions, which it hands to ``run``;
this module only walks a tree that was validated, so it never sees a construct
outside the safe subset.

Pure: no I/O, clock or randomness; never calls Python's ``eval``/``exec``.

Interpreter-proof: every result is the same on each supported Python (3.10-3.13),
so a history recorded under one replays under another (ARCHITECTURE 12). Where
Python itself changed between those versions, the function is written out here
(``add_up``, ``change_case``, ``read_int``, ``read_float``, ``format_value``);
docs/dsl.md, "Determinism across Python versions", lists what was checked.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import operator
import re
from typing import Any, Callable, Mapping, Protocol

from localflow import ir
from localflow.errors import ExpressionError

MAX_LEN = 1_000_000  # characters of a string / elements of a list an expression builds
MAX_UNITS = 10_000_000  # deep size (elements + characters) of a list built by repetition
MAX_INT_BITS = 4096
MAX_RANGE = 100_000
MAX_FORMAT_NUMBER = 1000  # widths and precisions in f-string format specs
ALIASES: dict[str, Any] = {"true": True, "false": False, "null": None}
NEWLINE = re.compile(r"\r\n|\r|\n")
BINOPS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
                           ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


class Problem(Exception):
    """An evaluation problem; the evaluator positions it at ``at`` or the current node."""

    def __init__(self, message: str, at: ast.AST | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


class Source(Protocol):
    """A compiled expression, as far as the evaluator needs it (``expr._Compiled``)."""

    def index(self, lineno: int, byte_col: int) -> int: ...


def position(expr: ir.Expr, index: int) -> tuple[int, int]:
    """Absolute (line, col), 1-based, of a character index into ``expr.source``."""
    base_line, base_col = expr.line or 1, expr.col or 1
    breaks = list(NEWLINE.finditer(expr.source, 0, max(index, 0)))
    if not breaks:
        return base_line, base_col + index
    return base_line + len(breaks), index - breaks[-1].end() + 1


def node_index(c: Source, node: ast.AST) -> int:
    return c.index(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))


def node_at(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0)


def _where(node: ast.AST) -> tuple[int, int]:
    """Where an error in ``node`` points. An f-string's ``{...}`` points at the value inside
    it: Python 3.12 moved a replacement field's own position from the f-string's start
    to its ``{``, but the value's position is the same on every version."""
    return node_at(node.value) if isinstance(node, ast.FormattedValue) else node_at(node)


def attr_at(node: ast.Attribute) -> tuple[int, int]:
    end_line = node.end_lineno or node.lineno
    end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
    return end_line, max(end_col - len(node.attr.encode("utf-8")), 0)


# --- evaluation ----------------------------------------------------------------


Function = Callable[..., Any]  # called as f(evaluator, *argument values)


def run(expr: ir.Expr, compiled: Source, tree: ast.Expression, env: Mapping[str, Any],
        functions: Mapping[str, Function]) -> Any:
    """Evaluate the validated ``tree`` of ``expr`` over ``env``; only ever raises ExpressionError.

    ``functions`` are the built-ins by name (``expr.BUILTINS``): the validator has
    already checked every call against them, by name and arity.
    """
    ev = Evaluator(expr, compiled, env, functions)
    try:
        return ev.eval(tree.body)
    except ExpressionError:
        raise
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is too complex to evaluate", *position(expr, 0)) from None
    except Exception as exc:  # the last net: a surprise must still surface as an ExpressionError
        raise ExpressionError(f"cannot evaluate: {exc}", *position(expr, 0)) from None


def kind(value: Any) -> str:
    """A value's JSON type name, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = ((int, "number"), (float, "number"), (str, "string"), (list, "list"), (tuple, "list"), (dict, "object"))
    return next((name for cls, name in names if isinstance(value, cls)), type(value).__name__)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


class Evaluator:
    def __init__(self, expr: ir.Expr, compiled: Source, env: Mapping[str, Any],
                 functions: Mapping[str, Function]) -> None:
        self.expr, self.c, self.env, self.functions = expr, compiled, env, functions
        self._sizes: dict[int, int] = {}
        self._keep: list[Any] = []  # keeps sized objects alive so that their ids stay unique

    def eval(self, node: ast.AST) -> Any:
        try:
            handler = _EVAL.get(type(node))
            if handler is None:
                raise Problem(f"{type(node).__name__} is not allowed")
            return handler(self, node)
        except ExpressionError:
            raise
        except Problem as p:
            raise self.error(p.message, p.at or _where(node)) from None
        except ZeroDivisionError:
            raise self.error("division by zero", _where(node)) from None
        except OverflowError:
            raise self.error("number is too large", _where(node)) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise self.error(str(exc), _where(node)) from None

    def error(self, message: str, at: tuple[int, int]) -> ExpressionError:
        return ExpressionError(message, *position(self.expr, self.c.index(*at)))

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node`` for messages, or 'the value' when it is long."""
        start = node_index(self.c, node)
        end = self.c.index(getattr(node, "end_lineno", 1) or 1, getattr(node, "end_col_offset", 0) or 0)
        text = " ".join(self.expr.source[start:end].split())
        return text if 0 < len(text) <= 40 else "the value"

    def size(self, value: Any) -> int:
        """Deep size (containers and scalars 1, strings 1 + length), memoised by identity."""
        if not isinstance(value, (list, tuple, dict)):
            return 1 + len(value) if isinstance(value, str) else 1
        stack: list[tuple[Any, bool]] = [(value, False)]
        open_ids: set[int] = set()
        while stack:
            item, ready = stack.pop()
            if id(item) in self._sizes:
                continue
            children = list(item.values()) if isinstance(item, dict) else list(item)
            if not ready:
                open_ids.add(id(item))
                stack.append((item, True))
                for child in children:
                    if isinstance(child, (list, tuple, dict)) and id(child) not in self._sizes:
                        if id(child) in open_ids:
                            raise Problem("value contains itself")
                        stack.append((child, False))
                continue
            total = 1 + sum(self._sizes.get(id(ch)) or self.size(ch) for ch in children)
            if isinstance(item, dict):
                total += sum(len(k) for k in item if isinstance(k, str))
            self._sizes[id(item)] = total
            self._keep.append(item)
            open_ids.discard(id(item))
        return self._sizes[id(value)]


def text_of(ev: Evaluator | None, value: Any, canonical: bool = False, quoted: bool = False) -> str:
    """A string as itself (unless quoted); anything else as JSON text, canonical for json()."""
    if isinstance(value, str) and not (canonical or quoted):
        return value
    if ev is not None and ev.size(value) > MAX_LEN:
        raise Problem(f"value is too large to turn into text (limit {MAX_LEN:,} characters)")
    try:
        if canonical:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        else:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise Problem(f"cannot turn a {kind(value)} into text") from None
    if len(text) > MAX_INT_DIGITS and _holds_long_number(value):  # Python's own limit is configurable
        raise Problem(f"cannot turn a {kind(value)} into text")
    if len(text) > MAX_LEN:
        raise Problem(f"text would be over the limit of {MAX_LEN:,} characters")
    return text


def _suggest(word: str, options: Any) -> str:
    # names starting with "_" (the engine's "__now__") are unreachable: never suggest them
    names = [o for o in options if isinstance(o, str) and not o.startswith("_")]
    close = difflib.get_close_matches(word, names, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _missing_key(ev: Evaluator, obj: dict, key: str, owner: ast.AST) -> str:
    path = ev.segment(owner)
    hint = _suggest(key, obj)
    result = obj.get("result")
    if not hint and isinstance(result, dict) and key in result:
        hint = f"; did you mean {path}.result.{key}?"
    names = [str(k) for k in list(obj)[:10]]
    has = f" (it has: {', '.join(names)}{', ...' if len(obj) > 10 else ''})" if obj else " (it is empty)"
    return f"no key '{key}' in {path}{has}{hint}"


def _e_name(ev: Evaluator, node: ast.Name) -> Any:
    if node.id in ALIASES:
        return ALIASES[node.id]
    if node.id in ev.env:
        return ev.env[node.id]
    raise Problem(f"unknown name '{node.id}'{_suggest(node.id, ev.env)}")


def _e_attribute(ev: Evaluator, node: ast.Attribute) -> Any:
    obj = ev.eval(node.value)
    if not isinstance(obj, dict):
        raise Problem(f"cannot read '.{node.attr}': {ev.segment(node.value)} is a {kind(obj)}, not an object",
                       attr_at(node))
    if node.attr in obj:
        return obj[node.attr]
    raise Problem(_missing_key(ev, obj, node.attr, node.value), attr_at(node))


def _e_subscript(ev: Evaluator, node: ast.Subscript) -> Any:
    obj = ev.eval(node.value)
    if isinstance(node.slice, ast.Slice):
        return _slice(ev, obj, node.slice)
    key, at = ev.eval(node.slice), node_at(node.slice)
    if isinstance(obj, dict):
        if not isinstance(key, str):
            raise Problem(f"object keys are strings, not {kind(key)}", at)
        if key in obj:
            return obj[key]
        raise Problem(_missing_key(ev, obj, key, node.value), at)
    if not isinstance(obj, (list, tuple, str)):
        raise Problem(f"cannot index a {kind(obj)}", at)
    if not is_int(key):
        raise Problem(f"a {kind(obj)} index must be a whole number, not {kind(key)}", at)
    if -len(obj) <= key < len(obj):
        return obj[key]
    unit = "characters" if isinstance(obj, str) else "elements"
    raise Problem(f"index {number_text(key)} is out of range: {ev.segment(node.value)} has {len(obj)} {unit}", at)


def _slice(ev: Evaluator, obj: Any, node: ast.Slice) -> Any:
    bounds = [None if part is None else ev.eval(part) for part in (node.lower, node.upper, node.step)]
    if any(b is not None and not is_int(b) for b in bounds):
        raise Problem("slice bounds must be whole numbers or left out")
    if bounds[2] == 0:
        raise Problem("slice step cannot be 0")
    if isinstance(obj, str):
        return obj[slice(*bounds)]
    if _is_list(obj):
        return list(obj[slice(*bounds)])
    raise Problem(f"cannot slice a {kind(obj)}")


def _e_dict(ev: Evaluator, node: ast.Dict) -> dict:
    out: dict[str, Any] = {}
    for key_node, value_node in zip(node.keys, node.values):
        key = ev.eval(key_node)
        if not isinstance(key, str):
            raise Problem(f"object keys must be strings, not {kind(key)}", node_at(key_node))
        out[key] = ev.eval(value_node)
    return out


def check_number(value: Any) -> Any:
    if isinstance(value, complex):
        raise Problem("result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise Problem("result is not a finite number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise Problem(f"number is too large (whole numbers are limited to {MAX_INT_BITS} bits)")
    return value


def _power(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
        raise Problem(f"** result would be too large (whole numbers are limited to {MAX_INT_BITS} bits)")
    return a**b


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": _power,
}


def _binop(ev: Evaluator, sym: str, a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return check_number(_ARITH[sym](a, b))
    if sym == "+" and ((isinstance(a, str) and isinstance(b, str)) or (_is_list(a) and _is_list(b))):
        total = len(a) + len(b)
        if total > MAX_LEN:
            raise Problem(f"result would have {total:,} {_unit(a)}, over the limit of {MAX_LEN:,}")
        return a + b if isinstance(a, str) else list(a) + list(b)
    if sym == "*" and isinstance(b, int) and (isinstance(a, str) or _is_list(a)):
        return _repeat(ev, a, b)
    if sym == "*" and isinstance(a, int) and (isinstance(b, str) or _is_list(b)):
        return _repeat(ev, b, a)
    if sym == "%" and isinstance(a, str):
        raise Problem("'%' formatting is not allowed: use an f-string, e.g. f\"{x}\"")
    raise Problem(f"cannot use {sym} on {kind(a)} and {kind(b)}")


def _unit(seq: Any) -> str:
    return "characters" if isinstance(seq, str) else "elements"


def _repeat(ev: Evaluator, seq: Any, times: int) -> Any:
    if times <= 0:
        return "" if isinstance(seq, str) else []
    total = len(seq) * times
    if total > MAX_LEN:
        raise Problem(f"result would have {number_text(total, ',')} {_unit(seq)}, over the limit of {MAX_LEN:,}")
    if isinstance(seq, str):
        return seq * times
    if (ev.size(seq) - 1) * times + 1 > MAX_UNITS:
        raise Problem("result would be too large: the repeated list holds too much")
    return list(seq) * times


def _e_binop(ev: Evaluator, node: ast.BinOp) -> Any:
    return _binop(ev, BINOPS[type(node.op)], ev.eval(node.left), ev.eval(node.right))


def _e_unaryop(ev: Evaluator, node: ast.UnaryOp) -> Any:
    value = ev.eval(node.operand)
    if isinstance(node.op, ast.Not):
        return not value
    sign = "-" if isinstance(node.op, ast.USub) else "+"
    if not _is_num(value):
        raise Problem(f"cannot use unary {sign} on a {kind(value)}")
    return check_number(-value if sign == "-" else +value)


def _e_boolop(ev: Evaluator, node: ast.BoolOp) -> Any:
    is_and = isinstance(node.op, ast.And)
    value = ev.eval(node.values[0])
    for nxt in node.values[1:]:
        if bool(value) != is_and:
            return value
        value = ev.eval(nxt)
    return value


_ORDER: dict[type, tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
}


def contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise Problem(f"'in' a string needs a string on the left, not {kind(item)}")
        return item in container
    if _is_list(container):
        return item in container
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    raise Problem(f"cannot use 'in' on a {kind(container)}")


def _compare(op: type, a: Any, b: Any) -> bool:
    if op in (ast.Eq, ast.NotEq):
        return (a == b) == (op is ast.Eq)
    if op in (ast.In, ast.NotIn):
        return contains(b, a) == (op is ast.In)
    sym, fn = _ORDER[op]
    same = (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)) or (_is_list(a) and _is_list(b))
    try:
        if same:
            return bool(fn(a, b))
    except TypeError:
        pass
    raise Problem(f"cannot compare {kind(a)} and {kind(b)} with {sym}")


def _e_compare(ev: Evaluator, node: ast.Compare) -> bool:
    left = ev.eval(node.left)
    for op, right_node in zip(node.ops, node.comparators):
        right = ev.eval(right_node)
        if not _compare(type(op), left, right):
            return False
        left = right
    return True


def _e_joinedstr(ev: Evaluator, node: ast.JoinedStr) -> str:
    parts, total = [], 0
    for part in node.values:
        text = part.value if isinstance(part, ast.Constant) else ev.eval(part)
        total += len(text)
        if total > MAX_LEN:
            raise Problem(f"text would be over the limit of {MAX_LEN:,} characters")
        parts.append(text)
    return "".join(parts)


def _e_formatted(ev: Evaluator, node: ast.FormattedValue) -> str:
    value = ev.eval(node.value)
    if node.conversion in (ord("r"), ord("a")):
        value = text_of(ev, value, quoted=True)
        value = value.encode("ascii", "backslashreplace").decode() if node.conversion == ord("a") else value
    spec = _spec_text(ev, node.format_spec) if node.format_spec is not None else ""
    if not spec:
        return text_of(ev, value)
    if len(spec) > 30 or any(int(d) > MAX_FORMAT_NUMBER for d in _DIGIT_RUN.findall(spec)):
        raise Problem(f"format ':{spec[:30]}' asks for too much: widths and precisions go up to {MAX_FORMAT_NUMBER}")
    target = value if _is_num(value) and not isinstance(value, bool) else text_of(ev, value)
    return format_value(target, spec)


def _spec_text(ev: Evaluator, spec: ast.JoinedStr) -> str:
    """The text of a format spec (``{x:>{width}}``), read part by part, not as a node of its own:
    where Python puts a spec's node differs between versions, so nothing may point at it."""
    return _e_joinedstr(ev, spec)


def _e_call(ev: Evaluator, node: ast.Call) -> Any:
    function = ev.functions[node.func.id]  # type: ignore[attr-defined]  (validated: a Name)
    return function(ev, *[ev.eval(arg) for arg in node.args])


_EVAL: dict[type, Callable[[Evaluator, Any], Any]] = {
    ast.Constant: lambda ev, node: node.value, ast.Name: _e_name, ast.Attribute: _e_attribute,
    ast.Subscript: _e_subscript, ast.List: lambda ev, node: [ev.eval(e) for e in node.elts],
    ast.Tuple: lambda ev, node: [ev.eval(e) for e in node.elts], ast.Dict: _e_dict,
    ast.BinOp: _e_binop, ast.UnaryOp: _e_unaryop, ast.BoolOp: _e_boolop, ast.Compare: _e_compare,
    ast.IfExp: lambda ev, node: ev.eval(node.body) if ev.eval(node.test) else ev.eval(node.orelse),
    ast.JoinedStr: _e_joinedstr, ast.FormattedValue: _e_formatted, ast.Call: _e_call,
}


# --- the same result on every supported Python (3.10-3.13) ---------------------------
#
# Each helper below replaces a Python built-in whose result changed between the
# supported versions, or depends on how the interpreter was configured. The
# expected values in tests/unit/test_builtins_determinism.py were recorded on 3.10
# and 3.11; tests/integration/test_cross_python.py runs them under every installed
# interpreter and compares the outputs byte for byte.

MAX_INT_DIGITS = 4300  # digits of a whole number read from text or written as text

# Characters assigned in Unicode 14.0, 15.0 and 15.1: Python 3.10 (Unicode 13.0) has
# none of them, 3.11 (14.0), 3.12 (15.0) and 3.13 (15.1) some. The expression language
# reads text with Unicode 13.0's rules, the only ones every supported Python can
# reproduce from its own database: to it these characters are unassigned (no case,
# not digits, not part of a name). Regenerate when a newer Python joins the supported
# set: the characters whose unicodedata.category is "Cn" on the oldest and not on the
# newest (tests/integration/test_cross_python.py fails until then).
_NEWER_UNICODE = (
    (0x061D, 0x061D), (0x0870, 0x088E), (0x0890, 0x0891), (0x0898, 0x089F), (0x08B5, 0x08B5), (0x08C8, 0x08D2),
    (0x0C3C, 0x0C3C), (0x0C5D, 0x0C5D), (0x0CDD, 0x0CDD), (0x0CF3, 0x0CF3), (0x0ECE, 0x0ECE), (0x170D, 0x170D),
    (0x1715, 0x1715), (0x171F, 0x171F), (0x180F, 0x180F), (0x1AC1, 0x1ACE), (0x1B4C, 0x1B4C), (0x1B7D, 0x1B7E),
    (0x1DFA, 0x1DFA), (0x20C0, 0x20C0), (0x2C2F, 0x2C2F), (0x2C5F, 0x2C5F), (0x2E53, 0x2E5D), (0x2FFC, 0x2FFF),
    (0x31EF, 0x31EF), (0x9FFD, 0x9FFF), (0xA7C0, 0xA7C1), (0xA7D0, 0xA7D1), (0xA7D3, 0xA7D3), (0xA7D5, 0xA7D9),
    (0xA7F2, 0xA7F4), (0xFBC2, 0xFBC2), (0xFD40, 0xFD4F), (0xFDCF, 0xFDCF), (0xFDFE, 0xFDFF), (0x10570, 0x1057A),
    (0x1057C, 0x1058A), (0x1058C, 0x10592), (0x10594, 0x10595), (0x10597, 0x105A1), (0x105A3, 0x105B1),
    (0x105B3, 0x105B9), (0x105BB, 0x105BC), (0x10780, 0x10785), (0x10787, 0x107B0), (0x107B2, 0x107BA),
    (0x10EFD, 0x10EFF), (0x10F70, 0x10F89), (0x11070, 0x11075), (0x110C2, 0x110C2), (0x1123F, 0x11241),
    (0x116B9, 0x116B9), (0x11740, 0x11746), (0x11AB0, 0x11ABF), (0x11B00, 0x11B09), (0x11F00, 0x11F10),
    (0x11F12, 0x11F3A), (0x11F3E, 0x11F59), (0x12F90, 0x12FF2), (0x1342F, 0x1342F), (0x13439, 0x13455),
    (0x16A70, 0x16ABE), (0x16AC0, 0x16AC9), (0x1AFF0, 0x1AFF3), (0x1AFF5, 0x1AFFB), (0x1AFFD, 0x1AFFE),
    (0x1B11F, 0x1B122), (0x1B132, 0x1B132), (0x1B155, 0x1B155), (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46),
    (0x1CF50, 0x1CFC3), (0x1D1E9, 0x1D1EA), (0x1D2C0, 0x1D2D3), (0x1DF00, 0x1DF1E), (0x1DF25, 0x1DF2A),
    (0x1E030, 0x1E06D), (0x1E08F, 0x1E08F), (0x1E290, 0x1E2AE), (0x1E4D0, 0x1E4F9), (0x1E7E0, 0x1E7E6),
    (0x1E7E8, 0x1E7EB), (0x1E7ED, 0x1E7EE), (0x1E7F0, 0x1E7FE), (0x1F6DC, 0x1F6DF), (0x1F774, 0x1F776),
    (0x1F77B, 0x1F77F), (0x1F7D9, 0x1F7D9), (0x1F7F0, 0x1F7F0), (0x1F979, 0x1F979), (0x1F9CC, 0x1F9CC),
    (0x1FA75, 0x1FA77), (0x1FA7B, 0x1FA7C), (0x1FA87, 0x1FA88), (0x1FAA9, 0x1FAAF), (0x1FAB7, 0x1FABD),
    (0x1FABF, 0x1FABF), (0x1FAC3, 0x1FAC5), (0x1FACE, 0x1FACF), (0x1FAD7, 0x1FADB), (0x1FAE0, 0x1FAE8),
    (0x1FAF0, 0x1FAF8), (0x2A6DE, 0x2A6DF), (0x2B735, 0x2B739), (0x2EBF0, 0x2EE5D), (0x31350, 0x323AF),
)
_NEWER_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in _NEWER_UNICODE)
NEWER_CHAR = re.compile(f"[{_NEWER_CLASS}]")
# Unicode 13.0 characters that later versions re-classified for case: case-ignorable
# (like U+00AD) in 13.0; U+10FC and U+AB69 became lowercase in 15.0, U+1734 a spacing mark in 14.0.
_RECLASSIFIED = "\u10fc\u1734\uab69"
_AS_UNASSIGNED = "\ufdd0"  # a noncharacter: unassigned in every Unicode version, uncased, not case-ignorable
_AS_IGNORABLE = "\u00ad"  # SOFT HYPHEN: case-ignorable and uncased in every version, maps to itself
_CASE_SENSITIVE = re.compile(f"[{_NEWER_CLASS}{_RECLASSIFIED}{_AS_UNASSIGNED}{_AS_IGNORABLE}]")
_STAND_IN = re.compile(f"[{_AS_UNASSIGNED}{_AS_IGNORABLE}]")
_DIGIT = f"(?:(?![{_NEWER_CLASS}])\\d)"  # a decimal digit of Unicode 13.0
_DIGIT_RUN = re.compile(f"{_DIGIT}+")
_INT_TEXT = re.compile(f"([+-]?)({_DIGIT}(?:_?{_DIGIT})*)")
_TEN_TO_MAX_DIGITS = 10**MAX_INT_DIGITS
_FORMAT_SPEC = re.compile(
    f"(?:.?[<>=^])?[-+ ]?(?P<z>z)?(?P<alt>#)?0?{_DIGIT}*(?P<grouping>[,_])?(?:\\.(?P<precision>{_DIGIT}+))?"
    f"(?P<type>[bcdeEfFgGnosxX%])?",
    re.DOTALL)
_FLOAT_TYPES = "eEfFgG%"


def add_up(items: Any) -> Any:
    """sum(): plain left-to-right addition from 0, as Python 3.11 and earlier. Python 3.12's
    sum() compensates float rounding (sum([0.1, 0.2, 0.3]) is 0.6 there, 0.6000000000000001 here)."""
    total = 0
    for item in items:
        total = total + item
    return total


def change_case(text: str, upper: bool) -> str:
    """upper()/lower() with Unicode 13.0's rules on every Python (see ``_NEWER_UNICODE``).

    Python's own mapping is used with each character that is newer than Unicode 13.0
    (or was re-classified since) replaced by a stand-in that every version treats as
    13.0 treated it, which keeps the context rules (Greek final sigma) right; the
    characters are put back afterwards. Stand-ins map to themselves, and nothing maps to them.
    """
    convert = str.upper if upper else str.lower
    if text.isascii() or _CASE_SENSITIVE.search(text) is None:
        return convert(text)
    originals: list[str] = []

    def stand_in(match: re.Match) -> str:
        originals.append(match.group())
        return _AS_IGNORABLE if match.group() in _RECLASSIFIED + _AS_IGNORABLE else _AS_UNASSIGNED

    converted = convert(_CASE_SENSITIVE.sub(stand_in, text))
    restore = iter(originals)
    return _STAND_IN.sub(lambda match: next(restore), converted)


def read_int(text: str) -> int:
    """int() of a string as Python 3.10 reads it with the default digit limit, on every Python:
    sign, Unicode 13.0 decimal digits, single underscores between digits; at most
    ``MAX_INT_DIGITS`` digits (Python 3.10.0-3.10.6 has no limit, and it is configurable).
    Raises ValueError when the text is not such a number."""
    match = None if NEWER_CHAR.search(text) else _INT_TEXT.fullmatch(text)
    if match is None:
        raise ValueError(text)
    digits = match.group(2).replace("_", "")
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(text)
    return int(match.group(1) + digits)


def read_float(text: str) -> float:
    """float() of a string, refusing digits newer than Unicode 13.0 (3.12 reads Kawi digits)."""
    if NEWER_CHAR.search(text):
        raise ValueError(text)
    return float(text)


def _too_many_digits(value: Any) -> bool:
    return is_int(value) and value.bit_length() > 14_000 and abs(value) >= _TEN_TO_MAX_DIGITS


def _holds_long_number(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif _too_many_digits(item):
            return True
    return False


def number_text(value: Any, spec: str = "") -> str:
    """A number for a message; one too long for Python's default int-to-text limit is described."""
    return f"(a number of over {MAX_INT_DIGITS:,} digits)" if _too_many_digits(value) else format(value, spec)


def format_value(target: Any, spec: str) -> str:
    """format(target, spec) for an f-string, the same on every Python.

    The spec must follow the grammar of Python 3.11-3.13, digits from Unicode 13.0.
    ``z`` (negative zero shown as zero, new in 3.11) is applied here, so 3.10 has it too.
    ``n`` reads as in the C locale, that is ``d`` for whole numbers and ``g`` otherwise:
    Python's ``n`` follows the process's locale.
    """
    match = _FORMAT_SPEC.fullmatch(spec)
    problem = Problem(f"format ':{spec}' does not apply to a {kind(target)}")
    if match is None:
        raise problem
    kind_of_type = match.group("type")
    if _too_many_digits(target) and kind_of_type in (None, "d", "n"):
        raise problem  # as Python with its default limit on decimal digits
    if kind_of_type == "n" and not isinstance(target, str):
        if match.group("grouping"):
            raise problem  # as Python: "Cannot specify ',' with 'n'"
        kind_of_type = "d" if isinstance(target, int) else "g"
        spec = spec[:match.start("type")] + kind_of_type
    if match.group("z"):
        if isinstance(target, str) or (isinstance(target, int) and (kind_of_type or "d") not in _FLOAT_TYPES):
            raise problem  # as Python 3.11+: z is for floats only
        spec = spec[:match.start("z")] + spec[match.end("z"):]
    try:
        text = format(target, spec)
        if match.group("z") and math.copysign(1.0, target) < 0:
            positive = -float(target)
            precision = match.group("precision")
            rounded = format(positive, f"{match.group('alt') or ''}{'.' + precision if precision else ''}"
                                       f"{kind_of_type or ''}")
            if set(c for c in rounded if c in "0123456789") == {"0"}:  # rounds to zero: drop the sign
                text = format(positive, spec)
        return text
    except ValueError:
        raise problem from None
