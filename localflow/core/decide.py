"""decide(state) -> commands: what the workflow does next (pure).

One handler per statement kind, each a few lines that look at the state of the
current statement and return the commands that move it on:

| statement | state of it                                | commands                    |
|-----------|--------------------------------------------|-----------------------------|
| step      | never scheduled                            | ScheduleActivity(attempt 1) |
| step      | attempt pending                            | (wait)                      |
| step      | last attempt interrupted by a crash/stop   | ScheduleActivity(n+1) now   |
| step      | failed, retries left, no retry timer yet   | StartTimer(retry)           |
| step      | failed, retry timer fired                  | ScheduleActivity(n+1)       |
| step      | failed, no retries left                    | FailWorkflow                |
| sleep     | no timer yet                               | StartTimer(sleep)           |
| fail      | -                                          | FailWorkflow(message)       |
| return    | -                                          | CompleteWorkflow(value)     |
| (end)     | -                                          | CompleteWorkflow(None)      |

Deciding again on the same state gives the same commands; that is what
replay checks. Expression errors fail the workflow with the source line.
"""

from __future__ import annotations

from typing import Any, Callable

from localflow import ir
from localflow.core import expr, retry
from localflow.core.events import Command, CompleteWorkflow, FailWorkflow, ScheduleActivity, StartTimer
from localflow.core.state import StepState, WorkflowState
from localflow.errors import ExpressionError


def decide(state: WorkflowState) -> list[Command]:
    if state.terminal:
        return []
    stmt = state.current
    if stmt is None:
        return [CompleteWorkflow(None)]
    try:
        return _HANDLERS[type(stmt)](stmt, state)
    except ExpressionError as exc:
        return [FailWorkflow({"kind": "expression", "message": exc.message, "step": _label(stmt),
                              "line": exc.line or stmt.line})]


def expression_env(state: WorkflowState) -> dict[str, Any]:
    """The names an expression can read: inputs, completed steps, ``workflow``."""
    env: dict[str, Any] = dict(state.input)
    for name, step in state.steps.items():
        if step.status == "completed":
            env[name] = {"result": step.result, "attempts": len(step.attempts)}
    env["workflow"] = {"id": state.workflow_id, "flow": state.flow.name}
    return env


def _on_activity(stmt: ir.Activity, state: WorkflowState) -> list[Command]:
    step = state.steps.get(stmt.name)
    if step is None:
        return [_schedule(stmt, state, attempt=1)]
    last = step.last
    if last.pending or last.outcome == "completed":
        return []
    if (last.error or {}).get("kind") == "interrupted":
        return [_schedule(stmt, state, attempt=last.number + 1)]
    failures = step.counted_failures
    if not retry.may_retry(stmt.retry, failures):
        return [FailWorkflow(_step_failure(stmt, step))]
    timer = _retry_timer(state, stmt.name, last.number)
    if timer is None:
        delay = retry.delay_ms(stmt.retry, failures)
        return [StartTimer(state.next_timer_id(), stmt.name, f"retry-{last.number + 1}", delay)]
    if timer.fired_at is None:
        return []
    return [_schedule(stmt, state, attempt=last.number + 1)]


def _on_sleep(stmt: ir.Sleep, state: WorkflowState) -> list[Command]:
    if any(t.step == stmt.id and t.purpose == "sleep" for t in state.timers.values()):
        return []
    return [StartTimer(state.next_timer_id(), stmt.id, "sleep", stmt.duration_ms)]


def _on_fail(stmt: ir.Fail, state: WorkflowState) -> list[Command]:
    message = expr.evaluate(stmt.message, expression_env(state))
    text = message if isinstance(message, str) else expr.to_text(message)
    return [FailWorkflow({"kind": "fail", "message": text, "step": None, "line": stmt.line})]


def _on_return(stmt: ir.Return, state: WorkflowState) -> list[Command]:
    return [CompleteWorkflow(expr.evaluate(stmt.value, expression_env(state)))]


_HANDLERS: dict[type, Callable[[Any, WorkflowState], list[Command]]] = {
    ir.Activity: _on_activity,
    ir.Sleep: _on_sleep,
    ir.Fail: _on_fail,
    ir.Return: _on_return,
}


def _schedule(stmt: ir.Activity, state: WorkflowState, attempt: int) -> ScheduleActivity:
    env = expression_env(state)
    argv = [_argv_text(expr.evaluate(e, env)) for e in stmt.argv]
    if stmt.stdin is not None:
        stdin = expr.evaluate(stmt.stdin, env)
    else:
        used = {name for e in stmt.argv for name, _, _ in expr.names_used(e)}
        stdin = {
            "workflow_id": state.workflow_id,
            "step": stmt.name,
            "input": dict(state.input),
            "steps": {n: env[n]["result"] for n in sorted(used) if n in state.steps and n in env},
        }
    return ScheduleActivity(stmt.name, attempt, argv, stdin, stmt.timeout_ms)


def _argv_text(value: Any) -> str:
    """argv elements are strings; other JSON values are written as JSON text."""
    return value if isinstance(value, str) else expr.to_text(value)


def _retry_timer(state: WorkflowState, step: str, after_attempt: int):
    purpose = f"retry-{after_attempt + 1}"
    for timer in state.timers.values():
        if timer.step == step and timer.purpose == purpose:
            return timer
    return None


def _step_failure(stmt: ir.Activity, step: StepState) -> dict[str, Any]:
    error = step.last.error or {}
    tries = len(step.attempts)
    return {
        "kind": error.get("kind", "activity"),
        "message": f"step '{stmt.name}' failed after {tries} attempt{'s' if tries != 1 else ''}: "
        f"{error.get('message', 'unknown error')}",
        "step": stmt.name,
        "line": stmt.line,
    }


def _label(stmt: Any) -> Any:
    return getattr(stmt, "name", None) or getattr(stmt, "id", None)
