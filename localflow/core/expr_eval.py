"""Evaluating flow expressions over JSON values: the tree walker and its value helpers.

Owns what each allowed construct means over JSON values (dict, list, str, int,
float, bool, None), the size limits, and the runtime messages. ``localflow.core.expr``
compiles and validates, and owns the built-in functions, which it hands to ``run``;
this module only walks a tree that was validated, so it never sees a construct
outside the safe subset.

Pure: no I/O, clock or randomness; never calls Python's ``eval``/``exec``.
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
            raise self.error(p.message, p.at or node_at(node)) from None
        except ZeroDivisionError:
            raise self.error("division by zero", node_at(node)) from None
        except OverflowError:
            raise self.error("number is too large", node_at(node)) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise self.error(str(exc), node_at(node)) from None

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
    raise Problem(f"index {key} is out of range: {ev.segment(node.value)} has {len(obj)} {unit}", at)


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
        raise Problem(f"result would have {total:,} {_unit(seq)}, over the limit of {MAX_LEN:,}")
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
    spec = ev.eval(node.format_spec) if node.format_spec is not None else ""
    if not spec:
        return text_of(ev, value)
    if len(spec) > 30 or any(int(d) > MAX_FORMAT_NUMBER for d in re.findall(r"\d+", spec)):
        raise Problem(f"format ':{spec[:30]}' asks for too much: widths and precisions go up to {MAX_FORMAT_NUMBER}")
    target = value if _is_num(value) and not isinstance(value, bool) else text_of(ev, value)
    try:
        return format(target, spec)
    except ValueError:
        raise Problem(f"format ':{spec}' does not apply to a {kind(target)}") from None


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
