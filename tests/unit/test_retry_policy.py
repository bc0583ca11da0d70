"""Activity policies (issue 10): jitter, non-retryable failures, flow defaults, total timeout, sleep until.

Parsing and its errors, the pure retry arithmetic, decide on hand-made states, and whole
workflows in the in-memory world of ``localflow.testing`` (virtual clock, scripted attempts).
"""

from __future__ import annotations

import pytest

from localflow import ir
from localflow.core import events as ev
from localflow.core import retry
from localflow.core.decide import decide, hash_text, parse_timestamp
from localflow.core.replay import replay
from localflow.dsl import parse_flow
from localflow.errors import ExpressionError, FlowSyntaxError, NondeterminismError
from localflow.testing import fail, hang, succeed, world

FILE = "flows/T.flow"


def parse(text: str) -> ir.Flow:
    return parse_flow(text, FILE)


def errors(text: str) -> list[str]:
    with pytest.raises(FlowSyntaxError) as info:
        parse(text)
    return [line for line in str(info.value).splitlines() if line.startswith(FILE)]


def step(clauses: str, head: str = "") -> ir.Activity:
    return parse(f"flow T\n{head}  step a:\n    run [\"x\"]\n" + "".join(f"    {c}\n" for c in clauses.split(";") if c))\
        .body[0]


# --- parsing --------------------------------------------------------------------------------


def test_jitter_is_a_retry_option_kept_as_a_fraction():
    a = step("retry 3 every 1s backoff 2x max 30s jitter 20%")
    assert a.retry == ir.Retry(max_attempts=4, initial_ms=1000, backoff=2.0, max_interval_ms=30_000, jitter=0.2)
    assert step("retry 1 jitter 100%").retry.jitter == 1.0
    assert step("retry 1 jitter 12.5%").retry.jitter == 0.125


def test_no_retry_on_exit_codes_and_error_types():
    assert step("retry 3;no retry on exit 2, 3").retry.no_retry_exit == (2, 3)
    both = step('retry 3;no retry on exit 2 or error "CardDeclined", "Fraud"').retry
    assert (both.no_retry_exit, both.no_retry_errors) == ((2,), ("CardDeclined", "Fraud"))
    assert step("no retry on error 'X' or exit 7").retry.no_retry_exit == (7,)


def test_timeout_total_sets_the_schedule_to_close_limit():
    a = step("timeout 30s total 5m")
    assert (a.timeout_ms, a.total_timeout_ms) == (30_000, 300_000)
    b = step("timeout total 1m")
    assert (b.timeout_ms, b.total_timeout_ms) == (600_000, 60_000)
    assert step("timeout 5s").total_timeout_ms is None


def test_flow_defaults_apply_to_every_run_and_call_step_unless_it_gives_the_clause():
    flow = parse('flow T\n  input x = 1\n  timeout 1h\n  defaults:\n    retry 2 every 1s jitter 10%\n'
                 '    timeout 30s total 5m\n    no retry on exit 2\n'
                 '  step a:\n    run ["x"]\n'
                 '  step b:\n    run ["y"]\n    retry 5\n    timeout 1s\n'
                 '  step c:\n    call mod.fn()\n'
                 '  step w:\n    wait signal go\n')
    a, b, c, w = flow.body
    assert flow.timeout_ms == 3_600_000  # the workflow's own timeout is another thing
    assert a.retry == ir.Retry(max_attempts=3, initial_ms=1000, jitter=0.1, no_retry_exit=(2,))
    assert (a.timeout_ms, a.total_timeout_ms) == (30_000, 300_000)
    assert b.retry == ir.Retry(max_attempts=6, no_retry_exit=(2,))  # its retry replaces the default's whole
    assert (b.timeout_ms, b.total_timeout_ms) == (1000, None)  # and so does its timeout
    assert c.retry == a.retry and c.total_timeout_ms == 300_000
    assert isinstance(w, ir.WaitSignal)


def test_sleep_until_keeps_its_expression():
    (sleep,) = parse("flow T\n  input at\n  sleep until at\n").body
    assert sleep == ir.Sleep("sleep-1", 0, 3, 3, until=ir.Expr("at", 3, 15))


