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
| while/repeat| before each iteration                        | IterateLoop (the test, recorded) |
| break/cont. | -                                            | JumpLoop                         |
| signal for  | a buffered signal, room / closing signal     | TakeSignal / CloseLoop           |
| scope       | not started / a handled signal since it began| StartScope / TakeSignal          |
| lock        | not requested / first in line, free / body end| RequestLock / AcquireLock / ReleaseLock |
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
from localflow.core import expr, retry, secrets
from localflow.core.frozen import replace
from localflow.core.frames import statement_at
from localflow.core.state import STEP_TIMEOUT, UNDO_PREFIX, Frame, StepState, WorkflowState
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
    if state.body_done and not state.frames:  # (branches that `keep rest` left running end first)
        return [ev.CompleteWorkflow(None)]
    batch = _Batch(state)
    if state.flow.timeout_ms and deadline is None:
        return [batch.timer("workflow", "workflow-timeout", state.flow.timeout_ms, "root")]
    # One frame's commands at a time: the engine records them and decides again, so each
    # frame decides on a state that already holds what the frames before it did (a race
    # won, a signal taken). Replay calls decide the same way.
    for frame in list(state.frames.values()):
        if frame.current is None or (frame.entered and type(frame.current) not in _LISTENING):
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
        if step is not None and step.tells_ending:  # a wait step of a flow parsed since it says how it ended
            if step.status == "completed":
                return {"result": step.result, "attempts": 1, "ended": "signal", "timed_out": False}
            if step.caught is not None:
                return {"result": None, "attempts": 1, "ended": "timeout", "timed_out": True}
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
    name = getattr(stmt, "name", None)  # (a lock's `name` is an expression: its id names it)
    return (name if isinstance(name, str) else getattr(stmt, "id", None) or "") + frame.suffix


# --- steps ---------------------------------------------------------------------------


def _on_activity(stmt: ir.Activity, frame: Frame, batch: _Batch) -> list:
    key = stmt.name + frame.suffix
    step = batch.state.steps.get(key)
    deadline = None
    if stmt.total_timeout_ms is not None:  # schedule-to-close: a durable timer from before the first attempt
        deadline = batch.state.timer_for(key, STEP_TIMEOUT)
        if deadline is None and (step is None or not step.last.pending and step.last.outcome != "completed"):
            return [batch.timer(key, STEP_TIMEOUT, stmt.total_timeout_ms, frame.id)]
    if step is None:
        return [_schedule(stmt, frame, batch, key, attempt=1)]
    last = step.last
    if last.outcome == "completed":
        return []
    if deadline is not None and deadline.fired_at is not None:
        if last.pending:
            return []  # the executor stops it: the state no longer wants it (WorkflowState.wanted)
        return _total_timeout(stmt, frame, batch, key, step, deadline)
    if last.pending:
        return []
    if (last.error or {}).get("kind") == "interrupted" or step.fresh_from == len(step.attempts):  # or just resumed
        return [_schedule(stmt, frame, batch, key, attempt=last.number + 1)]
    failures = step.counted_failures
    final = retry.non_retryable(stmt.retry, last.error)
    if final is not None or not retry.may_retry(stmt.retry, failures):
        tries = len(step.attempts)
        why = f", not retried ({final} is not retryable)" if final is not None and stmt.retry.max_attempts > 1 else ""
        summary = (f"step '{key}' failed after {tries} attempt{'s' if tries != 1 else ''}{why}: "
                   f"{last.error.get('message')}")
        return _step_failed(stmt, frame, batch, key, last.error, summary)
    timer = batch.state.timer_for(key, f"retry-{last.number + 1}")
    if timer is None:
        seed = retry.retry_seed(batch.state.workflow_id, key, last.number + 1)
        return [batch.timer(key, f"retry-{last.number + 1}", retry.delay_ms(stmt.retry, failures, seed), frame.id)]
    if timer.fired_at is None:
        return []
    return [_schedule(stmt, frame, batch, key, attempt=last.number + 1)]


def _total_timeout(stmt: ir.Activity, frame: Frame, batch: _Batch, key: str, step: StepState,
                   deadline: Any) -> list:
    """The step's total timeout fired: it fails for good with kind ``timeout``, whatever retries are left."""
    tries = len(step.attempts)
    last = (step.last.error or {}).get("message")
    message = (f"total timeout of {format_duration(deadline.duration_ms)} reached after {tries} "
               f"attempt{'s' if tries != 1 else ''} (the last: {last})")
    return _step_failed(stmt, frame, batch, key, {"kind": "timeout", "message": message, "exit_code": None},
                        f"step '{key}' failed: {message}")


