"""kill -9 the supervisor at bad moments; a new one must finish every workflow exactly once."""

import os
import signal
import time
from collections import Counter

from conftest import alive, history_records, lf, wait_for, workflow_status, write_flow

from localflow.store import history

SLOW = """flow Slow
  step first:
    run ["sh", "-c", "echo started > $LF_WORKFLOW_ID.first.$LF_ATTEMPT; sleep 3; echo '{\\"ok\\": 1}'"]
  step second:
    run ["echo", "two"]
  return [first.result, second.result]
"""

SLEEPY = """flow Sleepy
  step before:
    run ["echo", "before"]
  sleep 2s
  step after:
    run ["echo", "after"]
  return after.result
"""


def assert_each_step_completed_once(home, workflow_id, steps):
    records = history_records(home, workflow_id)  # raises if any checksum or seq is wrong
    assert Counter(r["step"] for r in records if r["type"] == "ActivityCompleted") == {s: 1 for s in steps}
    assert records[-1]["type"] == "WorkflowCompleted"
    history.read(home / "var/workflows" / workflow_id / "history.jsonl")


def test_kill9_while_an_activity_runs_kills_the_orphan_and_retries_it(home, supervisor):
    write_flow(home, "Slow", SLOW)
    sup = supervisor()
    assert lf(home, "start", "Slow", "--id", "c1").returncode == 0
    started = wait_for(lambda: [r for r in history_records(home, "c1") if r["type"] == "ActivityStarted"],
                       what="activity started")
    orphan = started[0]["pid"]
    sup.stop(signal.SIGKILL)
    assert alive(orphan), "the activity should outlive its supervisor (own process group)"

    supervisor()
    wait_for(lambda: not alive(orphan), timeout=10, what="orphan killed")
    wait_for(lambda: workflow_status(home, "c1") == "completed", what="c1 completed")
    assert_each_step_completed_once(home, "c1", ["first", "second"])
    failed = [r for r in history_records(home, "c1") if r["type"] == "ActivityFailed"]
    assert [f["error"]["kind"] for f in failed] == ["interrupted"]
    assert (home / "c1.first.2").exists()


def test_kill9_while_a_timer_is_pending_fires_it_after_restart(home, supervisor):
    write_flow(home, "Sleepy", SLEEPY)
    sup = supervisor()
    assert lf(home, "start", "Sleepy", "--id", "c2").returncode == 0
    wait_for(lambda: any(r["type"] == "TimerStarted" for r in history_records(home, "c2")), what="timer started")
    # the marker is written just after TimerStarted is appended (the history is the record; the marker a hint)
    wait_for(lambda: len(list((home / "var/timers").iterdir())) == 1, what="the timer's marker")
    sup.stop(signal.SIGKILL)
    time.sleep(2.5)  # the timer is now overdue

    supervisor()
    wait_for(lambda: workflow_status(home, "c2") == "completed", what="c2 completed")
    assert_each_step_completed_once(home, "c2", ["before", "after"])
    assert sum(r["type"] == "TimerFired" for r in history_records(home, "c2")) == 1
    assert list((home / "var/timers").iterdir()) == []


def test_kill9_of_lf_run_leaves_a_workflow_the_supervisor_finishes(home, supervisor):
    import subprocess
    import sys

    write_flow(home, "Slow", SLOW)
    runner = subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "run", "Slow", "--id", "c3"],
                              cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (home / "var/workflows/c3/history.jsonl").exists()
             and any(r["type"] == "ActivityStarted" for r in history_records(home, "c3")), what="c3 running")
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    supervisor()
    wait_for(lambda: workflow_status(home, "c3") == "completed", what="c3 completed")
    assert_each_step_completed_once(home, "c3", ["first", "second"])
