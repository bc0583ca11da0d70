"""The concurrency bounds' bookkeeping (supervisor/admission.py): room, waiting, first come first served."""

from __future__ import annotations

from localflow.dsl import parse_flow
from localflow.supervisor.admission import Admission
from test_executor_inprocess import run_to_end, start, world

from localflow.core import events as ev
from localflow.runner.scripted import succeed

ALL = (("all activities", 2),)


def test_attempts_start_while_there_is_room_then_wait_in_scheduling_order():
    gate = Admission(2)
    assert gate.admit(("a", "s", 1), 10, ALL) is True
    assert gate.admit(("b", "s", 1), 11, ALL) is True
    assert gate.admit(("d", "s", 1), 13, ALL) == "all activities (at most 2)"
    assert gate.admit(("c", "s", 1), 12, ALL) == "all activities (at most 2)"
    assert gate.granted() == []
    gate.release(("a", "s", 1))
    assert gate.granted() == [("c", "s", 1)]  # scheduled earlier than d
    gate.release(("b", "s", 1))
    assert gate.admit(("e", "s", 1), 14, ALL) != True  # noqa: E712 - d waits longer: e must not jump it
    assert gate.granted() == [("d", "s", 1)]


def test_a_waiting_attempt_blocks_only_attempts_under_the_same_bound():
    gate = Admission(0)
    slow = (("step work of flow F", 1),)
    other = (("flow G", 5),)
    assert gate.admit(("a", "work", 1), 1, slow) is True
    assert gate.admit(("b", "work", 1), 2, slow) != True  # noqa: E712
    assert gate.admit(("c", "x", 1), 3, other) is True


def test_bounds_come_from_the_pinned_flow():
    flow = parse_flow('flow F\n  concurrency 3\n  step work:\n    run ["x"]\n    concurrency 1\n'
                      '  for i in [1, 2]:\n    step inner:\n      run ["y"]\n  return 1\n', "flows/F.flow")

    class State:
        pass

    state = State()
    state.flow = flow
    gate = Admission(8)
    assert gate.bounds_for(state, "work") == (("all activities", 8), ("flow F", 3), ("step work of flow F", 1))
    assert gate.bounds_for(state, "inner[0]") == (("all activities", 8), ("flow F", 3))
    assert gate.bounds_for(state, "undo:work") == (("all activities", 8), ("flow F", 3))


def test_in_process_every_attempt_that_waited_is_recorded_and_all_complete():
    engine, executor, runner, clock = world(lambda spec: succeed(spec.step))
    executor.admission.max_activities = 1
    text = 'flow T\n  parallel:\n    branch:\n      step a:\n        run ["a"]\n    branch:\n      step b:\n        run ["b"]\n  return 1\n'
    workflow_id = start(engine, text)
    loaded = run_to_end(engine, executor, workflow_id)
    assert loaded.state.status == "completed"
    queued = [e for e in loaded.events if isinstance(e, ev.ActivityQueued)]
    assert len(queued) == 1 and queued[0].waiting_for == "all activities (at most 1)"


def test_a_waiting_attempt_that_is_no_longer_wanted_gives_way():
    """(Found by review: a cancelled workflow's queued attempt kept every later one waiting.)"""
    import time as _time

    engine, executor, runner, clock = world(lambda spec: None if spec.workflow_id == "w1" else succeed(1))
    executor.admission.max_activities = 1
    text = 'flow T\n  step a:\n    run ["a"]\n  return 1\n'
    for workflow_id in ("w1", "w2", "w3"):
        start(engine, text, workflow_id=workflow_id)
        executor.mark_dirty(workflow_id)
        executor.reconcile(workflow_id)
    assert [s.workflow_id for s in runner.started] == ["w1"]
    engine.cancel("w2", "not needed")
    executor.reconcile("w2")
    engine.cancel("w1", "not needed")
    executor.reconcile("w1")  # its attempt is stopped: its room goes to w3, not to the cancelled w2
    deadline = _time.monotonic() + 5  # (w3 is not reconciled again: the executor must start it itself)
    while len(runner.started) < 2 and _time.monotonic() < deadline:
        _time.sleep(0.01)
    executor.stop()
    assert [s.workflow_id for s in runner.started] == ["w1", "w3"]
