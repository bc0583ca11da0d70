"""The engine side of the Workflow Patterns constructs, on hand-built flows (no parser), in-process.

Each test drives the real engine and executor under ``localflow.testing.world`` (virtual clock,
in-memory histories, scripted activities), asserts on the recorded history by ``seq``, and
replays it (every decision checked).
"""

from __future__ import annotations

import pytest

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.state import fold
from localflow.testing import hang, succeed, world

E = ir.Expr


def act(name: str) -> ir.Activity:
    return ir.Activity(name, (E('"echo"'),), 60_000)


def start(w, flow: ir.Flow, given=None) -> str:
    workflow_id = w.engine.start_flow(flow, "", dict(given or {}), None)
    w.executor.mark_dirty(workflow_id)
    return workflow_id


def types(w, workflow_id: str, *names: str) -> list:
    return [(e.seq, type(e).__name__, getattr(e, "step", None)) for e in w.history(workflow_id)
            if not names or type(e).__name__ in names]


def finish(w, workflow_id: str):
    state = w.run_to_end(workflow_id)
    w.assert_replays(workflow_id)
    return state


def test_while_tests_before_each_iteration_and_records_each_test():
    flow = ir.Flow("W", (), (ir.Set("n", E("0")),
                             ir.While("while-1", E("n < 3"), (ir.Set("n", E("n + 1")), act("poll"))),
                             ir.Return(E("n"))))
    with world(None, activities={"poll": succeed(1)}) as w:
        workflow_id = start(w, flow)
        state = finish(w, workflow_id)
        tests = [e for e in w.history(workflow_id) if isinstance(e, ev.LoopIterated)]
        assert [(t.iteration, t.go) for t in tests] == [(0, True), (1, True), (2, True), (3, False)]
        assert state.result == 3
        assert [s for _, t, s in types(w, workflow_id, "ActivityScheduled")] == ["poll[0]", "poll[1]", "poll[2]"]


def test_a_while_past_its_max_fails_the_workflow_with_kind_loop():
    flow = ir.Flow("W", (), (ir.While("while-1", E("true"), (act("poll"),), max_iterations=2, line=3),))
    with world(None, activities={"poll": succeed(1)}) as w:
        state = finish(w, start(w, flow))
        assert state.status == "failed" and state.error["kind"] == "loop"
        assert "most of 2 iterations" in state.error["message"] and state.error["line"] == 3


def test_repeat_runs_first_then_tests_until_on_that_iterations_steps():
    flow = ir.Flow("R", (), (ir.Repeat("repeat-1", (act("poll"),), E("poll.result.ready")),
                             ir.Return(E("1"))))
    script = [succeed({"ready": False}), succeed({"ready": False}), succeed({"ready": True})]
    with world(None, activities={"poll": script}) as w:
        workflow_id = start(w, flow)
        finish(w, workflow_id)
        tests = [(e.iteration, e.go) for e in w.history(workflow_id) if isinstance(e, ev.LoopIterated)]
        assert tests == [(0, True), (1, True), (2, True), (3, False)]


def test_break_cancels_the_running_iterations_of_a_parallel_for():
    body = (ir.If("if-1", (ir.IfBranch(E("x == 0"), (act("quick"), ir.Break())),)), act("slow"))
    flow = ir.Flow("B", (), (ir.For("for-1", "x", E("[0, 1, 2]"), body, concurrency=3), ir.Return(E("1"))))
    with world(None, activities={"quick": succeed(1), "slow": hang}) as w:
        workflow_id = start(w, flow)
        state = finish(w, workflow_id)
        assert state.status == "completed"
        cancelled = [e.step for e in w.history(workflow_id)
                     if isinstance(e, ev.ActivityFailed) and e.error["kind"] == "cancelled"]
        assert sorted(cancelled) == ["slow[1]", "slow[2]"]
        assert any(isinstance(e, ev.LoopJumped) and e.jump == "break" for e in w.history(workflow_id))


def test_continue_skips_the_rest_of_an_iteration():
    body = (ir.If("if-1", (ir.IfBranch(E("x % 2 == 0"), (ir.Continue(),)),)), ir.Set("odd", E("odd + [x]")))
    flow = ir.Flow("C", (), (ir.Set("odd", E("[]")), ir.For("for-1", "x", E("range(5)"), body), ir.Return(E("odd"))))
    with world(None) as w:
        assert finish(w, start(w, flow)).result == [1, 3]