def _schedule(stmt: ir.Activity, frame: Frame, batch: _Batch, key: str, attempt: int) -> ev.ScheduleActivity:
    # Evaluated in this order (argv, stdin, undo) since the first release: when two of them fail,
    # the one recorded as the failure must stay the same for old histories to replay.
    if stmt.call is not None:  # a Python function: its keyword arguments are its whole input
        kwargs = {name: _eval(e, frame, batch) for name, e in stmt.call.kwargs}
        undo = [_argv_text(_eval(e, frame, batch)) for e in stmt.undo] if stmt.undo else None
        return ev.ScheduleActivity(key, attempt, [], None, stmt.timeout_ms, frame.id, undo,
                                   {"target": stmt.call.target, "kwargs": kwargs}, **_heartbeat(stmt, batch, key),
                                   **_env_cwd_secrets(stmt, frame, batch))
    argv = [_argv_text(_eval(e, frame, batch)) for e in stmt.argv]
    if stmt.stdin is not None:
        stdin = _eval(stmt.stdin, frame, batch)
    else:
        stdin = {"workflow_id": batch.state.workflow_id, "step": key, "input": dict(batch.state.input),
                 "steps": _referenced_results(stmt, frame, batch.state)}
    undo = [_argv_text(_eval(e, frame, batch)) for e in stmt.undo] if stmt.undo else None
    return ev.ScheduleActivity(key, attempt, argv, stdin, stmt.timeout_ms, frame.id, undo, **_heartbeat(stmt, batch, key),
                               **_env_cwd_secrets(stmt, frame, batch))


def _env_cwd_secrets(stmt: ir.Activity, frame: Frame, batch: _Batch) -> dict:
    """The step's evaluated ``env`` and ``cwd`` clauses, and the names of the secrets its clauses read
    (``secrets``: the only references the runner fills in); each left out when there is none."""
    out: dict = {}
    for name, clause, check in (("env", stmt.env, lambda v: secrets.check_env(v, expr.to_text)),
                                ("cwd", stmt.cwd if stmt.call is None else None, secrets.check_cwd)):
        if clause is not None:
            try:
                out[name] = check(_eval(clause, frame, batch))
            except InvalidValue as exc:
                raise ExpressionError(str(exc), clause.line, clause.col) from None
    read = [*stmt.argv, *([stmt.stdin] if stmt.stdin is not None else []), *(stmt.undo or ()),
            *(e for _, e in (stmt.call.kwargs if stmt.call is not None else ())),
            *([stmt.env] if stmt.env is not None else [])]
    names = secrets.sorted_names(n for e in read for n in expr.secrets_used(e))
    if names:
        out["secrets"] = names
    return out


def _heartbeat(stmt: ir.Activity, batch: _Batch, key: str) -> dict:
    """The step's heartbeat interval, and the last heartbeat details its earlier attempts recorded
    (read from the history, so a replay decides the same): handed to the new attempt."""
    step = batch.state.steps.get(key)
    return {"heartbeat_ms": getattr(stmt, "heartbeat_ms", None),
            "heartbeat_details": step.heartbeat_details if step is not None else None}


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
        return [ev.StartChild(frame.id, frame.pc, key, stmt.flow, given, child_id(batch.state.workflow_id, key),
                              True if stmt.detached else None)]
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
    if stmt.until is None:
        return [batch.timer(key, "sleep", stmt.duration_ms, frame.id)]
    # The moment itself is recorded and fires the timer (a workflow whose first decision comes late
    # still wakes on time); duration_ms is what was left of workflow time (the latest event) then.
    moment = parse_timestamp(_eval(stmt.until, frame, batch), stmt.until)
    if moment <= batch.state.updated_at:  # already past: no wait, as 'sleep 0s'
        return [batch.timer(key, "sleep", 0, frame.id)]
    duration = moment - batch.state.updated_at
    return [ev.StartTimer(len(batch.state.timers) + 1, key, "sleep", duration, frame.id, until=moment)]


# ASCII digits only: \d is every Unicode digit, a set that grows with Python's Unicode database
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
                        r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")
