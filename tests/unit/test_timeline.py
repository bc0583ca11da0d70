"""`lf timeline`'s intervals (localflow/timeline.py) against hand-built and real histories, and the
chart, the `lf graph --run` marks and the `lf top` frame rendered at 80 and 200 columns."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from localflow import ir
from localflow.cli.graph_render import flow_mermaid, flow_tree
from localflow.cli.graph_run import run_json, run_marks
from localflow.cli.progress import ProgressPrinter
from localflow.cli.timeline import timeline_view
from localflow.cli.times import TimePolicy
from localflow.core import events as ev
from localflow.core.state import fold
from localflow.testing import fail, succeed, world
from localflow.timeline import signal_waits, timeline

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z

FLOW = ir.Flow(
    name="F",
    inputs=(),
    body=(
        ir.Activity("reserve", (ir.Expr('"echo"'),), 1000, ir.Retry(max_attempts=2, initial_ms=500)),
        ir.Sleep("sleep-1", 2000),
        ir.WaitSignal("approval", "approve"),
        ir.Return(ir.Expr("approval.result")),
    ),
    file="flows/F.flow",
)


def history(*timed: tuple[int, ev.Event]) -> list[ev.Event]:
    """WorkflowStarted at T0, then each (ms after T0, event), numbered."""
    first = ev.WorkflowStarted(seq=1, ts=T0, workflow_id="w1", flow_name="F", flow_hash="h", flow_file=FLOW.file,
                               flow=ir.to_json(FLOW), flow_source="", input={})
    return [first] + [e.__class__(**{**e.__dict__, "seq": i + 2, "ts": T0 + at}) for i, (at, e) in enumerate(timed)]


def scheduled(attempt: int) -> ev.ActivityScheduled:
    return ev.ActivityScheduled(step="reserve", attempt=attempt, argv=["echo"], stdin=None, timeout_ms=1000)


HAND = history(
    (5, scheduled(1)),
    (7, ev.ActivityStarted(step="reserve", attempt=1, pid=10, pgid=10)),
    (100, ev.ActivityFailed(step="reserve", attempt=1, error={"kind": "exit", "message": "boom", "exit_code": 1},
                            duration_ms=93)),
    (100, ev.TimerStarted(timer=1, step="reserve", purpose="retry-2", duration_ms=500, fire_at=T0 + 600)),
    (600, ev.TimerFired(timer=1)),
    (600, scheduled(2)),
    (650, ev.ActivityStarted(step="reserve", attempt=2, pid=11, pgid=11)),
    (700, ev.ActivityCompleted(step="reserve", attempt=2, result="ok", duration_ms=50)),
    (700, ev.TimerStarted(timer=2, step="sleep-1", purpose="sleep", duration_ms=2000, fire_at=T0 + 2700)),
    (1500, ev.SignalReceived(signal="approve", data={"by": "ann"})),
    (2700, ev.TimerFired(timer=2)),
    (2700, ev.SignalConsumed(frame="root", at=2, step="approval", signal="approve", signal_seq=11)),
    (2700, ev.WorkflowCompleted(result={"by": "ann"})),
)


def spans(line) -> list[tuple]:
    """(kind, label, start, end, status) with times relative to the start."""
    return [(i.kind, i.label, i.start - T0, None if i.end is None else i.end - T0, i.status) for i in line.intervals]


def test_intervals_of_a_hand_built_history_begin_and_end_at_its_events():
    line = timeline(HAND)
    assert spans(line) == [
        ("workflow", "workflow", 0, 2700, "completed"),
        ("attempt", "reserve #1", 5, 100, "failed"),
        ("retry", "reserve #2 retry wait", 100, 600, "fired"),
        ("attempt", "reserve #2", 600, 700, "completed"),
        ("timer", "sleep", 700, 2700, "fired"),  # the flow's words: never the id sleep-1
        ("signal", "signal approve", 1500, 1500, "received"),
        ("wait", "approval: signal approve", 2700, 2700, "received"),  # buffered: taken as the wait began
    ]
    first = line.intervals[1]
    assert first.run_start == T0 + 7 and first.detail == "exit: boom"
    assert line.to_json()["intervals"][3]["offset_ms"] == 600 and line.to_json()["duration_ms"] == 2700


def test_a_running_workflow_has_open_intervals_and_says_what_it_waits_for():
    events = HAND[:11]  # the sleep fired, no signal yet
    events = events[:10] + [ev.TimerFired(seq=11, ts=T0 + 2700, timer=2)]
    line = timeline(events)
    assert spans(line)[-1] == ("wait", "approval: signal approve", 2700, None, "waiting")
    assert line.end is None and spans(line)[0][3] is None
    assert [(w.step, w.signal, w.kind) for w in signal_waits(fold(events))] == [("approval", "approve", "wait")]


def test_the_printer_gives_the_signal_command_once_when_nothing_more_is_decided(capsys):
    printer = ProgressPrinter("w1", lf="lf --home /tmp/h")
    events = HAND[:10] + [ev.TimerFired(seq=11, ts=T0 + 2700, timer=2)]
    printer.events(events[:10])
    assert "lf signal" not in capsys.readouterr().out  # still sleeping
    printer.events(events)
    printer.events(events)
    out = capsys.readouterr().out
    assert out.count("lf --home /tmp/h signal w1 approve --data '{}'") == 1
    assert "waiting for signal 'approve' (step approval)" in out


@pytest.fixture(scope="module")
def real():
    """Real histories, made by the engine on a virtual clock: a retried step, a race, a child, a wait."""
    with world(activities={"charge": [fail("card declined"), succeed({"receipt": "R"})], "slow": succeed(1),
                           "greet": succeed("hi")}) as w:
        w.add_flow('flow Kid\n  step greet:\n    run ["echo"]\n  return greet.result\n')
        buy = w.start('flow Buy\n  step charge:\n    run ["charge"]\n    retry 2 every 3s\n  sleep 10s\n'
                      '  step kid:\n    flow Kid\n  return charge.result\n')
        w.run_to_end(buy)
        race = w.start('flow Race\n  race:\n    branch:\n      sleep 1m\n    branch:\n      sleep 5s\n  return 1\n')
        w.run_to_end(race)
        waits = w.start('flow Waits\n  step ok:\n    wait signal go timeout 1m\n  return ok.result\n')
        w.run_until_idle()
        w.advance("20s")
        w.signal(waits, "go", 7)
        w.run_to_end(waits)
        yield {name: w.history(wid) for name, wid in (("buy", buy), ("race", race), ("waits", waits))}


def test_real_history_intervals_match_the_events_they_come_from(real):
    events = real["buy"]
    line = timeline(events)
    by_label = {i.label: i for i in line.intervals}
    failed = next(e for e in events if isinstance(e, ev.ActivityFailed))
    retry = next(e for e in events if isinstance(e, ev.TimerStarted) and e.purpose == "retry-2")
    assert by_label["charge #1"].end == failed.ts and by_label["charge #1"].status == "failed"
    assert by_label["charge #2 retry wait"].start == retry.ts
    assert by_label["charge #2 retry wait"].end - by_label["charge #2 retry wait"].start == 3000
    assert by_label["sleep at line 5"].end - by_label["sleep at line 5"].start == 10_000
    child = next(i for i in line.intervals if i.kind == "child")
    assert (child.status, child.label) == ("completed", "kid: child Kid") and child.detail.startswith("Buy-")
    assert line.status == "completed" and line.end == events[-1].ts


def test_a_race_losers_timer_ends_when_it_stops_mattering(real):
    line = timeline(real["race"])
    timers = sorted((i.end - i.start, i.status) for i in line.intervals if i.kind == "timer")
    assert timers == [(5000, "cancelled"), (5000, "fired")]


def test_a_wait_lasts_from_its_start_to_the_signal(real):
    events = real["waits"]
    wait = next(i for i in timeline(events).intervals if i.kind == "wait")
    taken = next(e for e in events if isinstance(e, ev.SignalConsumed))
    assert (wait.start, wait.end, wait.status) == (events[0].ts, taken.ts, "received")
    assert 20_000 <= wait.end - wait.start < 20_100


def rendered(renderable, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_the_chart_fits_the_width_and_draws_each_row(real, width):
    line = timeline(real["buy"])
    text = rendered(timeline_view(line, line.end, width, plain=True), width)
    lines = text.splitlines()
    assert all(len(row) <= width for row in lines)
    assert lines[1].lstrip().startswith("|0")
    charge2 = next(row for row in lines if row.startswith("charge #2"))
    bar = charge2[len("charge #2"):].strip()
    assert re.match(r"^\.+#+\s", bar) and "waited 3.0s" in charge2  # its retry wait, then the run
    sleep = next(row for row in lines if row.startswith("sleep"))
    assert "=" * max(3, (width - 40) // 4) in sleep
    assert "charge #1" in text and "kid: child Kid" in text


def test_the_chart_draws_open_intervals_to_now():
    events = HAND[:10] + [ev.TimerFired(seq=11, ts=T0 + 2700, timer=2)]
    text = rendered(timeline_view(timeline(events), T0 + 4000, 80, plain=True), 80)
    assert "running, 4.0s so far" in text
    assert re.search(r"approval: signal \.\.\.\s+-+>  waiting \(1.3s\)", text)  # open: drawn up to now


def test_graph_of_a_run_marks_each_statement(real):
    state = fold(real["buy"])
    marks = run_marks(state, real["buy"])
    tree = rendered(flow_tree(state.flow, lambda s: marks.get(id(s))), 200)
    assert "[completed, 2 attempts]" in tree and "[slept 10.0s]" in tree and "[completed: " in tree
    chart = flow_mermaid(state.flow, lambda s: marks.get(id(s)))
    assert "<br/>completed, 2 attempts" in chart and "classDef st_completed" in chart
    assert [(s["name"], s["status"]) for s in run_json(state, marks)["statements"]] == [
        ("charge", "completed"), ("sleep at line 5", "completed"), ("kid", "completed")]
    plain = flow_mermaid(state.flow)
    assert "<br/>" not in plain and "classDef" not in plain  # without marks: as before


@pytest.mark.parametrize("width", [80, 200])
def test_top_frame_renders_its_sections(width):
    from localflow.cli.top import top_view
    from localflow.dashboard import Frame

    frame = Frame(T0, 3, {"running": 2, "held": 0, "completed": 0, "failed": 1},
                  activities=[{"id": "Buy-1", "step": "charge", "attempt": 2, "status": "running",
                               "started": T0 - 4000, "elapsed_ms": 4000, "pid": 42}],
                  waits=[{"id": "Waits-1", "step": "ok", "label": "ok", "signal": "go", "kind": "wait",
                          "timeout_at": None}],
                  failures=[{"id": "Buy-0", "flow": "Buy", "status": "failed", "ended": "2025-11-24T15:59:00.000Z",
                             "error": "card declined"}])
    text = rendered(top_view(frame, TimePolicy("relative", T0), 10, "home"), width)
    assert "3 workflows: 2 running, 0 held, 0 completed, 1 failed" in text
    assert re.search(r"Buy-1\s+charge\s+2\s+running\s+4s\s+42", text)
    assert "Waits-1" in text and "1m00s ago" in text and "card declined" in text
    assert all(len(row) <= width for row in text.splitlines())
