"""DSL errors: each kind says file:line:col, what is wrong, and puts the caret on the offending token."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localflow import ir
from localflow.dsl import parse_flow
from localflow.errors import FlowSyntaxError

FILE = "flows/X.flow"

STEP = "  step a:\n    run [\"true\"]\n"


def errors_of(text: str) -> FlowSyntaxError:
    with pytest.raises(FlowSyntaxError) as info:
        parse_flow(text, FILE)
    return info.value


def assert_first_error(text: str, first_line: str, caret_col: int) -> None:
    rendered = errors_of(text).first.render().splitlines()
    assert rendered[0] == f"{FILE}:{first_line}"
    if len(rendered) == 3:
        assert rendered[2].index("^") - len("    ") + 1 == caret_col
    else:
        assert caret_col == 1  # no source line to point into (an empty file)


# (id, text, "line:col: message", caret column)
CASES = [
    ("empty file", "", "1:1: the flow file is empty: start it with 'flow NAME' and indent the flow's statements under it", 1),
    ("only comments", "# nothing here\n\n", "1:1: the flow file is empty (only blank lines and comments): start it with 'flow NAME' and indent the flow's statements under it", 1),
    ("no header at all", "step a:\n  run [\"x\"]\n", "1:1: expected 'flow NAME' header", 1),
    ("header not first", "# c\nsleep 1s\nflow X\n  sleep 1s\n",
     "2:1: expected 'flow NAME' header before any other statement", 1),
    ("header without name", "flow\n  sleep 1s\n", "1:5: expected a flow name after 'flow'", 5),
    ("text after header", "flow X: go\n", "1:9: unexpected text after the flow name", 9),
    ("tab indentation", "flow X\n\tsleep 1s\n", "2:1: indent with spaces, not tabs", 1),
    ("inconsistent dedent", "flow X\n    step a:\n        run [\"x\"]\n      sleep 1s\n",
     "4:7: inconsistent indentation: this line is indented 6 spaces but the blocks around it use 4 or 8", 7),
    ("body not indented", "flow X\nsleep 1s\n", "2:1: statements must be indented under 'flow X'", 1),
    ("two flows", "flow X\n  sleep 1s\nflow Y\n", "3:1: only one flow per file", 1),
    ("unknown statement", "flow X\n  zap 1\n",
     "2:3: unknown statement 'zap': expected one of input, timeout, concurrency, defaults, step, set, sleep, if, parallel, race, for, "
     "while, repeat, break, continue, lock, on, fail, return", 3),
    ("misspelt statement", "flow X\n  slep 1s\n",
     "2:3: unknown statement 'slep': expected one of input, timeout, concurrency, defaults, step, set, sleep, if, parallel, race, for, "
     "while, repeat, break, continue, lock, on, fail, return; did you mean 'sleep'?", 3),
    ("block under sleep", "flow X\n  sleep 1s\n    sleep 2s\n",
     "3:5: unexpected indent: 'sleep' does not open a block", 5),
    ("input after step", "flow X\n" + STEP + "  input n = 1\n", "4:3: inputs must come before the first step", 3),
    ("input default reads a name", "flow X\n  input a = 1\n  input b = a + 1\n",
     "3:13: input defaults must be constants: 'a' cannot be used here", 13),
    ("input missing default", "flow X\n  input a =\n", "2:11: expected a default value after '='", 11),
    ("input junk after name", "flow X\n  input a b\n",
     "2:11: expected '= DEFAULT' or the end of the line after the input name", 11),
    ("duplicate input", "flow X\n  input a\n  input a = 2\n", "3:9: input 'a' is declared twice (first at line 2)", 9),
    ("reserved step name", "flow X\n  step parallel:\n    run [\"x\"]\n",
     "2:8: 'parallel' is a reserved word and cannot be a step name", 8),
    ("python keyword as name", "flow X\n  input lambda\n", "2:9: 'lambda' is a reserved word and cannot be a input name", 9),
    ("underscore name", "flow X\n  step _a:\n    run [\"x\"]\n", "2:8: step names may not start with '_' ('_a')", 8),
    ("bad step name", "flow X\n  step 1a:\n    run [\"x\"]\n",
     "2:8: bad step name '1a': use letters, digits and _, starting with a letter", 8),
    ("step without colon", "flow X\n  step a\n    run [\"x\"]\n", "2:9: expected ':' after 'step a'", 9),
    ("clause on the step line", "flow X\n  step a: run [\"x\"]\n",
     "2:11: put each clause on its own line, indented under 'step a:'", 11),
    ("step without block", "flow X\n  step a:\n  sleep 1s\n",
     "2:8: step 'a' needs an indented block of clauses, starting with 'run [...]'", 8),
    ("step without run", "flow X\n  step a:\n    timeout 1s\n",
     "2:8: step 'a' needs one of 'run [...]', 'call module.function(...)', 'wait signal NAME' or 'flow NAME'", 8),
    ("duplicate step", "flow X\n" + STEP + STEP, "4:8: step 'a' is defined twice (first at line 2)", 8),
    ("step named like an input", "flow X\n  input a\n" + STEP, "3:8: step 'a' has the same name as an input (line 2)", 8),
    ("unknown clause", "flow X\n  step a:\n    run [\"x\"]\n    retries 3\n",
     "4:5: unknown clause 'retries' in step 'a': expected one of run, timeout, retry, no retry on, stdin, undo, env, cwd, heartbeat, concurrency, catch; "
     "did you mean 'retry'?", 5),
    ("clause twice", "flow X\n  step a:\n    run [\"x\"]\n    timeout 1s\n    timeout 2s\n",
     "5:5: 'timeout' is given twice in step 'a' (first at line 4)", 5),
    ("run not a list", "flow X\n  step a:\n    run \"x\"\n",
     "3:9: 'run' needs a list [...]: the program and its arguments, e.g. run [\"python3\", \"job.py\", order_id]", 9),
    ("run empty list", "flow X\n  step a:\n    run []\n",
     "3:9: 'run' needs at least the program to run, e.g. run [\"python3\", \"job.py\", order_id]", 9),
    ("bad duration", "flow X\n  sleep 5x\n", "2:9: bad duration '5x': write e.g. 500ms, 30s, 1m30s, 2h", 9),
    ("missing duration", "flow X\n  sleep\n", "2:8: 'sleep' needs a duration: write e.g. 500ms, 30s, 1m30s, 2h", 8),
    ("huge duration", "flow X\n  sleep 9999d\n", "2:9: duration '9999d' is too long: the most is 3650d", 9),
    ("zero timeout", "flow X\n  step a:\n    run [\"x\"]\n    timeout 0s\n", "4:13: timeout must be more than 0", 13),
    ("bad retry count", "flow X\n  step a:\n    run [\"x\"]\n    retry many\n",
     "4:11: bad retry count 'many': write how many times to retry after the first attempt, e.g. retry 3", 11),
    ("unknown retry option", "flow X\n  step a:\n    run [\"x\"]\n    retry 3 wait 1s\n",
     "4:13: unknown retry option 'wait': expected every, backoff, max or jitter", 13),
    ("retry option without value", "flow X\n  step a:\n    run [\"x\"]\n    retry 3 every\n",
     "4:13: 'every' needs a value, e.g. every 1s", 13),
    ("backoff below 1", "flow X\n  step a:\n    run [\"x\"]\n    retry 3 backoff 0.5x\n",
     "4:21: bad backoff '0.5x': write a factor of at least 1, e.g. 2x or 1.5x", 21),
    ("max shorter than every", "flow X\n  step a:\n    run [\"x\"]\n    retry 3 every 10s max 1s\n",
     "4:27: 'max' is shorter than 'every': the first retry would already wait longer", 27),
    ("unknown name", "flow X\n  step charge:\n    run [\"x\"]\n  return chrage.result\n",
     "4:10: unknown name 'chrage'; did you mean 'charge'?", 10),
    ("step used before it runs", "flow X\n  step a:\n    run [\"x\", ship.result]\n  step ship:\n    run [\"y\"]\n",
     "3:15: step 'ship' has not run yet here", 15),
    ("step used inside itself", "flow X\n  step a:\n    run [\"x\"]\n    stdin a.result\n",
     "4:11: step 'a' has not run yet here", 11),
    ("unreachable after return", "flow X\n  return 1\n  sleep 1s\n",
     "3:3: unreachable: this statement comes after return at line 2", 3),
    ("unreachable after fail", "flow X\n  fail \"no\"\n" + STEP,
     "3:3: unreachable: this statement comes after fail at line 2", 3),
    ("return without value", "flow X\n  return\n",
     "2:9: 'return' needs a value (write 'return null' to return nothing)", 9),
    ("fail without message", "flow X\n  fail\n",
     "2:7: 'fail' needs a message, e.g. fail f\"order {order_id} was refused\"", 7),
    ("stdin without value", "flow X\n  step a:\n    run [\"x\"]\n    stdin\n",
     "4:10: 'stdin' needs a value, e.g. stdin {\"order\": order_id}", 10),
    ("bracket never closed", "flow X\n  return {\"a\": 1,\n",
     "2:10: invalid expression: '{' was never closed", 10),
    ("missing comma in a multi-line literal", "flow X\n  return {\"a\": 1\n    \"b\": 2}\n",
     "2:16: invalid expression: invalid syntax. Perhaps you forgot a comma?", 16),
    ("syntax error on a later line", "flow X\n  return [\n    1,\n    2 3]\n",
     "4:5: invalid expression: invalid syntax. Perhaps you forgot a comma?", 5),
    ("method call", "flow X\n  input s = \"a\"\n  return s.upper()\n",
     "3:12: method calls are not allowed: use upper(x) instead of x.upper()", 12),
    ("dunder attribute", "flow X\n  input s = \"a\"\n  return s.__class__\n",
     "3:12: attributes starting with '_' are not allowed ('.__class__')", 12),
    ("constant expression that always fails", "flow X\n  return [1, 2 // 0]\n", "2:14: division by zero", 14),
]


@pytest.mark.parametrize("text, first_line, caret_col", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_is_reported_at_the_offending_token(text, first_line, caret_col):
    assert_first_error(text, first_line, caret_col)


def test_all_problems_are_collected_in_one_pass_in_file_order():
    text = (
        "flow X\n"
        "  step a:\n"
        "    run [\"x\", chrage]\n"
        "    timeout 5x\n"
        "  slep 1s\n"
        "  return b.result\n"
    )

    error = errors_of(text)

    assert [(d.line, d.col) for d in error.diagnostics] == [(3, 15), (4, 13), (5, 3), (6, 10)]
    assert error.diagnostics[2].message.startswith("unknown statement 'slep'")
    assert error.exit_code == 2


def test_a_bad_expression_is_reported_once_though_parser_and_checks_both_see_it():
    error = errors_of("flow X\n  return 1 +\n")

    assert len(error.diagnostics) == 1


def test_rendered_error_shows_the_physical_line_and_a_caret():
    error = errors_of("flow X\n  step charge:\n    run [\"x\"]\n  return chrage.result\n")

    assert error.first.render() == (
        "flows/X.flow:4:10: unknown name 'chrage'; did you mean 'charge'?\n"
        "      return chrage.result\n"
        "             ^"
    )
    assert error.first.source_line == "  return chrage.result"


VALID = """\
flow PurchaseFlow
  input order_id = "demo-1"
  input amount = 42.0
  step reserve:
    run ["flows/activities/reserve.sh", order_id]
    timeout 30s
    retry 3 every 1s backoff 2x max 10s
  step charge:
    run ["python3", "flows/activities/charge.py"]
    stdin {"amount": amount, "order": order_id}
  sleep 2s
  return {"order": order_id, "receipt": charge.result.receipt}
