"""Hostile activity output through a real `lf run` of a one-step flow (runner/subprocess_runner.py).

The step's process (``sh``, reading files the test wrote) prints any bytes on stdout and stderr,
writes any lines to its heartbeat descriptor, and exits with any code. Whatever it does:

- `lf run` exits 0 (completed) or 1 (failed), with no traceback;
- the outcome is what the docs promise, checked against an oracle written here from the rules
  (README "Write a flow", core/jsonvalue.py): exit 0 with stdout that is storable JSON is that value;
  other text is that text (invalid UTF-8 replaced); nothing is null; JSON that cannot be stored
  (NaN, Infinity, 1e999, deeper than MAX_DEPTH, an integer of more than MAX_INT_DIGITS digits, a lone
  surrogate) or stdout over MAX_RESULT_BYTES fails the attempt with kind ``output``; a non-zero exit
  fails it with kind ``exit`` (and the activity's own ``{"error": TYPE}`` becomes its type);
- heartbeat lines never fail an attempt, and the details recorded are storable;
- the history it leaves is read by `lf inspect`, `lf history`, `lf list`, `lf logs` and replayed by
  `lf replay` (exit 0), and the attempt's .out log holds stdout byte for byte;
- nothing outside the home changes.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_fuzz_entry_points import HOSTILE_JSON, World, _json_values, _raw_json, assert_documented, deep, fuzz_settings

from localflow.core.jsonvalue import MAX_DEPTH, MAX_INT_DIGITS
from localflow.runner.heartbeats import MAX_DETAILS_BYTES
from localflow.runner.subprocess_runner import MAX_RESULT_BYTES

EMIT = """\
flow Emit
  input dir = "."
  input code = 0
  step emit:
    run ["sh", "-c", "cat \\"$1/out\\"; cat \\"$1/err\\" >&2; cat \\"$1/hb\\" > \\"/dev/fd/$LF_HEARTBEAT_FD\\"; exit \\"$2\\"", "emit", dir, str(code)]
    heartbeat 1h
  return emit.result
