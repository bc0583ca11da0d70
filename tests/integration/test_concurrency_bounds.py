"""Concurrency bounds with a real supervisor and real processes: --max-activities, a flow's and a
step's `concurrency`; each attempt that waited is recorded (ActivityQueued), and nothing runs over."""

from __future__ import annotations

import json
import os

from conftest import history_records, lf, wait_for, workflow_status, write_flow

from localflow.core.timefmt import from_iso

# Each attempt appends "<start> <end> <workflow>" (ns since the epoch) to spans.txt: the overlap is measured
# from what the processes themselves saw.
WORK = '["sh", "-c", "s=$(date +%s%N); sleep 0.2; echo \\"$s $(date +%s%N) $LF_WORKFLOW_ID\\" >> spans.txt"]'


def _most_at_once(home) -> int:
    spans = [tuple(map(int, line.split()[:2])) for line in (home / "spans.txt").read_text().splitlines()]
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, change in points:
        running += change
        most = max(most, running)
    return most


def _start_all(home, flow: str, count: int) -> list[str]:
    flows = home / "flows"
    ids = [f"{flow.lower()}-{i:02d}" for i in range(count)]
    for workflow_id in ids:  # dropped requests: all arrive at once, as in the issue
        staged = flows / f"{workflow_id}.tmp"
        staged.write_text(json.dumps({"flow": flow, "input": {}, "id": workflow_id}))
        os.rename(staged, flows / f"{workflow_id}.start.json")
    return ids


def test_fifty_workflows_never_run_more_than_max_activities_at_once(home, supervisor):
    write_flow(home, "Work", f"flow Work\n  step work:\n    run {WORK}\n  return 1\n")
    supervisor("--max-activities", "3")
    ids = _start_all(home, "Work", 50)
    wait_for(lambda: all(workflow_status(home, i) == "completed" for i in ids), timeout=90, what="all 50 completed")
    assert len((home / "spans.txt").read_text().splitlines()) == 50
    assert _most_at_once(home) <= 3
    queued = [r for i in ids for r in history_records(home, i) if r["type"] == "ActivityQueued"]
    assert len(queued) >= 40 and all("all activities (at most 3)" in r["waiting_for"] for r in queued)
    # fair: an attempt already waiting when another was scheduled is granted room no later than that
    # one (first come, first served: new work never jumps the queue). ActivityStarted is appended by
    # each attempt's own thread once it runs, so two granted together may record it a few ms apart
    # in either order: a jump of the queue would be a whole attempt (200 ms) late.
    times = {i: {r["type"]: from_iso(r["ts"]) for r in history_records(home, i)} for i in ids}
    waited = [i for i in ids if "ActivityQueued" in times[i]]
    for a in waited:
        for b in ids:
            if times[a]["ActivityQueued"] < times[b]["ActivityScheduled"]:
                assert times[a]["ActivityStarted"] <= times[b]["ActivityStarted"] + 100, (a, b)


def test_a_flows_and_a_steps_concurrency_bound_all_of_its_workflows(home, supervisor):
    write_flow(home, "Capped", f"flow Capped\n  concurrency 2\n  step work:\n    run {WORK}\n  return 1\n")
    write_flow(home, "OneAtATime",
               f"flow OneAtATime\n  step prep:\n    run [\"true\"]\n  step work:\n    run {WORK}\n    concurrency 1\n"
               "  return 1\n")
    supervisor()
    capped = _start_all(home, "Capped", 8)
    wait_for(lambda: all(workflow_status(home, i) == "completed" for i in capped), timeout=60, what="capped done")
    assert _most_at_once(home) == 2
    (home / "spans.txt").unlink()
    single = _start_all(home, "OneAtATime", 5)
    wait_for(lambda: all(workflow_status(home, i) == "completed" for i in single), timeout=60, what="single done")
    assert _most_at_once(home) == 1
    waits = [r["waiting_for"] for i in single for r in history_records(home, i) if r["type"] == "ActivityQueued"]
    assert waits and all(w.startswith("step work of flow OneAtATime (at most 1") for w in waits)


def test_lf_inspect_shows_an_attempt_waiting_for_room(home, supervisor):
    write_flow(home, "Slow", 'flow Slow\n  concurrency 1\n  step work:\n    run ["sleep", "30"]\n  return 1\n')
    supervisor()
    assert lf(home, "start", "Slow", "--id", "first").returncode == 0
    wait_for(lambda: any(r["type"] == "ActivityStarted" for r in history_records(home, "first")), what="first runs")
    assert lf(home, "start", "Slow", "--id", "second").returncode == 0
    wait_for(lambda: any(r["type"] == "ActivityQueued" for r in history_records(home, "second")), what="queued")
    shown = json.loads(lf(home, "inspect", "second", "--json").stdout)
    assert [s["status"] for s in shown["steps"]] == ["queued"]
    assert lf(home, "cancel", "first").returncode == 0  # its room frees: the waiting one starts
    wait_for(lambda: any(r["type"] == "ActivityStarted" for r in history_records(home, "second")), what="second runs")
    assert lf(home, "cancel", "second").returncode == 0
