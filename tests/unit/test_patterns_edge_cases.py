"""Edge cases of the Workflow Patterns constructs that a review found broken, one test each (in-process).

Home-wide locks after a restart, resume and fork; locks inside locks and around `keep rest`;
break and continue beside branches left running in the background; signal loops whose `until`
reads what their body sets; detached children (resume, a missing flow, `lf terminate` of the
parent); re-pinning a flow onto a history pinned before waits said how they ended.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pytest

from localflow import ir, repair
from localflow.core import events as ev
from localflow.dsl.checks import check_flow
from localflow.dsl.parser import parse
from localflow.errors import InputError
from localflow.repair import RepairRefused
from localflow.supervisor.executor import Executor
from localflow.supervisor.wakeups import Wakeups
from localflow.testing import Stuck, fail, hang, succeed, world

E = ir.Expr


def act(name: str) -> ir.Activity:
    return ir.Activity(name, (E('"echo"'),), 60_000)


def start(w, flow: ir.Flow, workflow_id=None) -> str:
    workflow_id = w.engine.start_flow(flow, "", {}, workflow_id)
    w.executor.mark_dirty(workflow_id)
    return workflow_id


def of_type(w, workflow_id, kind):
    return [e for e in w.history(workflow_id) if isinstance(e, kind)]


def home_holders(w, *ids):
    return [i for i in ids if any(r.granted and r.scope == "home" for r in w.state(i).live_locks())]


def home_lock_flow(name: str, step: str) -> ir.Flow:
    return ir.Flow(name, (), (ir.Lock("lock-1", E('"printer"'), (act(step),), scope="home"),))


# --- home-wide locks --------------------------------------------------------------------------------


def test_home_lock_is_not_granted_twice_by_a_restarted_executor():
    """A new executor (supervisor restart, `lf run`) grants from the first workflow it reconciles,
    before it has read the holder: the waiter gets the lock while the holder still holds it."""
    with world(None, activities={"work": hang}) as w:
        holder = start(w, home_lock_flow("H", "work"), "b-holder")
        w.run_until_idle()
        waiter = start(w, home_lock_flow("H", "work"), "a-waiter")
        w.run_until_idle()
        assert of_type(w, holder, ev.LockGranted) and not of_type(w, waiter, ev.LockGranted)
        restarted = Executor(w.engine, runner=w._scripts, wakeups=Wakeups(None))
        try:
            for workflow_id in sorted([waiter, holder]):  # as the startup rescan does (sorted ids)
                restarted.reconcile(workflow_id)
            assert not of_type(w, waiter, ev.LockGranted), "granted while b-holder holds 'printer'"
        finally:
            restarted.stop()


def test_lf_resume_does_not_put_a_workflow_back_into_a_home_lock_another_holds():
    """The resumed state is the checkpoint's, with the home lock granted: a1 runs its critical section
    again while b2 (granted the lock when a1 failed) is still inside it."""
    with world(None, activities={"work1": [fail("boom"), succeed(1)], "work2": hang}) as w:
        a = start(w, home_lock_flow("H1", "work1"), "a1")
        w.run_until_idle()
        b = start(w, home_lock_flow("H2", "work2"), "b2")
        w.run_until_idle()
        assert w.state(a).status == "failed" and home_holders(w, a, b) == [b]
        with pytest.raises(RepairRefused, match="home-wide lock 'printer'"):
            repair.resume(w.engine, a)
        assert home_holders(w, a, b) == [b]


def test_lf_fork_does_not_copy_a_held_home_lock():
    with world(None, activities={"work": hang}) as w:
        origin = start(w, home_lock_flow("H", "work"), "a1")
        w.run_until_idle()
        with pytest.raises(InputError, match="held the home-wide lock 'printer'"):
            repair.fork(w.engine, origin, at=w.history(origin)[-1].seq, new_id="f1")
        assert "f1" not in w.workflows()


# --- workflow locks ---------------------------------------------------------------------------------


def test_a_lock_name_that_is_not_a_string_fails_the_workflow_instead_of_crashing_decide():
    """_abort's step key is _key(stmt, frame) = stmt.name + suffix: for a Lock, name is an Expr (TypeError)."""
    with world(None) as w:
        workflow_id = w.start('flow L\n  input name = 42\n  lock name:\n    set z = 1\n  return 1\n')
        state = w.run_to_end(workflow_id)
        assert state.status == "failed" and state.error["kind"] == "expression"


