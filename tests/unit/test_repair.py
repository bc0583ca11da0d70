"""`lf resume` and `lf fork` in-process (localflow/repair.py): in-memory store, scripted runner, virtual clock.

Each repaired history is also replayed (and the executor's own once-per-process
replay check must not find a divergence), since a repair that the next executor
would reject is no repair.
"""

from __future__ import annotations

import time

import pytest

from localflow import repair
from localflow.clock import VirtualClock
from localflow.core import events as ev
from localflow.core.replay import replay
from localflow.engine import Engine
from localflow.errors import InputError, NondeterminismError, WorkflowFinished
from localflow.runner.scripted import ScriptedRunner, fail, succeed
from localflow.store.memory import MemoryStore
from localflow.supervisor.executor import Executor
from localflow.supervisor.wakeups import Wakeups

from test_executor_inprocess import of_type, run_to_end, start

CHARGE = '''flow T
  timeout 1h
  step reserve:
    run ["reserve"]
  step charge:
    run ["charge"]
    retry 1 every 1m
  step ship:
    run ["ship"]
  return charge.result
'''


class Script:
    """Steps succeed, except those told to fail (``failing[step]`` more times)."""

    def __init__(self, **failing: int) -> None:
        self.failing = dict(failing)
        self.hang: set = set()

    def __call__(self, spec):
        if spec.step in self.hang:
            return None
        if self.failing.get(spec.step, 0) > 0:
            self.failing[spec.step] -= 1
            return fail("card declined", exit_code=3)
        return succeed({"step": spec.step, "attempt": spec.attempt})


def make_world(script, home="/nonexistent/localflow-home"):
    engine = Engine(home, clock=VirtualClock(), store=MemoryStore())
    runner = ScriptedRunner(script)
    return engine, Executor(engine, runner=runner, wakeups=Wakeups(None)), runner


def checked(loaded):
    """The history replays, and no executor found it diverging."""
    replay(loaded.events)
    assert not of_type(loaded, ev.WorkflowNondeterministic)
    return loaded


def test_resume_gives_the_failed_step_fresh_attempts_in_the_same_history():
    script = Script(charge=2)
    engine, executor, runner = make_world(script)
    wid = start(engine, CHARGE)
    failed = run_to_end(engine, executor, wid).state
    assert failed.status == "failed" and failed.error["step"] == "charge"

    tx = repair.resume(engine, wid)
    resumed = next(e for e in tx.appended if isinstance(e, ev.WorkflowResumed))
    assert resumed.from_seq == max(e.seq for e in engine.load(wid).events if isinstance(e, ev.WorkflowFailed))
    assert [type(e).__name__ for e in tx.appended] == ["WorkflowResumed", "ActivityScheduled"]
    loaded = checked(run_to_end(engine, executor, wid))
    assert loaded.state.status == "completed" and loaded.state.result == {"step": "charge", "attempt": 3}
    assert [s.step for s in runner.started] == ["reserve", "charge", "charge", "charge", "ship"]
    # the same workflow, so every attempt of the step had the same idempotency key
    assert {s.idempotency_key for s in runner.started if s.step == "charge"} == {f"{wid}:charge"}
    assert loaded.state.resumes == 1


def test_a_resumed_step_has_its_whole_retry_budget_again():
    script = Script(charge=4)
    engine, executor, runner = make_world(script)
    wid = start(engine, CHARGE)
    run_to_end(engine, executor, wid)
    repair.resume(engine, wid)
    loaded = checked(run_to_end(engine, executor, wid))
    assert loaded.state.status == "failed"  # two more attempts (retry 1), both failed
    assert [a.number for a in loaded.state.steps["charge"].attempts] == [1, 2, 3, 4]
    repair.resume(engine, wid)
    loaded = checked(run_to_end(engine, executor, wid))
    assert loaded.state.status == "completed" and loaded.state.resumes == 2


