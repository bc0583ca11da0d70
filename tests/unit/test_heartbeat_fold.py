"""Heartbeats in the pure core and the views: the clause, the fold, decide handing details on,
byte-identical old histories, `lf history` / `lf inspect` shapes, and the recorder's rate limit."""

from __future__ import annotations

import json
import os
import threading

import pytest

from localflow import ir
from localflow.cli.render import details
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.replay import replay
from localflow.core.state import fold
from localflow.dsl import parse_flow
from localflow.errors import InvalidValue
from localflow.present import describe
from localflow.runner.heartbeats import MAX_DETAILS_BYTES, HeartbeatPipe, check_details
from localflow.supervisor.heartbeats import HeartbeatRecorder

SOURCE = """flow Beat
  step crunch:
    run ["python3", "crunch.py"]
    heartbeat 30s
    retry 2 every 1s
    catch timeout:
      return "gave up"
  return crunch.result
"""
FLOW = parse_flow(SOURCE, "flows/Beat.flow")


def started(flow=FLOW):
    return ev.WorkflowStarted(seq=1, ts=1_000, workflow_id="w1", flow_name=flow.name, flow_hash="h",
                              flow_file=flow.file, flow=ir.to_json(flow), flow_source=SOURCE, input={}, end=True)


def history(*events):
    """Number and stamp ``events`` after WorkflowStarted, each its own transaction."""
    out = [started()]
    for i, event in enumerate(events, start=2):
        out.append(event.__class__(**{**event.__dict__, "seq": i, "ts": 1_000 + i * 10, "end": True}))
    return out


def test_the_clause_parses_into_the_ir_and_the_first_attempt_carries_it():
    [step, _] = FLOW.body
    assert step.heartbeat_ms == 30_000
    [command] = decide(fold([started()]))
    assert command.heartbeat_ms == 30_000 and command.heartbeat_details is None


def test_the_clause_applies_to_run_and_call_steps_only():
    call = parse_flow("flow C\n  step c:\n    call m.f()\n    heartbeat 2s\n  return 1\n", "flows/C.flow")
    assert call.body[0].heartbeat_ms == 2000


def test_a_wait_step_refuses_heartbeat():
    from localflow.errors import FlowSyntaxError

    with pytest.raises(FlowSyntaxError, match="'heartbeat' does not apply to a wait step"):
        parse_flow("flow W\n  step w:\n    wait signal go\n    heartbeat 2s\n  return 1\n", "flows/W.flow")


def test_a_flow_without_heartbeat_pins_the_same_json_and_schedules_the_same_event_as_before():
    flow = parse_flow("flow P\n  step s:\n    run [\"true\"]\n  return 1\n", "flows/P.flow")
    assert "heartbeat_ms" not in json.dumps(ir.to_json(flow))
    [command] = decide(fold([started(flow)]))
    record = ev.to_record(ev.record_command(command, 2, 2_000))
    assert "heartbeat_ms" not in record and "heartbeat_details" not in record


def _scheduled_1():
    [command] = decide(fold([started()]))
    return ev.record_command(command, 0, 0)


def test_the_fold_keeps_the_last_details_on_the_attempt_and_the_step():
    events = history(_scheduled_1(),
                     ev.ActivityStarted(step="crunch", attempt=1, pid=5, pgid=5),
                     ev.ActivityHeartbeat(step="crunch", attempt=1, details={"done": 10}),
                     ev.ActivityHeartbeat(step="crunch", attempt=1, details={"done": 20}))
    state = fold(events)
    attempt = state.steps["crunch"].last
    assert (attempt.heartbeat_details, attempt.heartbeat_at) == ({"done": 20}, events[-1].ts)
    assert state.steps["crunch"].heartbeat_details == {"done": 20}
    assert attempt.pending and decide(state) == []  # a heartbeat decides nothing


def test_the_next_attempt_is_handed_the_last_recorded_details_and_replay_agrees():
    events = history(_scheduled_1(),
                     ev.ActivityHeartbeat(step="crunch", attempt=1, details={"done": 20}),
                     ev.ActivityFailed(step="crunch", attempt=1, duration_ms=30_000,
                                       error={"kind": "timeout", "message": "no heartbeat for 30s", "exit_code": None}))
    [timer] = decide(fold(events))
    assert timer.purpose == "retry-2"
    events = history(*events[1:], ev.record_command(timer, 0, 0), ev.TimerFired(timer=1))
    [again] = decide(fold(events))
    assert (again.attempt, again.heartbeat_details, again.heartbeat_ms) == (2, {"done": 20}, 30_000)
    events = history(*events[1:], ev.record_command(again, 0, 0))
    state = replay(events)
    assert state.steps["crunch"].last.handed_details == {"done": 20}
    # an attempt that reports nothing new keeps the step's last details for the one after it
    assert state.steps["crunch"].heartbeat_details == {"done": 20}


