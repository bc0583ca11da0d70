"""The machinery of tests/integration/test_replay_mutations.py (see docs/mutations.md).

Three parts:

- *recording*: every example flow is run in-process (memory store, scripted
  runner, virtual clock, the real executor and driving loop) in one or more
  scenarios; each finished history is kept, and so are in-flight prefixes of it
  (cut where a transaction ended), since those are what a deploy affects;
- *mutating*: edits of the flow's source text (swap two steps, rename one, change
  an argv element, a timeout, a retry policy, ...), each re-parsed with
  ``parse_flow``; an edit that no longer parses is not applicable and skipped;
- *explaining*: when replay accepts a mutated flow, the reason is worked out from
  the history and the original flow (was the mutated statement ever reached, did
  the step ever fail, was the signal already buffered, ...), so the test can hold
  every acceptance to an allowlist.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from localflow import ir
from localflow.clock import VirtualClock
from localflow.core import events as ev
from localflow.core import expr, retry
from localflow.core.decide import Env, _matches
from localflow.core.replay import replay
from localflow.core.state import evolve, initial
from localflow.dsl import parse_flow
from localflow.engine import Engine
from localflow.errors import FlowSyntaxError, NondeterminismError
from localflow.runner.scripted import ScriptedRunner, fail, succeed
from localflow.runner.subprocess_runner import AttemptOutcome
from localflow.store.memory import MemoryStore
from localflow.supervisor.executor import Executor
from localflow.supervisor.loop import drive
from localflow.supervisor.wakeups import Wakeups

REPO = Path(__file__).resolve().parents[2]
# Child flows are looked up in <home>/flows: the repository's own (read only; the store is in memory).
HOME = REPO


# --- recording -------------------------------------------------------------------------------


@dataclass
class History:
    flow: str  # the flow's name
    scenario: str  # how it was run
    events: list  # the events, a whole finished history or an in-flight prefix
    finished: bool

    @property
    def label(self) -> str:
        return f"{self.flow}/{self.scenario}" + ("" if self.finished else f"@{self.events[-1].seq}")


class Run:
    """One workflow run in-process: the test's own world, driven until a condition holds."""

    def __init__(self, path: Path, given: dict, script: Callable, workflow_id: str = "wf-1") -> None:
        self.text = path.read_text()
        self.flow = parse_flow(self.text, str(path.relative_to(REPO)))
        self.engine = Engine(HOME, clock=VirtualClock(), store=MemoryStore())
        self.executor = Executor(self.engine, runner=ScriptedRunner(script), wakeups=Wakeups(None))
        self.workflow_id = self.engine.start_flow(self.flow, self.text, given, workflow_id)

    def state(self):
        return self.engine.state_of(self.workflow_id)

    def until(self, predicate: Callable[[Any], bool], idle: bool = True, real_seconds: float = 10.0) -> None:
        deadline = time.monotonic() + real_seconds
        self.executor.mark_dirty(self.workflow_id)

        def done() -> bool:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.workflow_id}: the condition was not reached")
            return predicate(self.state()) and not (idle and self.executor.busy)

        drive(self.executor, self.executor.reconcile, until=done, period_s=3600)

    def to_end(self) -> list:
        self.until(lambda s: s.terminal)
        return self.engine.load(self.workflow_id).events

    def signal(self, name: str, data: object) -> None:
        self.engine.signal(self.workflow_id, name, data)

    def advance(self, ms: int) -> None:
        """Move the virtual clock (it never skips over a running attempt by itself)."""
        self.engine.clock.advance(ms)


def running(step: str) -> Callable[[Any], bool]:
    return lambda s: step in s.steps and s.steps[step].status == "running"


def erring(error_type: str, message: str) -> AttemptOutcome:
    """A failed attempt whose activity reported an error type (as a JSON ``error`` on stdout)."""
    return AttemptOutcome(False, error={"kind": "exit", "message": message, "exit_code": 1, "type": error_type})


def by_step(results: dict, default: Callable = lambda spec: succeed(spec.step)) -> Callable:
    """A script: ``results[step]`` is an outcome, ``None`` (runs until cancelled) or a list used in turn."""
    turns: dict = {}

    def script(spec):
        name = re.sub(r"\[\d+\]$", "", spec.step)
        if name not in results:
            return default(spec)
        value = results[name]
        if isinstance(value, list):
            index = turns.get(spec.step, 0)
            turns[spec.step] = index + 1
            return value[min(index, len(value) - 1)]
        return value(spec) if callable(value) else value

    return script


