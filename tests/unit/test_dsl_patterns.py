"""The Workflow Patterns constructs of the DSL (docs/dsl.md): while, repeat/until, break/continue,
signal loops, lock, ``on signal`` handlers, ``parallel first K [keep rest]``, ``branch if``,
``for ... first K``, detached flow steps and wait steps that tell how they ended.

Each parses into exactly the IR of ``localflow.ir``, round-trips through its JSON, and every
mistake is reported at the offending token; the new words stay usable as names; ``lf graph``
draws them.
"""

from __future__ import annotations

import io
import json
import re
import textwrap

import pytest
from rich.console import Console

from localflow import ir
from localflow.cli.graph_render import flow_mermaid, flow_tree
from localflow.dsl import parse_flow
from localflow.dsl.parser import MAX_NESTING
from localflow.errors import FlowSyntaxError

FILE = "flows/X.flow"
E = ir.Expr
SLEEP = "    sleep 1s\n"


def parse(text: str) -> ir.Flow:
    return parse_flow(textwrap.dedent(text), FILE)


def errors(text: str) -> list[str]:
    """Every diagnostic as ``line:col: message``."""
    with pytest.raises(FlowSyntaxError) as info:
        parse_flow(text, FILE)
    return [f"{d.line}:{d.col}: {d.message}" for d in info.value.diagnostics]


def round_trips(flow: ir.Flow) -> bool:
    return ir.from_json(json.loads(json.dumps(ir.to_json(flow)))) == flow


# --- each construct into its IR ------------------------------------------------------------


def test_while_has_its_condition_bound_and_body():
    flow = parse("""\
        flow X
          set n = 0
          while n < 3 max 5:
            set n = n + 1
          while max(n, 1) > 3:
            sleep 1s
        """)

    assert flow.body[1] == ir.While("while-1", E("n < 3", 3, 9), (ir.Set("n", E("n + 1", 4, 13), 4, 5),), 5, 3, 3)
    assert flow.body[2] == ir.While("while-2", E("max(n, 1) > 3", 5, 9), (ir.Sleep("sleep-1", 1000, 6, 5),),
                                    ir.DEFAULT_MAX_ITERATIONS, 5, 3)


def test_repeat_takes_the_until_line_after_its_block():
    flow = parse("""\
        flow X
          repeat:
            step poll:
              run ["poll.sh"]
          until poll.result.done
          repeat max 7:
            sleep 1s
          until true
        """)

    first, second = flow.body
    assert isinstance(first, ir.Repeat) and first.id == "repeat-1" and (first.line, first.col) == (2, 3)
    assert [s.name for s in first.body] == ["poll"]
    assert first.until == E("poll.result.done", 5, 9)
    assert first.max_iterations == ir.DEFAULT_MAX_ITERATIONS
    assert second == ir.Repeat("repeat-2", (ir.Sleep("sleep-1", 1000, 7, 5),), E("true", 8, 9), 7, 6, 3)


def test_break_and_continue_are_bare_statements_at_any_depth_in_a_loop():
    flow = parse("""\
        flow X
          for x in [1, 2]:
            if x == 1:
              continue
            parallel:
              branch:
                break
        """)

    loop = flow.body[0]
    assert loop.body[0].branches[0].body == (ir.Continue(4, 7),)
    assert loop.body[1].branches == ((ir.Break(7, 9),),)


def test_signal_loop_with_each_closing_and_its_options():
    flow = parse("""\
        flow X
          for order in signal order until signal done max 10 parallel 4:
            sleep 1s
          set seen = 0
          for note in signals note until seen > 2:
            set seen = seen + 1
          for x in signal ping:
            sleep 1s
        """)

    closed, until, plain = flow.body[0], flow.body[2], flow.body[3]
    assert closed == ir.SignalLoop("for-1", "order", "order", (ir.Sleep("sleep-1", 1000, 3, 5),), 4, "done", None,
                                   10, 2, 3)
    assert until == ir.SignalLoop("for-2", "note", "note", (ir.Set("seen", E("seen + 1", 6, 16), 6, 5),), 1,
                                  None, E("seen > 2", 5, 34), ir.DEFAULT_MAX_ITERATIONS, 5, 3)
    assert (plain.signal, plain.close_signal, plain.until, plain.concurrency) == ("ping", None, None, 1)


