"""fold and decide on hand-written histories: the pure heart of the engine."""

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.state import fold

FLOW = ir.Flow(
    name="F",
    inputs=(ir.Input("order", ir.Expr('"A-1"')),),
    body=(
        ir.Activity("reserve", (ir.Expr('"echo"'), ir.Expr("order")), 1000, ir.Retry(max_attempts=2, initial_ms=500)),
        ir.Sleep("sleep-1", 2000),
        ir.Return(ir.Expr('{"r": reserve.result, "n": reserve.attempts}')),
    ),
    file="flows/F.flow",
)


def started(flow=FLOW, **input_):
    return ev.WorkflowStarted(seq=1, ts=1000, workflow_id="w1", flow_name=flow.name, flow_hash="h",
                              flow_file=flow.file, flow=ir.to_json(flow), flow_source="", input=input_ or {"order": "A-1"})


def run(*events, flow=FLOW):
    numbered = [started(flow)] + [e.__class__(**{**e.__dict__, "seq": i + 2, "ts": 2000 + i}) for i, e in enumerate(events)]
    return fold(numbered)


SCHEDULED_1 = ev.ActivityScheduled(step="reserve", attempt=1, argv=["echo", "A-1"],
                                   stdin={"workflow_id": "w1", "step": "reserve", "input": {"order": "A-1"}, "steps": {}},
                                   timeout_ms=1000)


def failed(attempt, kind="exit"):
    return ev.ActivityFailed(step="reserve", attempt=attempt, error={"kind": kind, "message": "boom", "exit_code": 1},
                             duration_ms=5)


def test_a_new_workflow_schedules_its_first_step_with_evaluated_argv_and_stdin():
    assert decide(run()) == [ev.command_of(SCHEDULED_1)]


def test_a_pending_attempt_waits():
    assert decide(run(SCHEDULED_1)) == []


def test_a_failed_attempt_with_retries_left_starts_a_backoff_timer():
    assert decide(run(SCHEDULED_1, failed(1))) == [ev.StartTimer(1, "reserve", "retry-2", 500)]


def test_the_retry_timer_firing_schedules_the_next_attempt():
    timer = ev.TimerStarted(timer=1, step="reserve", purpose="retry-2", duration_ms=500, fire_at=2500)
    commands = decide(run(SCHEDULED_1, failed(1), timer))
    assert commands == []
    commands = decide(run(SCHEDULED_1, failed(1), timer, ev.TimerFired(timer=1)))
    assert [(c.step, c.attempt) for c in commands] == [("reserve", 2)]


def test_no_retries_left_fails_the_workflow_naming_the_step_and_line():
    timer = ev.TimerStarted(timer=1, step="reserve", purpose="retry-2", duration_ms=500, fire_at=2500)
    second = ev.ActivityScheduled(**{**SCHEDULED_1.__dict__, "attempt": 2})
    state = run(SCHEDULED_1, failed(1), timer, ev.TimerFired(timer=1), second, failed(2))
    [command] = decide(state)
    assert isinstance(command, ev.FailWorkflow)
    assert command.error["step"] == "reserve"
    assert "failed after 2 attempts: boom" in command.error["message"]


def test_an_interrupted_attempt_is_retried_at_once_and_does_not_use_the_budget():
    state = run(SCHEDULED_1, failed(1, kind="interrupted"))
    assert [(c.step, c.attempt) for c in decide(state)] == [("reserve", 2)]
    assert state.steps["reserve"].counted_failures == 0


def test_completion_moves_on_to_the_sleep_then_the_return_value():
    done = ev.ActivityCompleted(step="reserve", attempt=1, result={"id": 7}, duration_ms=3)
    state = run(SCHEDULED_1, done)
    assert state.frames["root"].pc == 1
    assert decide(state) == [ev.StartTimer(1, "sleep-1", "sleep", 2000)]
    sleeping = ev.TimerStarted(timer=1, step="sleep-1", purpose="sleep", duration_ms=2000, fire_at=4000)
    assert decide(run(SCHEDULED_1, done, sleeping)) == []
    state = run(SCHEDULED_1, done, sleeping, ev.TimerFired(timer=1))
    assert decide(state) == [ev.CompleteWorkflow({"r": {"id": 7}, "n": 1})]


def test_a_finished_workflow_decides_nothing():
    done = ev.ActivityCompleted(step="reserve", attempt=1, result=None, duration_ms=3)
    state = run(SCHEDULED_1, done, ev.WorkflowFailed(error={"message": "x"}))
    assert state.status == "failed" and decide(state) == []