def waiting(step: str) -> Callable[[Any], bool]:
    """The wait step ``step`` has started its timeout timer (the workflow waits for the signal)."""
    return lambda s: s.timer_for(step, "signal-timeout") is not None


def _purchase_flow(path):
    run = Run(path, {}, by_step({"reserve": succeed({"reservation": "R-demo-1", "order": "demo-1"}),
                                 "charge": [fail("card network busy"), succeed({"receipt": "RC-demo-1"})]}))
    yield "charge-retried", run.to_end()


def _purchase_saga(path):
    results = {"reserve": succeed({"reservation": "R-1"}), "charge": succeed({"receipt": "RC-1"}),
               "ship": succeed({"tracking": "T-1"}), "email": succeed("sent")}
    run = Run(path, {"order_id": "A-1"}, by_step(results))
    run.until(waiting("approval"))
    run.signal("approve", {"approved": True, "by": "ann"})
    yield "approved", run.to_end()

    run = Run(path, {"order_id": "A-2"}, by_step(results))
    run.until(waiting("approval"))
    run.signal("approve", {"approved": False, "by": "bob"})
    yield "rejected-compensated", run.to_end()

    run = Run(path, {"order_id": "A-3"}, by_step(results))
    yield "approval-timed-out", run.to_end()


def _approval(path):
    run = Run(path, {}, by_step({}))
    run.until(waiting("approval"))
    run.signal("approve", {"by": "ann"})
    yield "signalled-while-waiting", run.to_end()

    run = Run(path, {}, by_step({}))
    run.signal("approve", {"by": "early"})  # before the wait is reached: buffered
    yield "signal-buffered", run.to_end()

    run = Run(path, {}, by_step({}))
    yield "timed-out", run.to_end()


def _branching(path):
    for amount in (75, 150, 10):
        run = Run(path, {"amount": amount}, by_step({}, lambda spec: succeed(spec.argv[-1])))
        yield f"amount-{amount}", run.to_end()


def _catch_errors(path):
    run = Run(path, {}, by_step({
        "missing_stock": fail("out of stock", exit_code=3),
        "card": erring("CardDeclined", "insufficient funds"),
        "slow": fail("timed out after 500ms", exit_code=None, kind="timeout"),
    }))
    yield "all-caught", run.to_end()


def _child_greeting(path):
    run = Run(path, {"name": "ann"}, by_step({}, lambda spec: succeed(spec.argv[-1])))
    yield "completed", run.to_end()


def _flaky_card(path):
    results = {"reserve": succeed({"reserved": True}), "ship": succeed({"shipped": True})}
    run = Run(path, {}, by_step({**results, "charge": [fail("card declined"), succeed({"paid": "k"})]}))
    yield "charge-retried", run.to_end()

    run = Run(path, {}, by_step({**results, "charge": fail("card declined")}))
    yield "charge-declined", run.to_end()


def _every_step_succeeds(path):
    """For a flow without a scenario of its own: every step succeeds."""
    run = Run(path, {}, by_step({}))
    yield "every-step-succeeds", run.to_end()


def _loop_items(path):
    run = Run(path, {}, by_step({}, lambda spec: succeed(spec.argv[-1])))
    yield "three-items", run.to_end()


def _loop_parallel(path):
    for count in (6, 2):
        run = Run(path, {"count": count}, by_step({}, lambda spec: succeed(spec.argv[-1])))
        yield f"count-{count}", run.to_end()


def _parallel_sleeps(path):
    run = Run(path, {}, by_step({}))
    yield "both-done", run.to_end()


def _parent_flow(path):
    run = Run(path, {"name": "ann"}, by_step({}, lambda spec: succeed(spec.argv[-1])))
    yield "child-completed", run.to_end()


def _race_timeout(path):
    run = Run(path, {}, by_step({"slow_lookup": None}))  # runs until the race cancels it
    run.until(running("slow_lookup"), idle=False)
    run.advance(1500)
    yield "deadline-won", run.to_end()