_FIRST_MS, _LAST_MS = -62_135_596_800_000, 253_402_300_799_999  # 0001-01-01 .. 9999-12-31T23:59:59.999Z: what a record can hold


def parse_timestamp(value: Any, where: ir.Expr) -> int:
    """Epoch ms of an ISO-8601 timestamp with a zone (``2026-11-25T20:00:00Z``, ``...+01:00``).

    Read by a regex and calendar arithmetic, the same on every Python (``fromisoformat``
    reads more on 3.11+ than on 3.10). Anything else is an ExpressionError at ``where``.
    """
    found = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    shown = expr.to_text(value) if not isinstance(value, str) else repr(value)
    if found is None:
        raise ExpressionError(f"sleep until: expected an ISO-8601 timestamp with a time zone, e.g. "
                              f"'2026-11-25T20:00:00Z' or '2026-11-25T21:00:00+01:00', got {shown[:80]}",
                              where.line, where.col)
    year, month, day, hour, minute = (int(found.group(i)) for i in range(1, 6))
    second = int(found.group(6) or 0)
    millis = int((found.group(7) or "0").ljust(3, "0")[:3])
    offset = 0 if found.group(8) else (int(found.group(10)) * 60 + int(found.group(11))) * (
        1 if found.group(9) == "+" else -1)
    days_in_month = (31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
                     31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= month <= 12 and 1 <= day <= days_in_month[month - 1] and hour <= 23 and minute <= 59
            and second <= 59 and int(found.group(10) or 0) <= 23 and int(found.group(11) or 0) <= 59):
        raise ExpressionError(f"sleep until: {shown[:80]} is not a valid date and time", where.line, where.col)
    days = _days_from_civil(year, month, day)
    ms = ((days * 24 + hour) * 60 + minute - offset) * 60_000 + second * 1000 + millis
    if not _FIRST_MS <= ms <= _LAST_MS:
        raise ExpressionError(f"sleep until: {shown[:80]} is outside 0001-01-01 to 9999-12-31 (UTC)",
                              where.line, where.col)
    return ms


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


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
    chosen = None
    if stmt.conditions is not None:  # `branch if COND:`: an OR-split, the conditions tried in order
        chosen = [i for i, condition in enumerate(stmt.conditions)
                  if condition is None or bool(_eval(condition, frame, batch))]
    return [ev.StartParallel(frame.id, frame.pc, len(stmt.branches), stmt.race, chosen)]


def _on_for(stmt: ir.For, frame: Frame, batch: _Batch) -> list:
    items = _eval(stmt.items, frame, batch)
    if not isinstance(items, list):
        raise ExpressionError(f"for {stmt.var} in ...: expected a list, got {expr.kind(items)}",
                              stmt.items.line, stmt.items.col)
    return [ev.StartLoop(frame.id, frame.pc, items)]


def _on_while(stmt: ir.While, frame: Frame, batch: _Batch) -> list:
    go = bool(_eval(stmt.condition, frame, batch))
    return _iterate(stmt, frame, batch, go)


def _on_repeat(stmt: ir.Repeat, frame: Frame, batch: _Batch) -> list:
    done = frame.next_item
    if done == 0:  # the first iteration runs untested
        return _iterate(stmt, frame, batch, True)
    last = replace(frame, suffix=f"{frame.suffix}[{done - 1}]")  # `until` reads the iteration's steps
    return _iterate(stmt, frame, batch, not bool(_eval(stmt.until, last, batch)))


def _iterate(stmt: Any, frame: Frame, batch: _Batch, go: bool) -> list:
    if go and frame.next_item >= stmt.max_iterations:
        kind = "while" if isinstance(stmt, ir.While) else "repeat"
        message = (f"the {kind} loop at line {stmt.line} would run more than its most of "
                   f"{stmt.max_iterations} iteration{'s' if stmt.max_iterations != 1 else ''}")
        return _abort(batch.state, {"kind": "loop", "message": message, "step": stmt.id + frame.suffix,
                                    "line": stmt.line})
    return [ev.IterateLoop(frame.id, frame.pc, frame.next_item, go)]


def _on_break(stmt: ir.Break, frame: Frame, batch: _Batch) -> list:
    return [ev.JumpLoop(frame.id, frame.pc, "break")]


