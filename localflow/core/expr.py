"""The safe expression language: validate and evaluate flow expressions over JSON values.

Owns which subset of Python-expression syntax a flow may use, what each construct
means over JSON values (dict, list, str, int, float, bool, None), and every error an
expression can cause: always an ``ExpressionError`` positioned in the flow file.

Pure: no I/O, clock or randomness; never calls Python's ``eval``/``exec``.
Evaluation walks the validated ``ast``; sizes are capped so that no expression can
allocate gigabytes or run for minutes.
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import math
import operator
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from localflow import ir
from localflow.errors import ExpressionError

MAX_SOURCE_CHARS = 100_000
MAX_DEPTH = 100  # ast nesting; keeps the recursive walk far from Python's recursion limit
MAX_LEN = 1_000_000  # characters of a string / elements of a list an expression builds
MAX_UNITS = 10_000_000  # deep size (elements + characters) of a list built by repetition
MAX_INT_BITS = 4096
MAX_RANGE = 100_000
MAX_FORMAT_NUMBER = 1000  # widths and precisions in f-string format specs
ALIASES: dict[str, Any] = {"true": True, "false": False, "null": None}
_NEWLINE = re.compile(r"\r\n|\r|\n")


class _Problem(Exception):
    """An evaluation problem; the evaluator positions it at ``at`` or the current node."""

    def __init__(self, message: str, at: ast.AST | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


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


def _position(expr: ir.Expr, index: int) -> tuple[int, int]:
    """Absolute (line, col), 1-based, of a character index into ``expr.source``."""
    base_line, base_col = expr.line or 1, expr.col or 1
    breaks = list(_NEWLINE.finditer(expr.source, 0, max(index, 0)))
    if not breaks:
        return base_line, base_col + index
    return base_line + len(breaks), index - breaks[-1].end() + 1


def _node_index(c: _Compiled, node: ast.AST) -> int:
    return c.index(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))


# --- compiling and validating ------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _compile_source(source: str) -> _Compiled:
    shift = len(source) - len(source.lstrip(" \t"))  # ast.parse refuses leading blanks
    text = source[shift:]
    lines = tuple(_NEWLINE.split(text))
    ok = _Compiled(None, lines, (0, *(m.end() for m in _NEWLINE.finditer(text))), shift)

    def failed(message: str, index: int = 0) -> _Compiled:
        return _Compiled(None, ok.lines, ok.starts, shift, (message, index))

    if not text.strip():
        return failed("empty expression")
    if len(source) > MAX_SOURCE_CHARS:
        return failed("expression is too long")
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
    except (ValueError, RecursionError, MemoryError):
        return failed("expression is too complex or not valid text")
    return _Compiled(tree, lines, ok.starts, shift)


def _compiled(expr: ir.Expr) -> _Compiled:
    if not isinstance(expr.source, str):
        raise ExpressionError("expression source must be text", expr.line, expr.col)
    c = _compile_source(expr.source)
    if c.error is not None:
        message, index = c.error
        raise ExpressionError(message, *_position(expr, index))
    return c


def compile_expr(expr: ir.Expr) -> ast.Expression:
    """Parse and validate ``expr``; the tree is shared (cached by source): never mutate it."""
    tree = _compiled(expr).tree
    assert tree is not None
    return tree


_BINOPS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
                            ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
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


def _at(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0)


def _at_attr(node: ast.Attribute) -> tuple[int, int]:
    end_line = node.end_lineno or node.lineno
    end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
    return end_line, max(end_col - len(node.attr.encode("utf-8")), 0)


def _validate(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Invalid(f"expression is nested too deeply (over {MAX_DEPTH} levels)", *_at(node))
    check = _VALIDATORS.get(type(node))
    if check is None:
        name = type(node).__name__
        raise _Invalid(_FORBIDDEN.get(name, f"this kind of expression ({name}) is not allowed"), *_at(node))
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
        raise _Invalid("number is too large", *_at(node))
    what = {bytes: "bytes literals are", complex: "complex numbers are"}.get(type(value), "'...' is")
    raise _Invalid(f"{what} not allowed", *_at(node))


def _v_name(node: ast.Name) -> None:
    if node.id.startswith("_"):
        raise _Invalid(f"names starting with '_' are not allowed ('{node.id}')", *_at(node))


def _v_attribute(node: ast.Attribute) -> None:
    if node.attr.startswith("_"):
        raise _Invalid(f"attributes starting with '_' are not allowed ('.{node.attr}')", *_at_attr(node))


def _v_dict(node: ast.Dict) -> None:
    if any(key is None for key in node.keys):
        raise _Invalid("'**' unpacking is not allowed", *_at(node))


def _v_binop(node: ast.BinOp) -> None:
    if type(node.op) not in _BINOPS:
        raise _Invalid(f"operator '{_BAD_BINOPS.get(type(node.op), '?')}' is not allowed", *_at(node))


def _v_unaryop(node: ast.UnaryOp) -> None:
    if isinstance(node.op, ast.Invert):
        raise _Invalid("operator '~' is not allowed", *_at(node))


def _v_compare(node: ast.Compare) -> None:
    if any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
        raise _Invalid("'is' is not allowed: use == or != (e.g. x == null)", *_at(node))


def _v_call(node: ast.Call) -> None:
    func = node.func
    if isinstance(func, ast.Attribute):
        raise _Invalid(_method_call_message(func), *_at_attr(func))
    if not isinstance(func, ast.Name):
        raise _Invalid("only built-in functions can be called, by name, e.g. len(x)", *_at(node))
    if func.id.startswith("_"):
        raise _Invalid(f"names starting with '_' are not allowed ('{func.id}')", *_at(func))
    if func.id not in BUILTINS:
        close = difflib.get_close_matches(func.id, list(BUILTINS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; the functions are {', '.join(BUILTINS)}"
        raise _Invalid(f"unknown function '{func.id}'{hint}", *_at(func))
    if node.keywords:
        raise _Invalid("keyword arguments are not allowed", *_at(node.keywords[0]))
    low, high, _ = BUILTINS[func.id]
    given = len(node.args)
    if not low <= given <= high:
        want = str(low) if low == high else (f"at least {low}" if high > 99 else f"{low} to {high}")
        plural = "" if want == "1" else "s"
        raise _Invalid(f"{func.id}() takes {want} argument{plural} ({given} given)", *_at(func))


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
        (n.id, *_position(expr, _node_index(c, n)))
        for n in ast.walk(c.tree)
        if isinstance(n, ast.Name) and id(n) not in callees and n.id not in ALIASES
    ]
    return sorted(found, key=lambda item: (item[1], item[2]))


def list_elements(expr: ir.Expr) -> tuple[ir.Expr, ...] | None:
    """If ``expr`` is a list literal, its elements as Exprs positioned where written, else None."""
    c = _compiled(expr)
    assert c.tree is not None
    if not isinstance(c.tree.body, ast.List):
        return None
    source = expr.source
    items = []
    for elt in c.tree.body.elts:
        start = _node_index(c, elt)
        end = c.index(elt.end_lineno or elt.lineno, elt.end_col_offset or 0)
        start, end = _widen_parens(source, start, end)
        items.append(ir.Expr(source[start:end], *_position(expr, start)))
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
        return _text(None, value)
    except _Problem as p:
        raise ExpressionError(p.message) from None
    except RecursionError:
        raise ExpressionError("value is nested too deeply to turn into text") from None


# --- evaluation ----------------------------------------------------------------


def evaluate(expr: ir.Expr, env: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` over the JSON values in ``env``; only ever raises ExpressionError."""
    c = _compiled(expr)
    assert c.tree is not None
    ev = _Evaluator(expr, c, env)
    try:
        return ev.eval(c.tree.body)
    except ExpressionError:
        raise
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is too complex to evaluate", *_position(expr, 0)) from None
    except Exception as exc:  # the last net: a surprise must still surface as an ExpressionError
        raise ExpressionError(f"cannot evaluate: {exc}", *_position(expr, 0)) from None


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