def _saga_refund(path):
    run = Run(path, {}, by_step({"pay": fail("card declined")}, lambda spec: succeed(spec.argv[-1])))
    yield "pay-failed-compensated", run.to_end()


def _workflow_timeout(path):
    run = Run(path, {}, by_step({"long": None}))  # runs until the workflow timeout stops it
    run.until(running("long"), idle=False)
    run.advance(1500)
    yield "timed-out", run.to_end()


def _python_step(path):
    quote = {"lines": [{"item": "apple", "quantity": 4, "amount": 2.0}, {"item": "pear", "quantity": 2, "amount": 1.5}],
             "total": 3.5, "currency": "EUR", "quote_id": "wf-1:quote"}
    run = Run(path, {}, by_step({"quote": succeed(quote)}))
    yield "quoted", run.to_end()
    unknown = AttemptOutcome(False, error={"kind": "exception", "type": "UnknownItem",
                                           "message": "UnknownItem: no price for 'kiwi'", "exit_code": None})
    run = Run(path, {"items": {"kiwi": 1}}, by_step({"quote": unknown}))
    yield "unknown-item", run.to_end()


def _reminder(path):
    run = Run(path, {}, by_step({"remind": [fail("mail server down"), succeed({"reminded": "ada"})]}))
    run.until(lambda s: bool(s.pending_timers()), idle=True)
    yield "sleeping", run.engine.load(run.workflow_id).events
    yield "reminded", run.to_end()


SCENARIOS: dict[str, Callable[[Path], Iterator[tuple[str, list]]]] = {
    "flows/PurchaseFlow.flow": _purchase_flow,
    "flows/PurchaseSaga.flow": _purchase_saga,
    "flows/examples/Approval.flow": _approval,
    "flows/examples/Branching.flow": _branching,
    "flows/examples/CatchErrors.flow": _catch_errors,
    "flows/examples/ChildGreeting.flow": _child_greeting,
    "flows/examples/FlakyCard.flow": _flaky_card,
    "flows/examples/LoopItems.flow": _loop_items,
    "flows/examples/LoopParallel.flow": _loop_parallel,
    "flows/examples/ParallelSleeps.flow": _parallel_sleeps,
    "flows/examples/ParentFlow.flow": _parent_flow,
    "flows/examples/PythonStep.flow": _python_step,
    "flows/examples/Reminder.flow": _reminder,
    "flows/examples/RaceTimeout.flow": _race_timeout,
    "flows/examples/SagaRefund.flow": _saga_refund,
    "flows/examples/WorkflowTimeout.flow": _workflow_timeout,
}


def example_flows() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("flows/*.flow"), *REPO.glob("flows/examples/*.flow")])


def in_flight_cuts(events: list) -> list[list]:
    """In-flight prefixes of a finished history: one per distinct place the workflow was at.

    A cut ends where a transaction ended (an ``end`` mark) and at least one decision was
    recorded; of the cuts that leave the workflow at the same statements (the same
    labels of its live frames, the same steps begun), only the first is kept, so the set
    does not depend on how the executor's threads happened to interleave.
    """
    cuts, seen = [], set()
    state = initial(events[0])
    for index, event in enumerate(events[1:], start=1):
        state = evolve(state, event)
        if not event.end or state.terminal or index == len(events) - 1:
            continue
        place = (state.current_label, tuple(sorted(state.steps)), len(state.timers), state.compensation is not None)
        if place in seen:
            continue
        seen.add(place)
        cuts.append(events[: index + 1])
    return cuts


def record_histories(flow_file: str) -> list[History]:
    path = REPO / flow_file
    found = []
    for scenario, events in SCENARIOS.get(flow_file, _every_step_succeeds)(path):
        found.append(History(path.stem, scenario, events, True))
        found.extend(History(path.stem, scenario, cut, False) for cut in in_flight_cuts(events))
    return found


# --- mutating ------------------------------------------------------------------------------

# The kinds, in the order of the table (docs/mutations.md).
KINDS = [
    "swap adjacent steps",
    "rename a step",
    "change an argv element",
    "change an undo command",
    "change a stdin clause",
    "change a step timeout",
    "change a retry count",
    "change a retry delay (every)",
    "change a retry backoff",
    "change a sleep",
    "change a loop's items",
    "change a loop's parallel width",
    "add a branch",
    "add a step",
    "remove a step",
    "change a wait's timeout",
    "rename a wait's signal",
    "change a catch's match",
    "change a set expression",
    "negate an if condition",
    "change a number in an if condition",
    "change a return value",
    "change a fail message",
    "change a child flow's input",
    "change the workflow timeout",
    "change an input default",
]


