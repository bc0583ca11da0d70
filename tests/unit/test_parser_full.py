"""The full DSL: every construct parses into exactly the IR of ``localflow.ir``, and each new mistake is
reported at the offending token."""

from __future__ import annotations

import json
import textwrap

import pytest

from localflow import ir
from localflow.dsl import parse_flow
from localflow.errors import FlowSyntaxError

FILE = "flows/OrderSaga.flow"
E = ir.Expr

FULL = """\
flow OrderSaga
  input order_id = "demo-1"
  input amount = 42.0
  input items = ["a", "b"]
  timeout 10m

  step reserve:
    run ["flows/activities/reserve.sh", order_id]
    undo ["flows/activities/release.sh", order_id]
    retry 3 every 1s
    catch exit 2, 3:
      fail "out of stock"
    catch timeout:
      set reserved = false
    catch error "CardDeclined", "Fraud":
      return null
    catch:
      fail f"reserve failed: {error.message}"
  step approval:
    wait signal approve timeout 30s
    catch timeout:
      fail "not approved in time"
  step ship:
    flow ShipFlow
    input {"order": order_id}
  set total = amount * 2
  if amount > 100:
    sleep 1s
  elif amount > 50:
    sleep 2s
  else:
    sleep 3s
  parallel:
    branch:
      step email:
        run ["echo", "mail"]
    branch:
      step sms:
        run ["echo", "sms"]
  race:
    branch:
      sleep 1s
    branch:
      step fast:
        run ["true"]
  for item in items:
    step pack:
      run ["echo", item]
  for item in items parallel 4:
    step label:
      run ["echo", item]
  return {"order": order_id, "total": total}
"""


def full() -> ir.Flow:
    return parse_flow(FULL, FILE)


def flow_of(body: str) -> ir.Flow:
    return parse_flow("flow T\n" + textwrap.indent(textwrap.dedent(body), "  "), "flows/T.flow")


def echo(name: str, arg: str, line: int, col: int) -> ir.Activity:
    """``step NAME:`` + ``run ["echo", ARG]`` at (line, col), with the run line right under it."""
    return ir.Activity(name, (E('"echo"', line + 1, col + 7), E(arg, line + 1, col + 15)), 600_000,
                       line=line, col=col)


# --- the full example, statement by statement -------------------------------------------------------


def test_full_flow_round_trips_through_json_unchanged():
    flow = full()

    again = ir.from_json(json.loads(json.dumps(ir.to_json(flow))))

    assert again == flow


def test_full_flow_has_its_inputs_workflow_timeout_and_every_statement_in_order():
    flow = full()

    assert [i.name for i in flow.inputs] == ["order_id", "amount", "items"]
    assert flow.timeout_ms == 600_000
    assert [type(s).__name__ for s in flow.body] == [
        "Activity", "WaitSignal", "ChildFlow", "Set", "If", "Parallel", "Parallel", "For", "For", "Return"]
    assert flow.step_names() == ("reserve", "approval", "ship", "email", "sms", "fast", "pack", "label")


def test_activity_keeps_undo_argv_as_positioned_expressions_and_its_catches_in_order():
    reserve = full().body[0]

    assert reserve.argv == (E('"flows/activities/reserve.sh"', 8, 10), E("order_id", 8, 41))
    assert reserve.undo == (E('"flows/activities/release.sh"', 9, 11), E("order_id", 9, 42))
    assert reserve.retry == ir.Retry(max_attempts=4, initial_ms=1000)
    assert reserve.timeout_ms == 600_000 and reserve.stdin is None
    assert reserve.catches == (
        ir.Catch("exit", (2, 3), (ir.Fail(E('"out of stock"', 12, 12), 12, 7),), 11, 5),
        ir.Catch("timeout", (), (ir.Set("reserved", E("false", 14, 22), 14, 7),), 13, 5),
        ir.Catch("error", ("CardDeclined", "Fraud"), (ir.Return(E("null", 16, 14), 16, 7),), 15, 5),
        ir.Catch("any", (), (ir.Fail(E('f"reserve failed: {error.message}"', 18, 12), 18, 7),), 17, 5),
    )


