"""decide(state) -> commands: what the workflow does next (pure).

Each live frame whose current statement has not started gets one handler call;
handlers are a few lines that look at the state of that statement and return
the commands that move it on:

| statement   | state of it                                  | commands                         |
|-------------|----------------------------------------------|----------------------------------|
| step (run)  | never scheduled                              | ScheduleActivity(attempt 1)      |
|             | attempt pending                              | (wait)                           |
|             | last attempt interrupted by a crash/stop     | ScheduleActivity(n+1) now        |
|             | failed, retries left, no retry timer yet     | StartTimer(retry-n+1)            |
|             | failed, retry timer fired                    | ScheduleActivity(n+1)            |
|             | failed for good                              | EnterCatch, or the failure path  |
| step (wait) | a buffered signal of that name               | ConsumeSignal                    |
|             | timeout and no timer yet / timer fired       | StartTimer / catch or failure    |
| step (flow) | not started / failed                         | StartChild / catch or failure    |
| sleep       | no timer yet                                 | StartTimer(sleep)                |
| set         | -                                            | SetVariable                      |
| if          | -                                            | ChooseBranch                     |
| parallel    | -                                            | StartParallel                    |
| for         | -                                            | StartLoop (the items, recorded)  |
| fail        | -                                            | the failure path                 |
| return      | -                                            | CompleteWorkflow(value)          |

The failure path (a `fail`, a step failing for good with no catch, the workflow
timeout, `lf cancel`) is StartCompensation when something is still running or
there are undo commands to run, else FailWorkflow / CancelWorkflow at once.
While compensating, running work is stopped by the executor, then each undo
runs in order, then the workflow ends.

Deciding again on the same state gives the same commands; replay checks that.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Mapping

from localflow import ir
from localflow.core import events as ev
from localflow.core import expr, retry
from localflow.core.state import UNDO_PREFIX, Frame, StepState, WorkflowState
from localflow.core.timefmt import format_duration, to_iso
from localflow.core.jsonvalue import check_command
from localflow.errors import ExpressionError, InvalidValue

UNDO_MAX_ATTEMPTS = 3


class _Batch:
    """What one decide call works from: the state, and the id the next timer gets."""

    def __init__(self, state: WorkflowState) -> None:
        self.state = state

    def timer(self, step: str, purpose: str, duration_ms: int, frame: str) -> ev.StartTimer:
        return ev.StartTimer(len(self.state.timers) + 1, step, purpose, duration_ms, frame)


def decide(state: WorkflowState) -> list:
    if state.terminal:
        return []
    if state.divergence is not None or state.held:
        # The history disagrees with the flow, or it was imported and not released: decide nothing
        # (from a state that cannot be trusted, or that belongs to another machine), except ending
        # it when asked here (compensation would decide from that same state). A cancel recorded
        # before an import is the origin's: it carries on once the workflow is released.
        if state.cancel_requested is None or (state.divergence is None and not state.cancelled_while_held):
            return []
        why = "the history disagrees with its flow" if state.divergence is not None else "it was imported, not released"
        return [ev.CancelWorkflow({"kind": "cancelled", "message": state.cancel_requested, "not_compensated": why})]
    if state.compensation is not None:
        return _compensate(state)
    if state.cancel_requested is not None:
        return _abort(state, {"kind": "cancelled", "message": state.cancel_requested}, cancel=True)
    deadline = state.timer_for("workflow", "workflow-timeout")
    if deadline is not None and deadline.fired_at is not None:
        message = f"the workflow timed out after {format_duration(deadline.duration_ms)}"
        return _abort(state, {"kind": "timeout", "message": message, "step": None, "line": None})
    if state.body_done:
        return [ev.CompleteWorkflow(None)]
    batch = _Batch(state)
    if state.flow.timeout_ms and deadline is None:
        return [batch.timer("workflow", "workflow-timeout", state.flow.timeout_ms, "root")]
    # One frame's commands at a time: the engine records them and decides again, so each
    # frame decides on a state that already holds what the frames before it did (a race
    # won, a signal taken). Replay calls decide the same way.
    for frame in list(state.frames.values()):
        if frame.entered or frame.current is None:
            continue
        stmt = frame.current
        try:
            commands = _HANDLERS[type(stmt)](stmt, frame, batch)
            for command in commands:
                check_command(command, ev.recorded_name(command))
        except ExpressionError as exc:
            commands = _abort(state, {"kind": "expression", "message": exc.message,
                                      "step": _key(stmt, frame), "line": exc.line or stmt.line})
        except InvalidValue as exc:
            commands = _abort(state, {"kind": "value", "message": str(exc),
                                      "step": _key(stmt, frame), "line": stmt.line})
        if commands:
            return commands
    return []


# --- names an expression can read ---------------------------------------------------


class Env(Mapping):
    """The names visible to an expression in a frame, looked up lazily (no copy of all steps).

    Order: the frame's bindings (loop variable, ``error``), ``workflow``, variables
    set by ``set``, inputs, then steps: inside a loop, ``pack`` is this
    iteration's ``pack[i]``. ``__now__`` is workflow time for ``now()``.
    """

    def __init__(self, state: WorkflowState, frame: Frame | None = None) -> None:
        self.state = state
        self.frame = frame

    def __getitem__(self, name: str) -> Any:
        state, frame = self.state, self.frame
        if frame is not None and name in frame.bindings:
            return frame.bindings[name]
        if name == "workflow":
            return {"id": state.workflow_id, "flow": state.flow.name}
        if name == "__now__":
            return to_iso(state.updated_at)
        if name in state.variables:
            return state.variables[name]
        if name in state.input:
            return state.input[name]
        step = self._step(name)
        if step is not None and step.status == "completed":
            value = {"result": step.result, "attempts": len(step.attempts) or 1}
            if step.child_id:
                value["workflow_id"] = step.child_id
            return value
        raise KeyError(name)

    def _step(self, name: str) -> StepState | None:
        suffix = self.frame.suffix if self.frame is not None else ""
        while True:
            found = self.state.steps.get(name + suffix)
            if found is not None or not suffix:
                return found
            suffix = suffix[: suffix.rfind("[")]

    def __iter__(self) -> Iterator[str]:
        names = dict.fromkeys(["workflow", *self.state.variables, *self.state.input])
        if self.frame is not None:
            names.update(dict.fromkeys(self.frame.bindings))
        names.update(dict.fromkeys(re.sub(r"\[\d+\]$", "", k) for k, s in self.state.steps.items()
                                   if s.status == "completed" and s.kind != "undo"))
        return iter(names)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _eval(expression: ir.Expr, frame: Frame, batch: _Batch) -> Any:
    return expr.evaluate(expression, Env(batch.state, frame))


def _key(stmt: Any, frame: Frame) -> str:
    return (getattr(stmt, "name", None) or getattr(stmt, "id", None) or "") + frame.suffix


# --- steps ---------------------------------------------------------------------------


def _on_activity(stmt: ir.Activity, frame: Frame, batch: _Batch) -> list:
    key = stmt.name + frame.suffix
    step = batch.state.steps.get(key)
    if step is None:
        return [_schedule(stmt, frame, batch, key, attempt=1)]
    last = step.last
    if last.pending or last.outcome == "completed":
        return []
    if (last.error or {}).get("kind") == "interrupted" or step.fresh_from == len(step.attempts):  # or just resumed
        return [_schedule(stmt, frame, batch, key, attempt=last.number + 1)]
    failures = step.counted_failures
    if not retry.may_retry(stmt.retry, failures):
        tries = len(step.attempts)
        summary = f"step '{key}' failed after {tries} attempt{'s' if tries != 1 else ''}: {last.error.get('message')}"
        return _step_failed(stmt, frame, batch, key, last.error, summary)
    timer = batch.state.timer_for(key, f"retry-{last.number + 1}")
    if timer is None:
        return [batch.timer(key, f"retry-{last.number + 1}", retry.delay_ms(stmt.retry, failures), frame.id)]
    if timer.fired_at is None:
        return []
    return [_schedule(stmt, frame, batch, key, attempt=last.number + 1)]


def _schedule(stmt: ir.Activity, frame: Frame, batch: _Batch, key: str, attempt: int) -> ev.ScheduleActivity:
    undo = [_argv_text(_eval(e, frame, batch)) for e in stmt.undo] if stmt.undo else None
    if stmt.call is not None:  # a Python function: its keyword arguments are its whole input
        kwargs = {name: _eval(e, frame, batch) for name, e in stmt.call.kwargs}
        return ev.ScheduleActivity(key, attempt, [], None, stmt.timeout_ms, frame.id, undo,
                                   {"target": stmt.call.target, "kwargs": kwargs})
    argv = [_argv_text(_eval(e, frame, batch)) for e in stmt.argv]
    if stmt.stdin is not None:
        stdin = _eval(stmt.stdin, frame, batch)
    else:
        stdin = {"workflow_id": batch.state.workflow_id, "step": key, "input": dict(batch.state.input),
                 "steps": _referenced_results(stmt, frame, batch.state)}
    return ev.ScheduleActivity(key, attempt, argv, stdin, stmt.timeout_ms, frame.id, undo)


def _referenced_results(stmt: ir.Activity, frame: Frame, state: WorkflowState) -> dict:
    """The results of the completed steps a step's run list names (its default stdin)."""
    env = Env(state, frame)
    results = {}
    for name in sorted({name for e in stmt.argv for name, _, _ in expr.names_used(e)}):
        if name in frame.bindings or name in state.variables or name in state.input:
            continue
        step = env._step(name)
        if step is not None and step.status == "completed":
            results[name] = step.result
    return results