def test_a_nested_lock_of_the_same_name_does_not_deadlock_silently():
    """Accepted by the checks; the inner request waits forever behind the outer one (no error, no timer)."""
    with world(None) as w:
        workflow_id = w.start('flow L\n  lock "x":\n    lock "x":\n      set z = 1\n  return 1\n')
        try:
            state = w.run_to_end(workflow_id)
        except Stuck as exc:
            pytest.fail(f"deadlocked: {exc}")
        assert state.terminal


def test_a_background_branch_started_inside_a_lock_does_not_run_outside_it():
    """`first K keep rest` inside a lock body: the body 'ends' at the join, the lock is released, and the
    branch left running does its work while another branch holds the same lock."""
    src = '''flow H
  parallel:
    branch:
      lock "x":
        parallel first 1 keep rest:
          branch:
            step a:
              run ["echo"]
          branch:
            sleep 10s
            step inside:
              run ["echo"]
    branch:
      sleep 1s
      lock "x":
        sleep 30s
        step other:
          run ["echo"]
'''
    flow, problems = parse(src, "flows/H.flow")
    problems = problems + check_flow(flow, src.splitlines())
    assert [p.message for p in problems] == ["'keep rest' cannot be used inside a lock (line 4): the branches it "
                                             "leaves running would go on after the lock is released"]
    assert (problems[0].line, problems[0].col) == (5, 26)  # at "keep"


# --- loops and keep rest ----------------------------------------------------------------------------


KEEP_REST_THEN = '''flow S
  for x in [1]:
    parallel first 1 keep rest:
      branch:
        step a:
          run ["echo"]
      branch:
        sleep 1m
        step slow:
          run ["echo"]
    if true:
      {tail}
  set done = 1
'''


def test_continue_does_not_cancel_branches_keep_rest_left_running():
    """An iteration that ends normally leaves its background branch running; one ended by `continue`
    kills it (jump drops every frame whose id starts with the iteration's, background ones included)."""
    results = {}
    for tail in ("set z = 1", "continue"):
        with world(None, activities={"a": succeed(1), "slow": succeed(2)}) as w:
            workflow_id = w.start(KEEP_REST_THEN.format(tail=tail))
            w.run_to_end(workflow_id)
            w.assert_replays(workflow_id)
            results[tail] = sorted(e.step for e in of_type(w, workflow_id, ev.ActivityCompleted))
    assert results["set z = 1"] == ["a[0]", "slow[0]"]
    assert results["continue"] == results["set z = 1"]


def test_break_nested_in_a_background_branch_ends_that_branch():
    """frames.jump: with no loop reachable it ends only the innermost frame (the if's arm), so the branch
    goes on after the `if` (docstring and test say: it ends that branch)."""
    flow = ir.Flow("K", (), (ir.For("for-1", "x", E("[0]"), (
        ir.Parallel("parallel-1", ((act("a"),), (ir.Sleep("sleep-1", 1000),
                                                  ir.If("if-1", (ir.IfBranch(E("true"), (ir.Break(),)),)),
                                                  act("after_break"))), first=1, keep_rest=True),
        act("b"))),))
    with world(None, activities={"a": succeed(1), "b": succeed(2), "after_break": succeed(3)}) as w:
        workflow_id = start(w, flow)
        w.run_to_end(workflow_id)
        w.assert_replays(workflow_id)
        assert "after_break[0]" not in [e.step for e in of_type(w, workflow_id, ev.ActivityScheduled)]


def test_signal_loop_until_may_read_a_variable_set_in_its_body():
    """Spec 7: 'variables set in the body are fine'. The checks accept it, but decide evaluates `until`
    before the first signal is taken: unknown name 'done', the workflow fails at once."""
    src = 'flow S\n  for j in signal job until done:\n    set done = j == "last"\n  return 1\n'
    with world(None) as w:
        workflow_id = w.start(src)
        w.run_until_idle()
        assert w.state(workflow_id).status == "running", w.state(workflow_id).error
        w.signal(workflow_id, "job", "a")
        w.signal(workflow_id, "job", "last")
        assert w.run_to_end(workflow_id).result == 1