@pytest.mark.parametrize("clauses, expected", [
    ("retry 3 jitter 0%", "5:20: bad jitter '0%': write a percentage above 0 and at most 100, e.g. jitter 20%"),
    ("retry 3 jitter 20", "5:20: bad jitter '20': write a percentage above 0 and at most 100, e.g. jitter 20%"),
    ("retry 3 jitter", "5:13: 'jitter' needs a value, e.g. jitter 20%"),
    ("no retry on exit 0", "5:22: bad exit code '0': write a whole number from 1 to 255"),
    ("no retry on exit 2 3", "5:24: separate the exit codes with commas, and 'exit' from 'error' with 'or', "
                             "e.g. no retry on exit 2, 3 or error \"CardDeclined\""),
    ("no retry on exit 2, 2", "5:25: 2 is listed twice"),
    ("no retry on timeout", "5:17: expected 'exit' or 'error' here, e.g. no retry on exit 2, 3 or error \"CardDeclined\""),
    ("no retries", "5:8: expected 'retry on' after 'no', e.g. no retry on exit 2, 3 or error \"CardDeclined\""),
    ("no retry on exit 2 or exit 3", "5:27: 'exit' is given twice: list all its values after one 'exit'"),
    ("timeout 5s total", "5:21: 'total timeout' needs a duration: write e.g. 500ms, 30s, 1m30s, 2h"),
    ("timeout 5s total 0s", "5:22: total timeout must be more than 0"),
    ("timeout 5x total 1m", "5:13: bad duration '5x': write e.g. 500ms, 30s, 1m30s, 2h"),
])
def test_policy_errors_point_at_file_line_and_column(clauses, expected):
    text = f"flow T\n  input x = 1\n  step a:\n    run [\"x\"]\n    {clauses}\n"
    assert errors(text)[0] == f"{FILE}:{expected}"


@pytest.mark.parametrize("text, expected", [
    ("flow T\n  step a:\n    run [\"x\"]\n  defaults:\n    retry 1\n",
     "4:3: 'defaults:' must come before the first step, with the inputs"),
    ("flow T\n  defaults:\n    run [\"x\"]\n",
     "3:5: 'run' cannot be a default: 'defaults:' holds timeout, retry and no retry on "
     "(the clauses every run and call step may share)"),
    ("flow T\n  defaults:\n    retry 1\n    retry 2\n", "4:5: 'retry' is given twice in 'defaults:' (first at line 3)"),
    ("flow T\n  defaults:\n    retry 1\n  defaults:\n    retry 2\n", "4:3: 'defaults:' is given twice (first at line 2)"),
    ("flow T\n  defaults:\n  step a:\n    run [\"x\"]\n",
     "2:3: 'defaults:' needs an indented block of step clauses, e.g. retry 3 every 1s"),
    ("flow T\n  sleep until\n", "2:14: 'sleep until' needs a timestamp, e.g. sleep until deliver_at "
                                "or sleep until \"2026-11-25T20:00:00Z\""),
    ("flow T\n  sleep until \"2026-13-01T00:00:00Z\"\n",
     "2:15: sleep until: '2026-13-01T00:00:00Z' is not a valid date and time"),
    ("flow T\n  sleep until \"tomorrow\"\n",
     "2:15: sleep until: expected an ISO-8601 timestamp with a time zone, e.g. '2026-11-25T20:00:00Z' or "
     "'2026-11-25T21:00:00+01:00', got 'tomorrow'"),
    ("flow T\n  sleep until nope\n", "2:15: unknown name 'nope'"),
])
def test_defaults_and_sleep_until_errors(text, expected):
    assert errors(text)[0].startswith(f"{FILE}:{expected}")


def test_the_pinned_json_of_a_flow_without_the_new_options_has_none_of_their_fields():
    text = 'flow T\n  step a:\n    run ["x"]\n    retry 2 every 1s\n  sleep 1s\n'
    pinned = str(ir.to_json(parse(text)))
    for name in ("jitter", "no_retry_exit", "no_retry_errors", "total_timeout_ms", "until"):
        assert name not in pinned
    full = parse('flow T\n  step a:\n    run ["x"]\n    retry 2 jitter 5%\n    timeout 1s total 9s\n'
                 '    no retry on exit 4 or error "E"\n  sleep until "2030-01-01T00:00:00Z"\n')
    assert ir.from_json(ir.to_json(full)) == full


# --- the arithmetic ------------------------------------------------------------------------------