class _Evaluator:
    def __init__(self, expr: ir.Expr, compiled: _Compiled, env: Mapping[str, Any]) -> None:
        self.expr, self.c, self.env = expr, compiled, env
        self._sizes: dict[int, int] = {}
        self._keep: list[Any] = []  # keeps sized objects alive so that their ids stay unique

    def eval(self, node: ast.AST) -> Any:
        try:
            handler = _EVAL.get(type(node))
            if handler is None:
                raise _Problem(f"{type(node).__name__} is not allowed")
            return handler(self, node)
        except ExpressionError:
            raise
        except _Problem as p:
            raise self.error(p.message, p.at or _at(node)) from None
        except ZeroDivisionError:
            raise self.error("division by zero", _at(node)) from None
        except OverflowError:
            raise self.error("number is too large", _at(node)) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise self.error(str(exc), _at(node)) from None

    def error(self, message: str, at: tuple[int, int]) -> ExpressionError:
        return ExpressionError(message, *_position(self.expr, self.c.index(*at)))

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node`` for messages, or 'the value' when it is long."""
        start = _node_index(self.c, node)
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
                            raise _Problem("value contains itself")
                        stack.append((child, False))
                continue
            total = 1 + sum(self._sizes.get(id(ch)) or self.size(ch) for ch in children)
            if isinstance(item, dict):
                total += sum(len(k) for k in item if isinstance(k, str))
            self._sizes[id(item)] = total
            self._keep.append(item)
            open_ids.discard(id(item))
        return self._sizes[id(value)]


def _text(ev: _Evaluator | None, value: Any, canonical: bool = False, quoted: bool = False) -> str:
    """A string as itself (unless quoted); anything else as JSON text, canonical for json()."""
    if isinstance(value, str) and not (canonical or quoted):
        return value
    if ev is not None and ev.size(value) > MAX_LEN:
        raise _Problem(f"value is too large to turn into text (limit {MAX_LEN:,} characters)")
    try:
        if canonical:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        else:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise _Problem(f"cannot turn a {kind(value)} into text") from None
    if len(text) > MAX_LEN:
        raise _Problem(f"text would be over the limit of {MAX_LEN:,} characters")
    return text


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, [o for o in options if isinstance(o, str)], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _missing_key(ev: _Evaluator, obj: dict, key: str, owner: ast.AST) -> str:
    path = ev.segment(owner)
    hint = _suggest(key, obj)
    result = obj.get("result")
    if not hint and isinstance(result, dict) and key in result:
        hint = f"; did you mean {path}.result.{key}?"
    names = [str(k) for k in list(obj)[:10]]
    has = f" (it has: {', '.join(names)}{', ...' if len(obj) > 10 else ''})" if obj else " (it is empty)"
    return f"no key '{key}' in {path}{has}{hint}"


def _e_name(ev: _Evaluator, node: ast.Name) -> Any:
    if node.id in ALIASES:
        return ALIASES[node.id]
    if node.id in ev.env:
        return ev.env[node.id]
    raise _Problem(f"unknown name '{node.id}'{_suggest(node.id, ev.env)}")


def _e_attribute(ev: _Evaluator, node: ast.Attribute) -> Any:
    obj = ev.eval(node.value)
    if not isinstance(obj, dict):
        raise _Problem(f"cannot read '.{node.attr}': {ev.segment(node.value)} is a {kind(obj)}, not an object",
                       _at_attr(node))
    if node.attr in obj:
        return obj[node.attr]
    raise _Problem(_missing_key(ev, obj, node.attr, node.value), _at_attr(node))


def _e_subscript(ev: _Evaluator, node: ast.Subscript) -> Any:
    obj = ev.eval(node.value)
    if isinstance(node.slice, ast.Slice):
        return _slice(ev, obj, node.slice)
    key, at = ev.eval(node.slice), _at(node.slice)
    if isinstance(obj, dict):
        if not isinstance(key, str):
            raise _Problem(f"object keys are strings, not {kind(key)}", at)
        if key in obj:
            return obj[key]
        raise _Problem(_missing_key(ev, obj, key, node.value), at)
    if not isinstance(obj, (list, tuple, str)):
        raise _Problem(f"cannot index a {kind(obj)}", at)
    if not _is_int(key):
        raise _Problem(f"a {kind(obj)} index must be a whole number, not {kind(key)}", at)
    if -len(obj) <= key < len(obj):
        return obj[key]
    unit = "characters" if isinstance(obj, str) else "elements"
    raise _Problem(f"index {key} is out of range: {ev.segment(node.value)} has {len(obj)} {unit}", at)


def _slice(ev: _Evaluator, obj: Any, node: ast.Slice) -> Any:
    bounds = [None if part is None else ev.eval(part) for part in (node.lower, node.upper, node.step)]
    if any(b is not None and not _is_int(b) for b in bounds):
        raise _Problem("slice bounds must be whole numbers or left out")
    if bounds[2] == 0:
        raise _Problem("slice step cannot be 0")
    if isinstance(obj, str):
        return obj[slice(*bounds)]
    if _is_list(obj):
        return list(obj[slice(*bounds)])
    raise _Problem(f"cannot slice a {kind(obj)}")


def _e_dict(ev: _Evaluator, node: ast.Dict) -> dict:
    out: dict[str, Any] = {}
    for key_node, value_node in zip(node.keys, node.values):
        key = ev.eval(key_node)
        if not isinstance(key, str):
            raise _Problem(f"object keys must be strings, not {kind(key)}", _at(key_node))
        out[key] = ev.eval(value_node)
    return out


def _check_number(value: Any) -> Any:
    if isinstance(value, complex):
        raise _Problem("result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Problem("result is not a finite number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Problem(f"number is too large (whole numbers are limited to {MAX_INT_BITS} bits)")
    return value


def _power(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
        raise _Problem(f"** result would be too large (whole numbers are limited to {MAX_INT_BITS} bits)")
    return a**b


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": _power,
}


def _binop(ev: _Evaluator, sym: str, a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return _check_number(_ARITH[sym](a, b))
    if sym == "+" and ((isinstance(a, str) and isinstance(b, str)) or (_is_list(a) and _is_list(b))):
        total = len(a) + len(b)
        if total > MAX_LEN:
            raise _Problem(f"result would have {total:,} {_unit(a)}, over the limit of {MAX_LEN:,}")
        return a + b if isinstance(a, str) else list(a) + list(b)
    if sym == "*" and isinstance(b, int) and (isinstance(a, str) or _is_list(a)):
        return _repeat(ev, a, b)
    if sym == "*" and isinstance(a, int) and (isinstance(b, str) or _is_list(b)):
        return _repeat(ev, b, a)
    if sym == "%" and isinstance(a, str):
        raise _Problem("'%' formatting is not allowed: use an f-string, e.g. f\"{x}\"")
    raise _Problem(f"cannot use {sym} on {kind(a)} and {kind(b)}")


def _unit(seq: Any) -> str:
    return "characters" if isinstance(seq, str) else "elements"


def _repeat(ev: _Evaluator, seq: Any, times: int) -> Any:
    if times <= 0:
        return "" if isinstance(seq, str) else []
    total = len(seq) * times
    if total > MAX_LEN:
        raise _Problem(f"result would have {total:,} {_unit(seq)}, over the limit of {MAX_LEN:,}")
    if isinstance(seq, str):
        return seq * times
    if (ev.size(seq) - 1) * times + 1 > MAX_UNITS:
        raise _Problem("result would be too large: the repeated list holds too much")
    return list(seq) * times


def _e_binop(ev: _Evaluator, node: ast.BinOp) -> Any:
    return _binop(ev, _BINOPS[type(node.op)], ev.eval(node.left), ev.eval(node.right))


def _e_unaryop(ev: _Evaluator, node: ast.UnaryOp) -> Any:
    value = ev.eval(node.operand)
    if isinstance(node.op, ast.Not):
        return not value
    sign = "-" if isinstance(node.op, ast.USub) else "+"
    if not _is_num(value):
        raise _Problem(f"cannot use unary {sign} on a {kind(value)}")
    return _check_number(-value if sign == "-" else +value)


def _e_boolop(ev: _Evaluator, node: ast.BoolOp) -> Any:
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


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise _Problem(f"'in' a string needs a string on the left, not {kind(item)}")
        return item in container
    if _is_list(container):
        return item in container
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    raise _Problem(f"cannot use 'in' on a {kind(container)}")


def _compare(op: type, a: Any, b: Any) -> bool:
    if op in (ast.Eq, ast.NotEq):
        return (a == b) == (op is ast.Eq)
    if op in (ast.In, ast.NotIn):
        return _contains(b, a) == (op is ast.In)
    sym, fn = _ORDER[op]
    same = (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)) or (_is_list(a) and _is_list(b))
    try:
        if same:
            return bool(fn(a, b))
    except TypeError:
        pass
    raise _Problem(f"cannot compare {kind(a)} and {kind(b)} with {sym}")


def _e_compare(ev: _Evaluator, node: ast.Compare) -> bool:
    left = ev.eval(node.left)
    for op, right_node in zip(node.ops, node.comparators):
        right = ev.eval(right_node)
        if not _compare(type(op), left, right):
            return False
        left = right
    return True


def _e_joinedstr(ev: _Evaluator, node: ast.JoinedStr) -> str:
    parts, total = [], 0
    for part in node.values:
        text = part.value if isinstance(part, ast.Constant) else ev.eval(part)
        total += len(text)
        if total > MAX_LEN:
            raise _Problem(f"text would be over the limit of {MAX_LEN:,} characters")
        parts.append(text)
    return "".join(parts)


def _e_formatted(ev: _Evaluator, node: ast.FormattedValue) -> str:
    value = ev.eval(node.value)
    if node.conversion in (ord("r"), ord("a")):
        value = _text(ev, value, quoted=True)
        value = value.encode("ascii", "backslashreplace").decode() if node.conversion == ord("a") else value
    spec = ev.eval(node.format_spec) if node.format_spec is not None else ""
    if not spec:
        return _text(ev, value)
    if len(spec) > 30 or any(int(d) > MAX_FORMAT_NUMBER for d in re.findall(r"\d+", spec)):
        raise _Problem(f"format ':{spec[:30]}' asks for too much: widths and precisions go up to {MAX_FORMAT_NUMBER}")
    target = value if _is_num(value) and not isinstance(value, bool) else _text(ev, value)
    try:
        return format(target, spec)
    except ValueError:
        raise _Problem(f"format ':{spec}' does not apply to a {kind(target)}") from None


def _e_call(ev: _Evaluator, node: ast.Call) -> Any:
    function = BUILTINS[node.func.id][2]  # type: ignore[attr-defined]  (validated: a Name)
    return function(ev, *[ev.eval(arg) for arg in node.args])


_EVAL: dict[type, Callable[[_Evaluator, Any], Any]] = {
    ast.Constant: lambda ev, node: node.value, ast.Name: _e_name, ast.Attribute: _e_attribute,
    ast.Subscript: _e_subscript, ast.List: lambda ev, node: [ev.eval(e) for e in node.elts],
    ast.Tuple: lambda ev, node: [ev.eval(e) for e in node.elts], ast.Dict: _e_dict,
    ast.BinOp: _e_binop, ast.UnaryOp: _e_unaryop, ast.BoolOp: _e_boolop, ast.Compare: _e_compare,
    ast.IfExp: lambda ev, node: ev.eval(node.body) if ev.eval(node.test) else ev.eval(node.orelse),
    ast.JoinedStr: _e_joinedstr, ast.FormattedValue: _e_formatted, ast.Call: _e_call,
}


# --- built-in functions ----------------------------------------------------------


def _need(function: str, value: Any, *kinds: str) -> Any:
    if kind(value) in kinds:
        return value
    raise _Problem(f"{function}() needs a {' or '.join(kinds)}, not {kind(value)}")


def _convert(function: str, convert: Callable[[Any], Any], value: Any) -> Any:
    _need(function, value, "string", "number", "boolean")
    try:
        return _check_number(convert(value.strip() if isinstance(value, str) else value))
    except ValueError:
        raise _Problem(f"{function}() cannot read {_text(None, value, quoted=True)[:40]} as a number") from None


def _extreme(function: str, pick: Callable[..., Any], args: tuple) -> Any:
    items = _need(function, args[0], "list") if len(args) == 1 else args
    if not items:
        raise _Problem(f"{function}() of an empty list")
    return _ordered(function, pick, items)


def _ordered(function: str, apply: Callable[..., Any], items: Any) -> Any:
    try:
        return apply(items)
    except TypeError:
        raise _Problem(f"{function}() needs values that compare with each other (all numbers or all strings)") from None


def _b_round(ev: _Evaluator, value: Any, digits: Any = None) -> Any:
    _need("round", value, "number")
    if digits is None:
        return _check_number(round(value))
    if not _is_int(digits):
        raise _Problem(f"round() needs a whole number of digits, not {kind(digits)}")
    return _check_number(round(value, digits))


def _b_sum(ev: _Evaluator, items: Any) -> Any:
    if not all(kind(item) == "number" for item in _need("sum", items, "list")):
        raise _Problem("sum() needs a list of numbers")
    return _check_number(sum(items))


def _b_range(ev: _Evaluator, *args: Any) -> list:
    if not all(_is_int(a) for a in args):
        raise _Problem("range() needs whole numbers")
    if len(args) == 3 and args[2] == 0:
        raise _Problem("range() step cannot be 0")
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise _Problem(f"range() is limited to {MAX_RANGE:,} numbers")
    return list(numbers)


def _b_join(ev: _Evaluator, sep: Any, items: Any) -> str:
    _need("join", sep, "string")
    parts, total = [], 0
    for item in _need("join", items, "list"):
        parts.append(_text(ev, item))
        total += len(parts[-1]) + len(sep)
        if total > MAX_LEN + len(sep):
            raise _Problem(f"join() result would be over the limit of {MAX_LEN:,} characters")
    return sep.join(parts)


def _b_split(ev: _Evaluator, text: Any, sep: Any = None) -> list:
    _need("split", text, "string")
    if sep is not None and _need("split", sep, "string") == "":
        raise _Problem("split() separator cannot be empty")
    return text.split(sep)


_ANY = 255
BUILTINS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "len": (1, 1, lambda ev, x: len(_need("len", x, "string", "list", "object"))),
    "str": (1, 1, lambda ev, x: _text(ev, x)),
    "int": (1, 1, lambda ev, x: _convert("int", int, x)),
    "float": (1, 1, lambda ev, x: _convert("float", float, x)),
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
    "lower": (1, 1, lambda ev, x: _need("lower", x, "string").lower()),
    "upper": (1, 1, lambda ev, x: _need("upper", x, "string").upper()),
    "join": (2, 2, _b_join),
    "split": (1, 2, _b_split),
    "contains": (2, 2, lambda ev, container, item: _contains(container, item)),
    "json": (1, 1, lambda ev, x: _text(ev, x, canonical=True)),
}
