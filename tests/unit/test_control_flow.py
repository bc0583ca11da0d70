"""Control flow in the pure core, driven by a scripted world: no processes, no clock.

``simulate`` plays the shell: it records what decide asks for, then feeds back one
outside event per round (the oldest pending attempt finishes, else the earliest
timer fires), so the order of events is deterministic and tests can reason about
which branch of a race wins. Every simulated history must also replay exactly.
"""

from dataclasses import replace

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.replay import replay
from localflow.core.state import evolve, fold

E = ir.Expr


def run(name, *argv, **kw):
    return ir.Activity(name, tuple(E(a) for a in (f'"{name}"',) + argv), 1000, **kw)


def flow(*body, inputs=(), timeout_ms=None):
    return ir.Flow("T", tuple(ir.Input(n, E(v)) for n, v in inputs), tuple(body), "flows/T.flow", timeout_ms)


class World:
    def __init__(self, flow_, outcome=None, signals=(), cancel_after=None):
        self.outcome = outcome or (lambda key, attempt, argv: ("ok", key))
        self.events = [ev.WorkflowStarted(seq=1, ts=0, workflow_id="w", flow_name="T", flow_hash="h",
                                          flow_file="flows/T.flow", flow=ir.to_json(flow_), flow_source="",
                                          input={i.name: eval(i.default.source) for i in flow_.inputs})]
        self.state = fold(self.events)
        self.now = 0
        self.max_pending = 0
        self.signals = list(signals)
        self.cancel_after = cancel_after

    def add(self, event):
        self.now += 1
        event = replace(event, seq=self.state.last_seq + 1, ts=self.now)
        self.events.append(event)
        self.state = evolve(self.state, event)

    def run(self, rounds=20_000):
        for _ in range(rounds):
            commands = decide(self.state)
            while commands:  # like the engine: decide again until nothing new is asked for
                for command in commands:
                    self.add(ev.record_command(command, 0, self.now))
                commands = decide(self.state)
            if self.state.terminal:
                break
            pending = [(k, a) for k, a in self.state.pending_attempts()]
            self.max_pending = max(self.max_pending, len(pending))
            if not self.world_step(pending):
                break
        assert replay(self.events) == self.state, "the history must replay to the same state"
        return self.state

    def world_step(self, pending):
        if self.cancel_after is not None and len(self.events) >= self.cancel_after \
                and self.state.cancel_requested is None:
            self.add(ev.CancelRequested(reason="stop"))
            return True
        if self.signals and self.signals[0][0] <= len(self.events):
            _, name, data = self.signals.pop(0)
            self.add(ev.SignalReceived(signal=name, data=data))
            return True
        for key, attempt in pending:
            step = self.state.steps[key]
            if not self.state.wanted(step):
                self.add(ev.ActivityFailed(step=key, attempt=attempt.number, duration_ms=1,
                                           error={"kind": "cancelled", "message": "cancelled", "exit_code": None}))
                return True
            kind, value = self.outcome(key, attempt.number, list(attempt.argv))
            if kind == "ok":
                self.add(ev.ActivityCompleted(step=key, attempt=attempt.number, result=value, duration_ms=1))
            else:
                self.add(ev.ActivityFailed(step=key, attempt=attempt.number, duration_ms=1, error=value))
            return True
        for child in self.state.pending_children():
            self.add(ev.ChildCompleted(step=child.step, child_id=child.child_id, result={"child": child.step}))
            return True
        timers = sorted(self.state.pending_timers(), key=lambda t: (t.fire_at, t.timer))
        if timers:
            self.add(ev.TimerFired(timer=timers[0].timer))
            return True
        return False

    def types(self):
        return [type(e).__name__ for e in self.events]

    def scheduled(self):
        return [e.step for e in self.events if isinstance(e, ev.ActivityScheduled)]


def exit_code(code, message="boom"):
    return ("fail", {"kind": "exit", "message": message, "exit_code": code})


def test_if_elif_else_takes_the_first_true_arm():
    def branching(amount):
        return flow(
            ir.If("if-1", (ir.IfBranch(E("amount > 100"), (run("big"),)),
                           ir.IfBranch(E("amount > 50"), (run("medium"),))), (run("small"),)),
            ir.Return(E("amount")),
            inputs=(("amount", str(amount)),),
        )
    assert World(branching(500)).run() and World(branching(500)).run().steps.keys() == {"big"}
    assert set(World(branching(60)).run().steps) == {"medium"}
    assert set(World(branching(1)).run().steps) == {"small"}