@dataclass
class Mutation:
    kind: str
    label: str  # what exactly changed, e.g. "swap reserve/charge"
    text: str  # the mutated source
    lines: tuple  # lines (1-based, in the ORIGINAL source) of the statements it changes
    step: Optional[str] = None  # the step whose clause changed, when one did
    meta: dict = field(default_factory=dict)
    flow: Any = None  # the parsed mutated flow


_STRING = r'"(?:[^"\\]|\\.)*"'
_STATEMENT = re.compile(r"^(\s*)(step|set|sleep|if|elif|else|parallel|race|for|fail|return|branch|catch)\b")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip() or line.strip().startswith("#")


def _block_end(lines: list, start: int) -> int:
    """Index after the last line of the statement starting at ``start`` (its clauses and blocks)."""
    end, base = start + 1, _indent(lines[start])
    last = start + 1
    while end < len(lines):
        if not _blank(lines[end]):
            if _indent(lines[end]) <= base:
                break
            last = end + 1
        end += 1
    return last


def _next_statement(lines: list, index: int) -> Optional[int]:
    while index < len(lines) and _blank(lines[index]):
        index += 1
    return index if index < len(lines) else None


def _steps(lines: list) -> list[tuple[int, int, str]]:
    """(start, end, name) of every step."""
    found = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*step (\w+):", line)
        if m:
            found.append((i, _block_end(lines, i), m.group(1)))
    return found


def _step_of(lines: list, index: int) -> Optional[tuple[int, int, str]]:
    """The step whose clause is the line ``index``."""
    for start, end, name in _steps(lines):
        if start < index < end:
            return start, end, name
    return None


def _join(lines: list) -> str:
    return "\n".join(lines) + "\n"


def _scale_duration(text: str) -> str:
    """A different duration: one more of its last unit (``30s`` -> ``31s``)."""
    m = re.match(r"^(.*?)(\d+)(ms|s|m|h|d)$", text)
    return f"{m.group(1)}{int(m.group(2)) + 1}{m.group(3)}"