def test_jitter_is_derived_from_workflow_step_and_attempt_and_never_lengthens_the_wait():
    policy = ir.Retry(max_attempts=10, initial_ms=1000, backoff=2.0, max_interval_ms=30_000, jitter=0.2)
    seed = retry.retry_seed("wf-1", "charge", 2)
    assert retry.delay_ms(policy, 1, seed) == retry.delay_ms(policy, 1, seed)  # the same every time
    assert retry.jitter_fraction(seed) == pytest.approx(0.4881508965770678)  # pinned: histories depend on it
    assert retry.delay_ms(policy, 1, seed) == 903  # 1000 less 20% of 0.488
    waits = [retry.delay_ms(policy, 3, retry.retry_seed(f"wf-{i}", "charge", 4)) for i in range(200)]
    assert all(3200 <= w <= 4000 for w in waits) and len(set(waits)) > 100  # spread over the 20% below 4s
    capped = [retry.delay_ms(policy, 9, retry.retry_seed(f"wf-{i}", "charge", 10)) for i in range(50)]
    assert max(capped) <= 30_000 and min(capped) >= 24_000
    full = ir.Retry(max_attempts=3, initial_ms=1000, jitter=1.0)  # Step Functions' FULL jitter: 0 up to the wait
    assert 0 <= retry.delay_ms(full, 1, seed) < 1000
    assert retry.delay_ms(ir.Retry(max_attempts=3), 2, seed) == 2000  # no jitter: the seed is not used


def test_the_jitter_hash_starts_from_the_same_fnv_as_hash_text():
    # jitter_fraction is FNV-1a (decide.hash_text) followed by a finaliser: the empty text's hash is the offset
    assert hash_text("") == 0xCBF29CE484222325
    fractions = {retry.jitter_fraction(retry.retry_seed("w", "s", n)) for n in range(2, 1000)}
    assert len(fractions) == 998 and all(0 <= f < 1 for f in fractions)


def test_non_retryable_names_why():
    policy = ir.Retry(max_attempts=5, no_retry_exit=(2,), no_retry_errors=("CardDeclined",))
    assert retry.non_retryable(policy, {"kind": "exit", "exit_code": 2}) == "exit code 2"
    assert retry.non_retryable(policy, {"kind": "exit", "exit_code": 1, "type": "CardDeclined"}) == \
        'error type "CardDeclined"'
    assert retry.non_retryable(policy, {"kind": "exit", "exit_code": 1}) is None
    assert retry.non_retryable(policy, {"kind": "timeout", "exit_code": None}) is None
    assert retry.non_retryable(ir.Retry(max_attempts=5), {"kind": "exit", "exit_code": 2}) is None


@pytest.mark.parametrize("text, ms", [
    ("1970-01-01T00:00:00Z", 0),
    ("2026-11-25T20:00:00Z", 1795636800000),
    ("2026-11-25T21:00:00+01:00", 1795636800000),
    ("2026-11-25T15:30:00.25-04:30", 1795636800250),
    ("2024-02-29T00:00:00.123456789z", 1709164800123),
    ("2026-11-25t20:00Z", 1795636800000),
])
def test_timestamps_are_read_the_same_on_every_python(text, ms):
    assert parse_timestamp(text, ir.Expr("x", 4, 9)) == ms


@pytest.mark.parametrize("value", ["2026-11-25T20:00:00", "2026-11-25", "2025-02-29T00:00:00Z",
                                   "2026-11-25T24:00:00Z", "2026-11-25T20:00:00+25:00", 1795636800000, None])
def test_what_is_no_timestamp_is_an_expression_error_at_the_sleep(value):
    with pytest.raises(ExpressionError) as info:
        parse_timestamp(value, ir.Expr("x", 4, 9))
    assert (info.value.line, info.value.col) == (4, 9)


# --- whole workflows in the in-memory world --------------------------------------------------------


def test_a_non_retryable_exit_code_fails_at_once_and_others_retry_with_jittered_waits():
    flow = ('flow T\n  step charge:\n    run ["x"]\n    retry 5 every 10s jitter 50%\n'
            '    no retry on exit 2\n  return charge.result\n')
    with world(activities={"charge": [fail("busy"), fail("busy"), fail("bad card", exit_code=2), succeed(1)]}) as w:
        wid = w.start(flow, id="wf-a")
        state = w.run_to_end(wid)
        assert state.status == "failed"
        assert state.error["message"] == ("step 'charge' failed after 3 attempts, not retried (exit code 2 is "
                                          "not retryable): bad card")
        timers = w.events(wid, "TimerStarted")
        assert [t.purpose for t in timers] == ["retry-2", "retry-3"]
        expected = [retry.delay_ms(w.state(wid).flow.body[0].retry, n, retry.retry_seed("wf-a", "charge", n + 1))
                    for n in (1, 2)]
        assert [t.duration_ms for t in timers] == expected
        assert 5000 <= expected[0] <= 10_000 and 10_000 <= expected[1] <= 20_000
        assert [e.attempt for e in w.events(wid, "ActivityFailed")] == [1, 2, 3]  # each attempt and its error kept
        w.assert_replays(wid)