def _argv_text(value: Any) -> str:
    """argv elements are strings; other JSON values are written as JSON text."""
    return value if isinstance(value, str) else expr.to_text(value)


def _on_wait(stmt: ir.WaitSignal, frame: Frame, batch: _Batch) -> list:
    key = stmt.name + frame.suffix
    state = batch.state
    for signal in state.signals:
        if signal.signal == stmt.signal and signal.consumed_by is None:
            return [ev.ConsumeSignal(frame.id, frame.pc, key, stmt.signal, signal.seq)]
    if stmt.timeout_ms is None:
        return []
    timer = state.timer_for(key, "signal-timeout")
    if timer is None:
        return [batch.timer(key, "signal-timeout", stmt.timeout_ms, frame.id)]
    if timer.fired_at is None:
        return []
    message = f"timed out after {format_duration(stmt.timeout_ms)} waiting for signal '{stmt.signal}'"
    return _step_failed(stmt, frame, batch, key, {"kind": "timeout", "message": message, "exit_code": None})


def _on_child(stmt: ir.ChildFlow, frame: Frame, batch: _Batch) -> list:
    key = stmt.name + frame.suffix
    step = batch.state.steps.get(key)
    if step is None:
        given = _eval(stmt.input, frame, batch) if stmt.input is not None else {}
        return [ev.StartChild(frame.id, frame.pc, key, stmt.flow, given, child_id(batch.state.workflow_id, key))]
    if step.outcome == "failed":
        error = step.error_value or {}
        message = f"step '{key}': child workflow {step.child_id} failed: {error.get('message')}"
        return _step_failed(stmt, frame, batch, key, {"kind": "child", "message": message, "exit_code": None,
                                                      "type": error.get("type")})
    return []