def _raw_mutations(text: str) -> Iterator[tuple]:
    """(kind, label, new lines, changed lines (0-based, original), step) for every applicable edit."""
    lines = text.splitlines()
    steps = _steps(lines)

    def edited(index: int, new: str) -> list:
        return lines[:index] + [new] + lines[index + 1:]

    # swap adjacent steps (the same block, one right after the other)
    for start, end, name in steps:
        following = _next_statement(lines, end)
        if following is None or _indent(lines[following]) != _indent(lines[start]):
            continue
        m = re.match(r"^\s*step (\w+):", lines[following])
        if m:
            other_end = _block_end(lines, following)
            new = lines[:start] + lines[following:other_end] + lines[end:following] + lines[start:end] + lines[other_end:]
            yield "swap adjacent steps", f"swap {name}/{m.group(1)}", new, (start, following), name

    for start, end, name in steps:
        renamed = [re.sub(rf"\b{name}\.(result|attempts|workflow_id)\b", rf"{name}_v2.\1", line) for line in lines]
        renamed[start] = renamed[start].replace(f"step {name}:", f"step {name}_v2:")
        yield "rename a step", f"rename {name}", renamed, (start,), name

    for i, line in enumerate(lines):
        owner = _step_of(lines, i)
        stripped = line.strip()
        if stripped.startswith("run [") or stripped.startswith("undo ["):
            kind = "change an argv element" if stripped.startswith("run") else "change an undo command"
            new = re.sub(rf"\[({_STRING})", lambda m: "[" + m.group(1)[:-1] + '-v2"', line, count=1)
            yield kind, f"{owner[2]}: {stripped.split()[0]} element 0", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("stdin "):
            new = line.replace("stdin {", 'stdin {"v": 2, ', 1)
            yield "change a stdin clause", f"{owner[2]}: stdin", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("retry "):
            m = re.match(r"^(\s*retry )(\d+)(.*)$", line)
            count = int(m.group(2))
            yield ("change a retry count", f"{owner[2]}: retry {count} -> {count + 1}",
                   edited(i, f"{m.group(1)}{count + 1}{m.group(3)}"), (owner[0],), owner[2])
            yield ("change a retry count", f"{owner[2]}: retry {count} -> {count - 1}",
                   edited(i, f"{m.group(1)}{count - 1}{m.group(3)}"), (owner[0],), owner[2])
            if " every " in line:
                new = re.sub(r"every (\S+)", lambda d: "every " + _scale_duration(d.group(1)), line)
            else:
                new = line + " every 2s"
            yield "change a retry delay (every)", f"{owner[2]}: every", edited(i, new), (owner[0],), owner[2]
            new = re.sub(r"backoff \S+", "backoff 3x", line) if " backoff " in line else line + " backoff 3x"
            yield "change a retry backoff", f"{owner[2]}: backoff", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("timeout ") and owner is not None:
            new = re.sub(r"timeout (\S+)", lambda d: "timeout " + _scale_duration(d.group(1)), line)
            yield "change a step timeout", f"{owner[2]}: timeout", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("timeout ") and owner is None:
            new = re.sub(r"timeout (\S+)", lambda d: "timeout " + _scale_duration(d.group(1)), line)
            yield "change the workflow timeout", "workflow timeout", edited(i, new), (), None
        elif stripped.startswith("wait signal "):
            if " timeout " in line:
                new = re.sub(r"timeout (\S+)", lambda d: "timeout " + _scale_duration(d.group(1)), line)
            else:
                new = line + " timeout 1h"
            yield "change a wait's timeout", f"{owner[2]}: wait timeout", edited(i, new), (owner[0],), owner[2]
            new = re.sub(r"wait signal (\w+)", r"wait signal \1_v2", line)
            yield "rename a wait's signal", f"{owner[2]}: signal", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("catch"):
            if stripped.startswith("catch exit"):
                new = re.sub(r"catch exit (\d+)", lambda d: f"catch exit {int(d.group(1)) + 1}", line)
            elif stripped.startswith("catch error"):
                new = re.sub(rf"catch error ({_STRING})", lambda d: "catch error " + d.group(1)[:-1] + 'V2"', line)
            elif stripped.startswith("catch timeout"):
                new = line.replace("catch timeout:", "catch:")
            else:
                continue
            yield "change a catch's match", f"{owner[2]}: {stripped[:-1]}", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("sleep "):
            new = re.sub(r"sleep (\S+)", lambda d: "sleep " + _scale_duration(d.group(1)), line)
            yield "change a sleep", stripped, edited(i, new), (i,), None
        elif stripped.startswith("for "):
            m = re.match(r"^(\s*for \w+ in )(.+?)( parallel (\d+))?:$", line)
            head, items, width = m.group(1), m.group(2), m.group(4)
            yield ("change a loop's items", f"{items} -> ({items})[:-1]",
                   edited(i, f"{head}({items})[:-1]{m.group(3) or ''}:"), (i,), None)
            if width:
                for new_width in (int(width) + 1, int(width) - 1):
                    yield ("change a loop's parallel width", f"parallel {width} -> {new_width}",
                           edited(i, f"{head}{items} parallel {new_width}:"), (i,), None)
            else:
                yield "change a loop's parallel width", "add parallel 2", edited(i, f"{head}{items} parallel 2:"), (i,), None
        elif stripped in ("parallel:", "race:"):
            pad = " " * (_indent(line) + 2)
            end = _block_end(lines, i)
            new = lines[:end] + [f"{pad}branch:", f"{pad}  sleep 5s"] + lines[end:]
            yield "add a branch", f"{stripped[:-1]}: add a branch", new, (i,), None
        elif stripped.startswith("set "):
            m = re.match(r"^(\s*set \w+ = )(.+)$", line)
            yield "change a set expression", stripped, edited(i, f"{m.group(1)}[{m.group(2)}]"), (i,), None
        elif re.match(r"^(if|elif) ", stripped):
            m = re.match(r"^(\s*(?:if|elif) )(.+):$", line)
            yield "negate an if condition", stripped, edited(i, f"{m.group(1)}not ({m.group(2)}):"), (i,), None
            if re.search(r"\b\d+\b", m.group(2)):
                condition = re.sub(r"\b(\d+)\b", lambda d: str(int(d.group(1)) * 2), m.group(2), count=1)
                yield ("change a number in an if condition", f"{m.group(2)} -> {condition}",
                       edited(i, f"{m.group(1)}{condition}:"), (i,), None)
        elif stripped.startswith("return "):
            m = re.match(r"^(\s*return )(.+)$", line)
            yield "change a return value", stripped[:40], edited(i, f"{m.group(1)}[{m.group(2)}]"), (i,), None
        elif stripped.startswith("fail "):
            m = re.match(r"^(\s*fail )(.+)$", line)
            yield "change a fail message", stripped[:40], edited(i, f"{m.group(1)}str([{m.group(2)}])"), (i,), None
        elif stripped.startswith("input ") and owner is not None:
            new = line.replace("input {", 'input {"v": 2, ', 1)
            yield "change a child flow's input", f"{owner[2]}: input", edited(i, new), (owner[0],), owner[2]
        elif stripped.startswith("input ") and "=" in stripped:
            m = re.match(r"^(\s*input (\w+) = )(.+)$", line)
            yield "change an input default", f"input {m.group(2)}", edited(i, f"{m.group(1)}[{m.group(3)}]"), (), None

    for start, end, name in steps:  # clauses a run step does not have yet
        clauses = [lines[i].strip().split(" ")[0] for i in range(start + 1, end)]
        if "run" not in clauses:
            continue
        pad = " " * (_indent(lines[start]) + 2)
        if "timeout" not in clauses:
            yield "change a step timeout", f"{name}: add timeout 7m", lines[:start + 1] + [f"{pad}timeout 7m"] + lines[start + 1:], (start,), name
        if "retry" not in clauses:
            yield "change a retry count", f"{name}: add retry 1", lines[:start + 1] + [f"{pad}retry 1"] + lines[start + 1:], (start,), name
    if not any(re.match(r"^  timeout ", line) for line in lines):
        header = next(i for i, line in enumerate(lines) if line.startswith("flow "))
        yield "change the workflow timeout", "add timeout 1h", lines[:header + 1] + ["  timeout 1h"] + lines[header + 1:], (), None

    # add a step: first in the flow's body, and right before its last statement
    body = [i for i, line in enumerate(lines) if _STATEMENT.match(line) and _indent(line) == 2]
    for where, index in (("first", body[0]), ("before the last statement", body[-1])):
        added = ["  step added_v2:", '    run ["echo", "added"]']
        yield "add a step", f"add a step {where}", lines[:index] + added + lines[index:], (index,), None

    for start, end, name in steps:
        yield "remove a step", f"remove {name}", lines[:start] + lines[end:], (start,), name


