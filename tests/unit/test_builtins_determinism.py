"""Every built-in and operator gives the same result on Python 3.10, 3.11, 3.12 and 3.13.

The expected values are hard-coded on purpose: they are what Python 3.10 and 3.11
recorded (histories written there must keep replaying), except where the two
disagree or the value depended on the interpreter; those cases say which behaviour
was chosen (docs/dsl.md, "Determinism across Python versions").
tests/integration/test_cross_python.py runs the same table under every installed
interpreter.
"""

from __future__ import annotations

import json
import math
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from localflow import ir
from localflow.core import expr_eval
from localflow.core.expr import evaluate
from localflow.core.expr_eval import Problem, add_up, change_case, format_value, read_float, read_int
from localflow.errors import ExpressionError

BIG = int("f" * 3700, 16)  # 4455 decimal digits: more than Python's default limit of 4300


class Err(str):
    """An expected ExpressionError message (and the 1-based line:col it points at, when given)."""

    def __new__(cls, message: str, at: tuple[int, int] | None = None) -> "Err":
        self = super().__new__(cls, message)
        self.at = at
        return self


def outcome(source: str, env: dict | None = None):
    try:
        return evaluate(ir.Expr(source, 1, 1), env or {})
    except ExpressionError as exc:
        return Err(exc.message, (exc.line, exc.col))