def test_wait_step_has_its_signal_timeout_and_catch():
    approval = full().body[1]

    assert approval == ir.WaitSignal(
        "approval", "approve", 30_000,
        (ir.Catch("timeout", (), (ir.Fail(E('"not approved in time"', 22, 12), 22, 7),), 21, 5),), 19, 3,
        tells_ending=True)  # set on every wait step since the Workflow Patterns release


def test_child_flow_step_has_the_flow_name_and_its_input_expression():
    assert full().body[2] == ir.ChildFlow("ship", "ShipFlow", E('{"order": order_id}', 25, 11), (), 23, 3)


def test_set_is_a_named_expression():
    assert full().body[3] == ir.Set("total", E("amount * 2", 26, 15), 26, 3)


def test_if_elif_else_becomes_one_if_with_ordered_arms_and_an_else_block():
    assert full().body[4] == ir.If(
        "if-1",
        (ir.IfBranch(E("amount > 100", 27, 6), (ir.Sleep("sleep-1", 1000, 28, 5),), 27, 3),
         ir.IfBranch(E("amount > 50", 29, 8), (ir.Sleep("sleep-2", 2000, 30, 5),), 29, 3)),
        (ir.Sleep("sleep-3", 3000, 32, 5),), 27, 3)


def test_parallel_and_race_hold_one_block_per_branch_and_are_counted_separately():
    parallel, race = full().body[5:7]

    assert parallel == ir.Parallel(
        "parallel-1", ((echo("email", '"mail"', 35, 7),), (echo("sms", '"sms"', 38, 7),)), False, 33, 3)
    assert race == ir.Parallel(
        "race-1", ((ir.Sleep("sleep-4", 1000, 42, 7),), (ir.Activity("fast", (E('"true"', 45, 14),), 600_000,
                                                                            line=44, col=7),)), True, 40, 3)


def test_for_loops_have_their_variable_items_body_and_concurrency():
    one_at_a_time, four_at_a_time = full().body[7:9]

    assert one_at_a_time == ir.For("for-1", "item", E("items", 46, 15), (echo("pack", "item", 47, 5),), 1, 46, 3)
    assert four_at_a_time == ir.For("for-2", "item", E("items", 49, 15), (echo("label", "item", 50, 5),), 4, 49, 3)


def test_return_ends_the_full_flow():
    assert full().body[9] == ir.Return(E('{"order": order_id, "total": total}', 52, 10), 52, 3)


# --- ids, nesting and scope ----------------------------------------------------------------------------


def test_ids_count_each_kind_in_document_order_through_nested_blocks():
    flow = flow_of("""\
        if true:
          sleep 1s
          if false:
            sleep 2s
        race:
          branch:
            sleep 3s
          branch:
            parallel:
              branch:
                sleep 4s
        for x in [1]:
          for y in [2]:
            sleep 5s
        race:
          branch:
            sleep 6s
          branch:
            sleep 7s
    """)

    ids = [getattr(s, "id") for s in ir.walk(flow.body) if hasattr(s, "id")]
    assert ids == ["if-1", "sleep-1", "if-2", "sleep-2", "race-1", "sleep-3", "parallel-1", "sleep-4",
                   "for-1", "for-2", "sleep-5", "race-2", "sleep-6", "sleep-7"]


def test_if_without_else_has_no_else_block_and_elif_chains_keep_their_order():
    flow = flow_of("""\
        input n = 1
        if n == 1:
          sleep 1s
        if n == 2:
          sleep 2s
        elif n == 3:
          sleep 3s
        elif n == 4:
          sleep 4s
    """)

    first, second = flow.body
    assert first.orelse is None and len(first.branches) == 1
    assert [b.condition.source for b in second.branches] == ["n == 2", "n == 3", "n == 4"]
    assert (first.id, second.id) == ("if-1", "if-2")


def test_step_kinds_and_their_defaults():
    flow = flow_of("""\
        step wait_plain:
          wait signal go
        step child_plain:
          flow Other
        step run_plain:
          run ["true"]
    """)

    wait, child, run = flow.body
    assert (wait.signal, wait.timeout_ms, wait.catches) == ("go", None, ())
    assert (child.flow, child.input, child.catches) == ("Other", None, ())
    assert (run.undo, run.catches) == (None, ())


