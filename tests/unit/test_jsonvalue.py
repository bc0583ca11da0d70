"""The one rule for workflow values (core/jsonvalue.py), and the decider failing on what it cannot record."""

import pytest

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.jsonvalue import MAX_DEPTH, check_value, parse_json
from localflow.core.replay import replay
from localflow.core.state import evolve, fold
from localflow.dsl import parse_flow
from localflow.errors import InvalidValue


def nested(depth: int) -> object:
    """A value with ``depth`` levels of lists."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, True, "ü"]}, nested(MAX_DEPTH), [], {}])
def test_storable_values_pass_unchanged(value):
    assert check_value(value, "x") is value


@pytest.mark.parametrize("value, reason", [
    (float("nan"), "JSON cannot store"),
    ([float("inf")], "JSON cannot store"),
    ({"k": "\ud800"}, "not valid Unicode"),
    ({"\udcff": 1}, "not valid Unicode"),
    (nested(MAX_DEPTH + 1), "nested more than"),
    (nested(100_000), "nested more than"),
    ({1: "a"}, "non-string key"),
    ({"s": {1, 2}}, "not a JSON value"),
])
def test_unstorable_values_are_refused_naming_the_reason(value, reason):
    with pytest.raises(InvalidValue, match=reason):
        check_value(value, "the input")


@pytest.mark.parametrize("text, reason", [
    ("NaN", "NaN"), ("[-Infinity]", "Infinity"), ("1e999", "too large"), ('"\\ud800"', "Unicode"),
    ("[" * 10_000 + "]" * 10_000, "nested"), (b"\xff", "UTF-8"), ("{", "not valid JSON"),
])
def test_parse_json_refuses_what_it_cannot_store_without_recursion_errors(text, reason):
    with pytest.raises(InvalidValue, match=reason):
        parse_json(text, "--data")


def test_a_decision_too_large_to_record_fails_the_workflow_and_replays_the_same():
    flow = parse_flow("flow Big\n  set a = range(100000)\n  set b = [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a]\n"
                      "  return 1\n", "flows/Big.flow")
    events: list = [ev.WorkflowStarted(seq=1, ts=1, workflow_id="w", flow_name="Big", flow_hash="h",
                                       flow_file=flow.file, flow=ir.to_json(flow), flow_source="", input={})]
    state = fold(events)
    while not state.terminal:
        (command,) = decide(state)
        event = ev.record_command(command, state.last_seq + 1, 2)
        events.append(event)
        state = evolve(state, event)

    assert state.status == "failed"
    assert state.error["kind"] == "value" and "event VariableSet is" in state.error["message"]
    assert state.error["line"] == 3
    assert replay(events).status == "failed"  # deciding again from the history gives the same failure


def test_integers_past_the_digit_limit_are_refused_on_every_python():
    assert check_value(10 ** 3999, "x") == 10 ** 3999
    with pytest.raises(InvalidValue, match="more than 4000 digits"):
        check_value([-(10 ** 4000)], "the input")