def mutations(text: str, file: str) -> list[Mutation]:
    """Every applicable mutation of a flow's source (one that still parses and changes the flow)."""
    original = ir.to_json(parse_flow(text, file))
    found, seen = [], set()
    for kind, label, new_lines, changed, step in _raw_mutations(text):
        assert kind in KINDS, kind
        new_text = _join(new_lines)
        try:
            flow = parse_flow(new_text, file)
        except FlowSyntaxError:
            continue  # not applicable here (e.g. removing a step a later expression reads)
        if ir.to_json(flow) == original or (kind, label) in seen:
            continue
        seen.add((kind, label))
        found.append(Mutation(kind, label, new_text, tuple(i + 1 for i in changed), step, flow=flow))
    return found


# --- explaining ------------------------------------------------------------------------------

NOT_REACHED_YET = "not reached yet"
NOT_TAKEN = "path not taken"
INPUT_RECORDED = "input recorded at start"
NEVER_FAILED = "step never failed"
RETRIES_SAME = "same retry decisions"
CATCH_STILL_MATCHES = "catch still matches"
BUFFERED = "signal was buffered"
SIGNAL_PENDING = "wait still pending"
SAME_ARM = "same arm chosen"
EARLIER_ARM = "earlier arm chosen"
WIDTH_FITS = "all iterations fit"
CANCELLED_ONLY = "only failure was a cancellation"