def test_an_expression_error_fails_the_workflow_with_its_line():
    flow = ir.Flow("G", (), (ir.Return(ir.Expr("missing_key.x", line=4, col=10), line=4, col=3),), "flows/G.flow")
    state = fold([started(flow)])
    [command] = decide(state)
    assert isinstance(command, ev.FailWorkflow) and command.error["kind"] == "expression"
    assert command.error["line"] == 4


def test_an_empty_body_completes_with_null():
    flow = ir.Flow("E", (), (), "flows/E.flow")
    assert decide(fold([started(flow)])) == [ev.CompleteWorkflow(None)]


def test_fail_statement_fails_with_its_message():
    flow = ir.Flow("X", (), (ir.Fail(ir.Expr('"out of stock"'), line=2, col=3),), "flows/X.flow")
    [command] = decide(fold([started(flow)]))
    assert command.error["message"] == "out of stock" and command.error["kind"] == "fail"


def test_recording_a_timer_command_computes_fire_at_from_the_recorded_timestamp():
    event = ev.record_command(ev.StartTimer(3, "sleep-1", "sleep", 2000), seq=9, ts=10_000)
    assert (event.seq, event.ts, event.fire_at) == (9, 10_000, 12_000)
    assert ev.command_of(event) == ev.StartTimer(3, "sleep-1", "sleep", 2000)


def test_every_event_round_trips_through_its_record():
    samples = [
        started(),
        SCHEDULED_1,
        ev.ActivityStarted(step="reserve", attempt=1, pid=10, pgid=10, proc_start="123"),
        ev.ActivityHeartbeat(step="reserve", attempt=1, details={"done": 3}),
        ev.ActivityQueued(step="reserve", attempt=1, waiting_for="all activities (at most 4)"),
        ev.ActivityCompleted(step="reserve", attempt=1, result=[1, "a"], duration_ms=3),
        failed(1),
        ev.TimerStarted(timer=1, step="sleep-1", purpose="sleep", duration_ms=5, fire_at=1_764_000_000_123),
        ev.TimerFired(timer=1),
        ev.WorkflowCompleted(result=None),
        ev.WorkflowFailed(error={"message": "m"}),
        ev.WorkflowCancelled(reason={"message": "m"}),
        ev.BranchChosen(frame="root", at=0, branch="then0"),
        ev.VariableSet(frame="root", at=0, name="x", value=[1]),
        ev.ParallelStarted(frame="root", at=0, branches=2, race=True),
        ev.LoopStarted(frame="root", at=0, items=["a"]),
        ev.CatchEntered(frame="root", at=0, step="s", catch=0, error={"kind": "exit"}),
        ev.SignalConsumed(frame="root", at=0, step="s", signal="go", signal_seq=3),
        ev.ChildStarted(frame="root", at=0, step="s", flow="F", input={}, child_id="w1.s"),
        ev.CompensationStarted(reason={"kind": "fail"}, cancel=False, steps=["a"]),
        ev.SignalReceived(signal="go", data={"ok": True}),
        ev.CancelRequested(reason="user"),
        ev.ChildCompleted(step="s", child_id="w1.s", result=1),
        ev.ChildFailed(step="s", child_id="w1.s", error={"message": "x"}),
        ev.WorkflowNondeterministic(at=3, expected=None, recorded={"type": "VariableSet"}, where="f.flow:2"),
        ev.WorkflowResumed(from_seq=7, reason="resumed by the user"),
        ev.WorkflowForked(origin={"workflow_id": "w0", "seq": 4}),
        ev.WorkflowImported(bundle={"exported_at": "2026-11-30T00:00:00.000Z"}),
        ev.TimeSkipped(skipped_ms=86_400_000),
        ev.WorkflowTerminated(reason="terminated by the user"),
        ev.LoopIterated(frame="root", at=1, iteration=0, go=True),
        ev.LoopJumped(frame="root/1:body[0]", at=2, jump="break"),
        ev.SignalTaken(frame="root", at=1, signal="job", signal_seq=4, instance=0),
        ev.LoopClosed(frame="root", at=1, reason="signal", signal_seq=9),
        ev.ScopeStarted(frame="root", at=0),
        ev.LockRequested(frame="root", at=0, lock="printer", scope="home"),
        ev.LockAcquired(frame="root", at=0, lock="printer"),
        ev.LockGranted(frame="root", at=0, lock="printer"),
        ev.LockReleased(frame="root", at=0, lock="printer"),
        ev.ParallelStarted(frame="root", at=0, branches=3, race=False, chosen=[0, 2]),
        ev.ChildStarted(frame="root", at=0, step="s", flow="F", input={}, child_id="w1.s", detached=True),
    ]
    for event in samples:
        event = event.__class__(**{**event.__dict__, "seq": 5, "ts": 1_764_000_000_456})
        assert ev.from_record(ev.to_record(event)) == event
    assert set(ev.EVENT_TYPES) == {type(e).__name__ for e in samples}
