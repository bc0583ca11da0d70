"""Heartbeats end to end: real processes, the real `lf run` and a real `lf supervise`.

A `run` step heartbeats by writing lines to LF_HEARTBEAT_FD (from bash, or from Python through
localflow.activity.heartbeat); a `call` step through localflow.activity.heartbeat over the
worker's socket. A step that stops heartbeating is killed (every process of it) and retried,
and the retry is handed the last recorded details. See docs/activities-heartbeats.md.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

from conftest import alive, history_records, lf, lf_json, wait_for, workflow_status, write_flow

PY = json.dumps(sys.executable)  # a Python that has localflow installed


def write(home, relative, text, mode=0o644):
    path = home / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return path


def events(home, workflow_id, type_):
    return [r for r in history_records(home, workflow_id) if r["type"] == type_]


def run_ok(home, flow, *args):
    done = lf(home, "run", flow, *args, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


# A bash step: counts to 30, heartbeating {"done": i}; attempt 1 stops heartbeating at 10 and sits in
# a `sleep` with a background child (both must be killed). It resumes from LF_HEARTBEAT_DETAILS.
COUNTER = r"""#!/bin/bash
echo "$$ $LF_ATTEMPT" >> pids.txt
done=$(printf '%s' "$LF_HEARTBEAT_DETAILS" | sed -n 's/.*"done": *\([0-9]*\).*/\1/p')
i=${done:-0}
while [ "$i" -lt 30 ]; do
  echo "{\"done\": $i}" >&"$LF_HEARTBEAT_FD"
  i=$((i + 1))
  if [ "$LF_ATTEMPT" = 1 ] && [ "$i" = 10 ]; then
    sleep 60 &
    echo "$! child" >> pids.txt
    sleep 60
  fi
  sleep 0.01
done
echo "{\"resumed_from\": ${done:-0}, \"attempt\": $LF_ATTEMPT}"
"""


def test_a_step_that_stops_heartbeating_is_killed_with_its_children_and_the_retry_resumes(home):
    write(home, "counter.sh", COUNTER, 0o755)
    write_flow(home, "Count", """flow Count
  step count:
    run ["./counter.sh"]
    heartbeat 1s
    retry 1 every 100ms
  return count.result
""")
    started = time.monotonic()
    run_ok(home, "Count", "--id", "count1")
    assert time.monotonic() - started < 30
    result = lf_json(home, "inspect", "count1")["result"]
    assert result == {"resumed_from": 9, "attempt": 2}
    [failed] = events(home, "count1", "ActivityFailed")
    assert failed["error"] == {"kind": "timeout", "message": "no heartbeat for 1s", "exit_code": None}
    assert 1000 <= failed["duration_ms"] < 5000
    pids = [line.split() for line in (home / "pids.txt").read_text().splitlines()]
    assert [kind for _, kind in pids] == ["1", "child", "2"]
    for pid, _ in pids:
        assert not alive(int(pid)), f"process {pid} of the attempt is still running"
    second = [r for r in events(home, "count1", "ActivityScheduled") if r["attempt"] == 2][0]
    assert second["heartbeat_details"] == {"done": 9} and second["heartbeat_ms"] == 1000


def test_a_step_that_keeps_heartbeating_runs_past_the_interval(home):
    write(home, "steady.sh", """\
        #!/bin/bash
        for i in $(seq 1 15); do echo "" >&"$LF_HEARTBEAT_FD"; sleep 0.2; done
        echo '"finished"'
        """, 0o755)
    write_flow(home, "Steady", """flow Steady
  step steady:
    run ["./steady.sh"]
    heartbeat 1s
  return steady.result
""")
    run_ok(home, "Steady", "--id", "steady1")
    assert lf_json(home, "inspect", "steady1")["result"] == "finished"
    [done] = events(home, "steady1", "ActivityCompleted")
    assert done["duration_ms"] >= 2500, "it ran well past the 1s interval"
    assert events(home, "steady1", "ActivityHeartbeat") == [], "alive-only heartbeats record nothing"


def test_a_python_run_step_heartbeating_100_times_a_second_records_only_a_few_events(home):
    write(home, "busy.py", """\
        import time
        from localflow import activity
        for i in range(300):
            assert activity.heartbeat({"i": i})
            time.sleep(0.01)
        assert not activity.heartbeat({"bad": {1, 2}})  # ignored, with a note in the .err log
        print('"ok"')
        """)
    write_flow(home, "Busy", f"""flow Busy
  step busy:
    run [{PY}, "busy.py"]
    heartbeat 1s
  return busy.result