def test_resume_after_the_workflow_timed_out_starts_a_fresh_timeout():
    engine, executor, runner = make_world(Script())
    wid = start(engine, 'flow S\n  timeout 1h\n  sleep 90m\n  step ship:\n    run ["ship"]\n  return 1\n')
    failed = run_to_end(engine, executor, wid).state
    assert failed.status == "failed" and "timed out" in failed.error["message"]
    tx = repair.resume(engine, wid)
    timers = [e for e in tx.appended if isinstance(e, ev.TimerStarted)]
    assert [(t.purpose, t.duration_ms) for t in timers] == [("workflow-timeout", 3_600_000)]
    loaded = checked(run_to_end(engine, executor, wid))
    # the sleep's own timer (recorded before the failure) still fired at its time, 30 minutes
    # before the new deadline
    assert loaded.state.status == "completed" and [s.step for s in runner.started] == ["ship"]


def test_resume_after_a_wait_timed_out_waits_again_with_its_full_timeout():
    engine, executor, runner = make_world(Script())
    wid = start(engine, 'flow W\n  step approve:\n    wait signal approve timeout 1d\n  return approve.result\n')
    assert run_to_end(engine, executor, wid).state.status == "failed"
    tx = repair.resume(engine, wid)
    assert [(e.purpose, e.duration_ms) for e in tx.appended if isinstance(e, ev.TimerStarted)] == [
        ("signal-timeout", 86_400_000)]
    engine.signal(wid, "approve", {"ok": True})
    loaded = checked(run_to_end(engine, executor, wid))
    assert loaded.state.status == "completed" and loaded.state.result == {"ok": True}


def test_resume_is_refused_with_the_reason_when_it_cannot_help():
    engine, executor, runner = make_world(Script(charge=9))
    wid = start(engine, CHARGE)
    with pytest.raises(repair.RepairRefused, match="not failed"):
        repair.resume(engine, wid)  # running
    run_to_end(engine, executor, wid)

    stop = start(engine, 'flow F\n  fail "out of stock"\n', workflow_id="w2")
    run_to_end(engine, executor, stop)
    with pytest.raises(repair.RepairRefused, match="would fail again at once .out of stock.*--flow"):
        repair.resume(engine, stop)

    undo = start(engine, 'flow U\n  step hold:\n    run ["hold"]\n    undo ["release"]\n  fail "no"\n',
                 workflow_id="w3")
    run_to_end(engine, executor, undo)
    with pytest.raises(repair.RepairRefused, match=r"compensations ran \(undo of hold\)"):
        repair.resume(engine, undo)

    done = start(engine, 'flow D\n  return 1\n', workflow_id="w4")
    run_to_end(engine, executor, done)
    with pytest.raises(WorkflowFinished):
        repair.resume(engine, done)
    for refused in (stop, undo):
        checked(engine.load(refused))  # nothing was appended by a refusal
        assert not of_type(engine.load(refused), ev.WorkflowResumed)


def test_resume_with_a_fixed_flow_replaces_the_definition_for_the_whole_history(tmp_path):
    (tmp_path / "flows").mkdir()
    text = 'flow Q\n  step quote:\n    run ["quote"]\n  if quote.result.attempt > 0:\n    fail "too dear"\n  return 1\n'
    fixed = text.replace('fail "too dear"', 'set note = "bought anyway"')
    for folder, source in (("fixed", fixed), ("wrong", text.replace('run ["quote"]', 'run ["quote", "v2"]'))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "Q.flow").write_text(source)
    engine, executor, runner = make_world(Script(), home=tmp_path)
    wid = start(engine, text)
    run_to_end(engine, executor, wid)
    with pytest.raises(NondeterminismError):
        repair.resume(engine, wid, str(tmp_path / "wrong" / "Q.flow"))  # it does not replay the history
    repair.resume(engine, wid, str(tmp_path / "fixed" / "Q.flow"))
    loaded = checked(run_to_end(engine, executor, wid))
    assert loaded.state.status == "completed" and loaded.state.variables["note"] == "bought anyway"
    assert loaded.state.flow.file.endswith("fixed/Q.flow")
    # a fresh process (a new engine on the same store) folds it the same way
    again = Engine("/nonexistent", store=engine.store).load(wid).state
    assert again.status == "completed" and again.flow.file.endswith("fixed/Q.flow")


