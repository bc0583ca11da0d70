"""`lf run FLOW --skip-time`: a month of sleeping and hours of retry backoff, in seconds, with real processes."""

from __future__ import annotations

import time

from conftest import history_records, lf, lf_json, write_flow

from localflow.core.timefmt import from_iso

HOUR = 3_600_000
DAY = 24 * HOUR

# fails its first two attempts, then prints how many attempts it took (counted in a file)
FLAKY = """#!/bin/sh
n=$(cat attempts.txt 2>/dev/null || echo 0)
n=$((n + 1))
echo $n > attempts.txt
if [ "$n" -lt 3 ]; then echo "not yet ($n)" >&2; exit 1; fi
echo "{\\"attempts\\": $n}"
"""

MONTH = """flow Month
  step flaky:
    run ["sh", "flows/flaky.sh"]
    retry 3 every 1h
  sleep 30d
  return flaky.result
"""


def _month_home(home):
    (home / "flows" / "flaky.sh").write_text(FLAKY)
    write_flow(home, "Month", MONTH)
    return home


def test_a_month_of_sleep_and_hours_of_backoff_finish_in_seconds_with_the_skips_recorded(home):
    _month_home(home)
    began = time.monotonic()

    done = lf(home, "run", "Month", "--skip-time", "--id", "m1")

    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 15, elapsed
    assert "virtual time skipped" in done.stdout
    records = history_records(home, "m1")
    types = [r["type"] for r in records]
    assert types[-1] == "WorkflowCompleted" and records[-1]["result"] == {"attempts": 3}
    assert (home / "attempts.txt").read_text().strip() == "3"  # the real script ran three times
    # every skip is recorded just before the TimerFired it made due, in the same transaction
    skips = [r for r in records if r["type"] == "TimeSkipped"]
    assert len(skips) == 3
    for skip in skips:
        fired = records[skip["seq"]]  # seq is 1-based: this is the next record
        assert fired["type"] == "TimerFired" and fired["ts"] == skip["ts"]
    # the skipped amounts: the 1h and 2h backoffs and the 30 days, less the few real ms lived
    expected = [HOUR, 2 * HOUR, 30 * DAY]
    for skip, wanted in zip(skips, expected):
        assert wanted - 2000 < skip["skipped_ms"] <= wanted
    # the timestamps are a month (and three hours) after the start
    span = from_iso(records[-1]["ts"]) - from_iso(records[0]["ts"])
    assert 30 * DAY + 3 * HOUR <= span < 30 * DAY + 3 * HOUR + 60_000
    # each retry waited its backoff on the virtual clock
    scheduled = {r["attempt"]: from_iso(r["ts"]) for r in records if r["type"] == "ActivityScheduled"}
    assert scheduled[2] - scheduled[1] >= HOUR and scheduled[3] - scheduled[2] >= 2 * HOUR
    # and the history replays, TimeSkipped and all
    assert lf(home, "replay", "m1").returncode == 0
    shown = lf(home, "history", "m1").stdout
    assert "TimeSkipped" in shown


def test_a_running_activity_is_never_skipped_over(home):
    write_flow(home, "Raced", """flow Raced
  race:
    branch:
      step slow:
        run ["sh", "-c", "sleep 1; echo slow"]
    branch:
      sleep 1h
  return slow.result
""")

    done = lf(home, "run", "Raced", "--skip-time", "--id", "r1")

    assert done.returncode == 0, done.stdout + done.stderr
    records = history_records(home, "r1")
    assert records[-1]["result"] == "slow"
    assert not [r for r in records if r["type"] in ("TimeSkipped", "TimerFired")]


def test_without_skip_time_the_real_clock_records_no_skip(home):
    write_flow(home, "Nap", 'flow Nap\n  sleep 300ms\n  return 1\n')

    began = time.monotonic()
    done = lf(home, "run", "Nap", "--id", "n1")

    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - began >= 0.3
    types = [r["type"] for r in history_records(home, "n1")]
    assert "TimerFired" in types and "TimeSkipped" not in types


def test_skip_time_is_refused_while_a_supervisor_runs(home, supervisor):
    _month_home(home)
    proc = supervisor()

    done = lf(home, "run", "Month", "--skip-time", "--id", "refused")

    assert done.returncode == 6
    assert "--skip-time" in done.stderr and "supervisor" in done.stderr and "real time" in done.stderr
    assert "Traceback" not in done.stderr
    assert lf_json(home, "list") == []  # nothing was created for the supervisor to run on real time
    proc.stop()