def test_first_k_with_empty_branches_folds():
    """IR-level (the parser refuses empty blocks): open_blocks ends empty blocks one by one; the first
    reaches K and drops its siblings, the next end_frame raises KeyError (not even a FoldError)."""
    flow = ir.Flow("P", (), (ir.Parallel("parallel-1", ((), (), (act("a"),)), first=1), ir.Return(E("1"))))
    with world(None, activities={"a": succeed(1)}) as w:
        assert w.run_to_end(start(w, flow)).status == "completed"


# --- detached children ------------------------------------------------------------------------------


def test_a_failed_detached_child_can_be_resumed():
    """repair.resume refuses any workflow with a parent ('which already took its failure'), but a
    detached child's parent never hears of it: the child can never be resumed."""
    with world(None, activities={"k": [fail("x"), succeed(1)]}) as w:
        w.add_flow('flow Kid\n  step k:\n    run ["echo"]\n  return 7\n')
        parent = start(w, ir.Flow("Par", (), (ir.ChildFlow("spawn", "Kid", detached=True),
                                              ir.WaitSignal("never", "never"))))
        w.run_until_idle()
        kid = f"{parent}.spawn"
        assert w.state(kid).status == "failed"
        repair.resume(w.engine, kid)
        assert w.run_to_end(kid).result == 7


def test_a_detached_child_whose_flow_does_not_exist_is_not_lost_silently():
    """The step completes with {"workflow_id": X}, X is never created, and only a log line says so."""
    with world(None) as w:
        with pytest.raises(InputError, match="starts flow Nope detached, and it could never be started"):
            w.start('flow Par\n  step spawn:\n    flow Nope detached\n  return spawn\n')
        assert w.workflows() == []


def test_lf_terminate_of_the_parent_leaves_a_detached_child_alone():
    """cmd_terminate (no supervisor) reconciles every step of kind 'child', detached ones too: it runs the
    detached child's activity in its own executor and then kills it (recorded as interrupted)."""
    from localflow.cli.control import cmd_terminate
    from localflow.engine import Engine

    home = Path(tempfile.mkdtemp(prefix="review11-"))
    try:
        (home / "flows").mkdir()
        (home / "flows" / "Par.flow").write_text('flow Par\n  step spawn:\n    flow Kid detached\n'
                                                 '  step w:\n    wait signal never\n')
        (home / "flows" / "Kid.flow").write_text('flow Kid\n  step k:\n    run ["sleep", "30"]\n  return 1\n')
        engine = Engine(home)
        engine.ensure_layout()
        parent = engine.start("Par", {}, None)
        executor = Executor(engine)
        executor.reconcile(parent)  # records ChildStarted and creates the child; the child is not run here
        executor.stop()
        kid = f"{parent}.spawn"
        assert [type(e).__name__ for e in engine.load(kid).events] == ["WorkflowStarted"]
        cmd_terminate(argparse.Namespace(home=str(home), id=parent, reason="stop", json=False))
        touched = [type(e).__name__ for e in engine.load(kid).events
                   if isinstance(e, (ev.ActivityStarted, ev.ActivityFailed))]
        assert touched == [], "terminating the parent ran and killed the detached child's step"
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- waits that tell how they ended -----------------------------------------------------------------


def test_lf_resume_with_the_same_flow_file_of_a_workflow_pinned_before_tells_ending():
    """The flow file re-parsed today sets tells_ending on every wait, and the re-pinned flow is used for the
    whole history: a wait value recorded before (set v = a) now reads differently -> nondeterminism,
    so a pre-release workflow that read a wait can never be resumed with its (fixed) flow."""
    src = 'flow T\n  step a:\n    wait signal go\n  set v = a\n  step work:\n    run ["echo"]\n    timeout 1m\n  return v\n'
    old = ir.Flow("T", (), (ir.WaitSignal("a", "go"), ir.Set("v", E("a")),
                            ir.Activity("work", (E('"echo"'),), 60_000), ir.Return(E("v"))))
    with world(None, activities={"work": [fail("x"), succeed(1)]}) as w:
        w.add_flow(src)
        workflow_id = start(w, old)
        w.run_until_idle()
        w.signal(workflow_id, "go", 1)
        w.run_until_idle()
        assert w.state(workflow_id).status == "failed"
        repair.resume(w.engine, workflow_id, flow_name="T")
        w.executor.mark_dirty(workflow_id)
        state = w.run_to_end(workflow_id)
        assert state.status == "completed" and state.result == {"result": 1, "attempts": 1}
