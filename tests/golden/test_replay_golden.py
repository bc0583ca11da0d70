"""Checked-in histories replay exactly; one whose flow disagrees with its decisions must be rejected.

histories/*.ok.jsonl replay to the state their events fold to; *.nondeterministic.jsonl
are rejected. All but the two PurchaseFlow ones and the frozen ``-v1`` ones (made by an
earlier version of it) are made by make_histories.py (flows in flows/), which must
reproduce them byte for byte. Together they hold every event type
and every statement of the language (tests below).
"""

import importlib.util
import typing
from dataclasses import replace
from pathlib import Path

import pytest

from localflow import dsl, ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.replay import canonical, replay
from localflow.core.state import evolve, fold
from localflow.errors import NondeterminismError
from localflow.store import history

HERE = Path(__file__).parent / "histories"
REPO = Path(__file__).resolve().parents[2]
OK = sorted(p.name for p in HERE.glob("*.ok.jsonl"))
NONDETERMINISTIC = sorted(p.name for p in HERE.glob("*.nondeterministic.jsonl"))
HANDWRITTEN = {"purchaseflow-completed.ok.jsonl", "purchaseflow-steps-swapped.nondeterministic.jsonl"}
# Made by make_histories.py before wait steps said how they ended (``tells_ending``), and kept as they
# were: workflows pinned then must replay unchanged (a wait's value is still {"result", "attempts"}).
FROZEN = {"cancel-v1.ok.jsonl", "signals-v1.ok.jsonl", "terminate-v1.ok.jsonl"}


def load(name):
    return [ev.from_record(r) for r in history.read(HERE / name).records]


@pytest.mark.parametrize("name", OK)
def test_recorded_history_replays_to_the_same_state(name):
    events = load(name)
    assert replay(events) == fold(events)


@pytest.mark.parametrize("name", NONDETERMINISTIC)
def test_history_that_disagrees_with_its_flow_is_rejected(name):
    events = load(name)
    with pytest.raises(NondeterminismError) as info:
        replay(events)
    assert events[0].flow_file in str(info.value)
    seq = info.value.seq
    assert replay(events, upto=seq - 1) == fold(events[:seq - 1])  # everything before it agrees
    recorded = [e for e in events if isinstance(e, ev.WorkflowNondeterministic)]
    if recorded:  # the executor found the same divergence when it replayed the history
        assert [e.at for e in recorded] == [seq]
        assert fold(events).status == "cancelled"


@pytest.mark.parametrize("name", OK)
def test_replay_can_stop_at_any_event(name):
    events = load(name)
    for upto in range(1, len(events) + 1):
        assert replay(events, upto=upto) == fold(events[:upto])


@pytest.mark.parametrize("name", OK)
def test_every_decision_is_what_decide_gives_on_the_history_before_it(name):
    """What replay does, spelled out: fold the prefix, decide, compare canonical JSON. (A resume's
    ``from_seq`` up to the resume holds decisions of the failure it set aside: not asked again. A
    fork's copied decisions were made by its origin, under the origin's id.)"""
    events = load(name)
    aside = [(e.from_seq, e.seq) for e in events if isinstance(e, ev.WorkflowResumed) and e.from_seq]
    forked = next((e for e in events if isinstance(e, ev.WorkflowForked)), None)
    state, checked = fold(events[:1]), 0
    for event in events[1:]:
        if event.decision and not any(start <= event.seq < end for start, end in aside):
            deciding = state if forked is None or event.seq > forked.seq else replace(
                state, workflow_id=forked.origin["workflow_id"])
            assert [canonical(c) for c in decide(deciding)] == [canonical(ev.command_of(event))], (name, event.seq)
            checked += 1
        state = evolve(state, event)
    assert checked and decide(state) == []


def test_the_ok_histories_hold_every_event_type():
    """All but WorkflowNondeterministic: a history holding it cannot replay (replaying it is how
    the executor found the divergence it records), so it is in a .nondeterministic one."""
    types = lambda names: {type(e).__name__ for name in names for e in load(name)}  # noqa: E731
    assert types(OK) == set(ev.EVENT_TYPES) - {"WorkflowNondeterministic"}
    assert "WorkflowNondeterministic" in types(NONDETERMINISTIC)


