"""The safe expression language: what each construct means over JSON, what is refused, and where errors point."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localflow import ir
from localflow.core.expr import BUILTINS, compile_expr, evaluate, list_elements, names_used, to_text
from localflow.errors import ExpressionError

ENV = {
    "order_id": "o-1",
    "amount": 42.5,
    "n": 3,
    "xs": [3, 1, 2],
    "tags": {"b": 2, "a": 1},
    "flag": True,
    "nothing": None,
    "charge": {"result": {"receipt": "R-9", "lines": [{"sku": "A"}]}, "attempts": 2},
    "workflow": {"id": "wf-1", "flow": "PurchaseFlow"},
}


def ev(source: str, env: dict | None = None):
    return evaluate(ir.Expr(source, 1, 1), ENV if env is None else env)


def error_of(source: str, line: int = 1, col: int = 1) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        evaluate(ir.Expr(source, line, col), ENV)
    return info.value


@pytest.mark.parametrize("source, expected", [
    # literals and aliases
    ("'a'", "a"), ("12", 12), ("1.5", 1.5), ("True", True), ("true", True), ("false", False), ("null", None),
    ("None", None), ("[1, 'a', null]", [1, "a", None]), ("(1, 2)", [1, 2]), ('{"k": [true]}', {"k": [True]}),
    # names, key lookup by attribute, subscripts and slices
    ("order_id", "o-1"), ("charge.result.receipt", "R-9"), ("charge['result']['lines'][0].sku", "A"),
    ("workflow.id", "wf-1"), ("xs[-1]", 2), ("xs[1:]", [1, 2]), ("xs[::-1]", [2, 1, 3]), ("order_id[:1]", "o"),
    # arithmetic
    ("1 + 2 * 3", 7), ("7 / 2", 3.5), ("7 // 2", 3), ("7 % 3", 1), ("2 ** 10", 1024), ("-n", -3), ("+n", 3),
    ("'ab' + 'c'", "abc"), ("[1] + [2]", [1, 2]), ("'ab' * 2", "abab"), ("2 * [0]", [0, 0]), ("'x' * -1", ""),
    # logic, comparison, membership, conditional
    ("not flag", False), ("flag and n", 3), ("nothing or 'default'", "default"), ("0 and 1 / 0", 0),
    ("1 < n <= 3", True), ("1 < n < 2", False), ("'a' in tags", True), ("4 not in xs", True),
    ("'o-' in order_id", True), ("n == 3.0", True), ("xs != [3, 1, 2]", False), ("'yes' if flag else 'no'", "yes"),
    ("[1, 2] < [1, 3]", True),
    # f-strings: JSON text for non-strings, format specs, conversions
    ("f'order {order_id}'", "order o-1"), ("f'{amount:.2f}'", "42.50"), ("f'{flag} {nothing}'", "true null"),
    ("f'{tags}'", '{"b": 2, "a": 1}'), ("f'{order_id!r}'", '"o-1"'), ("f'{n:>{n}}'", "  3"), ("f'{flag:>5}'", " true"),
    # built-ins
    ("len(xs)", 3), ("len(tags)", 2), ("len('héllo')", 5), ("str(12)", "12"), ("str(flag)", "true"),
    ("str(nothing)", "null"), ("str({'a': 1})", '{"a": 1}'), ("str([1, 'a'])", '[1, "a"]'), ("int('42')", 42),
    ("int(3.9)", 3), ("int(true)", 1), ("float('2.5')", 2.5), ("bool([])", False), ("bool('x')", True),
    ("round(2.675, 2)", 2.67), ("round(2.5)", 2), ("abs(-2)", 2), ("min(xs)", 1), ("max(4, 9, 2)", 9),
    ("sum(xs)", 6), ("sorted(xs)", [1, 2, 3]), ("keys(tags)", ["b", "a"]), ("values(tags)", [2, 1]),
    ("items(tags)", [["b", 2], ["a", 1]]), ("list('ab')", ["a", "b"]), ("range(3)", [0, 1, 2]),
    ("range(1, 7, 2)", [1, 3, 5]), ("lower('AbC')", "abc"), ("upper(order_id)", "O-1"),
    ("join(', ', ['a', 1, true])", "a, 1, true"), ("split('a,b', ',')", ["a", "b"]), ("split(' a  b ')", ["a", "b"]),
    ("contains(xs, 3)", True), ("json(tags)", '{"a":1,"b":2}'), ("json('x')", '"x"'),
])
def test_allowed_construct_evaluates_over_json(source, expected):
    result = ev(source)

    assert result == expected and type(result) is type(expected)


def test_multi_line_expression_evaluates():
    assert ev('{\n  "a": [1,\n        2],\n  "b": n\n}') == {"a": [1, 2], "b": 3}


def test_results_are_json_values_not_tuples():
    assert isinstance(ev("(1, (2, 3))")[1], list)
    assert json.loads(json.dumps(ev('{"t": (1,), "s": xs[0:2]}'))) == {"t": [1], "s": [3, 1]}


@pytest.mark.parametrize("source, message", [
    ("lambda: 1", "lambda is not allowed"),
    ("order_id.upper()", "method calls are not allowed: use upper(x) instead of x.upper()"),
    ("xs.append(1)", "method calls are not allowed (.append(...))"),
    ("__import__('os')", "names starting with '_' are not allowed ('__import__')"),
    ("order_id.__class__", "attributes starting with '_' are not allowed ('.__class__')"),
    ("_secret", "names starting with '_' are not allowed"),
    ("open('x')", "unknown function 'open'"),
    ("lenn(xs)", "unknown function 'lenn'; did you mean 'len'?"),
    ("xs[0](1)", "only built-in functions can be called"),
    ("len(xs, 1)", "len() takes 1 argument (2 given)"),
    ("sorted(xs, reverse=true)", "keyword arguments are not allowed"),
    ("len(*xs)", "'*' unpacking is not allowed"),
    ("{**tags}", "'**' unpacking is not allowed"),
    ("(y := 1)", "':=' is not allowed"),
    ("[x for x in xs]", "comprehensions are not supported"),
    ("{1, 2}", "set literals are not allowed"),
    ("n is null", "'is' is not allowed: use == or !="),
    ("n | 1", "operator '|' is not allowed"),
    ("~n", "operator '~' is not allowed"),
    ("b'x'", "bytes literals are not allowed"),
    ("1j", "complex numbers are not allowed"),
    ("...", "'...' is not allowed"),
    ("1e999", "number is too large"),
    ("x = 1", "invalid expression: invalid syntax"),
    ("", "empty expression"),
    ("len()", "len() takes 1 argument (0 given)"),
    ("range()", "range() takes 1 to 3 arguments (0 given)"),
    ("join('a')", "join() takes 2 arguments (1 given)"),
    ("now(1)", "now() takes 0 arguments (1 given)"),
    ("-" * 200 + "1", "nested too deeply"),
])
def test_forbidden_construct_is_refused_when_compiled(source, message):
    with pytest.raises(ExpressionError) as info:
        compile_expr(ir.Expr(source, 1, 1))

    assert message in info.value.message


@pytest.mark.parametrize("source, message", [
    ("chrage", "unknown name 'chrage'; did you mean 'charge'?"),
    ("charge.receipt", "no key 'receipt' in charge (it has: result, attempts); did you mean charge.result.receipt?"),
    ("tags.c", "no key 'c' in tags (it has: b, a)"),
    ("tags['c']", "no key 'c' in tags"),
    ("xs[5]", "index 5 is out of range: xs has 3 elements"),
    ("xs['a']", "a list index must be a whole number, not string"),
    ("tags[0]", "object keys are strings, not number"),
    ("n.x", "cannot read '.x': n is a number, not an object"),
    ("1 / 0", "division by zero"), ("n % 0", "division by zero"),
    ("'a' + 1", "cannot use + on string and number"),
    ("'%s' % n", "'%' formatting is not allowed: use an f-string"),
    ("-'a'", "cannot use unary - on a string"),
    ("'a' < 1", "cannot compare string and number with <"),
    ("1 in 'abc'", "'in' a string needs a string on the left"),
    ("1 in n", "cannot use 'in' on a number"),
    ("{1: 'a'}", "object keys must be strings, not number"),
    ("len(n)", "len() needs a string or list or object, not number"),
    ("int('x')", "int() cannot read \"x\" as a number"),
    ("float('nan')", "result is not a finite number"),
    ("min([])", "min() of an empty list"),
    ("sorted([1, 'a'])", "sorted() needs values that compare with each other"),
    ("sum(['a'])", "sum() needs a list of numbers"),
    ("split('a', '')", "split() separator cannot be empty"),
    ("range(1, 2, 0)", "range() step cannot be 0"),
    ("xs[::0]", "slice step cannot be 0"),
    ("f'{n:q}'", "format ':q' does not apply to a number"),
    ("(-8) ** 0.5", "result is not a real number"),
    ("1e308 * 10", "result is not a finite number"),
])
def test_runtime_problem_is_an_expression_error(source, message):
    assert message in error_of(source).message


@pytest.mark.parametrize("source", [
    "'x' * 1000001", "'ab' * 10**9", "[0] * 10**7", "[[0] * 1000] * 100000", "[[[0] * 1000] * 1000] * 1000",
    "2 ** 100000", "10 ** 10 ** 10", "range(10 ** 6)", "range(10 ** 100)", "f'{n:>100000}'", "f'{amount:.5000f}'",
    "join('', ['x' * 1000000, 'y'])", "str([[0] * 1000] * 1000)", "'x' * 999999 + 'xy'",
])
def test_huge_results_are_refused_before_they_are_built(source):
    with pytest.raises(ExpressionError):
        ev(source)


def test_runtime_error_points_at_the_offending_part_in_the_flow_file():
    error = error_of("charge.result.recept", line=7, col=12)

    assert (error.line, error.col) == (7, 26)
    assert str(error).startswith("line 7:26: no key 'recept' in charge.result (it has: receipt, lines)")


def test_error_on_a_later_line_of_a_multi_line_expression_has_its_absolute_column():
    # the source's later lines are whole physical lines of the flow file, as the lexer keeps them
    error = error_of('{\n      "a": 1,\n      "b": nope}', line=4, col=10)

    assert (error.line, error.col, error.message) == (6, 12, "unknown name 'nope'")


def test_columns_count_characters_not_utf8_bytes():
    error = error_of("'héllo wörld' + nope", line=2, col=5)

    assert (error.line, error.col) == (2, 21)


def test_compile_errors_are_positioned_even_when_the_tree_is_cached():
    first = ir.Expr("len(xs, 1)", 3, 9)
    second = ir.Expr("len(xs, 1)", 8, 2)

    with pytest.raises(ExpressionError) as a:
        compile_expr(first)
    with pytest.raises(ExpressionError) as b:
        compile_expr(second)

    assert (a.value.line, a.value.col) == (3, 9) and (b.value.line, b.value.col) == (8, 2)
    assert compile_expr(ir.Expr("1 + 2", 1, 1)) is compile_expr(ir.Expr("1 + 2", 5, 5))


def test_names_used_lists_free_names_with_positions_but_not_functions_or_aliases():
    expr = ir.Expr("len(order_id) + charge.result.n if true else f'{workflow.id}' + str(null)", 4, 10)

    assert names_used(expr) == [("order_id", 4, 14), ("charge", 4, 26), ("workflow", 4, 58)]


def test_names_used_includes_a_builtin_name_that_is_not_called():
    assert [n for n, _, _ in names_used(ir.Expr("len + 1"))] == ["len"]


def test_list_elements_splits_a_list_literal_into_positioned_expressions():
    expr = ir.Expr('["a",  n + 1,\n   (\n  x)]', 2, 7)

    assert list_elements(expr) == (ir.Expr('"a"', 2, 8), ir.Expr("n + 1", 2, 14), ir.Expr("(\n  x)", 3, 4))
    assert list_elements(ir.Expr("xs", 1, 1)) is None


def test_now_returns_the_workflow_time_the_engine_supplies():
    env = {"__now__": "2026-11-25T20:00:00.000Z", "prefix": "at "}

    assert ev("now()", env) == "2026-11-25T20:00:00.000Z"
    assert ev("prefix + now()[:10]", env) == "at 2026-11-25"


def test_now_without_workflow_time_is_an_expression_error_at_the_call():
    with pytest.raises(ExpressionError) as info:
        evaluate(ir.Expr("'at ' + now()", 4, 9), {})

    assert (info.value.message, info.value.line, info.value.col) == ("now() is not available here", 4, 17)


def test_the_engine_time_is_not_a_name_and_is_never_suggested():
    env = {"__now__": "2026-11-25T20:00:00.000Z"}

    with pytest.raises(ExpressionError) as bare:
        evaluate(ir.Expr("now", 1, 1), env)
    with pytest.raises(ExpressionError) as dunder:
        compile_expr(ir.Expr("__now__", 1, 1))

    assert bare.value.message == "unknown name 'now'"
    assert "names starting with '_' are not allowed" in dunder.value.message


def test_to_text_writes_non_strings_as_json():
    assert [to_text(v) for v in ("a", 1, 2.5, True, None, [1, "b"], {"k": None})] == [
        "a", "1", "2.5", "true", "null", '[1, "b"]', '{"k": null}']


# --- nothing but ExpressionError escapes, for any input ------------------------------------------

ATOMS = ["n", "amount", "xs", "tags", "flag", "nothing", "charge", "order_id", "0", "-1", "2.5", "1e308",
         "'s'", "''", "true", "null", "[]", "{}", "10**9", "unknown"]
OPS = ["+", "-", "*", "/", "//", "%", "**", "<", "==", "!=", "in", "not in", "and", "or", ">="]
ATTRS = ["result", "receipt", "lines", "a", "b", "id"]


def _compose(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(OPS), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(list(BUILTINS)), st.lists(children, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, st.sampled_from(["", "1", "-1", "0"])).map(lambda t: f"{t[0]}[:{t[1]}:{t[1]}]"),
        st.tuples(children, st.sampled_from(ATTRS)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.lists(children, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.tuples(children, children).map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        st.tuples(children, st.sampled_from(["", "!r", "!s", ":>4", ":.2f", ":d", ":,"])).map(
            lambda t: f"f'<{{{t[0]}{t[1]}}}>'"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not "]), children).map(lambda t: f"{t[0]}{t[1]}"),
    )


EXPRESSIONS = st.recursive(st.sampled_from(ATOMS), _compose, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS)
def test_evaluate_returns_json_or_raises_expression_error_for_generated_expressions(source):
    expr = ir.Expr(source, 3, 5)
    try:
        compile_expr(expr)
    except ExpressionError:
        return
    try:
        result = evaluate(expr, ENV)
    except ExpressionError as exc:
        assert exc.line >= 3 and exc.col >= 1
    else:
        json.dumps(result, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_only_ever_raises_expression_error(source):
    try:
        evaluate(ir.Expr(source, 1, 1), ENV)
        names_used(ir.Expr(source, 1, 1))
    except ExpressionError:
        pass