def child_id(workflow_id: str, key: str) -> str:
    """A child workflow's id: ``<parent id>.<step key>``, made safe and short enough."""
    candidate = f"{workflow_id}.{re.sub(r'[^A-Za-z0-9_.-]', '-', key)}"
    if len(candidate) <= 128:
        return candidate
    return f"{candidate[:100]}-{hash_text(candidate):016x}"


def hash_text(text: str) -> int:
    """A stable (not Python's salted) hash for ids: FNV-1a, 64 bits."""
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _step_failed(stmt: Any, frame: Frame, batch: _Batch, key: str, error: dict, summary: str = "") -> list:
    """A step failed for good: the first matching catch runs (its ``error`` is the step's own
    error), else the workflow fails with ``summary`` as its message."""
    error = {"kind": error.get("kind"), "message": error.get("message"), "exit_code": error.get("exit_code"),
             "type": error.get("type")}
    for index, catch in enumerate(stmt.catches):
        if _matches(catch, error):
            return [ev.EnterCatch(frame.id, frame.pc, key, index, error)]
    return _abort(batch.state, {**error, "message": summary or error["message"], "step": key, "line": stmt.line})


def _matches(catch: ir.Catch, error: dict) -> bool:
    if catch.match == "any":
        return True
    if catch.match == "timeout":
        return error["kind"] == "timeout"
    if catch.match == "exit":
        return error["kind"] == "exit" and error.get("exit_code") in catch.values
    if catch.match == "error":
        return error.get("type") in catch.values
    return False


# --- other statements -------------------------------------------------------------


def _on_sleep(stmt: ir.Sleep, frame: Frame, batch: _Batch) -> list:
    key = stmt.id + frame.suffix
    if batch.state.timer_for(key, "sleep") is not None:
        return []
    return [batch.timer(key, "sleep", stmt.duration_ms, frame.id)]