""")
    run_ok(home, "Busy", "--id", "busy1")
    beats = events(home, "busy1", "ActivityHeartbeat")
    assert 2 <= len(beats) <= 3, beats  # the first at once, maybe one 5s later, the last with the outcome
    assert beats[0]["details"] == {"i": 0} and beats[-1]["details"] == {"i": 299}
    completed = [r["seq"] for r in events(home, "busy1", "ActivityCompleted")]
    assert beats[-1]["seq"] == completed[0] - 1, "the last details are recorded with the outcome"
    err = (home / "var/workflows/busy1/logs/busy.1.err").read_text()
    assert "heartbeat details ignored: the heartbeat details holds a set" in err
    shown = lf_json(home, "inspect", "busy1")["steps"][0]
    assert shown["heartbeat_details"] == {"i": 299}
    assert shown["attempts"][0]["heartbeat"]["details"] == {"i": 299}
    history = lf(home, "history", "busy1").stdout
    assert 'busy: attempt 1 heartbeat: {"i": 299}' in history


def test_bad_heartbeat_lines_are_noted_in_the_err_log_and_never_fail_the_step(home):
    write(home, "noisy.sh", """\
        #!/bin/bash
        echo 'not json' >&"$LF_HEARTBEAT_FD"
        echo '{"n": NaN}' >&"$LF_HEARTBEAT_FD"
        echo '{"n": 1}' >&"$LF_HEARTBEAT_FD"
        echo 1
        """, 0o755)
    write_flow(home, "Noisy", 'flow Noisy\n  step noisy:\n    run ["./noisy.sh"]\n  return noisy.result\n')
    run_ok(home, "Noisy", "--id", "noisy1")
    err = (home / "var/workflows/noisy1/logs/noisy.1.err").read_text()
    assert err.count("localflow: heartbeat details ignored") == 2, err
    assert [b["details"] for b in events(home, "noisy1", "ActivityHeartbeat")] == [{"n": 1}]


FNS = """
    import os, time
    from localflow import activity

    def pages(total):
        me = activity.info()
        start = (me.heartbeat_details or {}).get("page", 0)
        with open("call-pids.txt", "a") as handle:
            handle.write(f"{os.getpid()} {me.attempt}\\n")
        for page in range(start, total):
            activity.heartbeat({"page": page})
            if me.attempt == 1 and page == 5:
                time.sleep(60)  # stuck: no more heartbeats
            time.sleep(0.01)
        return {"from": start, "attempt": me.attempt}
"""


def test_a_call_heartbeats_through_localflow_activity_under_a_real_supervisor(home, supervisor):
    write(home, "flows/fns.py", FNS)
    write_flow(home, "Pages", """flow Pages
  step pages:
    call fns.pages(total=20)
    heartbeat 1s
    retry 1 every 100ms
  return pages.result
""")
    sup = supervisor("--workers", "1", "--grace", "1")
    assert lf(home, "start", "Pages", "--id", "pages1").returncode == 0
    wait_for(lambda: workflow_status(home, "pages1") != "running", timeout=30, what="pages1 finished")
    shown = lf_json(home, "inspect", "pages1")
    assert shown["status"] == "completed", (shown, sup.output())
    assert shown["result"] == {"from": 5, "attempt": 2}
    [failed] = events(home, "pages1", "ActivityFailed")
    assert failed["error"]["kind"] == "timeout" and failed["error"]["message"] == "no heartbeat for 1s"
    first_worker = int((home / "call-pids.txt").read_text().split()[0])
    assert not alive(first_worker), "the stuck call's worker was killed"
    attempts = shown["steps"][0]["attempts"]
    assert attempts[0]["heartbeat"]["details"] == {"page": 5}
    assert attempts[1]["handed_details"] == {"page": 5}
    assert shown["steps"][0]["heartbeat_details"] == {"page": 19}