def test_if_without_else_and_no_true_arm_moves_on():
    world = World(flow(ir.If("if-1", (ir.IfBranch(E("false"), (run("never"),)),)), ir.Return(E("1"))))
    state = world.run()
    assert state.status == "completed" and state.steps == {}
    assert [e.branch for e in world.events if isinstance(e, ev.BranchChosen)] == [""]


def test_set_variables_are_readable_later():
    state = World(flow(ir.Set("x", E("2 * 21")), ir.Return(E("{'x': x}")))).run()
    assert state.result == {"x": 42}


def test_parallel_runs_every_branch_and_joins():
    world = World(flow(ir.Parallel("parallel-1", ((run("a"),), (run("b"), run("c")))),
                       ir.Return(E("[a.result, b.result, c.result]"))))
    state = world.run()
    assert state.result == ["a", "b", "c"]
    assert world.max_pending == 2  # a and b were scheduled together


def test_race_first_branch_wins_and_the_loser_is_cancelled():
    world = World(flow(ir.Parallel("race-1", ((ir.Sleep("sleep-1", 5000),), (run("fast"), run("second"))),
                                   race=True),
                       run("after"), ir.Return(E("fast.result"))))
    state = world.run()
    assert state.status == "completed"
    assert world.scheduled() == ["fast", "second", "after"]
    [losing_sleep] = state.pending_timers()
    assert losing_sleep.step == "sleep-1" and not state.timer_wanted(losing_sleep)  # nobody fires it


def test_race_loser_with_a_running_activity_is_cancelled():
    world = World(flow(ir.Parallel("race-1", ((ir.Sleep("sleep-1", 10),), (run("slow"),)), race=True),
                       run("after"), ir.Return(E("1"))))
    world.world_step = _timers_first(world)
    state = world.run()
    assert state.status == "completed"
    cancelled = [e for e in world.events if isinstance(e, ev.ActivityFailed)]
    assert [(c.step, c.error["kind"]) for c in cancelled] == [("slow", "cancelled")]


def _timers_first(world):
    """A world where timers fire before running activities finish."""
    original = World.world_step

    def step(pending):
        timers = world.state.pending_timers()
        if timers:
            world.add(ev.TimerFired(timer=timers[0].timer))
            return True
        return original(world, pending)
    return step


def test_for_loop_runs_items_in_order_with_the_item_bound():
    world = World(flow(ir.For("for-1", "item", E("['x', 'y', 'z']"), (run("pack", "item"),)),
                       ir.Return(E("'done'"))))
    state = world.run()
    assert world.scheduled() == ["pack[0]", "pack[1]", "pack[2]"]
    assert [e.argv for e in world.events if isinstance(e, ev.ActivityScheduled)] == [
        ["pack", "x"], ["pack", "y"], ["pack", "z"]]
    assert world.max_pending == 1 and state.result == "done"


def test_parallel_for_respects_its_concurrency_bound():
    world = World(flow(ir.For("for-1", "n", E("range(7)"), (run("job", "n"),), concurrency=3)))
    state = world.run()
    assert state.status == "completed" and len(world.scheduled()) == 7
    assert world.max_pending == 3


def test_a_step_inside_a_loop_reads_its_own_iteration():
    world = World(flow(ir.For("for-1", "n", E("[1, 2]"), (run("a", "n"), run("b", "a.result"))),))
    world.run()
    assert [e.argv for e in world.events if isinstance(e, ev.ActivityScheduled) and e.step.startswith("b")] == [
        ["b", "a[0]"], ["b", "a[1]"]]


def test_a_thousand_item_loop_keeps_history_and_frames_linear():
    world = World(flow(ir.For("for-1", "n", E("range(1000)"), (run("job", "n"),), concurrency=4)))
    state = world.run()
    assert state.status == "completed"
    assert len(world.events) <= 2 * 1000 + 5
    assert len(state.frames) == 0 and world.max_pending == 4


def test_catch_by_exit_code_runs_instead_of_failing():
    catch = ir.Catch("exit", (2,), (ir.Set("caught", E("error.message")),))
    world = World(flow(run("risky", catches=(catch,)), ir.Return(E("caught"))),
                  outcome=lambda key, attempt, argv: exit_code(2, "nope"))
    state = world.run()
    assert state.status == "completed" and "nope" in state.result
    assert state.steps["risky"].caught == 0