def exactly(value) -> str:
    """A value as exact text: 1, 1.0 and true differ, a float is its repr (shortest round trip)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


# (expression, environment, expected); expected is a value or Err(message[, (line, col)]).
CASES: list[tuple[str, dict | None, object]] = [
    # sum(): left to right, not compensated (Python 3.12+'s sum() gives 0.6, 1.0, 1.0, 39.9 here)
    ("sum([0.1, 0.2, 0.3])", None, 0.6000000000000001),
    ("sum([1e16, 1.0, -1e16])", None, 0.0),
    ("sum([0.1] * 10)", None, 0.9999999999999999),
    ("sum(prices)", {"prices": [19.99, 5.01, 0.1, 3.3, 11.5]}, 39.900000000000006),
    ("sum(prices) == 0.6", {"prices": [0.1, 0.2, 0.3]}, False),
    ("sum([1, 2, 3])", None, 6),
    ("sum([])", None, 0),
    ("sum([-0.0])", None, 0.0),
    ("sum([1, 0.5])", None, 1.5),
    ("sum([2 ** 53, 1, 1.0])", None, 9007199254740992.0),
    ("sum([0.1, 2 ** 60, 0.3])", None, 1.152921504606847e+18),
    ("sum([1e308, 1e308, -1e308])", None, Err("result is not a finite number")),
    ("sum([1, true])", None, Err("sum() needs a list of numbers")),
    # round(): half to even, correctly rounded decimal digits
    ("round(2.675, 2)", None, 2.67),
    ("round(2.5)", None, 2), ("round(-2.5)", None, -2), ("round(0.5)", None, 0), ("round(1.5)", None, 2),
    ("round(-0.4)", None, 0), ("round(-0.4, 0)", None, -0.0), ("round(0.125, 2)", None, 0.12),
    ("round(0.375, 2)", None, 0.38), ("round(15, -1)", None, 20), ("round(25, -1)", None, 20),
    ("round(123.456, -1)", None, 120.0), ("round(1.23456789e-300, 305)", None, 1.23457e-300),
    ("round(5, -2000)", None, 0), ("round(15, -(2 ** 100))", None, 0), ("round(1.5, 2 ** 100)", None, 1.5),
    ("round(-1.5, -(2 ** 100))", None, -0.0), ("round(2 ** 4000, -5) == 2 ** 4000", None, False),
    ("len(str(round(1e308)))", None, 309),
    # min(), max(), sorted(): the first of equal values, stable
    ("min(1, 1.0)", None, 1), ("min(1.0, 1)", None, 1.0), ("max(1, 1.0)", None, 1),
    ("min([0.0, -0.0])", None, 0.0), ("min([-0.0, 0.0])", None, -0.0), ("max(['a', 'B'])", None, "a"),
    ("min([[1], [1.0]])", None, [1]), ("max([2, 2.5, 2.0])", None, 2.5),
    ("sorted([1.0, 1, 0, -0.0, 0.0])", None, [0, -0.0, 0.0, 1.0, 1]),
    ("sorted(['b', 'B', 'é', 'e', '𝔸', 'Z'])", None, ["B", "Z", "b", "e", "é", "𝔸"]),
    ("sorted([1, 'a'])", None, Err("sorted() needs values that compare with each other (all numbers or all strings)")),
    # arithmetic and **
    ("0.1 + 0.2", None, 0.30000000000000004), ("1 / 3", None, 0.3333333333333333),
    ("2 ** 100 / 3", None, 4.2255020007607644e+29), ("-7 // 2", None, -4), ("-7.5 // 2", None, -4.0),
    ("7.5 % -2", None, -0.5), ("-7 % 3", None, 2), ("1.5 ** 2", None, 2.25), ("2.0 ** 0.5", None, 1.4142135623730951),
    ("10 ** -2", None, 0.01), ("2 ** -1074", None, 5e-324), ("2 ** -1080", None, 0.0), ("(-2.0) ** 3", None, -8.0),
    ("(-0.0) ** 3", None, -0.0), ("0.0 ** 0", None, 1.0), ("2 ** 4095 > 0", None, True),
    ("(-8) ** (1 / 3)", None, Err("result is not a real number")),
    ("2.0 ** 1024", None, Err("number is too large")),
    ("10 ** 1300", None, Err("number is too large (whole numbers are limited to 4096 bits)")),
    ("10 ** 1500", None, Err("** result would be too large (whole numbers are limited to 4096 bits)")),
    ("1e308 * 10", None, Err("result is not a finite number")),
    ("2 ** 4000 / 3", None, Err("number is too large")),
    # division by zero: one message whatever the operands (Python's own words vary)
    ("1 / 0", None, Err("division by zero")), ("1.0 / 0", None, Err("division by zero")),
    ("1 // 0", None, Err("division by zero")), ("1.0 % 0.0", None, Err("division by zero")),
    ("0.0 ** -1", None, Err("division by zero")), ("0 ** -1", None, Err("division by zero")),
    # int() and float()
    ("int('42')", None, 42), ("int(' 1_000 ')", None, 1000), ("int('-0012')", None, -12), ("int('١٢٣')", None, 123),
    ("int('１２')", None, 12), ("int(3.9)", None, 3), ("int(-2.5)", None, -2), ("int(true)", None, 1),
    ("int(1e308) == 10 ** 308", None, False), ("int('1__0')", None, Err("int() cannot read \"1__0\" as a number")),
    ("int('_1')", None, Err("int() cannot read \"_1\" as a number")),
    ("int('0x10')", None, Err("int() cannot read \"0x10\" as a number")),
    ("int('')", None, Err("int() cannot read \"\" as a number")),
    ("int(null)", None, Err("int() needs a string or number or boolean, not null")),
    # digits of Unicode 14+ (Tangsa 14.0, Kawi 15.0): Python 3.11 (Tangsa) and 3.12+ read them, 3.10 does not
    ("int('\U00016ac1\U00016ac2')", None, Err("int() cannot read \"\U00016ac1\U00016ac2\" as a number")),
    ("int('\U00011f51')", None, Err("int() cannot read \"\U00011f51\" as a number")),
    ("float('\U00011f51.5')", None, Err("float() cannot read \"\U00011f51.5\" as a number")),
    # more than 4300 digits: refused on every version (3.10.0-3.10.6 and PYTHONINTMAXSTRDIGITS=0 have no limit)
    ("int(s)", {"s": "0" * 4300 + "1"}, Err('int() cannot read "' + "0" * 39 + ' as a number')),
    ("int(s)", {"s": "1" * 1300}, Err("number is too large (whole numbers are limited to 4096 bits)")),
    ("int(s) == 10 ** 1000", {"s": "1" + "0" * 1000}, True),
    ("float('1_0.5')", None, 10.5), ("float('.5')", None, 0.5), ("float('5.')", None, 5.0),
    ("float('1e-400')", None, 0.0),
    ("float(' -1.5e3 ')", None, -1500.0), ("float('1e400')", None, Err("result is not a finite number")),
    ("float(' inf ')", None, Err("result is not a finite number")),
    ("float('nan')", None, Err("result is not a finite number")),
    ("float('0x10')", None, Err("float() cannot read \"0x10\" as a number")),
    ("float(2 ** 1100)", None, Err("number is too large")),
    ("float(s)", {"s": "1" * 5000}, Err("result is not a finite number")),
    # str(), json(), f"{...}": floats as their shortest repr; whole numbers with more than 4300 digits refused
    ("str(0.1)", None, "0.1"), ("str(1e16)", None, "1e+16"), ("str(1e22)", None, "1e+22"), ("str(-0.0)", None, "-0.0"),
    ("str(123456789012345678.0)", None, "1.2345678901234568e+17"), ("str(5e-324)", None, "5e-324"),
    ("str(1 / 3)", None, "0.3333333333333333"), ("str([1.5, 'é', null])", None, '[1.5, "é", null]'),
    ("len(str(2 ** 4095))", None, 1233), ("json({'b': 0.1, 'a': [1, 'é']})", None, '{"a":[1,"é"],"b":0.1}'),
    ("str(x)", {"x": BIG}, Err("cannot turn a number into text")),
    ("json([x])", {"x": BIG}, Err("cannot turn a list into text")),
    ("f'{x}'", {"x": BIG}, Err("cannot turn a number into text", (1, 4))),
    ("f'{x:d}'", {"x": BIG}, Err("format ':d' does not apply to a number", (1, 4))),
    ("len(f'{x:x}')", {"x": BIG}, 3700),
    ("x[y]", {"x": [1], "y": BIG}, Err("index (a number of over 4,300 digits) is out of range: x has 1 elements")),
    ("x == x + 0", {"x": BIG}, Err("number is too large (whole numbers are limited to 4096 bits)")),
    ("'ab' * x", {"x": BIG},
     Err("result would have (a number of over 4,300 digits) characters, over the limit of 1,000,000")),
    ("'ab' * x", {"x": 10 ** 20},
     Err("result would have 200,000,000,000,000,000,000 characters, over the limit of 1,000,000")),
    # len, list, split: code points; whitespace is the same set on every version
    ("len('𝔸😀')", None, 2), ("len('e\u0301')", None, 2), ("len('\u00e9')", None, 1),
    ("list('a😀b')", None, ["a", "😀", "b"]),
    ("split('a\u2003b\x1cc d\u3000e')", None, ["a", "b", "c", "d", "e"]), ("split(' a  b ')", None, ["a", "b"]),
    ("split('a,b,,c', ',')", None, ["a", "b", "", "c"]),
    # lower(), upper(): Unicode 13.0 rules (Python 3.10's) on every version
    ("lower('ÅNGSTRÖM')", None, "ångström"), ("upper('straße')", None, "STRASSE"), ("upper('ﬁ')", None, "FI"),
    ("lower('İ')", None, "i̇"), ("lower('ΟΔΟΣ ΟΔΟΣ.')", None, "οδος οδος."), ("upper('ǅ')", None, "Ǆ"),
    ("lower('ǅ')", None, "ǆ"), ("upper('ŉ')", None, "ʼN"), ("lower('ΑΣ\u00ad')", None, "ας\u00ad"),
    ("lower('Ⱟ')", None, "Ⱟ"), ("upper('ⱟ')", None, "ⱟ"), ("lower('Ꟁ')", None, "Ꟁ"),  # U+2C2F, U+2C5F, U+A7C0: 14.0
    ("lower('\U00010570')", None, "\U00010570"), ("upper('\U00010597')", None, "\U00010597"),  # Vithkuqi: 14.0
    ("lower('A\u03a3\u0888B')", None, "a\u03c2\u0888b"),  # U+0888 (14.0) is no case-ignorable mark in 13.0
    ("lower('A\u03a3\u1734B')", None, "a\u03c3\u1734b"),  # U+1734 was case-ignorable in 13.0
    ("lower('A\u03a3\u10fc')", None, "a\u03c2\u10fc"),  # U+10FC: lowercase since 15.0
    ("lower('\U00010570\u03a3')", None, "\U00010570\u03c3"), ("lower('ΑΣ\U0001df25')", None, "ας\U0001df25"),
    ("upper('\ufdd0ß\u00ad\U00010597x')", None, "\ufdd0SS\u00ad\U00010597X"),
    # range(): whole numbers, at most 100,000 of them
    ("range(10, 0, -3)", None, [10, 7, 4, 1]), ("range(0)", None, []),
    ("range(2 ** 4000)", None, Err("range() is limited to 100,000 numbers")),
    ("range(-2 ** 4000, 2 ** 4000)", None, Err("range() is limited to 100,000 numbers")),
    # f-string format specs: Python 3.11+'s grammar on every version
    ("f'{0.1 + 0.2}'", None, "0.30000000000000004"), ("f'{2.675:.2f}'", None, "2.67"),
    ("f'{1234567.891:,.2f}'", None, "1,234,567.89"), ("f'{1234567.891:_.3e}'", None, "1.235e+06"),
    ("f'{-0.0:.1f}'", None, "-0.0"), ("f'{0.5:.0f} {1.5:.0f} {2.5:.0f}'", None, "0 2 2"),
    ("f'{42:#x} {42:_b}'", None, "0x2a 10_1010"),
    ("f'{0.125:.2%}'", None, "12.50%"), ("f'{1e16:g} {1e-5:G}'", None, "1e+16 1E-05"), ("f'{65:c}'", None, "A"),
    ("f'{x:★^7}'", {"x": "ab"}, "★★ab★★★"), ("f'{x:>8}'", {"x": [1]}, "     [1]"), ("f'{5:\u0665}'", None, "    5"),
    ("f'{-0.001:z.2f}'", None, "0.00"), ("f'{-0.0:z}'", None, "0.0"), ("f'{-0.001:+z.1e}'", None, "-1.0e-03"),
    ("f'{-0.004:z.0%}'", None, "0%"), ("f'{-0.4:z.0f}'", None, "0"), ("f'{-0.6:z.0f}'", None, "-1"),
    ("f'{-1:z.2f}'", None, "-1.00"), ("f'{-0.0001:z08.2f}'", None, "00000.00"),
    ("f'{-0.0001:*>+z7.2f}'", None, "**+0.00"),
    ("f'{-1:z}'", None, Err("format ':z' does not apply to a number", (1, 4))),
    ("f'{x:z.2f}'", {"x": "a"}, Err("format ':z.2f' does not apply to a string", (1, 4))),
    ("f'{1234567:n} {1234567.5:n} {-0.0:n}'", None, "1234567 1.23457e+06 -0"),
    ("f'{1234:,n}'", None, Err("format ':,n' does not apply to a number", (1, 4))),
    ("f'{1:{\"0\"}>1001}'", None,
     Err("format ':0>1001' asks for too much: widths and precisions go up to 1000", (1, 4))),
    ("f'{5:\U00011f55}'", None, Err("format ':\U00011f55' does not apply to a number", (1, 4))),  # a Kawi digit
    # where an f-string error points: at the value in {...} (3.12 moved the field's own position)
    ("f'{x:d}'", {"x": "s"}, Err("format ':d' does not apply to a string", (1, 4))),
    ("f'''\n\n  {x:d}'''", {"x": "s"}, Err("format ':d' does not apply to a string", (3, 4))),
    ("f'a {x.y} b'", {"x": {}}, Err("no key 'y' in x (it is empty)", (1, 8))),
    ("f'''\n{x:\n{y.z}}'''", {"x": 1, "y": {}}, Err("no key 'z' in y (it is empty)", (3, 4))),
    # what only some versions parse is refused on every version
    ('f"{x["k"]}"', {"x": {"k": 1}}, Err("invalid expression: f-string: unmatched '['", (1, 6))),
    ("f'{\"\\n\"}'", None, Err("invalid expression: f-string expression part cannot include a backslash", (1, 5))),
    ("f'{1 # c\n}'", None, Err("invalid expression: unterminated f-string", (1, 1))),
    ("f'''{1 # c\n}'''", None, Err("invalid expression: f-string expression part cannot include '#'", (1, 8))),
    ("f'{1:{2:{3}}}'", None, Err("invalid expression: f-string: expressions nested too deeply", (1, 9))),
    ('f"{f"{1}"}"', None, Err("invalid expression: f-string: expecting '}'", (1, 5))),
    ("f'{}'", None, Err("invalid expression: f-string: empty expression not allowed", (1, 4))),
    ("f'{!r}'", None, Err("invalid expression: f-string: expression required before '!'", (1, 4))),
    ("f'}'", None, Err("invalid expression: f-string: single '}' is not allowed", (1, 3))),
    ("x.\U00010570", {"x": {}}, Err("invalid expression: invalid character '\U00010570' (U+10570)", (1, 3))),
    ("'\\N{LATIN CAPITAL LETTER OLD POLISH O}'", None,
     Err("invalid expression: unknown Unicode character name 'LATIN CAPITAL LETTER OLD POLISH O'", (1, 2))),
    ("'a\\x00b' + '\x00'", None, Err("expression is not valid text", (1, 13))),
    ("1" * 4301, None, Err("number is too large", (1, 1))),
    ("-" + "1_" * 2200 + "1", None, Err("number is too large", (1, 2))),
    # ... and what every version parses still works
    ("f'{x!r:>6} {x=} {x = }'", {"x": [1]}, '   [1] x=[1] x = [1]'), ("f'''{'a'}''' f\"{'b'}\" 'c'", None, "abc"),
    ("f'{\"a\" if 1 else \"b\"}{x:{\">\"}{3}}'", {"x": 1}, "a  1"), ("'\\N{LATIN CAPITAL LETTER A}'", None, "A"),
    ("f'\\N{GREEK SMALL LETTER SIGMA}{1}'", None, "σ1"), ("x.é", {"x": {"é": 1}}, 1),
    ("'\U00010570'", None, "\U00010570"),
    ("(1 # \U00010570\n)", None, 1), ("1if 1else 2", None, 1), ("'\\d'", None, "\\d"),
]


@pytest.mark.parametrize("source, env, expected", CASES)
def test_each_builtin_gives_the_recorded_result(source, env, expected):
    got = outcome(source, env)
    if isinstance(expected, Err):
        assert isinstance(got, Err), f"{source!r} gave {got!r}, expected the error {expected!r}"
        assert str(got) == str(expected)
        if expected.at is not None:
            assert got.at == expected.at
    else:
        assert not isinstance(got, Err), f"{source!r} failed: {got}"
        assert exactly(got) == exactly(expected)


def test_sum_is_left_to_right_even_where_python_compensates():
    assert repr(outcome("sum([0.1, 0.2, 0.3])")) == "0.6000000000000001"
    assert outcome("sum([0.1, 0.2, 0.3])") == 0.6000000000000001
    assert outcome("'yes' if sum(p) == 0.6 else 'no'", {"p": [0.1, 0.2, 0.3]}) == "no"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**70, 2**70)), max_size=12))
def test_add_up_is_plain_left_to_right_addition(items):
    total = 0
    for item in items:
        total += item
    got = add_up(items)
    assert type(got) is type(total) and (got == total or (math.isnan(got) and math.isnan(total)))
    if isinstance(got, float) and math.isfinite(got):
        assert math.copysign(1.0, got) == math.copysign(1.0, total)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789_+- \t١٢３xe.\u2003"), max_size=12))
@example("1_000")
@example(" -0012 ")
def test_read_int_reads_what_python_reads(text):
    """Within Unicode 13.0 and the digit limit, read_int is int() itself."""
    text = text.strip()
    try:
        expected = int(text)
    except ValueError:
        expected = None
    try:
        got = read_int(text)
    except ValueError:
        got = None
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789_+-eE.inftyaINFTYA \u0661\uff13"), max_size=10))
def test_read_float_reads_what_python_reads(text):
    try:
        expected = float(text)
    except ValueError:
        expected = None
    try:
        got = read_float(text)
    except ValueError:
        got = None
    assert exactly(got) == exactly(expected) or (got != got and expected != expected)


def test_numbers_in_newer_unicode_are_not_digits():
    for char in ("\U00016ac0", "\U00011f50", "\U0001e4f0"):
        with pytest.raises(ValueError):
            read_int(char)
        with pytest.raises(ValueError):
            read_float(char)


def test_case_mapping_keeps_unicode_13_and_python_elsewhere():
    # no character older than Unicode 14 maps differently from Python's own lower()/upper()
    sample = "".join(chr(cp) for cp in range(0x20, 0x3000)) + "ΑΣ Σ ΣΑ ĳ ǈ ﬀ ΐ"
    newer = expr_eval.NEWER_CHAR
    plain = "".join(c for c in sample if not newer.match(c) and c not in "\u10fc\u1734\uab69\u00ad\ufdd0")
    assert change_case(plain, upper=False) == plain.lower()
    assert change_case(plain, upper=True) == plain.upper()
    # stand-ins map to themselves and nothing maps to them, on this interpreter too
    for char in ("\ufdd0", "\u00ad"):
        assert char.lower() == char.upper() == char
    others = "".join(chr(cp) for cp in range(0x110000) if chr(cp) not in "\ufdd0\u00ad")
    for converted in (others.lower(), others.upper()):
        assert "\ufdd0" not in converted and "\u00ad" not in converted


def test_the_newer_unicode_table_is_what_14_0_to_15_1_assigned():
    """The table holds characters unassigned in Unicode 13.0 (seen on Python 3.10) and assigned
    by 15.1 (seen on 3.13); that it misses none shows in test_cross_python's digests."""
    version = tuple(int(part) for part in unicodedata.unidata_version.split("."))
    if version > (15, 1, 0):
        pytest.skip(f"Unicode {unicodedata.unidata_version} is newer than the table (15.1): regenerate _NEWER_UNICODE")
    table = [cp for low, high in expr_eval._NEWER_UNICODE for cp in range(low, high + 1)]
    assigned = sum(unicodedata.category(chr(cp)) != "Cn" for cp in table)
    expected = {(13, 0, 0): 0, (14, 0, 0): 838, (15, 0, 0): 838 + 4489, (15, 1, 0): 838 + 4489 + 627}
    assert len(table) == 5954 and assigned == expected[version]