def test_signals_followed_by_no_signal_name_is_still_a_list_loop():
    flow = parse("""\
        flow X
          input signals = [1, 2]
          for s in signals:
            sleep 1s
          for s in signals parallel 2:
            sleep 1s
          for s in signals + [3]:
            sleep 1s
        """)

    assert [type(s).__name__ for s in flow.body] == ["For", "For", "For"]
    assert [(s.items.source, s.concurrency) for s in flow.body] == [("signals", 1), ("signals", 2),
                                                                      ("signals + [3]", 1)]


def test_lock_has_its_name_expression_and_scope():
    flow = parse("""\
        flow X
          input cid = "c-1"
          lock "printer":
            sleep 1s
          lock f"customer-{cid}" global:
            sleep 2s
          lock "a global b":
            sleep 3s
        """)

    assert flow.body[0] == ir.Lock("lock-1", E('"printer"', 3, 8), (ir.Sleep("sleep-1", 1000, 4, 5),), "workflow", 3, 3)
    assert flow.body[1] == ir.Lock("lock-2", E('f"customer-{cid}"', 5, 8), (ir.Sleep("sleep-2", 2000, 6, 5),),
                                   "home", 5, 3)
    assert (flow.body[2].name.source, flow.body[2].scope) == ('"a global b"', "workflow")


def test_handlers_make_their_block_one_scope_around_the_rest():
    flow = parse("""\
        flow X
          input job = "j"
          on signal pause as why:
            set paused = why
          on signal stop:
            sleep 1s
          set paused = null
          if true:
            on signal poke:
              sleep 2s
            sleep 3s
        """)

    [scope] = flow.body
    assert scope.id == "scope-1" and (scope.line, scope.col) == (3, 3)
    assert scope.handlers == (
        ir.Handler("pause", "why", (ir.Set("paused", E("why", 4, 18), 4, 5),), 3, 3),
        ir.Handler("stop", None, (ir.Sleep("sleep-1", 1000, 6, 5),), 5, 3),
    )
    assert scope.body[0] == ir.Set("paused", E("null", 7, 16), 7, 3)
    inner = scope.body[1].branches[0].body
    assert inner == (ir.Scope("scope-2", (ir.Handler("poke", None, (ir.Sleep("sleep-2", 2000, 10, 7),), 9, 5),),
                              (ir.Sleep("sleep-3", 3000, 11, 5),), 9, 5),)


def test_parallel_first_keep_rest_and_branch_conditions():
    flow = parse("""\
        flow X
          input n = 2
          parallel first 1 keep rest:
            branch if n > 1:
              sleep 1s
            branch:
              sleep 2s
          parallel first 2:
            branch:
              sleep 3s
            branch:
              sleep 4s
          parallel:
            branch:
              sleep 5s
        """)

    first_keep, first, plain = flow.body
    branches = ((ir.Sleep("sleep-1", 1000, 5, 7),), (ir.Sleep("sleep-2", 2000, 7, 7),))
    assert first_keep == ir.Parallel("parallel-1", branches, False, 3, 3, first=1, keep_rest=True,
                                     conditions=(E("n > 1", 4, 15), None))
    assert (first.first, first.keep_rest, first.conditions) == (2, None, None)
    assert (plain.first, plain.keep_rest, plain.conditions) == (None, None, None)


def test_for_first_and_keep_rest_in_any_order_with_parallel():
    flow = parse("""\
        flow X
          for a in [1, 2] parallel 2 first 1:
            sleep 1s
          for b in [1, 2] first 1 keep rest parallel 3:
            sleep 1s
          for c in [1, 2]:
            sleep 1s
        """)

    assert [(f.concurrency, f.first, f.keep_rest) for f in flow.body] == [(2, 1, None), (3, 1, True), (1, None, None)]


def test_detached_flow_step_and_wait_steps_that_tell_how_they_ended():
    flow = parse("""\
        flow X
          step kid:
            flow Child detached
            input {"a": 1}
          step other:
            flow Child
          step w:
            wait signal go timeout 1s
            catch timeout:
              sleep 0s
          return [kid.result.workflow_id, w.ended, w.timed_out]
        """)

    kid, other, wait = flow.body[:3]
    assert kid == ir.ChildFlow("kid", "Child", E('{"a": 1}', 4, 11), (), 2, 3, detached=True)
    assert other.detached is None
    assert wait.tells_ending is True


