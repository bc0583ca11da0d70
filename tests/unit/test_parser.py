"""The DSL parser: valid flows become the IR we expect, exactly, and round-trip through JSON."""

from __future__ import annotations

import json
import textwrap

import pytest

from localflow import ir
from localflow.dsl import DEFAULT_TIMEOUT_MS, load_flow_file, parse_duration, parse_flow
from localflow.errors import FlowSyntaxError

PURCHASE = """\
# comments start with #
flow PurchaseFlow                      # header; an optional trailing ':' is accepted
  input order_id = "demo-1"            # input with a default (a constant expression: no names)
  input amount = 42.0
  input customer                       # required input (no default)

  step reserve:
    run ["flows/activities/reserve.sh", order_id]   # argv: a list literal
    timeout 30s
    retry 3 every 1s backoff 2x max 10s            # 3 retries after the first attempt
  step charge:
    run ["python3", "flows/activities/charge.py"]
    stdin {"amount": amount, "order": order_id}   # optional: exactly this JSON on stdin
  sleep 2s
  return {"order": order_id, "receipt": charge.result.receipt}
"""


def flow_of(body: str, name: str = "T") -> ir.Flow:
    return parse_flow(f"flow {name}\n" + textwrap.indent(textwrap.dedent(body), "  "))


def test_purchase_flow_round_trips_through_json_unchanged():
    flow = parse_flow(PURCHASE, "flows/PurchaseFlow.flow")

    again = ir.from_json(json.loads(json.dumps(ir.to_json(flow))))

    assert again == flow
    assert flow.name == "PurchaseFlow" and flow.file == "flows/PurchaseFlow.flow"


def test_purchase_flow_inputs_keep_defaults_as_positioned_expressions():
    flow = parse_flow(PURCHASE)

    assert [(i.name, i.default, i.line, i.col) for i in flow.inputs] == [
        ("order_id", ir.Expr('"demo-1"', 3, 20), 3, 3),
        ("amount", ir.Expr("42.0", 4, 18), 4, 3),
        ("customer", None, 5, 3),
    ]


def test_purchase_flow_steps_carry_argv_timeout_retry_and_stdin():
    reserve, charge, sleep, ret = parse_flow(PURCHASE).body

    assert reserve == ir.Activity(
        name="reserve",
        argv=(ir.Expr('"flows/activities/reserve.sh"', 8, 10), ir.Expr("order_id", 8, 41)),
        timeout_ms=30_000,
        retry=ir.Retry(max_attempts=4, initial_ms=1000, backoff=2.0, max_interval_ms=10_000),
        line=7, col=3,
    )
    assert [e.source for e in charge.argv] == ['"python3"', '"flows/activities/charge.py"']
    assert charge.timeout_ms == DEFAULT_TIMEOUT_MS == 600_000
    assert charge.retry == ir.Retry()
    assert charge.stdin == ir.Expr('{"amount": amount, "order": order_id}', 13, 11)
    assert sleep == ir.Sleep("sleep-1", 2000, 14, 3)
    assert ret == ir.Return(ir.Expr('{"order": order_id, "receipt": charge.result.receipt}', 15, 10), 15, 3)


def test_header_accepts_a_trailing_colon():
    assert parse_flow("flow A:\n  return 1\n").name == "A"


def test_flow_with_only_a_header_has_an_empty_body():
    assert parse_flow("flow Empty\n") == ir.Flow("Empty", (), (), "<string>")


def test_sleeps_are_numbered_in_document_order():
    flow = flow_of("""\
        sleep 500ms
        step a:
          run ["true"]
        sleep 1m30s
        sleep 0s
    """)

    assert [(s.id, s.duration_ms) for s in flow.body if isinstance(s, ir.Sleep)] == [
        ("sleep-1", 500), ("sleep-2", 90_000), ("sleep-3", 0)]