def test_a_non_retryable_error_type_goes_to_its_catch():
    flow = ('flow T\n  step charge:\n    run ["x"]\n    retry 5\n    no retry on error "CardDeclined"\n'
            '    catch error "CardDeclined":\n      return "declined"\n  return "ok"\n')
    with world(activities={"charge": fail("no", type="CardDeclined")}) as w:
        wid = w.start(flow)
        assert w.run_to_end(wid).result == "declined"
        assert w.count(wid, "ActivityScheduled") == 1 and w.count(wid, "TimerStarted") == 0


def test_flow_defaults_give_each_step_retries():
    flow = ('flow T\n  defaults:\n    retry 2 every 1s backoff 1x\n'
            '  step a:\n    run ["x"]\n  step b:\n    run ["y"]\n    retry 0\n  return [a.attempts, b.attempts]\n')
    with world(activities={"a": [fail(), fail(), succeed()], "b": [fail()]}) as w:
        wid = w.start(flow)
        state = w.run_to_end(wid)
        assert state.status == "failed" and state.error["step"] == "b"
        assert [(s.step, s.attempt) for s in w.attempts] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]


def test_total_timeout_stops_a_running_attempt_and_no_retry_follows():
    flow = ('flow T\n  step slow:\n    run ["x"]\n    timeout 30s total 1m\n    retry 10 every 20s backoff 1x\n'
            '    catch timeout:\n      return error\n  return "done"\n')
    with world(activities={"slow": [fail("busy"), hang]}) as w:
        wid = w.start(flow)
        state = w.run_to_end(wid)
        assert state.status == "completed"
        assert state.result["kind"] == "timeout"
        assert state.result["message"] == "total timeout of 1m00s reached after 2 attempts (the last: " \
                                          "cancelled: the workflow no longer needs it)"
        deadline, retry_timer = w.events(wid, "TimerStarted")
        assert (deadline.purpose, deadline.duration_ms) == ("step-timeout", 60_000)
        started = w.events(wid, "ActivityScheduled")[0]
        assert deadline.seq < started.seq  # the deadline is durable from before the first attempt
        second = w.events(wid, "ActivityFailed")[-1]
        assert second.attempt == 2 and second.error["kind"] == "cancelled"
        assert deadline.fire_at <= second.ts < deadline.fire_at + 1000  # stopped at the deadline, not at 30s
        assert len(w.attempts) == 2
        w.assert_replays(wid)


def test_total_timeout_reached_while_waiting_to_retry_fails_the_step_with_kind_timeout():
    flow = 'flow T\n  step s:\n    run ["x"]\n    timeout total 30s\n    retry 3 every 1m\n  return 1\n'
    with world(activities={"s": fail("busy")}) as w:
        wid = w.start(flow)
        state = w.run_to_end(wid)
        assert state.status == "failed"
        assert state.error["kind"] == "timeout"
        assert state.error["message"] == ("step 's' failed: total timeout of 30.0s reached after 1 attempt "
                                          "(the last: busy)")
        assert len(w.attempts) == 1
        assert w.count(wid, "TimerFired") == 1  # the retry timer, no longer wanted, never fired
        w.assert_replays(wid)


def test_a_step_that_completes_in_time_leaves_its_deadline_unfired():
    flow = 'flow T\n  step s:\n    run ["x"]\n    timeout total 1h\n  sleep 2h\n  return s.result\n'
    with world(activities={"s": succeed(5)}) as w:
        wid = w.start(flow)
        assert w.run_to_end(wid).result == 5
        fired = {e.timer for e in w.events(wid, "TimerFired")}
        assert fired == {2}  # the sleep's; the step's deadline (timer 1) is not wanted once it completed


def test_sleep_until_a_timestamp_of_the_input():
    flow = 'flow T\n  input at\n  sleep until at\n  return now()\n'
    with world(start_ms=1_700_000_000_000) as w:
        wid = w.start(flow, {"at": "2023-11-14T23:13:20+01:00"})  # the start, in another zone
        assert w.run_to_end(wid).result.startswith("2023-11-14T22:13:20.")  # no wait
        wid = w.start(flow, {"at": "2023-11-15T00:00:00Z"})
        state = w.run_to_end(wid)
        (timer,) = w.events(wid, "TimerStarted")
        assert timer.purpose == "sleep" and timer.fire_at == 1_700_006_400_000
        assert state.result.startswith("2023-11-15T00:00:00.")
        assert timer.until == 1_700_006_400_000  # the moment asked for is recorded and fires the timer
        wid = w.start(flow, {"at": "0001-01-01T00:00:00Z"})  # in the past: no wait
        w.run_to_end(wid)
        (timer,) = w.events(wid, "TimerStarted")
        assert (timer.duration_ms, timer.until) == (0, None)
        w.assert_replays(wid)