def test_fork_at_a_running_attempt_retries_it_under_the_forks_own_key_and_leaves_the_origin_alone():
    script = Script()
    script.hang.add("charge")
    engine, executor, runner = make_world(script)
    wid = start(engine, CHARGE.replace("  timeout 1h\n", ""))
    executor.mark_dirty(wid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until charge runs (and hangs), its start recorded last
        executor.reconcile(wid)
        records = engine.store.read(wid).records
        if records[-1]["type"] == "ActivityStarted" and records[-1]["step"] == "charge":
            break
        time.sleep(0.01)
    origin = [dict(r) for r in engine.store.read(wid).records]
    at = origin[-1]["seq"]
    assert origin[-1]["type"] == "ActivityStarted" and origin[-1]["step"] == "charge"
    script.hang.clear()
    plan = repair.fork(engine, wid, at=at, new_id="f1")
    assert plan.interrupted == ["charge attempt 1"] and plan.again == []
    assert plan.first == ["ActivityScheduled charge"]
    # another executor runs the fork (this one still runs the origin's attempt)
    other, forks, fork_runner = make_world(script)
    other.store = engine.store
    loaded = checked(run_to_end(other, forks, "f1"))
    assert loaded.state.status == "completed" and loaded.state.origin == {"workflow_id": wid, "seq": at}
    assert [(s.step, s.attempt, s.idempotency_key) for s in fork_runner.started] == [
        ("charge", 2, "f1:charge"), ("ship", 1, "f1:ship")]
    executor.stop()
    assert [dict(r) for r in engine.store.read(wid).records][:len(origin)] == origin


def test_fork_last_failure_runs_the_failed_step_again_with_all_its_attempts():
    engine, executor, runner = make_world(Script(charge=2))
    wid = start(engine, CHARGE)
    run_to_end(engine, executor, wid)
    dry = repair.fork(engine, wid, last_failure=True, new_id="f2", dry_run=True)
    assert dry.again == ["charge"] and dry.first == ["ActivityScheduled charge"]
    with pytest.raises(Exception):
        engine.load("f2")  # a dry run creates nothing
    repair.fork(engine, wid, last_failure=True, new_id="f2")
    loaded = checked(run_to_end(engine, executor, "f2"))
    assert loaded.state.status == "completed"
    assert [a.number for a in loaded.state.steps["charge"].attempts] == [1]


def test_fork_onto_an_edited_flow_runs_the_new_steps_after_the_copied_ones(tmp_path):
    engine, executor, runner = make_world(Script(), home=tmp_path)
    wid = start(engine, CHARGE)
    run_to_end(engine, executor, wid)
    edited = CHARGE.replace('  return charge.result', '  step notify:\n    run ["notify"]\n  return charge.result')
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "T.flow").write_text(edited)
    plan = repair.fork(engine, wid, step="ship", new_id="f3", flow_name=str(tmp_path / "edited" / "T.flow"))
    assert plan.again == ["ship"]
    loaded = checked(run_to_end(engine, executor, "f3"))
    assert [s.step for s in runner.started if s.workflow_id == "f3"] == ["ship", "notify"]
    broken = CHARGE.replace('run ["reserve"]', 'run ["reserve", "--fast"]')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "T.flow").write_text(broken)
    with pytest.raises(NondeterminismError, match="argv"):
        repair.fork(engine, wid, step="ship", new_id="f4", flow_name=str(tmp_path / "broken" / "T.flow"))
    assert "f4" not in engine.workflow_ids()


def test_fork_is_refused_where_it_cannot_copy(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "T.flow").write_text(CHARGE)
    engine, executor, runner = make_world(Script(charge=2), home=tmp_path)
    wid = start(engine, CHARGE)
    last = run_to_end(engine, executor, wid).events[-1].seq
    with pytest.raises(InputError, match="already ending"):
        repair.fork(engine, wid, at=last)
    with pytest.raises(InputError, match=r"no step of that name \(it has charge, reserve\)"):
        repair.fork(engine, wid, step="ship")
    with pytest.raises(InputError, match="events 1 to"):
        repair.fork(engine, wid, at=last + 1)
    parent = start(engine, 'flow P\n  step kid:\n    flow T\n  return kid.result\n', workflow_id="p1")
    executor.mark_dirty(parent)
    executor.reconcile(parent)
    started = next(e.seq for e in engine.load(parent).events if isinstance(e, ev.ChildStarted))
    with pytest.raises(InputError, match="child flow of step kid"):
        repair.fork(engine, parent, at=started)