@pytest.mark.parametrize("keep", [None, True])
def test_first_k_joins_after_k_branches_and_cancels_or_keeps_the_rest(keep):
    branches = ((act("a"),), (act("b"),), (ir.Sleep("sleep-1", 60_000), act("c")))
    flow = ir.Flow("P", (), (ir.Parallel("parallel-1", branches, first=2, keep_rest=keep), act("after")))
    with world(None, activities={"a": succeed(1), "b": succeed(2), "c": succeed(3), "after": succeed(4)}) as w:
        workflow_id = start(w, flow)
        state = finish(w, workflow_id)
        done = {s: seq for seq, t, s in types(w, workflow_id, "ActivityCompleted")}
        assert done["after"] > max(done["a"], done["b"])  # the join came after two branches
        if keep:  # the third branch ran on, and the workflow completed only after it
            assert done["c"] > done["after"]
            assert state.status == "completed"
        else:
            assert "c" not in done and state.status == "completed"
            assert not [e for e in w.history(workflow_id) if isinstance(e, ev.TimerFired)]


def test_first_k_of_a_loop_starts_no_more_iterations():
    flow = ir.Flow("F", (), (ir.For("for-1", "x", E("range(6)"), (act("work"),), concurrency=2, first=3),))
    with world(None, activities={"work": succeed(0)}) as w:
        workflow_id = start(w, flow)
        finish(w, workflow_id)
        third = types(w, workflow_id, "ActivityCompleted")[2][0]
        scheduled = types(w, workflow_id, "ActivityScheduled")
        assert all(seq < third for seq, _, _ in scheduled)  # none started once three had ended
        assert len(scheduled) in (3, 4)  # two at a time: a fourth may have been running when the third ended


def test_branch_if_runs_only_the_branches_whose_condition_holds():
    branches = ((act("a"),), (act("b"),), (act("c"),))
    conditions = (E("x > 3"), E("x > 10"), None)
    flow = ir.Flow("O", (ir.Input("x", E("5")),), (ir.Parallel("parallel-1", branches, conditions=conditions),
                                                   ir.Return(E("1"))))
    with world(None, activities={"a": succeed(1), "b": succeed(2), "c": succeed(3)}) as w:
        workflow_id = start(w, flow)
        finish(w, workflow_id)
        assert sorted(s for _, _, s in types(w, workflow_id, "ActivityScheduled")) == ["a", "c"]
        [started] = [e for e in w.history(workflow_id) if isinstance(e, ev.ParallelStarted)]
        assert started.chosen == [0, 2]


def test_branch_if_with_no_condition_true_moves_on():
    flow = ir.Flow("O", (), (ir.Parallel("parallel-1", ((act("a"),),), conditions=(E("false"),)), ir.Return(E("2"))))
    with world(None) as w:
        assert finish(w, start(w, flow)).result == 2


def signal_loop(**options) -> ir.Flow:
    body = (act("work"), ir.Set("got", E("got + [job]")))
    return ir.Flow("S", (), (ir.Set("got", E("[]")), ir.SignalLoop("for-1", "job", "job", body, **options),
                             ir.Return(E("got"))))


def test_a_signal_loop_runs_one_instance_per_signal_until_its_closing_signal():
    with world(None, activities={"work": succeed(0)}) as w:
        workflow_id = start(w, signal_loop(concurrency=2, close_signal="close"))
        w.signal(workflow_id, "job", 1)  # taken at once
        w.run_until_idle()
        for data in (2, 3):
            w.signal(workflow_id, "job", data)
        w.signal(workflow_id, "close")
        state = finish(w, workflow_id)
        assert state.result == [1, 2, 3]
        closed = [e for e in w.history(workflow_id) if isinstance(e, ev.LoopClosed)]
        assert [c.reason for c in closed] == ["signal"]