REASONS = {
    NOT_REACHED_YET: "the mutated statement is after the end of this in-flight history: nothing recorded depends on it yet",
    NOT_TAKEN: "the mutated statement is on a path this finished history did not take (an arm not chosen, a catch "
               "not entered, a statement after the step that failed)",
    INPUT_RECORDED: "input defaults are resolved when the workflow starts and recorded in WorkflowStarted; replay "
                    "reads the recorded input",
    NEVER_FAILED: "retries and catches act only after a failed attempt, and this step never failed in this history",
    RETRIES_SAME: "for the failures this history holds, the new retry policy makes the same decisions (retry or not, "
                  "and the same delays: a backoff only scales the second and later delays)",
    CATCH_STILL_MATCHES: "the changed catch still matches the error the history recorded",
    BUFFERED: "the signal was already buffered when the wait was reached, so no timeout timer was ever started",
    SIGNAL_PENDING: "the wait is still pending and no signal has arrived: no recorded decision depends on the "
                    "signal's name yet",
    SAME_ARM: "the changed condition still chooses the recorded arm with this history's data",
    EARLIER_ARM: "an earlier arm was chosen, so the changed condition was never evaluated",
    CANCELLED_ONLY: "the step's only failed attempt was cancelled (its race was lost, or the workflow timed out), "
                    "and a cancelled attempt is never retried",
    WIDTH_FITS: "the loop has no more items than either width, so every iteration starts at once under both",
}


def _statements(block) -> Iterator[Any]:
    for stmt in block:
        yield stmt
        for catch in getattr(stmt, "catches", ()):
            yield from _statements(catch.body)
        if isinstance(stmt, ir.If):
            for arm in stmt.branches:
                yield from _statements(arm.body)
            yield from _statements(stmt.orelse or ())
        elif isinstance(stmt, ir.Parallel):
            for branch in stmt.branches:
                yield from _statements(branch)
        elif isinstance(stmt, ir.For):
            yield from _statements(stmt.body)


@dataclass
class Walk:
    """What a history did, folded with its own (original) flow."""

    reached: set  # lines of the statements that were ever current in a live frame
    branches: list  # (If statement, chosen arm label, the state and frame just before it was chosen)
    loops: list  # (For statement, number of items)
    final: Any  # the state after the last event


def walk(events: list) -> Walk:
    state = initial(events[0])
    reached, branches, loops = set(), [], []

    def note(s) -> None:
        for frame in s.frames.values():
            if frame.current is not None:
                reached.add(frame.current.line)

    note(state)
    for event in events[1:]:
        if isinstance(event, ev.BranchChosen):
            frame = state.frames[event.frame]
            branches.append((frame.current, event.branch, state, frame))
        if isinstance(event, ev.LoopStarted):
            loops.append((state.frames[event.frame].current, len(event.items)))
        state = evolve(state, event)
        note(state)
    return Walk(reached, branches, loops, state)


def _instances(state, name: str) -> list:
    return [s for k, s in state.steps.items() if re.sub(r"(\[\d+\])+$", "", k) == name]


def _find_step(flow: ir.Flow, name: str) -> Any:
    return next(s for s in _statements(flow.body) if getattr(s, "name", None) == name)