def test_the_golden_flows_hold_every_statement_and_clause():
    flows = [ir.from_json(load(name)[0].flow) for name in OK]
    stmts = [s for flow in flows for s in ir.walk(flow.body)]
    assert {type(s) for s in stmts} == set(typing.get_args(ir.Stmt))
    steps = [s for s in stmts if isinstance(s, ir.Activity)]
    waits = [s for s in stmts if isinstance(s, ir.WaitSignal)]
    loops = [s for s in stmts if isinstance(s, ir.For)]
    races = {s.race for s in stmts if isinstance(s, ir.Parallel)}
    ifs = [s for s in stmts if isinstance(s, ir.If)]
    catches = {c.match for s in stmts if isinstance(s, ir.STEP_KINDS) for c in s.catches}
    sources = "".join(load(name)[0].flow_source for name in OK)
    assert any(f.timeout_ms for f in flows), "a workflow timeout"
    assert any(s.retry.max_attempts > 1 and s.retry.backoff != 2.0 and s.retry.max_interval_ms for s in steps)
    assert all(any(getattr(s, clause) is not None for s in steps) for clause in ("stdin", "undo"))
    assert {s.timeout_ms is None for s in waits} == {True, False}
    assert {s.concurrency > 1 for s in loops} == {True, False} and races == {True, False}
    assert any(len(s.branches) > 1 and s.orelse is not None for s in ifs) and any(s.orelse is None for s in ifs)
    assert catches == {"exit", "timeout", "error", "any"}
    for needle in ("sum(prices)", "now()", 'f"{', ":z.", "!r}", "json(", "upper(", "range(", "round(", " if "):
        assert needle in sources, needle


def test_the_generator_reproduces_the_checked_in_histories(tmp_path):
    spec = importlib.util.spec_from_file_location("make_histories", Path(__file__).parent / "make_histories.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["make_histories.py", str(tmp_path)])
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(set(OK + NONDETERMINISTIC) - HANDWRITTEN - FROZEN)
    for name in made:
        assert (tmp_path / name).read_bytes() == (HERE / name).read_bytes(), (
            f"{name} is no longer what tests/golden/make_histories.py makes: if the change is meant, "
            "run it and review the diff")


# --- PurchaseFlow, recorded by hand from `lf run` ------------------------------------------


def test_the_golden_history_still_replays_against_todays_purchaseflow():
    """Editing flows/PurchaseFlow.flow in a way that changes decisions must fail here."""
    events = load("purchaseflow-completed.ok.jsonl")
    today = dsl.load_flow_file(REPO / "flows" / "PurchaseFlow.flow", "flows/PurchaseFlow.flow")
    replay(events, flow=today)


def test_a_changed_retry_policy_is_caught_as_nondeterminism():
    events = load("purchaseflow-completed.ok.jsonl")
    source = (REPO / "flows" / "PurchaseFlow.flow").read_text().replace("retry 2 every 1s", "retry 2 every 5s")
    with pytest.raises(NondeterminismError) as info:
        replay(events, flow=dsl.parse_flow(source, "flows/PurchaseFlow.flow"))
    assert "duration_ms: recorded 1.0s, now 5.0s" in str(info.value)


def test_a_divergence_quotes_the_flow_line_and_names_each_field_that_differs():
    with pytest.raises(NondeterminismError) as info:
        replay(load("purchaseflow-steps-swapped.nondeterministic.jsonl"))
    assert info.value.seq == 2
    text = str(info.value)
    assert "ScheduleActivity of step 'charge'" in text.splitlines()[0]
    assert "    flows/PurchaseFlow.flow:12:3:" in text and "          ^" in text
    assert 'step: recorded "reserve", now "charge"' in text


def test_frozen_histories_pinned_before_waits_said_how_they_ended_still_read_the_old_value():
    events = load("signals-v1.ok.jsonl")
    flow = ir.from_json(events[0].flow)
    assert not any(getattr(s, "tells_ending", None) for s in ir.walk(flow.body))
    assert fold(events).result["by"] == "ann"  # approval.result.by, as it always read