def _on_fail(stmt: ir.Fail, frame: Frame, batch: _Batch) -> list:
    message = _eval(stmt.message, frame, batch)
    text = message if isinstance(message, str) else expr.to_text(message)
    return _abort(batch.state, {"kind": "fail", "message": text, "step": None, "line": stmt.line})


def _on_return(stmt: ir.Return, frame: Frame, batch: _Batch) -> list:
    return [ev.CompleteWorkflow(_eval(stmt.value, frame, batch))]


def _on_set(stmt: ir.Set, frame: Frame, batch: _Batch) -> list:
    return [ev.SetVariable(frame.id, frame.pc, stmt.name, _eval(stmt.value, frame, batch))]


def _on_if(stmt: ir.If, frame: Frame, batch: _Batch) -> list:
    for index, arm in enumerate(stmt.branches):
        if bool(_eval(arm.condition, frame, batch)):
            return [ev.ChooseBranch(frame.id, frame.pc, f"then{index}")]
    return [ev.ChooseBranch(frame.id, frame.pc, "else" if stmt.orelse is not None else "")]


def _on_parallel(stmt: ir.Parallel, frame: Frame, batch: _Batch) -> list:
    return [ev.StartParallel(frame.id, frame.pc, len(stmt.branches), stmt.race)]


def _on_for(stmt: ir.For, frame: Frame, batch: _Batch) -> list:
    items = _eval(stmt.items, frame, batch)
    if not isinstance(items, list):
        raise ExpressionError(f"for {stmt.var} in ...: expected a list, got {expr.kind(items)}",
                              stmt.items.line, stmt.items.col)
    return [ev.StartLoop(frame.id, frame.pc, items)]


_HANDLERS: dict[type, Callable[[Any, Frame, _Batch], list]] = {
    ir.Activity: _on_activity,
    ir.WaitSignal: _on_wait,
    ir.ChildFlow: _on_child,
    ir.Sleep: _on_sleep,
    ir.Fail: _on_fail,
    ir.Return: _on_return,
    ir.Set: _on_set,
    ir.If: _on_if,
    ir.Parallel: _on_parallel,
    ir.For: _on_for,
}


# --- failure, cancellation, compensation ---------------------------------------------


def _abort(state: WorkflowState, reason: dict, cancel: bool = False) -> list:
    """End the workflow as failed or cancelled: compensating first when there is anything to do."""
    to_undo = list(reversed(state.completed_with_undo))
    busy = any(s.pending for s in state.steps.values() if s.kind != "undo")
    if to_undo or busy:
        return [ev.StartCompensation(reason, cancel, to_undo)]
    return [ev.CancelWorkflow(reason) if cancel else ev.FailWorkflow(reason)]


def _compensate(state: WorkflowState) -> list:
    """Wait for stopped work to be recorded, run each undo in order, then end."""
    if any(s.pending for s in state.steps.values() if s.kind != "undo"):
        return []
    failed_undos = []
    steps = _compensation_order(state)
    for key in steps:
        undo = state.steps.get(UNDO_PREFIX + key)
        if undo is None or (undo.last.outcome == "failed" and undo.counted_failures < UNDO_MAX_ATTEMPTS):
            return [_schedule_undo(state, key, 1 if undo is None else len(undo.attempts) + 1)]
        if undo.last.pending:
            return []
        if undo.last.outcome == "failed":
            failed_undos.append(key)
    reason = dict(state.compensation["reason"])
    reason["compensated"] = [k for k in steps if k not in failed_undos]
    if failed_undos:
        reason["compensation_failed"] = failed_undos
    return [ev.CancelWorkflow(reason) if state.compensation["cancel"] else ev.FailWorkflow(reason)]


def _compensation_order(state: WorkflowState) -> list:
    """The recorded undo order, after steps that were still running then and completed anyway:
    they finished last, so they are undone first."""
    recorded = list(state.compensation["steps"])
    late = [k for k in reversed(state.completed_with_undo) if k not in recorded]
    return late + recorded


def _schedule_undo(state: WorkflowState, key: str, attempt: int) -> ev.ScheduleActivity:
    step = state.steps[key]
    done = step.last
    stdin = {**done.stdin, "result": done.result} if isinstance(done.stdin, dict) else {"result": done.result}
    return ev.ScheduleActivity(UNDO_PREFIX + key, attempt, list(step.undo), stdin, done.timeout_ms, "root", None)
