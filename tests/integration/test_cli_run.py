"""`lf run`, `lf start`, `lf list`, `lf inspect`, `lf history` as a user runs them (real processes)."""

import json
from collections import Counter

from conftest import history_records, lf, lf_json, write_flow


def test_lf_run_drives_purchaseflow_to_completion_with_one_retry(home):
    done = lf(home, "run", "PurchaseFlow", "-i", "order_id=A-7")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout and "RC-A-7" in done.stdout
    assert "charge: attempt 1 failed (exit)" in done.stdout

    [row] = lf_json(home, "list")
    assert (row["flow"], row["status"]) == ("PurchaseFlow", "completed")
    records = history_records(home, row["id"])
    completed = Counter(r["step"] for r in records if r["type"] == "ActivityCompleted")
    assert completed == {"reserve": 1, "charge": 1}
    charge_attempts = [r["attempt"] for r in records if r["type"] == "ActivityScheduled" and r["step"] == "charge"]
    assert charge_attempts == [1, 2]
    purposes = [r["purpose"] for r in records if r["type"] == "TimerStarted"]
    assert purposes == ["retry-2", "sleep"]
    assert records[-1]["type"] == "WorkflowCompleted"
    assert records[-1]["result"] == {"order": "A-7", "reservation": "R-A-7", "receipt": "RC-A-7"}


def test_inspect_and_history_tell_the_same_story_as_the_file(home):
    assert lf(home, "run", "PurchaseFlow", "--id", "p1").returncode == 0
    details = lf_json(home, "inspect", "p1")
    assert details["status"] == "completed" and details["input"] == {"order_id": "demo-1", "amount": 42.0}
    charge = next(s for s in details["steps"] if s["step"] == "charge")
    assert [a["status"] for a in charge["attempts"]] == ["failed", "completed"]
    assert charge["attempts"][0]["error"]["kind"] == "exit"
    events = lf_json(home, "history", "p1")
    file_lines = (home / "var/workflows/p1/history.jsonl").read_text().splitlines()
    assert len(events) == len(file_lines)
    for event, line in zip(events, file_lines):
        stored = json.loads(line)
        stored.pop("crc")
        assert event == stored
    table = lf(home, "history", "p1").stdout
    assert "WorkflowCompleted" in table and "ActivityFailed" in table
    assert "charge" in lf(home, "inspect", "p1").stdout


def test_activity_logs_are_kept_per_attempt(home):
    assert lf(home, "run", "PurchaseFlow", "--id", "p2").returncode == 0
    logs = home / "var/workflows/p2/logs"
    assert "card network busy" in (logs / "charge.1.err").read_text()
    assert json.loads((logs / "charge.2.out").read_text())["receipt"] == "RC-demo-1"
    stdin = json.loads((logs / "charge.2.in").read_text())
    assert stdin["input"] == {"order_id": "demo-1", "amount": 42.0}
    assert json.loads((logs / "charge.2.out").read_text())["idempotency_key"] == "p2:charge"


def test_lf_run_exits_nonzero_when_the_workflow_fails(home):
    write_flow(home, "Broken", 'flow Broken\n  step boom:\n    run ["sh", "-c", "echo nope >&2; exit 3"]\n')
    done = lf(home, "run", "Broken")
    assert done.returncode == 1
    assert "step 'boom' failed after 1 attempt: exit code 3: nope" in done.stdout


def test_fail_statement_and_timeout_are_reported(home):
    write_flow(home, "Slow", 'flow Slow\n  step nap:\n    run ["sleep", "30"]\n    timeout 300ms\n')
    done = lf(home, "run", "Slow")
    assert done.returncode == 1 and "timed out after 0.3s" in done.stdout
    write_flow(home, "Nope", 'flow Nope\n  input why = "no stock"\n  fail f"cannot ship: {why}"\n')
    done = lf(home, "run", "Nope")
    assert done.returncode == 1 and "cannot ship: no stock" in done.stdout


def test_lf_start_without_supervisor_prints_the_id_and_how_to_run_it(home):
    done = lf(home, "start", "PurchaseFlow", "--id", "later-1")
    assert done.returncode == 0
    assert done.stdout.strip() == "later-1"
    assert "lf supervise" in done.stderr
    [row] = lf_json(home, "list")
    assert row["id"] == "later-1" and row["status"] == "running"


def test_user_errors_are_one_clear_line_and_nonzero(home):
    cases = [
        (("inspect", "nope"), "no workflow 'nope'"),
        (("history", "../etc"), "invalid workflow id"),
        (("start", "NoSuchFlow"), "unknown flow 'NoSuchFlow'"),
        (("start", "PurchaseFlow", "--input", "{bad"), "--input is not valid JSON"),
        (("start", "PurchaseFlow", "-i", "colour=red"), "unknown input 'colour'"),
    ]
    for args, message in cases:
        done = lf(home, *args)
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_flow_with_a_syntax_error_is_reported_like_a_compiler(home):
    write_flow(home, "Typo", 'flow Typo\n  step a:\n    run ["true"]\n  return chrage.result\n')
    done = lf(home, "start", "Typo")
    assert done.returncode == 2
    assert "flows/Typo.flow:4:10: unknown name 'chrage'" in done.stderr
    assert "^" in done.stderr and "Traceback" not in done.stderr


def test_list_filters_by_status_and_flow(home):
    write_flow(home, "Quick", 'flow Quick\n  return 1\n')
    assert lf(home, "run", "Quick").returncode == 0
    lf(home, "start", "PurchaseFlow", "--id", "waiting")
    assert [r["id"] for r in lf_json(home, "list", "--status", "running")] == ["waiting"]
    assert [r["flow"] for r in lf_json(home, "list", "--flow", "Quick")] == ["Quick"]
    assert len(lf_json(home, "list", "--limit", "1")) == 1
