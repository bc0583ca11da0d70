"""The executor and the driving loop in-process: in-memory store, scripted runner, virtual clock.

No files and no processes: these prove the shell's logic (what is started when,
retries on durable timers, cancellation, stat-only hints) in milliseconds, with
time skipped ahead instead of waited for. Real processes are proven in
tests/integration and tests/crash.
"""

from __future__ import annotations

import time

from localflow.clock import VirtualClock
from localflow.core import events as ev
from localflow.dsl import parse_flow
from localflow.engine import Engine
from localflow.runner.scripted import ScriptedRunner, fail, succeed
from localflow.store.memory import MemoryStore
from localflow.supervisor.executor import Executor
from localflow.supervisor.loop import drive
from localflow.supervisor.wakeups import Wakeups

HOME = "/nonexistent/localflow-home"  # nothing is read or written there


def world(script):
    clock = VirtualClock()
    engine = Engine(HOME, clock=clock, store=MemoryStore())
    runner = ScriptedRunner(script)
    executor = Executor(engine, runner=runner, wakeups=Wakeups(None))
    return engine, executor, runner, clock


def start(engine, text: str, workflow_id: str = "w1", **given) -> str:
    flow = parse_flow(text, "flows/T.flow")
    return engine.start_flow(flow, text, given, workflow_id)


def run_to_end(engine, executor, workflow_id: str, real_seconds: float = 10.0):
    deadline = time.monotonic() + real_seconds
    executor.mark_dirty(workflow_id)

    def done() -> bool:
        if time.monotonic() > deadline:
            raise AssertionError("the workflow did not finish")
        return engine.state_of(workflow_id).terminal and not executor.busy

    drive(executor, executor.reconcile, until=done, period_s=3600)
    return engine.load(workflow_id)


def of_type(loaded, kind):
    return [e for e in loaded.events if isinstance(e, kind)]


def test_a_day_long_sleep_completes_at_once_on_a_virtual_clock():
    engine, executor, runner, clock = world(lambda spec: succeed({"ok": spec.step}))
    workflow_id = start(engine, 'flow T\n  sleep 1d\n  step after:\n    run ["x"]\n  return after.result\n')

    started = time.monotonic()
    loaded = run_to_end(engine, executor, workflow_id)

    assert time.monotonic() - started < 5
    assert loaded.state.result == {"ok": "after"}
    (timer,) = of_type(loaded, ev.TimerStarted)
    (fired,) = of_type(loaded, ev.TimerFired)
    assert fired.ts >= timer.fire_at == timer.ts + 86_400_000  # fired when due, by the clock's time


def test_a_failed_attempt_is_retried_after_its_backoff_on_a_durable_timer():
    outcomes = iter([fail("busy"), succeed(7)])
    engine, executor, runner, _ = world(lambda spec: next(outcomes))
    workflow_id = start(engine, 'flow T\n  step charge:\n    run ["x"]\n    retry 2 every 30s\n'
                                '  return charge.result\n')

    loaded = run_to_end(engine, executor, workflow_id)

    assert loaded.state.result == 7
    assert [s.attempt for s in runner.started] == [1, 2]
    (timer,) = of_type(loaded, ev.TimerStarted)
    assert timer.purpose == "retry-2" and timer.duration_ms == 30_000
    second = [e for e in of_type(loaded, ev.ActivityScheduled) if e.attempt == 2][0]
    assert second.ts >= timer.fire_at


def test_the_loser_of_a_race_is_cancelled_and_recorded_so():
    def script(spec):
        return succeed("fast") if spec.step == "fast" else None  # "slow" runs until cancelled

    engine, executor, runner, _ = world(script)
    text = ('flow T\n  race:\n    branch:\n      step fast:\n        run ["x"]\n'
            '    branch:\n      step slow:\n        run ["y"]\n  return fast.result\n')
    workflow_id = start(engine, text)

    loaded = run_to_end(engine, executor, workflow_id)

    assert loaded.state.result == "fast"
    failed = {e.step: e.error["kind"] for e in of_type(loaded, ev.ActivityFailed)}
    assert failed == {"slow": "cancelled"}


def test_a_hint_for_a_history_this_process_already_folded_costs_no_reconcile():
    engine, executor, runner, _ = world(lambda spec: succeed())
    workflow_id = start(engine, 'flow T\n  step w:\n    wait signal go\n  return w.result\n')
    executor.reconcile(workflow_id)

    executor.hint(workflow_id)
    assert executor.wait_for_work(max_wait_s=0.01) == set()


def test_a_hint_after_another_process_wrote_reconciles_even_if_this_one_has_read_it_since():
    engine, executor, runner, clock = world(lambda spec: succeed())
    workflow_id = start(engine, 'flow T\n  step w:\n    wait signal go\n  return w.result\n')
    executor.reconcile(workflow_id)
    other = Engine(HOME, clock=clock, store=engine.store)  # `lf signal` in another process

    other.signal(workflow_id, "go", 1)
    engine.state_of(workflow_id)  # a read (lf run's loop, a parent looking at its child) carries nothing out
    executor.hint(workflow_id)

    assert executor.wait_for_work(max_wait_s=0.01) == {workflow_id}


def test_waiting_skips_virtual_time_to_the_next_due_timer_and_wakes_its_workflow():
    engine, executor, runner, clock = world(lambda spec: succeed())
    workflow_id = start(engine, 'flow T\n  sleep 10s\n  return 1\n')
    executor.reconcile(workflow_id)  # records TimerStarted and puts it on the schedule
    before = clock()

    woken = executor.wait_for_work(max_wait_s=0.01)  # no hint, nothing dirty: only the timer

    assert woken == {workflow_id}
    assert 10_000 <= clock() - before < 10_100