def test_what_each_expression_may_read():
    # Given names from every kind of scope, each read where the scope rules allow it
    flow = flow_of("""\
        input items = [1, 2]
        step first:
          run ["true"]
          catch:
            set failed_with = error.message
            step cleanup:
              run ["echo", error.kind, failed_with]
        set first_try_note = "x"
        parallel:
          branch:
            step left:
              run ["echo", workflow.id]
          branch:
            if items:
              set chosen = "b"
        for item in items parallel 2:
          step pack:
            run ["echo", item, first.result]
          if pack.result:
            for inner in [item]:
              step label:
                run ["echo", inner, item, pack.result]
            step after:
              run ["echo", pack.result]
        return [left.result, chosen, failed_with, cleanup.result, first_try_note]
    """)

    # Then the flow checks (a variable from a branch that may not run is a runtime matter)
    assert flow.step_names() == ("first", "cleanup", "left", "pack", "label", "after")


def test_now_may_be_called_in_any_expression_but_an_input_default():
    flow = flow_of("""\
        set started = now()
        return {"started": started, "now": now()}
    """)

    assert flow.body[0].value.source == "now()"


def test_a_string_that_mentions_parallel_is_not_a_concurrency():
    flow = flow_of("""\
        for w in split("a parallel 4"):
          sleep 1s
        for w in split("b parallel 5") parallel 3:
          sleep 1s
    """)

    assert [(f.items.source, f.concurrency) for f in flow.body] == [
        ('split("a parallel 4")', 1), ('split("b parallel 5")', 3)]


def test_catch_values_may_hold_commas_and_colons_inside_strings():
    flow = flow_of("""\
        step a:
          run ["true"]
          catch error "a, b", 'c:d':
            return 1
    """)

    assert flow.body[0].catches[0].values == ("a, b", "c:d")


# --- one test per new kind of mistake ---------------------------------------------------------------


def first_error(text: str) -> tuple[str, int]:
    with pytest.raises(FlowSyntaxError) as info:
        parse_flow(text, "flows/X.flow")
    rendered = info.value.first.render().splitlines()
    return rendered[0], rendered[2].index("^") - len("    ") + 1


RUN = "    run [\"x\"]\n"
BRANCH = "    branch:\n      sleep 1s\n"