@pytest.mark.parametrize("text, ms", [
    ("500ms", 500), ("30s", 30_000), ("1m30s", 90_000), ("2h", 7_200_000), ("1d", 86_400_000),
    ("1h1m1s1ms", 3_661_001), ("0s", 0),
])
def test_durations_add_up_their_parts(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["5x", "", "1.5s", "s", "10", "-1s", "1 s", "1S"])
def test_things_that_are_not_durations(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("clause, retry", [
    ("retry 0", ir.Retry(max_attempts=1)),
    ("retry 3", ir.Retry(max_attempts=4, initial_ms=1000, backoff=2.0)),
    ("retry 2 every 500ms", ir.Retry(max_attempts=3, initial_ms=500)),
    ("retry 5 backoff 1.5x", ir.Retry(max_attempts=6, backoff=1.5)),
    ("retry 5 backoff 3", ir.Retry(max_attempts=6, backoff=3.0)),
    ("retry 1 max 5s every 2s", ir.Retry(max_attempts=2, initial_ms=2000, max_interval_ms=5000)),
    ("retry 4 every 1s backoff 1x", ir.Retry(max_attempts=5, initial_ms=1000, backoff=1.0)),
])
def test_retry_clause_becomes_a_retry_policy(clause, retry):
    flow = flow_of(f"""\
        step a:
          run ["true"]
          {clause}
    """)

    assert flow.body[0].retry == retry


def test_multi_line_return_is_one_statement_with_positions_on_later_lines():
    flow = flow_of("""\
        step charge:
          run ["true"]
        return {
          "receipt": charge.result,   # a comment inside the brackets
          "tags": ["a#b", 'c'],
        }
    """)

    ret = flow.body[1]
    assert ret.value.line == 4 and ret.value.col == 10
    assert ret.value.source.splitlines()[1].strip().startswith('"receipt": charge.result,')
    assert "# a comment" not in ret.value.source and "a#b" in ret.value.source


def test_run_elements_over_several_lines_each_keep_their_own_position():
    flow = flow_of("""\
        step a:
          run [
            "python3",
            (  "job.py"),
          ]
    """)

    assert flow.body[0].argv == (ir.Expr('"python3"', 4, 7), ir.Expr('(  "job.py")', 5, 7))


def test_a_hash_inside_a_string_is_not_a_comment():
    flow = flow_of("""\
        fail "order #1 # was refused"   # this part is a comment
    """)

    assert flow.body[0].message.source == '"order #1 # was refused"'


def test_steps_may_read_inputs_workflow_and_earlier_steps():
    flow = flow_of("""\
        input n = 1
        step first:
          run ["echo", str(n), workflow.id]
        step second:
          run ["echo"]
          stdin {"prev": first.result, "attempts": first.attempts}
        return second.result
    """)

    assert flow.step_names() == ("first", "second")


def test_blank_lines_crlf_and_a_byte_order_mark_are_accepted():
    text = "\ufeff# c\r\n\r\nflow W\r\n  step a:\r\n    run [\"true\"]\r\n\r\n  return a.result\r\n"

    flow = parse_flow(text)

    assert flow.body[1] == ir.Return(ir.Expr("a.result", 7, 10), 7, 3)


def test_fail_and_f_string_messages():
    flow = flow_of("""\
        input order_id = "x"
        fail f"order {order_id} was refused"
    """)

    assert flow.body[0] == ir.Fail(ir.Expr('f"order {order_id} was refused"', 3, 8), 3, 3)


def test_indentation_may_be_any_consistent_depth():
    flow = parse_flow("flow D\n    step a:\n            run ['x']\n            timeout 1s\n    sleep 1s\n")

    assert [type(s).__name__ for s in flow.body] == ["Activity", "Sleep"]
    assert flow.body[0].timeout_ms == 1000


def test_load_flow_file_reads_utf8_and_names_the_display_path(tmp_path):
    path = tmp_path / "PurchaseFlow.flow"
    path.write_text(PURCHASE, encoding="utf-8")

    flow = load_flow_file(path, "flows/PurchaseFlow.flow")

    assert flow.file == "flows/PurchaseFlow.flow"
    assert flow == parse_flow(PURCHASE, "flows/PurchaseFlow.flow")
    assert load_flow_file(str(path)).file == str(path)


def test_load_flow_file_rejects_a_flow_named_unlike_its_file(tmp_path):
    path = tmp_path / "Other.flow"
    path.write_text(PURCHASE, encoding="utf-8")

    with pytest.raises(FlowSyntaxError) as info:
        load_flow_file(path, "flows/Other.flow")

    assert info.value.first.render().splitlines()[0] == (
        "flows/Other.flow:2:6: flow 'PurchaseFlow' must be named after its file: "
        "write 'flow Other' or rename the file to PurchaseFlow.flow")


def test_load_flow_file_reports_unreadable_and_non_utf8_files_at_1_1(tmp_path):
    bad = tmp_path / "Bad.flow"
    bad.write_bytes(b"flow Bad\n  fail \"caf\xe9\"\n")

    with pytest.raises(FlowSyntaxError) as not_utf8:
        load_flow_file(bad, "flows/Bad.flow")
    with pytest.raises(FlowSyntaxError) as missing:
        load_flow_file(tmp_path / "Nope.flow", "flows/Nope.flow")

    assert str(not_utf8.value) == ("flows/Bad.flow:1:1: the flow file is not UTF-8 text "
                                   "(byte 0xe9 on line 2); save it as UTF-8")
    assert str(missing.value).startswith("flows/Nope.flow:1:1: cannot read the flow file: ")