def test_statement_ids_count_each_kind_in_document_order():
    flow = parse("""\
        flow X
          on signal a:
            sleep 1s
          for x in [1]:
            while true:
              break
          for y in signal b:
            lock "l":
              repeat:
                on signal c:
                  sleep 1s
                sleep 1s
              until true
          while false:
            lock "m":
              sleep 1s
          for z in [2]:
            sleep 1s
        """)

    ids = [s.id for s in ir.walk(flow.body) if hasattr(s, "id") and not isinstance(s, ir.Sleep)]
    assert ids == ["scope-1", "for-1", "while-1", "for-2", "lock-1", "repeat-1", "scope-2", "while-2", "lock-2",
                   "for-3"]


# --- the old JSON stays the same ------------------------------------------------------------


def test_a_flow_without_the_new_options_pins_the_same_json_as_before():
    flow = parse("""\
        flow X
          parallel:
            branch:
              sleep 1s
          for x in [1] parallel 2:
            sleep 1s
          step kid:
            flow Child
        """)

    text = json.dumps(ir.to_json(flow))
    for field in ("first", "keep_rest", "conditions", "detached"):
        assert f'"{field}"' not in text


NEW_NODES = parse("""\
    flow X
      on signal stop as why:
        set stopped = why
      set n = 1
      while n < 3 max 9:
        set n = n + 1
        continue
      repeat max 2:
        step poll:
          run ["poll.sh"]
      until poll.result
      for s in signal go until signal done max 4 parallel 2:
        lock f"l-{s}" global:
          sleep 1s
        break
      for t in signal go until n > 5:
        sleep 1s
      parallel first 1 keep rest:
        branch if n > 0:
          sleep 1s
        branch:
          sleep 1s
      for i in [1, 2] parallel 2 first 1 keep rest:
        sleep 1s
      step kid:
        flow Child detached
      step w:
        wait signal ok
    """)


@pytest.mark.parametrize("kind", [ir.Scope, ir.Handler, ir.While, ir.Continue, ir.Repeat, ir.SignalLoop, ir.Lock,
                                  ir.Break, ir.Parallel, ir.For, ir.ChildFlow, ir.WaitSignal],
                         ids=lambda k: k.__name__)
def test_each_new_node_round_trips_through_json(kind):
    nodes = [s for s in ir.walk(NEW_NODES.body) if type(s) is kind]
    nodes += [h for s in ir.walk(NEW_NODES.body) if isinstance(s, ir.Scope) for h in s.handlers if kind is ir.Handler]

    assert nodes
    for node in nodes:
        assert ir.from_json(json.loads(json.dumps(ir.to_json(node)))) == node
    assert round_trips(NEW_NODES)


# --- the new words are still names ------------------------------------------------------------


def test_lock_until_on_and_repeat_remain_usable_as_names():
    flow = parse("""\
        flow X
          input until = 3
          step lock:
            run ["lock.sh"]
          set on = lock.result
          set repeat = on
          for first in [1]:
            set max_seen = first
          step keep:
            wait signal lock
          step detached:
            flow Child
          return [until, repeat, keep.result, detached.result]
        """)

    assert [s.name for s in ir.walk(flow.body) if isinstance(s, ir.Set)] == ["on", "repeat", "max_seen"]
    assert flow.step_names() == ("lock", "keep", "detached")


def test_existing_flows_in_the_repository_still_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "flows"
    for path in sorted(root.rglob("*.flow")):
        if "patterns" not in path.parts:
            assert parse_flow(path.read_text(), str(path)).name


# --- mistakes, each at the offending token ------------------------------------------------------