def test_an_imported_workflow_is_held_until_resume_releases_it():
    engine, executor, runner = make_world(Script())
    wid = start(engine, CHARGE)
    engine.transact(wid, lambda state: [ev.WorkflowImported(bundle={"file": "b.jsonl"})])
    executor.mark_dirty(wid)
    executor.reconcile(wid)
    assert runner.started == [] and engine.state_of(wid).held
    tx = repair.resume(engine, wid)
    assert tx.appended[0].from_seq is None
    loaded = checked(run_to_end(engine, executor, wid))
    assert loaded.state.status == "completed"


def test_a_cancel_recorded_before_the_import_waits_for_the_release_and_one_after_it_ends_it():
    script = Script()
    script.hang.add("charge")
    engine, executor, runner = make_world(script)
    wid = start(engine, CHARGE.replace("  timeout 1h\n", "").replace('run ["reserve"]', 'run ["reserve"]\n    undo ["free"]'))
    executor.mark_dirty(wid)
    for _ in range(50):  # until charge runs (and hangs)
        executor.reconcile(wid)
        if "charge" in engine.state_of(wid).steps:
            break
    engine.cancel(wid, "the origin's cancel")  # compensation begins: it waits for charge to stop
    engine.transact(wid, lambda state: [ev.WorkflowImported(bundle={"file": "b.jsonl"})])
    executor.stop()
    held = engine.load(wid)
    replay(held.events)
    assert held.state.held and held.state.compensating

    engine.signal(wid, "hello", None)  # a transaction while held decides nothing
    assert not of_type(engine.load(wid), ev.WorkflowCancelled)

    other = start(engine, CHARGE, workflow_id="w2")
    engine.transact(other, lambda state: [ev.WorkflowImported(bundle={"file": "b.jsonl"})])
    engine.cancel(other, "cancelled here")
    ended = engine.load(other)
    replay(ended.events)
    assert ended.state.status == "cancelled" and ended.state.error["not_compensated"]


def test_a_fork_of_a_fork_replays_each_copy_as_its_own_origin():
    engine, executor, runner = make_world(Script())
    wid = start(engine, CHARGE)
    run_to_end(engine, executor, wid)
    repair.fork(engine, wid, step="charge", new_id="f1")
    first = checked(run_to_end(engine, executor, "f1"))
    at = next(e.seq for e in first.events if isinstance(e, ev.ActivityScheduled) and e.step == "ship")
    repair.fork(engine, "f1", at=at - 1, new_id="f2")  # its copy holds w1's decisions, then f1's
    second = checked(run_to_end(engine, executor, "f2"))
    assert second.state.status == "completed" and second.state.workflow_id == "f2"
    assert replay(second.events, upto=3).workflow_id == "f2"


def test_a_resumed_workflow_can_be_forked_after_its_resume():
    engine, executor, runner = make_world(Script(charge=2))
    wid = start(engine, CHARGE)
    run_to_end(engine, executor, wid)
    repair.resume(engine, wid)
    done = run_to_end(engine, executor, wid)
    ship = next(e.seq for e in done.events if isinstance(e, ev.ActivityScheduled) and e.step == "ship")
    plan = repair.fork(engine, wid, at=ship - 1, new_id="after-resume")  # past the superseded failure
    assert plan.first == ["ActivityScheduled ship"]
    assert checked(run_to_end(engine, executor, "after-resume")).state.status == "completed"


def test_resume_is_refused_when_any_branch_would_fail_again():
    engine, executor, runner = make_world(Script(a=9))
    text = ('flow P\n  parallel:\n    branch:\n      step a:\n        run ["a"]\n    branch:\n'
            '      fail "b gives up"\n  return 1\n')
    wid = start(engine, text)
    assert run_to_end(engine, executor, wid).state.status == "failed"
    with pytest.raises(repair.RepairRefused, match="would fail again at once"):
        repair.resume(engine, wid)
    assert not of_type(engine.load(wid), ev.WorkflowResumed)


def test_a_timeout_message_in_a_decision_keeps_its_old_wording():
    """Durations are part of recorded decisions: '48h00m' must stay '48h00m' for old histories to replay."""
    engine, executor, runner = make_world(Script())
    wid = start(engine, 'flow W\n  step approve:\n    wait signal approve timeout 2d\n  return 1\n')
    failed = run_to_end(engine, executor, wid).state
    assert "48h00m" in failed.error["message"]
