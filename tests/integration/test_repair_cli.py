"""`lf resume` and `lf fork` from the command line, with real activities (shell commands) and files."""

from __future__ import annotations

import json

from conftest import lf, lf_json

PAY = '''flow Pay
  input order_id = "A-1"
  step reserve:
    run ["sh", "-c", "echo reserved >> calls; echo '{\\"held\\": true}'"]
  step charge:
    run ["sh", "-c", "echo charge $LF_IDEMPOTENCY_KEY >> calls; test -e card-ok && echo '{\\"paid\\": 1}'"]
    retry 1 every 1s
  step ship:
    run ["sh", "-c", "echo ship >> calls; echo '{\\"shipped\\": true}'"]
  return charge.result
'''


def _failed_payment(home):
    (home / "flows" / "Pay.flow").write_text(PAY)
    done = lf(home, "run", "Pay", "--id", "p1", timeout=60)
    assert done.returncode == 1 and "failed after 2 attempts" in done.stdout
    return (home / "var" / "workflows" / "p1" / "history.jsonl").read_bytes()


def test_resume_runs_the_failed_step_again_in_the_same_history_with_the_same_key(home):
    before = _failed_payment(home)
    (home / "card-ok").touch()

    done = lf(home, "resume", "p1", "--run", timeout=60)

    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout and "completed" in done.stdout
    after = (home / "var" / "workflows" / "p1" / "history.jsonl").read_bytes()
    assert after.startswith(before)  # appended to, never rewritten
    calls = (home / "calls").read_text().split("\n")
    assert calls[:-1] == ["reserved", "charge p1:charge", "charge p1:charge", "charge p1:charge", "ship"]
    assert lf(home, "replay", "p1").returncode == 0
    types = [e["type"] for e in lf_json(home, "history", "p1")]
    assert types[types.index("WorkflowFailed") + 1] == "WorkflowResumed"


def test_resume_refusals_say_why_and_write_nothing(home):
    before = _failed_payment(home)
    (home / "card-ok").touch()
    missing = lf(home, "resume", "nope")
    (home / "edit").mkdir()
    (home / "edit" / "Pay.flow").write_text(PAY.replace('"sh", "-c", "echo reserved', '"bash", "-c", "echo reserved'))
    diverging = lf(home, "resume", "p1", "--flow", "edit/Pay.flow")

    assert missing.returncode == 5 and "no workflow 'nope'" in missing.stderr
    assert diverging.returncode == 4 and "argv" in diverging.stderr
    assert (home / "var" / "workflows" / "p1" / "history.jsonl").read_bytes() == before
    assert lf(home, "resume", "p1", "--run", "--json").returncode == 2  # one output or the other

    assert lf(home, "resume", "p1", "--run", timeout=60).returncode == 0
    again = lf(home, "resume", "p1")
    assert again.returncode == 6 and "already completed" in again.stderr


def test_fork_dry_run_then_fork_and_run_leaves_the_origin_untouched(home):
    before = _failed_payment(home)
    (home / "card-ok").touch()

    dry = lf(home, "fork", "p1", "--last-failure", "--id", "p2", "--dry-run", "--json")
    plan = json.loads(dry.stdout)
    assert dry.returncode == 0 and not (home / "var" / "workflows" / "p2").exists()
    assert plan["runs_again"] == ["charge"] and plan["first_decisions"] == ["ActivityScheduled charge"]

    done = lf(home, "fork", "p1", "--last-failure", "--id", "p2", "--run", timeout=60)

    assert done.returncode == 0, done.stderr
    assert "forked p1 at seq" in done.stdout
    assert (home / "var" / "workflows" / "p1" / "history.jsonl").read_bytes() == before
    forked = lf_json(home, "inspect", "p2")
    assert forked["status"] == "completed" and forked["origin"]["workflow_id"] == "p1"
    assert (home / "calls").read_text().split("\n")[-3:] == ["charge p2:charge", "ship", ""]  # the fork's own key
    assert lf(home, "replay", "p1", "p2").returncode == 0
    taken = lf(home, "fork", "p1", "--at", "2", "--id", "p2")
    assert taken.returncode == 6 and "p2" in taken.stderr