def explain(mutation: Mutation, history: History, original: ir.Flow) -> Optional[str]:
    """Why replay may accept ``mutation`` on ``history``; None when it should have been caught."""
    seen = walk(history.events)
    if mutation.kind == "change an input default":
        return INPUT_RECORDED
    arm_of = {arm.line: s.line for s in _statements(original.body) if isinstance(s, ir.If) for arm in s.branches}
    if mutation.lines and not seen.reached & {arm_of.get(line, line) for line in mutation.lines}:
        return NOT_TAKEN if history.finished else NOT_REACHED_YET
    kind, final = mutation.kind, seen.final
    if kind in ("change a retry count", "change a retry delay (every)", "change a retry backoff",
                "change a catch's match"):
        instances = _instances(final, mutation.step)
        if not any(s.counted_failures for s in instances):
            return NEVER_FAILED
        if all(a.outcome != "failed" or (a.error or {}).get("kind") in ("cancelled", "interrupted")
               for s in instances for a in s.attempts):
            return CANCELLED_ONLY
        old, new = _find_step(original, mutation.step), _find_step(mutation.flow, mutation.step)
        if kind == "change a catch's match":
            same = all(s.caught is not None and _matches(new.catches[s.caught], _error_of(s)) for s in instances)
            return CATCH_STILL_MATCHES if same else None
        for s in instances:
            for k in range(1, s.counted_failures + 1):
                if retry.may_retry(old.retry, k) != retry.may_retry(new.retry, k):
                    return None
                if retry.may_retry(old.retry, k) and retry.delay_ms(old.retry, k) != retry.delay_ms(new.retry, k):
                    return None
        return RETRIES_SAME
    if kind == "change a wait's timeout":
        (step,) = _instances(final, mutation.step) or (None,)
        if step is not None and final.timer_for(mutation.step, "signal-timeout") is None:
            return BUFFERED
        return None
    if kind == "rename a wait's signal":
        consumed = any(isinstance(e, ev.SignalConsumed) and e.step == mutation.step for e in history.events)
        return SIGNAL_PENDING if not consumed and not history.finished else None
    if kind in ("negate an if condition", "change a number in an if condition"):
        (line,) = mutation.lines
        new_ifs = {s.line: s for s in _statements(mutation.flow.body) if isinstance(s, ir.If)}
        for stmt, chosen, state, frame in seen.branches:
            arms = [arm.line for arm in stmt.branches]
            if line not in arms:
                continue
            index = arms.index(line)
            if chosen.startswith("then") and int(chosen[4:]) < index:
                continue  # an earlier arm was taken: this condition was not evaluated
            env = Env(state, frame)
            before = bool(expr.evaluate(stmt.branches[index].condition, env))
            after = bool(expr.evaluate(new_ifs[stmt.line].branches[index].condition, env))
            if before != after:
                return None
            return SAME_ARM
        return EARLIER_ARM
    if kind == "change a loop's parallel width":
        (line,) = mutation.lines
        new = next(s for s in _statements(mutation.flow.body) if isinstance(s, ir.For) and s.line == line)
        for stmt, count in seen.loops:
            if stmt.line == line and count > min(stmt.concurrency, new.concurrency):
                return None
        return WIDTH_FITS
    return None


def _error_of(step) -> dict:
    error = step.error or {}
    return {"kind": error.get("kind"), "message": error.get("message"), "exit_code": error.get("exit_code"),
            "type": error.get("type")}


# --- classifying ------------------------------------------------------------------------------


@dataclass
class Outcome:
    flow: str
    mutation: Mutation
    history: History
    caught: bool
    reason: Optional[str]  # for an accepted one: why (None: no reason found, it should have been caught)
    detail: str = ""

    @property
    def key(self) -> str:
        return f"{self.history.label} | {self.mutation.kind} | {self.mutation.label}"


def classify(flow_file: str, histories: list[History]) -> list[Outcome]:
    text = (REPO / flow_file).read_text()
    original = parse_flow(text, flow_file)
    found = []
    for mutation in mutations(text, flow_file):
        for history in histories:
            try:
                replay(history.events, mutation.flow, source=mutation.text)
            except NondeterminismError as exc:
                found.append(Outcome(flow_file, mutation, history, True, None, str(exc).splitlines()[0]))
                continue
            found.append(Outcome(flow_file, mutation, history, False, explain(mutation, history, original)))
    return found


def all_outcomes() -> list[Outcome]:
    found = []
    for flow_file in example_flows():
        found.extend(classify(flow_file, record_histories(flow_file)))
    return found


def table(outcomes: list[Outcome]) -> list[tuple]:
    """(kind, applied, caught, accepted, reasons of the accepted ones) per mutation kind."""
    rows = []
    for kind in KINDS:
        mine = [o for o in outcomes if o.mutation.kind == kind]
        accepted = [o for o in mine if not o.caught]
        reasons = sorted({o.reason or "NONE" for o in accepted})
        rows.append((kind, len(mine), len(mine) - len(accepted), len(accepted), reasons))
    return rows


def render(rows: list[tuple]) -> str:
    """The table of docs/mutations.md."""
    lines = ["| mutation | applied | caught | accepted | why accepted |", "|---|---:|---:|---:|---|"]
    for kind, applied, caught, accepted, reasons in rows:
        lines.append(f"| {kind} | {applied} | {caught} | {accepted} | {'; '.join(reasons) or '-'} |")
    return "\n".join(lines)