def test_sleep_until_a_bad_value_fails_with_kind_expression_at_its_line():
    flow = 'flow T\n  input at\n  step a:\n    run ["x"]\n  sleep until at\n  return 1\n'
    with world(activities={"a": succeed()}) as w:
        wid = w.start(flow, {"at": "next tuesday"})
        state = w.run_to_end(wid)
        assert state.status == "failed"
        assert (state.error["kind"], state.error["line"]) == ("expression", 5)
        assert "expected an ISO-8601 timestamp" in state.error["message"]


# --- replay catches a changed policy ---------------------------------------------------------------


RETRYING = 'flow T\n  step s:\n    run ["x"]\n    retry 3 every 10s{jitter}\n{more}  return 1\n'


@pytest.mark.parametrize("recorded, edited, difference", [
    ({"jitter": " jitter 20%", "more": ""}, {"jitter": " jitter 30%", "more": ""}, "duration_ms"),
    ({"jitter": "", "more": ""}, {"jitter": "", "more": "    no retry on exit 1\n"}, "TimerStarted"),
    ({"jitter": "", "more": "    timeout 1m total 5m\n"}, {"jitter": "", "more": "    timeout 1m total 6m\n"},
     "duration_ms"),
])
def test_replay_catches_a_changed_policy(recorded, edited, difference):
    with world(activities={"s": [fail("busy"), succeed()]}) as w:
        wid = w.start(RETRYING.format(**recorded), id="wf-r")
        assert w.run_to_end(wid).result == 1
        w.assert_replays(wid, RETRYING.format(**recorded))
        with pytest.raises(NondeterminismError) as info:
            w.assert_replays(wid, RETRYING.format(**edited))
        assert difference in str(info.value)


def test_replay_catches_a_changed_sleep_until():
    with world() as w:
        wid = w.start('flow T\n  sleep until "2023-11-15T00:00:00Z"\n  return 1\n')
        w.run_to_end(wid)
        with pytest.raises(NondeterminismError):
            w.assert_replays(wid, 'flow T\n  sleep until "2023-11-15T01:00:00Z"\n  return 1\n')


def test_sleep_until_wakes_at_the_moment_even_when_first_decided_late():
    flow = parse('flow T\n  sleep until "2026-11-25T20:00:00Z"\n')
    started = ev.WorkflowStarted(seq=1, ts=1795629600000, workflow_id="w1", flow_name="T", flow_hash="h",
                                 flow_file=FILE, flow=ir.to_json(flow), flow_source="", input={}, end=True)
    (command,) = decide(replay([started]))  # workflow time is the start, 18:00
    assert (command.duration_ms, command.until) == (7_200_000, 1795636800000)
    recorded = ev.record_command(command, 2, ts=1795633200000)  # first decided an hour later, at 19:00
    assert recorded.fire_at == 1795636800000  # still 20:00
    record = ev.to_record(recorded)
    assert record["until"] == "2026-11-25T20:00:00.000Z" and ev.from_record(record) == recorded


def test_decide_starts_the_deadline_before_the_first_attempt():
    flow = parse('flow T\n  step s:\n    run ["x"]\n    timeout total 5m\n')
    started = ev.WorkflowStarted(seq=1, ts=1000, workflow_id="w1", flow_name="T", flow_hash="h", flow_file=FILE,
                                 flow=ir.to_json(flow), flow_source="", input={})
    state = replay([started])
    assert decide(state) == [ev.StartTimer(1, "s", "step-timeout", 300_000, "root")]


def test_review_a_backoff_that_would_overflow_a_float_is_capped_not_an_error():
    """(Found by review: 2.0 ** 1100 raised OverflowError, the outcome was lost and the step re-ran forever.)"""
    from localflow.core import retry as retry_math

    policy = ir.Retry(max_attempts=2000, initial_ms=1000, backoff=2.0)
    assert retry_math.delay_ms(policy, 1500) == retry_math.delay_ms(policy, 1400) > 0
    capped = ir.Retry(max_attempts=300, initial_ms=1, backoff=1000.0, max_interval_ms=1)
    assert retry_math.delay_ms(capped, 200) == 1


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-23:59", "٢٠٢٠-01-01T00:00:00Z", "𑽒𑽐𑽒𑽗-01-01T00:00:00Z"])
def test_review_sleep_until_refuses_moments_past_9999_and_non_ascii_digits(text):
    from localflow.core.decide import parse_timestamp
    from localflow.errors import ExpressionError

    with pytest.raises(ExpressionError):
        parse_timestamp(text, ir.Expr("at", 3, 5))
