"""Checked-in histories replay exactly; one whose flow disagrees with its decisions must be rejected."""

from pathlib import Path

import pytest

from localflow import dsl
from localflow.core import events as ev
from localflow.core.replay import replay
from localflow.core.state import fold
from localflow.errors import NondeterminismError
from localflow.store import history

HERE = Path(__file__).parent / "histories"
REPO = Path(__file__).resolve().parents[2]


def load(name):
    return [ev.from_record(r) for r in history.read(HERE / name).records]


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.ok.jsonl")))
def test_recorded_history_replays_to_the_same_state(name):
    events = load(name)
    assert replay(events) == fold(events)


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.nondeterministic.jsonl")))
def test_history_that_disagrees_with_its_flow_is_rejected(name):
    with pytest.raises(NondeterminismError) as info:
        replay(load(name))
    assert info.value.seq == 2
    assert "flows/PurchaseFlow.flow" in str(info.value)


def test_replay_can_stop_at_any_event():
    events = load("purchaseflow-completed.ok.jsonl")
    for upto in range(1, len(events) + 1):
        assert replay(events, upto=upto) == fold(events[:upto])


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
    text = str(info.value)
    assert "ScheduleActivity of step 'charge'" in text.splitlines()[0]
    assert "    flows/PurchaseFlow.flow:12:3:" in text and "          ^" in text
    assert 'step: recorded "reserve", now "charge"' in text