def _native_z() -> bool:
    try:
        format(-0.0, "z")
    except ValueError:
        return False
    return True


SPECS = ["z", "z.0f", "z.1f", "z.2f", "+z.1f", " z.3f", "z.0e", "z.2e", "zg", "z.3g", "z.0%", "z.2%", "z08.2f",
         "*>+z9.1f",
         "z,.2f", "z_.1f", "#z.0f", "#zg", "z.1", "zf", "zE", "zG", "zF", "z=+10.2f", "zn", "z.3n"]


@pytest.mark.skipif(not _native_z(), reason="Python 3.10 has no 'z' in format specs to compare with")
@settings(max_examples=400, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([-0.0, -0.004, -0.005, -0.0049,
                                                                                     -0.5, -1e-300, -5e-324, 0.0])),
       st.sampled_from(SPECS))
def test_z_is_python_3_11s_z(value, spec):
    native_spec = spec.replace("n", "g")  # 'n' reads as 'g' (the C locale)
    try:
        expected = format(value, native_spec)
    except ValueError:
        expected = None
    try:
        got = format_value(value, spec)
    except Problem:
        got = None
    assert got == expected


@pytest.mark.parametrize("spec", ["z", "zd", "z.2f", "z.0%", "z,"])
@pytest.mark.parametrize("value", [-3, 0, 7])
def test_z_on_whole_numbers_as_python_3_11(value, spec):
    if not _native_z():
        pytest.skip("Python 3.10 has no 'z' in format specs to compare with")
    try:
        expected = format(value, spec)
    except ValueError:
        expected = None
    try:
        got = format_value(value, spec)
    except Problem:
        got = None
    assert got == expected


@pytest.mark.parametrize("value", [0, 7, -1234567, 10**20, 0.0, -0.0, 1.5, 1234567.5, 1e-7, 1e300, 123.456])
@pytest.mark.parametrize("spec", ["n", ".3n", "#n", ">12n", "+n", "010n", ".0n"])
def test_n_is_python_n_in_the_c_locale(value, spec):
    """Python reads 'n' with the process's locale; LocalFlow as in the C locale (what Python starts with)."""
    try:
        expected = format(value, spec)
    except ValueError:
        expected = None
    try:
        got = format_value(value, spec)
    except Problem:
        got = None
    assert got == expected