def test_a_catch_that_does_not_match_lets_the_workflow_fail():
    catch = ir.Catch("exit", (2,), (ir.Return(E("'caught'")),))
    state = World(flow(run("risky", catches=(catch,))), outcome=lambda k, a, v: exit_code(3)).run()
    assert state.status == "failed" and state.error["exit_code"] == 3


def test_catch_by_error_type_reported_by_the_activity():
    catch = ir.Catch("error", ("CardDeclined",), (ir.Return(E("error.type")),))
    failure = ("fail", {"kind": "exit", "message": "declined", "exit_code": 1, "type": "CardDeclined"})
    state = World(flow(run("charge", catches=(catch,))), outcome=lambda k, a, v: failure).run()
    assert state.result == "CardDeclined"


def test_failure_compensates_completed_steps_in_reverse_order():
    world = World(flow(run("reserve", undo=(E('"release"'),)), run("charge", undo=(E('"refund"'),)),
                       run("ship"), ir.Return(E("1"))),
                  outcome=lambda key, attempt, argv: exit_code(1) if key == "ship" else ("ok", key))
    state = world.run()
    assert state.status == "failed"
    assert world.scheduled() == ["reserve", "charge", "ship", "undo:charge", "undo:reserve"]
    assert state.error["compensated"] == ["charge", "reserve"]
    undo_argv = [e.argv for e in world.events if isinstance(e, ev.ActivityScheduled) and e.step.startswith("undo")]
    assert undo_argv == [["refund"], ["release"]]


def test_cancel_compensates_and_ends_cancelled():
    world = World(flow(run("reserve", undo=(E('"release"'),)), ir.Sleep("sleep-1", 60_000), ir.Return(E("1"))),
                  cancel_after=4)
    state = world.run()
    assert state.status == "cancelled"
    assert world.scheduled() == ["reserve", "undo:reserve"]


def test_failure_stops_running_parallel_work_before_compensating():
    world = World(flow(ir.Parallel("parallel-1", ((run("slow"),), (ir.Sleep("sleep-1", 5), ir.Fail(E("'stop'")))))))
    world.world_step = _timers_first(world)
    state = world.run()
    assert state.status == "failed" and state.error["message"] == "stop"
    assert "CompensationStarted" in world.types()
    assert [e.error["kind"] for e in world.events if isinstance(e, ev.ActivityFailed)] == ["cancelled"]


def test_a_signal_sent_before_the_wait_is_buffered_and_consumed():
    wait = ir.WaitSignal("approval", "approve", None)
    world = World(flow(run("first"), wait, ir.Return(E("approval.result"))),
                  signals=[(1, "approve", {"by": "ann"})])
    state = world.run()
    assert state.result == {"by": "ann"}
    types = world.types()
    assert types.index("SignalReceived") < types.index("SignalConsumed")


def test_an_answered_wait_no_longer_wants_its_timeout():
    wait = ir.WaitSignal("approval", "approve", 30_000)
    world = World(flow(ir.Sleep("sleep-1", 10), wait, ir.Sleep("sleep-2", 50_000), ir.Return(E("1"))),
                  signals=[(4, "approve", True)])
    world.world_step = _stop_after_signal(world)
    world.run()
    timeout = world.state.timer_for("approval", "signal-timeout")
    assert world.state.steps["approval"].status == "completed"
    assert timeout.fired_at is None and not world.state.timer_wanted(timeout)


def _stop_after_signal(world):
    original = World.world_step

    def step(pending):
        if any(isinstance(e, ev.SignalConsumed) for e in world.events):
            return False
        return original(world, pending)
    return step


def test_a_signal_wait_that_times_out_runs_its_catch():
    wait = ir.WaitSignal("approval", "approve", 30_000, (ir.Catch("timeout", (), (ir.Return(E("'late'")),)),))
    state = World(flow(wait)).run()
    assert state.result == "late"


def test_a_signal_wait_timeout_without_catch_fails_clearly():
    state = World(flow(ir.WaitSignal("approval", "approve", 1000))).run()
    assert state.status == "failed"
    assert "waiting for signal 'approve'" in state.error["message"]