def test_a_signal_loop_holds_to_its_bound_and_closes_on_its_condition_or_max():
    with world(None, activities={"work": hang}) as w:
        workflow_id = start(w, signal_loop(concurrency=2))
        for data in range(4):
            w.signal(workflow_id, "job", data)
        w.run_until_idle()
        taken = [e for e in w.history(workflow_id) if isinstance(e, ev.SignalTaken)]
        assert [t.instance for t in taken] == [0, 1]  # two at a time
    flow = ir.Flow("S", (), (ir.Set("n", E("0")),
                             ir.SignalLoop("for-1", "job", "job", (ir.Set("n", E("n + job")),), until=E("n >= 5")),
                             ir.Return(E("n"))))
    with world(None) as w:
        workflow_id = start(w, flow)
        for data in (2, 2, 2):
            w.signal(workflow_id, "job", data)
        assert finish(w, workflow_id).result == 6
    with world(None, activities={"work": succeed(0)}) as w:
        workflow_id = start(w, signal_loop(max_iterations=2))
        for data in (7, 8, 9):
            w.signal(workflow_id, "job", data)
        assert finish(w, workflow_id).result == [7, 8]


def scope_flow() -> ir.Flow:
    handler = ir.Handler("change", "c", (ir.Set("changes", E("changes + [c]")),))
    return ir.Flow("C", (), (ir.Set("changes", E("[]")), ir.WaitSignal("ready", "ready"),
                             ir.Scope("scope-1", (handler,), (ir.WaitSignal("done", "done"),)),
                             ir.Return(E("changes"))))


def test_a_scope_handles_only_the_signals_sent_while_it_runs():
    with world(None) as w:
        workflow_id = start(w, scope_flow())
        w.signal(workflow_id, "change", "too early")
        w.signal(workflow_id, "ready")
        w.run_until_idle()
        w.signal(workflow_id, "change", "a")
        w.signal(workflow_id, "change", "b")
        w.signal(workflow_id, "done")
        state = finish(w, workflow_id)
        assert state.result == ["a", "b"]
        early = [s for s in state.signals if s.data == "too early"]
        assert early[0].consumed_by is None


def lock_flow(scope: str = "workflow") -> ir.Flow:
    branches = tuple((ir.Lock(f"lock-{i + 1}", E('"printer"'), (act(f"s{i}"), ir.Sleep(f"sleep-{i + 1}", 1000)),
                              scope=scope),) for i in range(3))
    return ir.Flow("L", (), (ir.Parallel("parallel-1", branches),))


def test_a_workflow_lock_lets_one_branch_in_at_a_time_in_order_of_request():
    with world(None, activities={f"s{i}": succeed(i) for i in range(3)}) as w:
        workflow_id = start(w, lock_flow())
        finish(w, workflow_id)
        history = w.history(workflow_id)
        requested = [e.frame for e in history if isinstance(e, ev.LockRequested)]
        acquired = [e.frame for e in history if isinstance(e, ev.LockAcquired)]
        assert acquired == requested  # first come, first served
        holders = 0
        for event in history:
            holders += isinstance(event, ev.LockAcquired) - isinstance(event, ev.LockReleased)
            assert holders <= 1


def test_a_lock_held_by_a_branch_that_loses_a_race_is_released():
    locked = (ir.Lock("lock-1", E('"x"'), (act("slow"),)),)
    flow = ir.Flow("L", (), (ir.Parallel("race-1", (locked, (act("fast"),)), race=True),
                             ir.Lock("lock-2", E('"x"'), (act("after"),)), ir.Return(E("1"))))
    with world(None, activities={"slow": hang, "fast": succeed(1), "after": succeed(2)}) as w:
        state = finish(w, start(w, flow))
        assert state.status == "completed" and state.locks == {} or all(not r.granted for r in state.live_locks())


def test_a_home_lock_is_granted_across_workflows_one_at_a_time_and_freed_by_a_cancel():
    flow = ir.Flow("H", (), (ir.Lock("lock-1", E('"printer"'), (ir.Sleep("sleep-1", 60_000),), scope="home"),))
    with world(None) as w:
        first, second = start(w, flow), start(w, flow)
        w.run_until_idle()
        granted = {x: [e for e in w.history(x) if isinstance(e, ev.LockGranted)] for x in (first, second)}
        assert len(granted[first]) + len(granted[second]) == 1
        holder = first if granted[first] else second
        other = second if holder == first else first
        w.cancel(holder)
        w.run_until_idle()
        assert [e for e in w.history(other) if isinstance(e, ev.LockGranted)]
        assert finish(w, other).status == "completed"
        w.assert_replays(holder)


