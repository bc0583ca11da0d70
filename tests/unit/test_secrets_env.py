"""The pure parts of issue 10: secret references, env/cwd checks and scheduling, termination in the fold."""

from __future__ import annotations

import pytest

from localflow import dsl, ir
from localflow.core import events as ev
from localflow.core import secrets
from localflow.core.decide import decide
from localflow.core.expr import evaluate, secrets_used
from localflow.core.state import TERMINAL, evolve, initial
from localflow.errors import ExpressionError, FoldError, InvalidValue
from localflow.runner import environment


def test_secret_evaluates_to_a_reference_that_survives_an_f_string():
    expr = ir.Expr("f\"Bearer {secret('API_TOKEN')}\"", 1, 1)
    assert evaluate(expr, {}) == "Bearer ${secret:API_TOKEN}"
    assert secrets_used(expr) == ["API_TOKEN"]
    assert secrets_used(ir.Expr('[secret("B"), secret("A"), secret("B")]', 1, 1)) == ["A", "B"]


@pytest.mark.parametrize("source", ["secret(name)", 'secret("bad-name")', "secret(1)", 'secret("")'])
def test_a_secret_name_must_be_a_literal_name(source):
    with pytest.raises(ExpressionError, match="string literal"):
        evaluate(ir.Expr(source, 1, 1), {"name": "X"})


def test_substitute_fills_in_only_the_given_names_everywhere_in_a_value():
    value = {"a": ["x ${secret:A} y", "${secret:B}"], "${secret:A}": 1, "n": 3}
    assert secrets.names_in(value) == {"A", "B"}
    assert secrets.substitute(value, {"A": "va"}) == {"a": ["x va y", "${secret:B}"], "va": 1, "n": 3}


def test_check_env_and_check_cwd():
    assert secrets.check_env({"LANG": "C", "N": 3}, lambda v: str(v)) == {"LANG": "C", "N": "3"}
    for bad, words in (([1], "object"), ({"1X": "a"}, "not a variable name"), ({"LF_STEP": "a"}, "reserved"),
                       ({"A": None}, "string or a number"), ({"A": "a\x00"}, "NUL")):
        with pytest.raises(InvalidValue, match=words):
            secrets.check_env(bad)
    assert secrets.check_cwd("./work//area/") == "work/area"
    for bad, words in (("/tmp", "absolute"), ("a/../..", r"\.\."), ("", "non-empty"), (3, "non-empty")):
        with pytest.raises(InvalidValue, match=words):
            secrets.check_cwd(bad)


def test_the_allowlist_and_pass_env():
    environ = {"PATH": "/bin", "LC_ALL": "C", "LF_X": "1", "LF_SECRET_T": "v", "AWS_KEY": "k", "MY_A": "a",
               "MY_B": "b", "OTHER": "o", "LF_PASS_ENV": "AWS_KEY, MY_*"}
    assert environment.inherited(environ) == {"PATH": "/bin", "LC_ALL": "C", "LF_X": "1", "AWS_KEY": "k",
                                              "MY_A": "a", "MY_B": "b", "LF_PASS_ENV": "AWS_KEY, MY_*"}
    env = environment.step_environment({"TOKEN": "${secret:T}"}, {"T": "v"}, {"LF_STEP": "s"}, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "TOKEN": "v", "LF_STEP": "s"}
    with pytest.raises(environment.SpawnRefused, match="LF_SECRET_MISSING"):
        environment.secret_values(["MISSING"], {})


FLOW = """flow F
  input token_name = "x"
  step a:
    run ["curl", f"Bearer {secret('API')}"]
    env {"LANG": "C", "K": secret("KEY")}
    cwd "work"
    undo ["refund", secret("REFUND")]
  return 1
"""


def _started(source: str) -> ev.WorkflowStarted:
    flow = dsl.parse_flow(source, "F.flow")
    return ev.WorkflowStarted(seq=1, ts=1000, workflow_id="w", flow_name="F", flow_hash="h", flow_file="F.flow",
                              flow=ir.to_json(flow), flow_source=source, input={"token_name": "x"})


def test_a_step_schedules_its_env_cwd_and_secret_names_as_references():
    state = initial(_started(FLOW))
    [command] = decide(state)
    assert command.argv == ["curl", "Bearer ${secret:API}"]
    assert command.env == {"LANG": "C", "K": "${secret:KEY}"}
    assert command.cwd == "work" and command.secrets == ["API", "KEY", "REFUND"]
    record = ev.to_record(ev.record_command(command, 2, 2000))
    assert record["secrets"] == ["API", "KEY", "REFUND"]


def test_a_step_without_the_clauses_records_what_it_recorded_before():
    source = 'flow F\n  step a:\n    run ["true"]\n  return 1\n'
    [command] = decide(initial(_started(source)))
    record = ev.to_record(ev.record_command(command, 2, 2000))
    assert not {"env", "cwd", "secrets"} & set(record)
    assert not {"env", "cwd"} & set(_started(source).flow["body"][0])


def test_terminated_is_terminal_and_decides_nothing_more():
    state = initial(_started(FLOW))
    state = evolve(state, ev.record_command(decide(state)[0], 2, 2000))
    state = evolve(state, ev.WorkflowTerminated(seq=3, ts=3000, reason="stop"))
    assert "terminated" in TERMINAL and state.status == "terminated" and state.terminal
    assert state.error == {"kind": "terminated", "message": "stop"} and state.ended_at == 3000
    assert decide(state) == [] and not state.wanted(state.steps["a"])
    with pytest.raises(FoldError):
        evolve(state, ev.WorkflowTerminated(seq=4, ts=4000, reason="again"))