CASES = [
    ("break outside a loop", "flow X\n  break\n", ["2:3: 'break' is only allowed inside a loop (for, while, repeat)"]),
    ("continue in a handler outside a loop", "flow X\n  on signal a:\n    continue\n  sleep 1s\n",
     ["3:5: 'continue' is only allowed inside a loop (for, while, repeat)"]),
    ("text after break", "flow X\n  while true:\n    break now\n",
     ["3:11: 'break' takes nothing after it: write 'break' alone on its line"]),
    ("unreachable after break", "flow X\n  for x in [1]:\n    break\n    sleep 1s\n",
     ["4:5: unreachable: this statement comes after break at line 3"]),
    ("unreachable after continue", "flow X\n  while true:\n    if true:\n      continue\n      sleep 1s\n",
     ["5:7: unreachable: this statement comes after continue at line 4"]),
    ("while without condition", "flow X\n  while:\n" + SLEEP,
     ["2:8: 'while' needs a condition, e.g. while pending > 0:"]),
    ("while without colon", "flow X\n  while true\n" + SLEEP, ["2:13: expected ':' at the end of the 'while' line"]),
    ("while max without count", "flow X\n  while true max:\n" + SLEEP,
     ["2:13: 'max' needs the most iterations, e.g. max 100"]),
    ("while bad max", "flow X\n  while true max many:\n" + SLEEP,
     ["2:18: bad max count 'many': write a whole number, e.g. max 100"]),
    ("while max zero", "flow X\n  while true max 0:\n" + SLEEP,
     ["2:18: bad max 0: a loop runs from 1 to 1000000 iterations, e.g. max 100"]),
    ("while max too high", "flow X\n  while true max 1000001:\n" + SLEEP,
     ["2:18: bad max 1000001: a loop runs from 1 to 1000000 iterations, e.g. max 100"]),
    ("while with parallel", "flow X\n  while true parallel 2:\n" + SLEEP,
     ["2:14: 'parallel' does not go with a 'while' loop: it takes 'max 100'"]),
    ("max given twice", "flow X\n  while true max 2 max 3:\n" + SLEEP, ["2:20: 'max' is given twice"]),
    ("empty while", "flow X\n  while true:\n  sleep 1s\n", ["2:3: 'while' needs an indented block of statements"]),
    ("repeat without until", "flow X\n  repeat:\n" + SLEEP,
     ["2:3: 'repeat' needs an 'until CONDITION' line right after its block, at the same indentation as 'repeat'"]),
    ("until without repeat", "flow X\n  sleep 1s\n  until true\n",
     ["3:3: 'until' without a matching 'repeat': it goes on the line right after the repeat's block, "
      "at the same indentation as 'repeat'"]),
    ("until after another statement", "flow X\n  repeat:\n    sleep 1s\n  sleep 2s\n  until true\n",
     ["2:3: 'repeat' needs an 'until CONDITION' line right after its block, at the same indentation as 'repeat'",
      "5:3: 'until' without a matching 'repeat': it goes on the line right after the repeat's block, "
      "at the same indentation as 'repeat'"]),
    ("until with a colon", "flow X\n  repeat:\n    sleep 1s\n  until true:\n",
     ["4:13: 'until' takes no ':' and no block: write 'until CONDITION' on the line after the repeat's block"]),
    ("until without condition", "flow X\n  repeat:\n    sleep 1s\n  until\n",
     ["4:8: 'until' needs a condition, e.g. until check.result.done"]),
    ("until with a block", "flow X\n  repeat:\n    sleep 1s\n  until true\n    sleep 2s\n",
     ["5:5: unexpected indent: 'until' does not open a block"]),
    ("text after repeat", "flow X\n  repeat 3:\n    sleep 1s\n  until true\n",
     ["2:10: unexpected text after 'repeat': write 'repeat:' or 'repeat max 100:'"]),
    ("repeat max zero", "flow X\n  repeat max 0:\n    sleep 1s\n  until true\n",
     ["2:14: bad max 0: a loop runs from 1 to 1000000 iterations, e.g. max 100"]),
    ("signal loop without a name", "flow X\n  for x in signal:\n" + SLEEP,
     ["2:18: expected a signal name after 'signal', e.g. for x in signal order:"]),
    ("signal loop reserved name", "flow X\n  for x in signal if:\n" + SLEEP,
     ["2:19: 'if' is a reserved word and cannot be a signal name"]),
    ("signal loop closed by itself", "flow X\n  for x in signal go until signal go:\n" + SLEEP,
     ["2:35: a signal loop cannot be closed by its own signal 'go': 'until signal' needs another signal"]),
    ("signal loop until signal without name", "flow X\n  for x in signal go until signal:\n" + SLEEP,
     ["2:34: expected the closing signal's name after 'until signal', e.g. until signal done"]),
    ("signal loop until without condition", "flow X\n  for x in signal go until:\n" + SLEEP,
     ["2:27: 'until' needs a condition or a closing signal, e.g. until signal done or until len(orders) >= 10"]),
    ("signal loop junk", "flow X\n  for x in signal go soon:\n" + SLEEP,
     ["2:22: unexpected text after the signal name: write 'until signal CLOSE', 'until CONDITION', 'max N', "
      "'parallel N' or 'keep rest', e.g. for order in signal order until signal done parallel 4:"]),
    ("signal loop parallel zero", "flow X\n  for x in signal go parallel 0:\n" + SLEEP,
     ["2:31: bad concurrency 0: a loop runs from 1 to 1000 signals at once, e.g. parallel 4"]),
    ("signal loop first", "flow X\n  for x in signal go first 1:\n" + SLEEP,
     ["2:22: 'first' does not go with a signal loop: it takes 'max 100' and 'parallel 4'"]),
    ("signal loop until reads its variable", "flow X\n  for x in signal go until x > 1:\n" + SLEEP,
     ["2:28: 'x' is the variable of the loop at line 2: it exists only inside that loop"]),
    ("signal loop until reads its steps",
     "flow X\n  for x in signal go until s.result:\n    step s:\n      run [\"a\"]\n",
     ["2:28: step 's' runs inside a loop (line 2); read its results inside the loop"]),
    ("for first zero", "flow X\n  for x in [1] first 0:\n" + SLEEP,
     ["2:22: bad first 0: write from 1 to 1000, e.g. first 2"]),
    ("for first too high", "flow X\n  for x in [1] first 1001:\n" + SLEEP,
     ["2:22: bad first 1001: write from 1 to 1000, e.g. first 2"]),
    ("keep rest without first", "flow X\n  for x in [1] keep rest:\n" + SLEEP,
     ["2:16: 'keep rest' goes with 'first K': write e.g. first 1 keep rest"]),
    ("keep without rest", "flow X\n  for x in [1] first 1 keep going:\n" + SLEEP,
     ["2:29: expected 'keep rest', e.g. first 1 keep rest"]),
    ("for max", "flow X\n  for x in [1] max 3:\n" + SLEEP,
     ["2:16: 'max' does not go with a 'for' loop: it takes 'parallel 4' and 'first 2'"]),
    ("parallel first more than branches", "flow X\n  parallel first 3:\n    branch:\n      sleep 1s\n"
     "    branch:\n      sleep 1s\n",
     ["2:18: 'first 3' is more than the 2 branches of this parallel: it would never join"]),
    ("parallel first zero", "flow X\n  parallel first 0:\n    branch:\n      sleep 1s\n",
     ["2:18: bad first 0: write from 1 to 1000, e.g. first 2"]),
    ("parallel first without count", "flow X\n  parallel first:\n    branch:\n      sleep 1s\n",
     ["2:11: 'first' needs how many must end before it goes on, e.g. first 2"]),
    ("parallel junk", "flow X\n  parallel all:\n    branch:\n      sleep 1s\n",
     ["2:12: unexpected text after 'parallel': write 'parallel:' or 'parallel first 2:'"]),
    ("race first", "flow X\n  race first 1:\n    branch:\n      sleep 1s\n    branch:\n      sleep 1s\n",
     ["2:8: unexpected text after 'race': write 'race:'"]),
    ("branch if in race", "flow X\n  race:\n    branch if true:\n      sleep 1s\n    branch:\n      sleep 1s\n",
     ["3:5: 'branch if' is not allowed in 'race:': every branch of a race runs (write 'parallel first 1:' to race "
      "branches that have conditions)"]),
    ("branch if without condition", "flow X\n  parallel:\n    branch if:\n      sleep 1s\n",
     ["3:14: 'branch if' needs a condition, e.g. branch if amount > 100:"]),
    ("branch if reads a sibling branch's step",
     "flow X\n  parallel:\n    branch:\n      step a:\n        run [\"a\"]\n    branch if a.result:\n      sleep 1s\n",
     ["6:15: step 'a' has not run yet here"]),
    ("detached with catch", "flow X\n  step kid:\n    flow Child detached\n    catch:\n      sleep 1s\n",
     ["4:5: a detached flow step cannot have catch clauses: it completes as soon as the child has started, "
      "so the child's failure never reaches it"]),
    ("flow step junk", "flow X\n  step kid:\n    flow Child later\n",
     ["3:16: unexpected text after the flow name: write 'flow NAME' or 'flow NAME detached'"]),
    ("lock without name", "flow X\n  lock:\n" + SLEEP,
     ["2:7: 'lock' needs the lock's name, e.g. lock \"printer\": or lock f\"customer-{cid}\" global:"]),
    ("lock with parallel", "flow X\n  lock \"a\" parallel 2:\n" + SLEEP,
     ["2:12: 'parallel' does not go with 'lock': it takes 'global'"]),
    ("lock reads a later step", "flow X\n  lock s.result:\n" + SLEEP + "  step s:\n    run [\"a\"]\n",
     ["2:8: step 's' has not run yet here"]),
    ("handler after a statement", "flow X\n  sleep 1s\n  on signal a:\n    sleep 2s\n",
     ["3:3: 'on signal' handlers come first in their block: move this one above the block's other statements"]),
    ("only handlers", "flow X\n  on signal a:\n    sleep 2s\n",
     ["2:3: 'on signal' handlers need statements after them in their block: they run while the rest of the block "
      "runs"]),
    ("duplicate handler", "flow X\n  on signal a:\n    sleep 1s\n  on signal a as d:\n    sleep 2s\n  sleep 3s\n",
     ["4:13: signal 'a' already has a handler in this block (line 2)"]),
    ("on without signal", "flow X\n  on sig a:\n    sleep 1s\n  sleep 2s\n",
     ["2:6: expected 'signal' after 'on', e.g. on signal cancel as reason:"]),
    ("handler without a name", "flow X\n  on signal:\n    sleep 1s\n  sleep 2s\n",
     ["2:12: expected a signal name after 'on signal', e.g. on signal cancel as reason:"]),
    ("handler junk after name", "flow X\n  on signal a b:\n    sleep 1s\n  sleep 2s\n",
     ["2:15: expected 'as VARIABLE' or ':' after the signal name, e.g. on signal cancel as reason:"]),
    ("handler as without variable", "flow X\n  on signal a as:\n    sleep 1s\n  sleep 2s\n",
     ["2:17: expected a variable name after 'as', e.g. on signal cancel as reason:"]),
    ("handler reserved variable", "flow X\n  on signal a as error:\n    sleep 1s\n  sleep 2s\n",
     ["2:18: 'error' is a reserved word and cannot be a variable name"]),
    ("handler variable like an input", "flow X\n  input d = 1\n  on signal a as d:\n    sleep 1s\n  sleep 2s\n",
     ["3:18: variable 'd' has the same name as an input (line 2)"]),
    ("handler variable outside", "flow X\n  on signal a as d:\n    sleep 1s\n  return d\n",
     ["4:10: 'd' is the variable of the 'on signal' handler at line 2: it exists only inside that handler"]),
    ("handler step outside", "flow X\n  on signal a:\n    step s:\n      run [\"a\"]\n  return s.result\n",
     ["5:10: step 's' runs inside an 'on signal' handler (line 2); read its results inside that handler"]),
    ("set a handler variable", "flow X\n  on signal a as d:\n    set d = 1\n  sleep 1s\n",
     ["3:9: cannot set 'd': it is the variable of the 'on signal' handler at line 2"]),
    ("loop variable like the handler's", "flow X\n  on signal a as d:\n    for d in [1]:\n      sleep 1s\n"
     "  sleep 1s\n",
     ["3:9: loop variable 'd' is already the variable of the 'on signal' handler at line 2: choose another name"]),
    ("while step outside", "flow X\n  while true:\n    step s:\n      run [\"a\"]\n    break\n  return s.result\n",
     ["6:10: step 's' runs inside a loop (line 2); read its results inside the loop"]),
    ("repeat step outside", "flow X\n  repeat:\n    step s:\n      run [\"a\"]\n  until s.result\n  return s.result\n",
     ["6:10: step 's' runs inside a loop (line 2); read its results inside the loop"]),
    ("while reads a body step", "flow X\n  while s.result:\n    step s:\n      run [\"a\"]\n",
     ["2:9: step 's' has not run yet here"]),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mistake_is_reported_at_the_offending_token(text, expected):
    assert errors(text) == expected


def test_every_problem_in_the_new_blocks_is_reported_in_one_pass():
    text = ("flow X\n"
            "  while true max 0:\n"      # 2
            "    sleep 1x\n"              # 3
            "  repeat:\n"                 # 4
            "    break\n"                 # 5
            "    sleep 1s\n"              # 6
            "  until nope\n"              # 7
            "  lock \"a\":\n"             # 8
            "    on signal b:\n"          # 9
            "      sleep 1s\n")           # 10
    found = errors(text)

    assert [m.split(":")[0] for m in found] == ["2", "3", "6", "7", "9"]


# --- nesting -------------------------------------------------------------------------------


def nested(levels: int, opener: str, closer: str = "") -> str:
    """``levels`` blocks of one kind inside each other; ``closer`` follows each block (repeat's until)."""
    lines, pad = ["flow Deep"], "  "
    for level in range(levels):
        lines.append(pad + opener.format(level=level))
        pad += "  "
    lines.append(pad + "sleep 0s")
    if closer:
        for level in range(levels, 0, -1):
            lines.append("  " * level + closer)
    return "\n".join(lines) + "\n"


OPENERS = {"while": ("while true:", ""), "repeat": ("repeat:", "until true"), "lock": ('lock "l":', ""),
           "signal for": ("for s{level} in signal go:", "")}


@pytest.mark.parametrize("kind", OPENERS)
def test_each_new_block_counts_one_level_of_nesting(kind):
    opener, closer = OPENERS[kind]
    assert round_trips(parse_flow(nested(MAX_NESTING, opener, closer), FILE))

    with pytest.raises(FlowSyntaxError) as info:
        parse_flow(nested(MAX_NESTING + 1, opener, closer), FILE)
    assert any("nested too deeply" in d.message for d in info.value.diagnostics)


def test_a_handler_body_counts_one_level_but_the_rest_of_its_block_none():
    def handlers(levels: int) -> str:
        lines, pad = ["flow Deep"], "  "
        for _ in range(levels):
            lines += [pad + "on signal s:", pad + "  sleep 0s"]
            pad += "  "
            lines.append(pad[:-2] + "if true:")
        lines.append(pad + "sleep 0s")
        return "\n".join(lines) + "\n"

    # each level: a scope (no level) whose rest is an if (one level), beside a handler (one level)
    flow = parse_flow(handlers(MAX_NESTING), FILE)
    assert sum(isinstance(s, ir.Scope) for s in ir.walk(flow.body)) == MAX_NESTING
    with pytest.raises(FlowSyntaxError):
        parse_flow(handlers(MAX_NESTING + 1), FILE)


# --- lf graph --------------------------------------------------------------------------------


def render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


def test_the_tree_shows_every_new_construct_with_its_options():
    text = render(flow_tree(NEW_NODES))

    for fragment in ("handle signals stop", "on signal stop as why", "while n < 3 (max 9)", "continue",
                     "repeat (max 2)", "until poll.result", "for s in signal go (until signal done, max 4, parallel 2)",
                     'lock f"l-{s}" (global)', "break", "for t in signal go (until n > 5, max 10000)",
                     "parallel (first 1, keep rest)", "branch 1 if n > 0", "branch 2",
                     "for i in [1, 2] (parallel 2, first 1, keep rest)", "step kid: child flow Child detached"):
        assert fragment in text, fragment


NODE = re.compile(r'^    (n\d+)(\["[^"]*"\]|\{"[^"]*"\})$')
EDGE = re.compile(r"^    (n\d+) (-->|-\.->)(?:\|([^|]*)\|)? (n\d+)$")


def test_the_mermaid_chart_draws_loops_jumps_locks_and_handlers():
    nodes, edges = {}, []
    for line in flow_mermaid(NEW_NODES).splitlines()[2:]:
        if m := NODE.match(line):
            nodes[m.group(1)] = m.group(2)[2:-2]
        else:
            m = EDGE.match(line)
            assert m, line
            edges.append((m.group(1), m.group(3), m.group(4)))
    n = {label: nid for nid, label in nodes.items()}

    assert all(s in nodes and t in nodes for s, _, t in edges)
    assert (n["continue"], "again", n["while n #60; 3 (max 9)"]) in edges
    assert (n["until poll.result"], "no", n["repeat (max 2)"]) in edges
    loop = n["for s in signal go (until signal done, max 4, parallel 2)"]
    assert (n["break"], None, n["for t in signal go (until n #62; 5, max 10000)"]) in edges
    assert (loop, "closed", n["for t in signal go (until n #62; 5, max 10000)"]) in edges
    assert (n["handle signals stop"], "on signal stop as why", n["set stopped = why"]) in edges
    assert n["first 1 branch done (the rest keep running)"]
    assert any(label == "branch 1 if n #62; 0" for _, label, _ in edges)