def test_workflow_timeout_fails_the_workflow():
    state = World(flow(ir.Sleep("sleep-1", 60_000), timeout_ms=1000)).run()
    assert state.status == "failed" and state.error["kind"] == "timeout"


def test_child_flow_result_becomes_the_step_result():
    child = ir.ChildFlow("ship", "ShipFlow", E("{'order': 1}"))
    world = World(flow(child, ir.Return(E("ship.result"))))
    state = world.run()
    started = [e for e in world.events if isinstance(e, ev.ChildStarted)][0]
    assert (started.child_id, started.input) == ("w.ship", {"order": 1})
    assert state.result == {"child": "ship"}


def test_expression_errors_name_the_line():
    state = World(flow(ir.Return(E("missing.x", line=7, col=10)))).run()
    assert state.status == "failed" and state.error["line"] == 7 and state.error["kind"] == "expression"


def test_now_is_workflow_time_from_the_history():
    state = World(flow(run("a"), ir.Return(E("now()")))).run()
    assert state.result.startswith("1970-01-01T00:00:00.00")


def test_a_race_whose_branches_both_decide_at_once_lets_the_first_win():
    world = World(flow(ir.Parallel("race-1", ((ir.Set("a", E("1")),), (ir.Set("b", E("2")), run("x"))), race=True),
                       ir.Return(E("a"))))
    state = world.run()
    assert state.status == "completed" and state.result == 1
    assert world.scheduled() == []  # the losing branch never got to its step


def test_one_signal_is_taken_by_one_wait_only():
    waits = (ir.WaitSignal("w1", "go", None),), (ir.WaitSignal("w2", "go", None),)
    world = World(flow(ir.Parallel("parallel-1", waits), ir.Return(E("[w1.result, w2.result]"))),
                  signals=[(0, "go", "first"), (0, "go", "second")])
    state = world.run()
    assert sorted(state.result) == ["first", "second"]
    taken = [e.signal_seq for e in world.events if isinstance(e, ev.SignalConsumed)]
    assert len(set(taken)) == 2


def test_a_step_that_completes_after_compensation_began_is_undone_first():
    world = World(flow(run("hold", undo=(E('"release"'),)),
                       ir.Parallel("parallel-1", ((run("book", undo=(E('"unbook"'),)),),
                                                  (ir.Sleep("sleep-1", 5), ir.Fail(E("'stop'")))))))
    original = World.world_step

    def step(pending):  # the timer fires first; then "book" completes although nobody wants it any more
        timers = world.state.pending_timers()
        if timers:
            world.add(ev.TimerFired(timer=timers[0].timer))
            return True
        for key, attempt in pending:
            if key == "book":
                world.add(ev.ActivityCompleted(step=key, attempt=attempt.number, result=None, duration_ms=1))
                return True
        return original(world, pending)
    world.world_step = step
    state = world.run()
    assert state.status == "failed" and state.error["compensated"] == ["book", "hold"]


def test_history_lines_name_the_statement_a_control_flow_event_belongs_to():
    from localflow.core.frames import statement_at
    from localflow.present import describe

    inner = ir.If("if-1", (ir.IfBranch(E("true"), (ir.Set("x", E("1")),)),))
    loop = ir.For("for-1", "n", E("[1, 2]"), (inner,))
    f = flow(run("a"), loop)
    assert statement_at(f, "root", 1) is loop
    assert statement_at(f, "root/1:body[1]", 0) is inner
    assert statement_at(f, "root/9:body[0]", 0) is None
    chosen = ev.BranchChosen(frame="root/1:body[1]", at=0, branch="then0")
    assert describe(chosen, f) == "if: took the if branch"  # the words of the flow, never its ids (if-1, then0)
    assert describe(chosen) == "statement 1: took the if branch"
    with_lines = ir.If("if-1", (ir.IfBranch(E("false"), (), line=3), ir.IfBranch(E("true"), (), line=5)),
                       orelse=(), line=3)
    g = flow(with_lines)
    assert describe(ev.BranchChosen(frame="root", at=0, branch="then1"), g) == \
        "if at line 3: took elif branch 1 (line 5)"
    assert describe(ev.BranchChosen(frame="root", at=0, branch="else"), g) == "if at line 3: took the else branch"
    assert describe(ev.BranchChosen(frame="root", at=0, branch=""), g) == \
        "if at line 3: took no branch (no condition held)"