def _on_continue(stmt: ir.Continue, frame: Frame, batch: _Batch) -> list:
    return [ev.JumpLoop(frame.id, frame.pc, "continue")]


def _on_signal_loop(stmt: ir.SignalLoop, frame: Frame, batch: _Batch) -> list:
    if frame.closed:
        return []
    if stmt.until is not None and _until_holds(stmt, frame, batch):
        return [ev.CloseLoop(frame.id, frame.pc, "until")]
    if frame.next_item >= stmt.max_iterations:
        return [ev.CloseLoop(frame.id, frame.pc, "max")]
    for signal in batch.state.signals:  # in the order they arrived
        if signal.consumed_by is not None:
            continue
        if signal.signal == stmt.close_signal:
            return [ev.CloseLoop(frame.id, frame.pc, "signal", signal.seq)]
        if signal.signal == stmt.signal:
            if frame.open_children >= stmt.concurrency:
                return []
            return [ev.TakeSignal(frame.id, frame.pc, signal.signal, signal.seq, frame.next_item)]
    return []


def _until_holds(stmt: ir.SignalLoop, frame: Frame, batch: _Batch) -> bool:
    """A signal loop's ``until``: before any iteration has ended, a condition that cannot be evaluated
    yet (it reads a variable the body sets) does not hold; after that, an error is an error."""
    try:
        return bool(_eval(stmt.until, frame, batch))
    except ExpressionError:
        if frame.next_item - frame.open_children > 0:
            raise
        return False


def _on_scope(stmt: ir.Scope, frame: Frame, batch: _Batch) -> list:
    if not frame.entered:
        return [ev.StartScope(frame.id, frame.pc)]
    if frame.closed:
        return []
    names = {handler.signal for handler in stmt.handlers}
    for signal in batch.state.signals:
        if signal.consumed_by is None and signal.seq > frame.since and signal.signal in names:
            return [ev.TakeSignal(frame.id, frame.pc, signal.signal, signal.seq, frame.next_item)]
    return []


MAX_LOCK_NAME = 200


def _on_lock(stmt: ir.Lock, frame: Frame, batch: _Batch) -> list:
    state = batch.state
    if not frame.entered:
        name = _eval(stmt.name, frame, batch)
        if not isinstance(name, str) or not name or len(name) > MAX_LOCK_NAME:
            raise ExpressionError(f"lock: expected a lock name, a string of 1 to {MAX_LOCK_NAME} characters, "
                                  f"got {expr.to_text(name)[:80]}", stmt.name.line, stmt.name.col)
        for held in state.live_locks():  # a lock inside a lock of the same name would wait for ever
            if held.granted and held.lock == name and held.scope == stmt.scope \
                    and frame.id.startswith(f"{held.frame}/{held.at}:body"):
                line = getattr(statement_at(state.flow, held.frame, held.at), "line", None)
                message = (f"lock '{name}' is already held by this workflow (the lock at line {line}, around "
                           "this one): locks are not re-entrant, and this one would wait for ever")
                return _abort(state, {"kind": "lock", "message": message, "step": _key(stmt, frame),
                                      "line": stmt.line})
        return [ev.RequestLock(frame.id, frame.pc, name, stmt.scope)]
    request = state.locks.get((frame.id, frame.pc))
    if request is None:
        return []
    if frame.closed:
        return [ev.ReleaseLock(frame.id, frame.pc, request.lock)]
    if request.granted or request.scope != "workflow":
        return []  # held; or a home-wide lock: the supervisor grants it (LockGranted)
    line = [r for r in state.live_locks() if r.lock == request.lock and r.scope == "workflow"]
    if line and line[0] is request and not any(r.granted for r in line):
        return [ev.AcquireLock(frame.id, frame.pc, request.lock)]
    return []


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
    ir.While: _on_while,
    ir.Repeat: _on_repeat,
    ir.Break: _on_break,
    ir.Continue: _on_continue,
    ir.SignalLoop: _on_signal_loop,
    ir.Scope: _on_scope,
    ir.Lock: _on_lock,
}
_LISTENING = (ir.SignalLoop, ir.Scope, ir.Lock)  # decide for them again while their blocks run


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
    return ev.ScheduleActivity(UNDO_PREFIX + key, attempt, list(step.undo), stdin, done.timeout_ms, "root", None,
                               env=done.env, cwd=done.cwd, secrets=done.secrets)  # the step's own env, cwd, secrets
