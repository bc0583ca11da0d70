"""Trailing options of a block-opening line: ``parallel N``, ``first K``, ``keep rest``, ``max N``, ``global``.

``for item in items parallel 4 first 2 keep rest:``, ``while pending > 0 max 100:``,
``lock f"customer-{cid}" global:``: an expression followed by words that are not part
of it. The whole text is compiled first, so ``while max(a, b) > 3:`` has no bound and a
``parallel`` inside a string stays there; only when it does not compile are options
peeled off its end, the last first, for as long as what is left still does not compile.
Each statement says which options it takes; another known option word is reported as
not going with it. The options may come in any order, each at most once.

Syntax only (a count is a whole number here; its range is ``checks``'). Never raises.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Union

from localflow import ir
from localflow.core.expr import compile_expr
from localflow.dsl.lexer import LogicalLine
from localflow.errors import ExpressionError

if TYPE_CHECKING:
    from localflow.dsl.parser import Parser

# option word -> the word that must follow it: a count ("N"), "rest", or nothing (None)
WORDS: dict[str, Union[str, None]] = {"parallel": "N", "first": "N", "max": "N", "keep": "rest", "global": None}
EXAMPLES = {"parallel": "parallel 4", "first": "first 2", "max": "max 100", "keep": "first 1 keep rest",
            "global": "global"}
_NEEDS = {"parallel": "how many items may run at once", "first": "how many must end before it goes on",
          "max": "the most iterations"}
_TOKEN = re.compile(r"\S+")
_COUNT = re.compile(r"\d{1,9}")


def compiles(source: str) -> bool:
    try:
        compile_expr(ir.Expr(source))
    except ExpressionError:
        return False
    return True


def trailing(p: Parser, ll: LogicalLine, start: int, stop: int, allowed: tuple[str, ...],
             what: str, expression: bool = True) -> tuple[int, dict[str, Union[int, bool]]]:
    """(where the expression in ``ll.text[start:stop]`` ends, the options after it).

    A count option maps to its number, ``keep`` (rest) and ``global`` to True. Problems
    (an option ``what`` does not take, given twice, a bad count) are reported. Without
    ``expression`` nothing but options is expected there (``max`` alone is no name then).
    """
    text, end = ll.text, stop
    peeled: list[tuple[str, int, Union[str, None], int]] = []  # (word, at, value, value at), last first
    while True:
        source = text[start:end]
        if not source.strip() or (expression and compiles(source)):
            break
        tokens = [(m.group(), start + m.start()) for m in _TOKEN.finditer(source)]
        (last, last_at) = tokens[-1]
        if last in WORDS:
            peeled.append((last, last_at, None, last_at + len(last)))
            end = last_at
        elif len(tokens) >= 2 and WORDS.get(tokens[-2][0]) is not None:
            word, at = tokens[-2]
            peeled.append((word, at, last, last_at))
            end = at
        else:
            break
    found: dict[str, Union[int, bool]] = {}
    for word, at, value, value_at in reversed(peeled):
        if word not in allowed:
            takes = " and ".join(f"'{EXAMPLES[w]}'" for w in allowed if w != "keep") or "no options"
            p.error_at(ll, at, f"'{word}' does not go with {what}: it takes {takes}")
        elif word in found:
            p.error_at(ll, at, f"'{word}' is given twice")
        else:
            option = _value(p, ll, word, value, at, value_at)
            if option is not None:
                found[word] = option
    if "keep" in found and "first" not in found and "first" in allowed:
        p.error_at(ll, next(at for w, at, _, _ in peeled if w == "keep"),
                   "'keep rest' goes with 'first K': write e.g. first 1 keep rest")
        del found["keep"]
    return end, found


def _value(p: Parser, ll: LogicalLine, word: str, value: Union[str, None], at: int,
           value_at: int) -> Union[int, bool, None]:
    needs = WORDS[word]
    if needs is None:
        return True
    if needs == "rest":
        if value != "rest":
            p.error_at(ll, value_at if value else at, "expected 'keep rest', e.g. first 1 keep rest")
            return None
        return True
    if value is None:  # (pointed at just after what comes before the word, as 'for' always did)
        p.error_at(ll, len(ll.text[:at].rstrip()), f"'{word}' needs {_NEEDS[word]}, e.g. {EXAMPLES[word]}")
    elif not _COUNT.fullmatch(value):
        if word == "parallel":
            p.error_at(ll, value_at, f"bad concurrency '{value}': write how many items may run at once, "
                       "from 1 to 1000, e.g. parallel 4")
        else:
            p.error_at(ll, value_at, f"bad {word} count '{value}': write a whole number, e.g. {EXAMPLES[word]}")
    else:
        return int(value)
    return None


def only_options(p: Parser, ll: LogicalLine, start: int, stop: int, allowed: tuple[str, ...],
                 what: str) -> dict[str, Union[int, bool]]:
    """The options of a line that has no expression (``repeat max 5:``, ``parallel first 2:``)."""
    end, found = trailing(p, ll, start, stop, allowed, f"'{what}'", expression=False)
    rest = ll.text[start:end].strip()
    if rest:
        at = start + ll.text[start:end].index(rest[0])
        shown = " or ".join(f"'{what} {EXAMPLES[w]}:'" for w in allowed if w != "keep")
        p.error_at(ll, at, f"unexpected text after '{what}': write '{what}:' or {shown}")
    return found
