"""Replay is strict (canonical JSON, not ==) and complete (a flow that would now decide more is caught).

Histories are recorded by the real engine and executor on the in-memory world
(tests/unit/test_executor_inprocess.py), then replayed against edited flows.
"""

from __future__ import annotations

import pytest

from localflow.core.replay import replay
from localflow.dsl import parse_flow
from localflow.errors import NondeterminismError
from localflow.runner.scripted import succeed
from localflow.supervisor.loop import drive
from test_executor_inprocess import run_to_end, start, world


def recorded(text: str, signals: tuple = ()) -> list:
    """Run ``text`` to its end; ``signals`` are sent once it has started (it may be waiting for them)."""
    engine, executor, _, _ = world(lambda spec: succeed(spec.step))
    workflow_id = start(engine, text)
    executor.reconcile(workflow_id)
    for name in signals:
        engine.signal(workflow_id, name, {"ok": True})
    return run_to_end(engine, executor, workflow_id).events


def waiting_at_w(text: str):
    """Run ``text`` until its step ``w`` waits (for a signal), and nothing is running."""
    engine, executor, _, _ = world(lambda spec: succeed())
    workflow_id = start(engine, text)
    executor.mark_dirty(workflow_id)
    drive(executor, executor.reconcile, period_s=3600,
          until=lambda: engine.state_of(workflow_id).current_label == "w" and not executor.busy)
    return engine, executor, workflow_id


def edited(text: str):
    return parse_flow(text, "flows/T.flow")


LOOP = 'flow T\n  for x in ["a", "b", "c", "d"]{par}:\n    step s:\n      run ["echo", x]\n  return 1\n'


def test_a_history_replays_against_its_own_flow():
    events = recorded(LOOP.format(par=""))
    assert replay(events).status == "completed"


@pytest.mark.parametrize("recorded_par, now_par", [("", " parallel 2"), (" parallel 3", " parallel 6"),
                                                   (" parallel 3", " parallel 2")])
def test_a_loop_with_other_parallelism_is_caught(recorded_par, now_par):
    events = recorded(LOOP.format(par=recorded_par))
    with pytest.raises(NondeterminismError):
        replay(events, flow=edited(LOOP.format(par=now_par)))


def test_a_newly_added_wait_timeout_is_caught():
    before = 'flow T\n  step a:\n    run ["x"]\n  step w:\n    wait signal go\n  return w.result\n'
    after = before.replace("wait signal go", "wait signal go timeout 1h")
    engine, executor, workflow_id = waiting_at_w(before)
    engine.signal(workflow_id, "go", 1)
    events = run_to_end(engine, executor, workflow_id).events

    assert replay(events).status == "completed"
    with pytest.raises(NondeterminismError) as info:
        replay(events, flow=edited(after))
    assert "signal-timeout" in str(info.value)


@pytest.mark.parametrize("value", ["true", "1.0"])
def test_values_compare_as_json_so_1_is_not_true_or_1_0(value):
    events = recorded("flow T\n  set x = 1\n  return x\n")
    with pytest.raises(NondeterminismError):
        replay(events, flow=edited(f"flow T\n  set x = {value}\n  return x\n"))


def test_an_unfinished_history_whose_flow_would_now_do_more_is_caught():
    before = 'flow T\n  step a:\n    run ["x"]\n  step w:\n    wait signal go\n  return w.result\n'
    after = before.replace("  step w:", '  step b:\n    run ["y"]\n  step w:')
    engine, executor, workflow_id = waiting_at_w(before)
    events = engine.load(workflow_id).events  # a ran; now waiting, nothing more to decide

    assert replay(events).status == "running"
    with pytest.raises(NondeterminismError) as info:
        replay(events, flow=edited(after))
    assert "no such decision" in str(info.value)


def test_a_transaction_of_thousands_of_decisions_is_recorded_whole_and_replays():
    events = recorded("flow T\n  input count = 1500\n  set total = 0\n  for n in range(count):\n"
                      "    set total = total + n\n  return total\n")

    assert replay(events).result == sum(range(1500))
    assert sum(1 for e in events if e.end) == 2  # WorkflowStarted, then one transaction for it all


def test_a_batch_cut_short_by_a_crash_is_not_a_divergence():
    events = recorded('flow T\n  set total = 0\n  for n in range(5):\n    set total = total + n\n'
                      '  step show:\n    run ["echo"]\n  return total\n')
    cut = events[:3]  # part of the first transaction: a partial write, or power lost before the fsync
    assert not cut[-1].end

    assert replay(cut).status == "running"
