"""Activity policies with real `lf run` and real shell steps: non-retryable exit codes, the total
(schedule-to-close) timeout killing a retrying step's processes, and `sleep until`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from conftest import history_records, lf, write_flow
from conftest import alive as _alive


def test_a_non_retryable_exit_code_stops_the_retries_at_once(home):
    write_flow(home, "Card", 'flow Card\n  step charge:\n    run ["sh", "-c", "echo declined >&2; exit 2"]\n'
                             '    retry 5 every 10s\n    no retry on exit 2\n')
    started = time.monotonic()
    done = lf(home, "run", "Card", "--id", "c1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 8  # no 10 s retry wait
    records = history_records(home, "c1")
    assert [r["attempt"] for r in records if r["type"] == "ActivityFailed"] == [1]
    assert not [r for r in records if r["type"] == "TimerStarted"]
    failed = records[-1]
    assert failed["type"] == "WorkflowFailed"
    assert failed["error"]["message"].startswith("step 'charge' failed after 1 attempt, not retried "
                                                 "(exit code 2 is not retryable)")


def test_the_total_timeout_stops_a_retrying_step_and_kills_its_processes(home):
    # each attempt leaves a child sleeping in the background, records its pid, then sleeps itself
    script = 'sleep 300 & echo $! >> var/children; echo $$ >> var/children; sleep 300'
    write_flow(home, "Slow", 'flow Slow\n  step slow:\n    run ["sh", "-c", "' + script.replace('"', '\\"') + '"]\n'
                             '    timeout 1s total 4s\n    retry 20 every 500ms backoff 1x\n'
                             '    catch timeout:\n      return error\n')
    started = time.monotonic()
    done = lf(home, "run", "Slow", "--id", "s1", timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 20
    records = history_records(home, "s1")
    deadline = next(r for r in records if r["type"] == "TimerStarted" and r["purpose"] == "step-timeout")
    assert deadline["duration_ms"] == 4000
    attempts = [r for r in records if r["type"] == "ActivityFailed"]
    assert 2 <= len(attempts) <= 5  # 1 s attempts with 0.5 s waits, until the 4 s were spent
    assert all(a["error"]["kind"] in ("timeout", "cancelled") for a in attempts)
    result = records[-1]["result"]
    assert result["kind"] == "timeout" and result["message"].startswith("total timeout of 4.0s reached after")
    assert not [r for r in records if r["type"] == "ActivityScheduled" and r["attempt"] > len(attempts)]
    pids = [int(p) for p in (home / "var/children").read_text().split()]
    give_up = time.monotonic() + 5  # (the last TERM-to-KILL grace may still be running)
    while [p for p in pids if _alive(p)] and time.monotonic() < give_up:
        time.sleep(0.1)
    assert pids and not [p for p in pids if _alive(p)]  # every attempt's processes are dead


def test_sleep_until_a_moment_two_seconds_ahead(home):
    write_flow(home, "Later", 'flow Later\n  input at\n  sleep until at\n  return now()\n')
    at = datetime.now(timezone.utc) + timedelta(seconds=2)
    text = at.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")  # +02:00
    started = time.monotonic()
    done = lf(home, "run", "Later", "--id", "l1", "-i", f"at={text}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert 1.0 <= time.monotonic() - started < 10
    records = history_records(home, "l1")
    (timer,) = [r for r in records if r["type"] == "TimerStarted"]
    assert timer["purpose"] == "sleep"
    assert timer["until"] == timer["fire_at"] == at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    fired = next(r for r in records if r["type"] == "TimerFired")
    assert fired["ts"] >= timer["fire_at"]
