"""The executor carries out one state at a time and never an older one; a held workflow is never run.

(Found by review: an attempt's thread carrying out the state it recorded could be overtaken by
an older state that still showed a finished call as pending, which then ran again.)
"""

from __future__ import annotations

from localflow.core import events as ev
from localflow.engine import Engine
from localflow.runner.scripted import succeed

from test_executor_inprocess import HOME, run_to_end, start, world

TWO = 'flow T\n  step a:\n    run ["a"]\n  step b:\n    run ["b"]\n  return 1\n'


def test_a_state_older_than_one_carried_out_starts_nothing():
    engine, executor, runner, clock = world(lambda spec: succeed(spec.step))
    workflow_id = start(engine, TWO)
    loaded = run_to_end(engine, executor, workflow_id)
    executor.reconcile(workflow_id)  # the final state carried out: nothing of it is pending any more
    assert [s.step for s in runner.started] == ["a", "b"]
    older = engine.load(workflow_id).events
    cut = next(e.seq for e in older if isinstance(e, ev.ActivityScheduled) and e.step == "b")
    from localflow.core.state import fold

    stale = fold(older[:cut])  # b scheduled and pending, as a slow thread may still hold it
    executor._carry_out(workflow_id, stale)
    executor.stop()
    assert [s.step for s in runner.started] == ["a", "b"], "b ran again from a stale state"
    assert loaded.state.status == "completed"


def test_a_workflow_imported_again_under_a_known_id_is_left_alone():
    engine, executor, runner, clock = world(lambda spec: None)  # attempts would run until stopped
    workflow_id = start(engine, TWO)
    engine.state_of(workflow_id)  # this process now knows it, not held
    other = Engine(HOME, clock=clock, store=engine.store)  # another process: it schedules a, then the
    other.transact(workflow_id)                             # workflow is exported and imported again
    assert other.state_of(workflow_id).steps["a"].pending
    other.transact(workflow_id, lambda state: [ev.WorkflowImported(bundle={"file": "b.jsonl"})])
    state = executor.reconcile(workflow_id)
    executor.stop()
    assert state.held and runner.started == []