def test_a_detached_child_completes_its_step_at_once_and_outlives_a_cancelled_parent():
    with world(None, activities={"k": succeed(1)}) as w:
        w.add_flow('flow Kid\n  sleep 1h\n  step k:\n    run ["echo"]\n  return 7\n')
        flow = ir.Flow("Par", (), (ir.ChildFlow("spawn", "Kid", detached=True), ir.WaitSignal("never", "never")))
        parent = start(w, flow)
        w.run_until_idle()
        kid = f"{parent}.spawn"
        assert w.state(parent).steps["spawn"].result == {"workflow_id": kid}
        w.cancel(parent)
        w.run_until_idle()
        assert w.state(parent).status == "cancelled"
        assert w.state(kid).status == "running"
        assert finish(w, kid).result == 7
        w.assert_replays(parent)


def test_a_wait_says_how_it_ended_and_stays_readable_after_a_caught_timeout():
    catch = (ir.Catch("timeout", (), (ir.Set("t", E("1")),)),)
    flow = ir.Flow("T", (), (ir.WaitSignal("a", "go", 1000, catch, tells_ending=True),
                             ir.WaitSignal("b", "go", None, (), tells_ending=True),
                             ir.Return(E("[a, b]"))))
    with world(None) as w:
        workflow_id = start(w, flow)
        w.advance("2s")
        w.signal(workflow_id, "go")  # with no data
        state = finish(w, workflow_id)
        assert state.result == [{"result": None, "attempts": 1, "ended": "timeout", "timed_out": True},
                                {"result": None, "attempts": 1, "ended": "signal", "timed_out": False}]


def test_waits_of_flows_pinned_before_read_as_they_did():
    """A pinned flow without ``tells_ending`` keeps its old values: histories in flight replay unchanged."""
    flow = ir.Flow("T", (), (ir.WaitSignal("a", "go"), ir.Return(E("a"))))
    with world(None) as w:
        workflow_id = start(w, flow)
        w.signal(workflow_id, "go", {"by": "ann"})
        assert finish(w, workflow_id).result == {"result": {"by": "ann"}, "attempts": 1}
    assert "tells_ending" not in str(ir.to_json(flow))


def test_break_outside_any_loop_in_a_background_branch_ends_that_branch():
    flow = ir.Flow("K", (), (ir.For("for-1", "x", E("[0]"), (
        ir.Parallel("parallel-1", ((act("a"),), (ir.Sleep("sleep-1", 1000), ir.Break())), first=1, keep_rest=True),
        act("b"))),))
    with world(None, activities={"a": succeed(1), "b": succeed(2)}) as w:
        state = finish(w, start(w, flow))
        assert state.status == "completed"


def test_deciding_is_pure_for_the_new_statements():
    flow = ir.Flow("W", (), (ir.Set("n", E("0")), ir.While("while-1", E("n < 3"), (ir.Set("n", E("n + 1")),))))
    started = ev.WorkflowStarted(seq=1, ts=1000, workflow_id="w", flow_name="W", flow_hash="h", flow_file="",
                                 flow=ir.to_json(flow), flow_source="", input={})
    state = fold([started, ev.VariableSet(seq=2, ts=1001, frame="root", at=0, name="n", value=0)])
    assert decide(state) == decide(state) == [ev.IterateLoop("root", 1, 0, True)]


def test_a_signal_loop_with_keep_rest_goes_on_at_once_when_closed():
    source = '''flow K
  set done = []
  for job in signal job until len(done) >= 1 parallel 4 keep rest:
    step work:
      run ["work", job]
    set done = done + [job]
  step after:
    run ["after"]
'''
    from localflow.dsl import parse_flow
    loop = parse_flow(source, "flows/K.flow").body[1]
    assert isinstance(loop, ir.SignalLoop) and loop.keep_rest is True

    def script(spec):
        return hang if spec.argv[1:] == ["slow"] else succeed(spec.step)

    with world(None, activities=script) as w:
        workflow_id = w.start(source)
        w.signal(workflow_id, "job", "slow")
        w.signal(workflow_id, "job", "quick")
        w.run_until_idle()
        state = w.state(workflow_id)
        assert state.status == "running" and state.steps["after"].status == "completed"
        assert state.steps["work[0]"].status == "running"  # on in the background: the workflow waits for it
        w.assert_replays(workflow_id)