def test_a_heartbeat_timeout_is_caught_by_catch_timeout_after_the_retries():
    error = {"kind": "timeout", "message": "no heartbeat for 30s", "exit_code": None}
    timeline = [_scheduled_1()]
    for number in (1, 2, 3):
        timeline.append(ev.ActivityFailed(step="crunch", attempt=number, duration_ms=1, error=error))
        commands = decide(fold(history(*timeline)))
        if number < 3:
            timeline.append(ev.record_command(commands[0], 0, 0))
            timeline.append(ev.TimerFired(timer=number))
            [next_attempt] = decide(fold(history(*timeline)))
            timeline.append(ev.record_command(next_attempt, 0, 0))
    [caught] = commands
    assert type(caught).__name__ == "EnterCatch" and caught.error["message"] == "no heartbeat for 30s"


def test_history_describes_the_heartbeat_and_what_a_retry_was_handed():
    beat = ev.ActivityHeartbeat(step="crunch", attempt=1, details={"done": 20})
    assert describe(beat) == 'crunch: attempt 1 heartbeat: {"done": 20}'
    handed = ev.ActivityScheduled(step="crunch", attempt=2, argv=["python3", "crunch.py"], stdin=None,
                                  timeout_ms=1, heartbeat_ms=30_000, heartbeat_details={"done": 20})
    assert describe(handed).endswith('(resuming from heartbeat {"done": 20})')


def test_inspect_json_shows_the_last_heartbeat_time_and_details():
    events = history(_scheduled_1(), ev.ActivityHeartbeat(step="crunch", attempt=1, details={"done": 7}))
    shown = details(fold(events))
    [step] = shown["steps"]
    assert step["heartbeat_details"] == {"done": 7}
    assert step["attempts"][0]["heartbeat"] == {"at": "1970-01-01T00:00:01.030Z", "details": {"done": 7}}
    assert step["attempts"][0]["handed_details"] is None


# --- the runner's checks and the recorder -------------------------------------------------------


def test_details_must_be_storable_json_of_limited_size():
    assert check_details({"page": 3}) == {"page": 3}
    for bad in ({1, 2}, float("nan"), "x" * (MAX_DETAILS_BYTES + 1)):
        with pytest.raises(InvalidValue):
            check_details(bad)


def test_the_pipe_takes_lines_notes_bad_ones_and_counts_each_as_a_sign_of_life():
    got, notes = [], []
    pipe = HeartbeatPipe(got.append, notes.append)
    os.write(pipe.write_fd, b'{"done": 1}\n\nnot json\n[1, 2]\n' + b"x" * (MAX_DETAILS_BYTES + 10) + b'\n{"done": 2}')
    pipe.close_write()
    while not pipe.eof:
        pipe.pump(1)
    pipe.close()
    assert got == [{"done": 1}, [1, 2], {"done": 2}]
    assert len(notes) == 2 and "not valid JSON" in notes[0] and "byte limit" in notes[1]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_recorder_records_changed_details_at_most_once_per_interval_and_the_rest_at_the_end():
    recorded, clock = [], FakeClock()
    recorder = HeartbeatRecorder(recorded.extend, "crunch", 1, interval_s=5, clock=clock)
    for i in range(300):  # a hundred a second for three seconds
        recorder({"done": i})
        clock.now += 0.01
    assert [e.details for e in recorded] == [{"done": 0}]
    final = recorder.finish()
    assert [e.details for e in final] == [{"done": 299}] and recorder.finish() is final
    recorder({"done": 300})
    assert len(recorded) == 1  # over: nothing more


def test_the_recorder_records_nothing_new_for_the_details_it_was_handed():
    recorded = []
    recorder = HeartbeatRecorder(recorded.extend, "crunch", 2, handed={"done": 20})
    recorder({"done": 20})
    assert recorded == [] and recorder.finish() == []


def test_a_deferred_change_is_recorded_when_the_interval_has_passed():
    recorded, done = [], threading.Event()

    def record(events):
        recorded.extend(events)
        done.set()

    recorder = HeartbeatRecorder(record, "crunch", 1, interval_s=0.2)
    recorder({"done": 1})
    done.clear()
    recorder({"done": 2})  # within the interval: deferred to a timer
    assert done.wait(5)
    assert [e.details for e in recorded] == [{"done": 1}, {"done": 2}]
    assert recorder.finish() == []