"""
COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("fuzz-output"), {"Emit": EMIT})


# --- the oracle: what the docs say a stdout becomes ---------------------------------------------------

class Unstorable(Exception):
    pass


def _storable(value, depth: int = 1):
    if isinstance(value, (dict, list)):
        if depth > MAX_DEPTH:
            raise Unstorable("too deep")
        for key, child in (value.items() if isinstance(value, dict) else enumerate(value)):
            if isinstance(key, str):
                _storable(key, depth)
            _storable(child, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise Unstorable("not finite")
    elif isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) > MAX_INT_DIGITS:
        raise Unstorable("too many digits")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Unstorable("a lone surrogate") from None


def expected_result(stdout: bytes):
    """("ok", value) or ("output", None): what the attempt of an exit-0 process ends in."""
    if len(stdout) > MAX_RESULT_BYTES:
        return "output", None
    text = stdout.decode("utf-8", "replace").strip()
    if not text:
        return "ok", None
    try:
        value = json.loads(text)
    except RecursionError:
        return "output", None
    except ValueError:
        return "ok", text
    try:
        _storable(value)
    except Unstorable:
        return "output", None
    except RecursionError:
        return "output", None
    return "ok", value


# --- running it -------------------------------------------------------------------------------------------


def run_emit(world: World, stdout: bytes, stderr: bytes = b"", heartbeats: bytes = b"", code: int = 0) -> dict:
    payload = world.home / "payload"
    payload.mkdir(exist_ok=True)
    (payload / "out").write_bytes(stdout)
    (payload / "err").write_bytes(stderr)
    (payload / "hb").write_bytes(heartbeats)
    ran = world.lf("run", "Emit", f"-idir={payload}", f"-icode={code}")
    assert_documented(ran, {0, 1})
    workflow_id = ran.out.split("\n", 1)[0].removeprefix("workflow ").strip()
    try:
        inspected = world.lf("inspect", workflow_id, "--json")
        assert_documented(inspected, {0})
        details = json.loads(inspected.out)
        for argv in (("inspect", workflow_id), ("history", workflow_id), ("history", workflow_id, "--json"),
                     ("list",), ("list", "--json"), ("logs", workflow_id), ("replay", workflow_id)):
            shown = world.lf(*argv)
            assert_documented(shown, {0})
        log = world.home / "var" / "workflows" / workflow_id / "logs" / "emit.1.out"
        assert log.read_bytes() == stdout, "the .out log is not stdout byte for byte"
        assert (ran.code == 0) == (details["status"] == "completed"), str(ran)
        details["_run"] = ran
        return details
    finally:
        shutil.rmtree(world.home / "var" / "workflows" / workflow_id)
        world.assert_outside_untouched(stdout[:200])


def _check_exit_zero(world: World, what: str, stdout: bytes) -> None:
    COUNTS[what] = COUNTS.get(what, 0) + 1
    details = run_emit(world, stdout)
    kind, value = expected_result(stdout)
    if kind == "ok":
        assert details["status"] == "completed", f"{details['error']} for {stdout[:300]!r}"
        assert details["result"] == value, stdout[:300]
    else:
        assert details["status"] == "failed", f"completed with {details['result']!r:.300} for {stdout[:300]!r}"
        assert details["error"]["kind"] == "output" and details["error"]["message"], details["error"]


# --- stdout of a process that exits 0 -------------------------------------------------------------------------

outputs = {
    "random bytes": st.binary(max_size=300),
    "random text": st.text(st.characters(blacklist_categories=("Cs",)), max_size=200).map(lambda t: t.encode()),
    "JSON values": _json_values(20).map(_raw_json).map(lambda t: t.encode("utf-8", "surrogatepass")),
    "hostile JSON": st.sampled_from(HOSTILE_JSON).map(lambda t: t.encode("utf-8", "surrogatepass")),
    "deep JSON": st.builds(deep, st.integers(MAX_DEPTH - 3, 10_000), st.sampled_from(["list", "dict"])).map(str.encode),
    "NaN and friends": st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", '{"a": -Infinity}',
                                        "[1e400]", '{"n": 1e-400}', "-0.0", "1E+2", "NaN is not a number",
                                        "Infinity and beyond", "1e999 apples", "-Infinity\x00"]).map(str.encode),
    "huge output": st.sampled_from([MAX_RESULT_BYTES - 2, MAX_RESULT_BYTES, MAX_RESULT_BYTES + 1, 3 * MAX_RESULT_BYTES])
    .flatmap(lambda n: st.sampled_from([b'"' + b"x" * (n - 2) + b'"', b"y" * n, b" " * n, b"[" + b"1," * ((n - 3) // 2) + b"1]"])),
    "JSON then garbage": st.tuples(_json_values().map(_raw_json), st.binary(min_size=1, max_size=20))
    .map(lambda t: t[0].encode("utf-8", "surrogatepass") + t[1]),
}


@pytest.mark.parametrize("what", list(outputs))
@fuzz_settings(12)
@given(data=st.data())
def test_stdout_of_a_successful_process_becomes_what_the_docs_say(world, what, data):
    _check_exit_zero(world, what, data.draw(outputs[what]))


@pytest.mark.parametrize("stdout", [b"NaN is not a number", b"Infinity and beyond", b"1e999 apples", b"-Infinity\x00"])
def test_text_that_begins_like_a_number_json_cannot_hold_is_kept_as_text(world, stdout):
    """It was refused as "stdout holds NaN, which JSON cannot store" though it is no JSON at all."""
    details = run_emit(world, stdout)
    assert details["status"] == "completed" and details["result"] == stdout.decode().strip(), details["error"]


def test_the_result_limit_is_exact(world):
    at = b'"' + b"x" * (MAX_RESULT_BYTES - 2) + b'"'
    assert run_emit(world, at)["status"] == "completed"
    over = run_emit(world, at + b" ")
    assert over["status"] == "failed" and str(MAX_RESULT_BYTES) in over["error"]["message"]


# --- a failing process, stderr, heartbeats ---------------------------------------------------------------------


error_objects = st.fixed_dictionaries(
    {"error": st.text(max_size=30) | st.integers() | st.none() | st.lists(st.none(), max_size=2)},
    optional={"message": _json_values()}).map(_raw_json).map(lambda t: t.encode("utf-8", "surrogatepass"))


@fuzz_settings(30)
@given(code=st.integers(1, 255),
       stdout=st.binary(max_size=100) | error_objects | st.sampled_from([
           b'{"error": "CardDeclined", "message": "\\u001b[2Jgone"}', b'{"error": "' + b"E" * 100_000 + b'"}',
           b'{"error": "\\ud800"}', b'{"error": "X", "message": NaN}', deep(10_000).encode()]),
       stderr=st.binary(max_size=200) | st.sampled_from([b"\x1b[2J\x1b[H", b"\x00" * 100, b"\n" * 5000, b"x" * 100_000]))
def test_a_failing_process_fails_its_attempt_with_a_storable_error(world, code, stdout, stderr):
    COUNTS["failing process"] = COUNTS.get("failing process", 0) + 1
    details = run_emit(world, stdout, stderr, code=code)
    assert details["status"] == "failed"
    error = details["error"]
    assert error["kind"] == "exit" and error["exit_code"] == code and error["message"], error
    reported = None
    kind, value = expected_result(stdout)
    if kind == "ok" and isinstance(value, dict) and isinstance(value.get("error"), str):
        reported = value["error"]
    assert error.get("type") == reported, f"the activity's error type {reported!r:.100} became {error.get('type')!r:.100}"


heartbeat_lines = st.lists(st.one_of(
    st.just(b""), st.just(b"null"), _json_values().map(_raw_json).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=50).filter(lambda b: b"\n" not in b), st.sampled_from(HOSTILE_JSON).map(
        lambda t: t.encode("utf-8", "surrogatepass").replace(b"\n", b" ")),
    st.just(b'"' + b"d" * MAX_DETAILS_BYTES + b'"'), st.just(b'"' + b"d" * (MAX_DETAILS_BYTES - 2) + b'"'),
), max_size=8).map(lambda lines: b"\n".join(lines) + b"\n")


@fuzz_settings(30)
@given(heartbeats=heartbeat_lines | st.binary(max_size=500))
def test_heartbeat_lines_never_fail_an_attempt_and_only_storable_details_are_recorded(world, heartbeats):
    COUNTS["heartbeat noise"] = COUNTS.get("heartbeat noise", 0) + 1
    details = run_emit(world, b'{"ok": true}', heartbeats=heartbeats)
    assert details["status"] == "completed" and details["result"] == {"ok": True}, details["error"]
    (attempt,) = details["steps"][0]["attempts"]
    if attempt["heartbeat"] is not None:
        recorded = attempt["heartbeat"]["details"]
        _storable(recorded)
        assert len(json.dumps(recorded, ensure_ascii=False).encode()) <= MAX_DETAILS_BYTES


def test_report_the_classes_tried():
    """Not a check: how many outputs of each class the fuzzing above tried (pytest -s)."""
    for what, count in sorted(COUNTS.items()):
        print(f"  {count:5d}  {what}")