# (id, text, "line:col: message", caret column)
CASES = [
    ("clause of another step kind", "flow X\n  step a:\n    wait signal go\n    retry 3\n",
     "4:5: 'retry' does not apply to a wait step", 5),
    ("step timeout under a wait", "flow X\n  step a:\n    wait signal go\n    timeout 1s\n",
     "4:5: 'timeout' does not apply to a wait step: write it on the wait line, e.g. wait signal approve timeout 30s",
     5),
    ("two kinds in one step", "flow X\n  step a:\n" + RUN + "    flow Other\n",
     "4:5: 'flow' cannot be combined with 'run' (line 3): a step has exactly one of run, call, wait signal or flow", 5),
    ("clause after a catch", "flow X\n  step a:\n" + RUN + "    catch:\n      return 1\n    retry 2\n",
     "6:5: 'retry' must come before the catch clauses of step 'a' (first catch at line 4)", 5),
    ("bare catch not last", "flow X\n  step a:\n" + RUN + "    catch:\n      return 1\n    catch timeout:\n"
     "      return 2\n",
     "4:5: a bare 'catch:' must be the last catch of step 'a': it catches everything, so no catch after it could run",
     5),
    ("duplicate catch", "flow X\n  step a:\n" + RUN + "    catch exit 2, 3:\n      return 1\n    catch exit 3:\n"
     "      return 2\n", "6:16: duplicate catch: exit 3 is already caught at line 4", 16),
    ("duplicate catch timeout", "flow X\n  step a:\n" + RUN + "    catch timeout:\n      return 1\n"
     "    catch timeout:\n      return 2\n", "6:11: duplicate catch: timeout is already caught at line 4", 11),
    ("bad exit code", "flow X\n  step a:\n" + RUN + "    catch exit 2, 256:\n      return 1\n",
     "4:19: bad exit code '256': write a whole number from 1 to 255", 19),
    ("exit code zero", "flow X\n  step a:\n" + RUN + "    catch exit 0:\n      return 1\n",
     "4:16: bad exit code '0': write a whole number from 1 to 255", 16),
    ("catch exit without codes", "flow X\n  step a:\n" + RUN + "    catch exit:\n      return 1\n",
     "4:15: 'catch exit' needs one or more exit codes, e.g. catch exit 2, 3:", 15),
    ("catch error without a string", "flow X\n  step a:\n" + RUN + "    catch error CardDeclined:\n      return 1\n",
     "4:17: bad error type CardDeclined: write a non-empty string in quotes, e.g. catch error \"CardDeclined\":", 17),
    ("catch error without types", "flow X\n  step a:\n" + RUN + "    catch error:\n      return 1\n",
     "4:16: 'catch error' needs one or more error types, e.g. catch error \"CardDeclined\", \"Fraud\":", 16),
    ("catch values without commas", "flow X\n  step a:\n" + RUN + "    catch exit 2 3:\n      return 1\n",
     "4:18: separate the exit codes with commas, e.g. catch exit 2, 3:", 18),
    ("unknown catch", "flow X\n  step a:\n" + RUN + "    catch oops:\n      return 1\n",
     "4:11: unknown catch 'oops': expected 'catch exit CODE, ...:', 'catch timeout:', 'catch error \"Type\", ...:' "
     "or a bare 'catch:'", 11),
    ("catch without a block", "flow X\n  step a:\n" + RUN + "    catch:\n  sleep 1s\n",
     "4:5: 'catch' needs an indented block of statements", 5),
    ("catch exit on a wait step", "flow X\n  step a:\n    wait signal go timeout 1s\n    catch exit 1:\n"
     "      return 1\n", "4:5: 'catch exit' does not apply to a wait step", 5),
    ("catch timeout on a flow step", "flow X\n  step a:\n    flow Other\n    catch timeout:\n      return 1\n",
     "4:5: 'catch timeout' does not apply to a flow step", 5),
    ("catch timeout on a wait without timeout", "flow X\n  step a:\n    wait signal go\n    catch timeout:\n"
     "      return 1\n",
     "4:5: 'catch timeout' never runs: the wait has no timeout (write e.g. wait signal approve timeout 30s)", 5),
    ("wait without signal", "flow X\n  step a:\n    wait approve\n",
     "3:10: expected 'signal' after 'wait', e.g. wait signal approve timeout 30s", 10),
    ("wait signal without a name", "flow X\n  step a:\n    wait signal\n",
     "3:16: expected a signal name after 'wait signal', e.g. wait signal approve", 16),
    ("wait signal with junk", "flow X\n  step a:\n    wait signal go after 1s\n",
     "3:20: expected 'timeout DURATION' or the end of the line after the signal name", 20),
    ("wait signal with a reserved name", "flow X\n  step a:\n    wait signal race\n",
     "3:17: 'race' is a reserved word and cannot be a signal name", 17),
    ("child flow without a name", "flow X\n  step a:\n    flow\n",
     "3:9: expected the child flow's name after 'flow', e.g. flow ShipFlow", 9),
    ("child input without a value", "flow X\n  step a:\n    flow Other\n    input\n",
     "4:10: 'input' needs a value: the child flow's input object, e.g. input {\"order\": order_id}", 10),
    ("undo not a list", "flow X\n  step a:\n" + RUN + "    undo \"release.sh\"\n",
     "4:10: 'undo' needs a list [...]: the program and its arguments, e.g. undo [\"flows/activities/release.sh\", "
     "order_id]", 10),
    ("elif without if", "flow X\n  sleep 1s\n  elif true:\n    sleep 2s\n", "3:3: 'elif' without a matching 'if'", 3),
    ("else after else", "flow X\n  if true:\n    sleep 1s\n  else:\n    sleep 2s\n  else:\n    sleep 3s\n",
     "6:3: 'else' without a matching 'if': the 'else' at line 4 ends that if", 3),
    ("else with a condition", "flow X\n  if true:\n    sleep 1s\n  else false:\n    sleep 2s\n",
     "4:8: 'else' takes no condition: write 'elif CONDITION:'", 8),
    ("if without a condition", "flow X\n  if:\n    sleep 1s\n", "2:5: 'if' needs a condition, e.g. if amount > 100:", 5),
    ("if without a colon", "flow X\n  if true\n    sleep 1s\n", "2:10: expected ':' at the end of the 'if' line", 10),
    ("block on the if line", "flow X\n  if true: sleep 1s\n",
     "2:12: put the block on its own lines, indented under the 'if' line", 12),
    ("empty elif arm", "flow X\n  if true:\n    sleep 1s\n  elif false:\n  sleep 2s\n",
     "4:3: 'elif' needs an indented block of statements", 3),
    ("parallel holding a statement", "flow X\n  parallel:\n" + BRANCH + "    sleep 1s\n",
     "5:5: 'parallel:' holds only 'branch:' blocks: put this inside a 'branch:'", 5),
    ("branch outside parallel", "flow X\n  branch:\n    sleep 1s\n",
     "2:3: 'branch:' belongs directly inside 'parallel:' or 'race:'", 3),
    ("race with one branch", "flow X\n  race:\n" + BRANCH, "2:3: 'race:' needs at least two 'branch:' blocks", 3),
    ("parallel without branches", "flow X\n  parallel:\n  sleep 1s\n",
     "2:3: 'parallel:' needs at least one 'branch:' block", 3),
    ("empty branch", "flow X\n  race:\n    branch:\n" + BRANCH,
     "3:5: 'branch' needs an indented block of statements", 5),
    ("text after parallel", "flow X\n  parallel 2:\n" + BRANCH, "2:12: unexpected text after 'parallel': write 'parallel:' or 'parallel first 2:'",
     12),
    ("for without in", "flow X\n  for x of [1]:\n    sleep 1s\n",
     "2:9: expected 'in' after 'for x', e.g. for x in items:", 9),
    ("for without items", "flow X\n  for x in:\n    sleep 1s\n",
     "2:11: expected the list to loop over after 'in', e.g. for x in items:", 11),
    ("bad concurrency", "flow X\n  for x in [1] parallel many:\n    sleep 1s\n",
     "2:25: bad concurrency 'many': write how many items may run at once, from 1 to 1000, e.g. parallel 4", 25),
    ("concurrency zero", "flow X\n  for x in [1] parallel 0:\n    sleep 1s\n",
     "2:25: bad concurrency 0: a loop runs from 1 to 1000 items at once, e.g. parallel 4", 25),
    ("concurrency too high", "flow X\n  for x in [1] parallel 1001:\n    sleep 1s\n",
     "2:25: bad concurrency 1001: a loop runs from 1 to 1000 items at once, e.g. parallel 4", 25),
    ("parallel without a count", "flow X\n  for x in [1] parallel:\n    sleep 1s\n",
     "2:15: 'parallel' needs how many items may run at once, e.g. parallel 4", 15),
    ("empty loop body", "flow X\n  for x in [1]:\n  sleep 1s\n", "2:3: 'for' needs an indented block of statements", 3),
    ("reserved loop variable", "flow X\n  for error in [1]:\n    sleep 1s\n",
     "2:7: 'error' is a reserved word and cannot be a loop variable name", 7),
    ("loop variable named like an input", "flow X\n  input x = [1]\n  for x in x:\n    sleep 1s\n",
     "3:7: loop variable 'x' has the same name as an input (line 2)", 7),
    ("loop variable reused by an inner loop", "flow X\n  for x in [1]:\n    for x in [2]:\n      sleep 1s\n",
     "3:9: loop variable 'x' is already the variable of the loop at line 2: choose another name", 9),
    ("set without =", "flow X\n  set total 1\n", "2:13: expected '=' after 'set total', e.g. set total = 1", 13),
    ("set without a name", "flow X\n  set = 1\n",
     "2:7: expected a variable name after 'set', e.g. set total = amount * 2", 7),
    ("set a reserved name", "flow X\n  set workflow = 1\n",
     "2:7: 'workflow' is a reserved word and cannot be a variable name", 7),
    ("set a step's name", "flow X\n  step a:\n" + RUN + "  set a = 1\n",
     "4:7: variable 'a' has the same name as a step (line 2)", 7),
    ("set an input's name", "flow X\n  input n = 1\n  set n = 2\n",
     "3:7: variable 'n' has the same name as an input (line 2)", 7),
    ("set the loop variable", "flow X\n  for x in [1]:\n    set x = 2\n",
     "3:9: cannot set 'x': it is the variable of the loop at line 2", 9),
    ("workflow timeout after a step", "flow X\n  sleep 1s\n  timeout 5m\n",
     "3:3: the workflow 'timeout' must come before the first step, with the inputs", 3),
    ("workflow timeout in a block", "flow X\n  if true:\n    timeout 5m\n",
     "3:5: the workflow 'timeout' belongs at the top of the flow, with the inputs (a step's timeout goes under the "
     "step)", 5),
    ("workflow timeout twice", "flow X\n  timeout 5m\n  timeout 6m\n", "3:3: 'timeout' is given twice (first at line 2)", 3),
    ("workflow timeout of zero", "flow X\n  timeout 0s\n", "2:11: timeout must be more than 0", 11),
    ("step of a loop read after it", "flow X\n  for x in [1]:\n    step pack:\n      run [\"x\"]\n"
     "  return pack.result\n",
     "5:10: step 'pack' runs inside a loop (line 2); read its results inside the loop", 10),
    ("loop variable read after the loop", "flow X\n  for x in [1]:\n    sleep 1s\n  return x\n",
     "4:10: 'x' is the variable of the loop at line 2: it exists only inside that loop", 10),
    ("error outside a catch", "flow X\n  return error.message\n", "2:10: 'error' is only defined inside a catch block", 10),
    ("variable read before it is set", "flow X\n  return total\n  set total = 1\n",
     "2:10: variable 'total' is not set yet here (it is set at line 3)", 10),
    ("variable read in its own set", "flow X\n  set n = n + 1\n",
     "2:11: variable 'n' is not set yet here (it is set at line 2)", 11),
    ("step read inside its own catch", "flow X\n  step a:\n" + RUN + "    catch:\n      return a.result\n",
     "5:14: step 'a' has not run yet here", 14),
    ("unreachable in a nested block", "flow X\n  if true:\n    fail \"no\"\n    sleep 1s\n",
     "4:5: unreachable: this statement comes after fail at line 3", 5),
    ("duplicate step in a branch", "flow X\n  step a:\n" + RUN + "  parallel:\n    branch:\n      step a:\n"
     "        run [\"y\"]\n", "6:12: step 'a' is defined twice (first at line 2)", 12),
    ("now() in an input default", "flow X\n  input t = now()\n",
     "2:13: input defaults must be constants: now() cannot be used here", 13),
    ("now() with an argument", "flow X\n  return now(1)\n", "2:10: now() takes 0 arguments (1 given)", 10),
]


@pytest.mark.parametrize("text, message, caret", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_new_mistake_is_reported_at_the_offending_token(text, message, caret):
    first, caret_col = first_error(text)

    assert first == f"flows/X.flow:{message}"
    assert caret_col == caret


def test_every_problem_in_nested_blocks_is_reported_in_one_pass():
    text = (
        "flow X\n"
        "  if true:\n"
        "    slep 1s\n"
        "  else:\n"
        "    parallel:\n"
        "      branch:\n"
        "        return chrage\n"
        "  for x in [1] parallel 0:\n"
        "    step a:\n"
        "      wait signal go\n"
        "      retry 1\n"
    )

    with pytest.raises(FlowSyntaxError) as info:
        parse_flow(text, "flows/X.flow")

    assert [(d.line, d.col) for d in info.value.diagnostics] == [(3, 5), (7, 16), (8, 25), (11, 7)]