"""
PIECES = ["step ", "run ", "retry ", "sleep ", "input ", "return ", "fail ", "flow ", ":", "=", "[", "]", "{", "}",
          "(", ")", "\"", "'", "\"\"\"", "f\"{", "#", "\t", "\n", "\n  ", "\n    ", "\r", "\x00", "é", "_", "1s", "x",
          "__import__", ".upper()", "**", "1e999"]


def parses_or_raises_flow_syntax_error(text: str) -> None:
    try:
        flow = parse_flow(text, FILE)
    except FlowSyntaxError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.col >= 1 for d in exc.diagnostics)
    else:
        assert isinstance(flow, ir.Flow)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_only_ever_raises_flow_syntax_error(text):
    parses_or_raises_flow_syntax_error(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 12), st.sampled_from(PIECES + [""])),
                min_size=1, max_size=6))
def test_mutated_valid_flow_only_ever_raises_flow_syntax_error(edits):
    text = VALID
    for position, cut, piece in edits:
        text = text[:position] + piece + text[position + cut:]
    parses_or_raises_flow_syntax_error(text)


EVERY_CONSTRUCT = """\
flow Saga
  input order_id = "demo-1"
  input items = ["a", "b"]
  timeout 10m
  step reserve:
    run ["reserve.sh", order_id]
    undo ["release.sh", order_id]
    retry 3 every 1s
    catch exit 2, 3:
      fail "out of stock"
    catch error "CardDeclined":
      set declined = true
    catch:
      fail f"reserve failed: {error.message}"
  step approval:
    wait signal approve timeout 30s
    catch timeout:
      return null
  step ship:
    flow ShipFlow
    input {"order": order_id, "at": now()}
  set total = len(items) * 2
  if total > 100:
    sleep 1s
  elif total > 50:
    sleep 2s
  else:
    sleep 3s
  parallel:
    branch:
      step email:
        run ["echo", "mail"]
    branch:
      sleep 1s
  race:
    branch:
      sleep 1s
    branch:
      step fast:
        run ["true"]
  for item in items parallel 4:
    step pack:
      run ["echo", item]
  return {"order": order_id, "total": total}
"""
FULL_PIECES = PIECES + ["if ", "elif ", "else:", "parallel:", "race:", "branch:", "for ", " in ", " parallel 0",
                        "set ", "catch", "catch exit ", "catch error ", " timeout ", "wait signal ", "undo ", "flow X",
                        "error", "now()", ",", "\n      ", "\n        "]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(EVERY_CONSTRUCT)), st.integers(0, 12),
                          st.sampled_from(FULL_PIECES + [""])), min_size=1, max_size=6))
def test_mutated_flow_using_every_construct_only_ever_raises_flow_syntax_error(edits):
    text = EVERY_CONSTRUCT
    for position, cut, piece in edits:
        text = text[:position] + piece + text[position + cut:]
    parses_or_raises_flow_syntax_error(text)


def test_the_every_construct_flow_itself_is_valid():
    flow = parse_flow(EVERY_CONSTRUCT, FILE)

    kinds = {type(s).__name__ for s in ir.walk(flow.body)}
    assert kinds == {"Activity", "WaitSignal", "ChildFlow", "Sleep", "Fail", "Return", "Set", "If", "Parallel", "For"}
