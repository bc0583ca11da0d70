"""Schedules end to end: the real `lf schedule` CLI and a real `lf supervise` process."""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime, timedelta, timezone

from conftest import lf, lf_json, wait_for, write_flow

from localflow.core.timefmt import from_iso, to_iso
from localflow.schedules import parse_spec, slots_to_start

QUICK = 'flow Quick\n  input who = "sched"\n  step hello:\n    run ["echo", who]\n  return hello.result\n'


def run_ids(home, name: str) -> list[str]:
    root = home / "var" / "workflows"
    return sorted(p.name for p in root.iterdir() if p.name.startswith(f"{name}-")) if root.is_dir() else []


def slot_of(workflow_id: str) -> int:
    stamp = workflow_id.rsplit("-", 1)[1]
    fmt = "%Y%m%dT%H%M%SZ" if len(stamp) == 16 else "%Y%m%dT%H%MZ"
    return int(datetime.strptime(stamp, fmt).replace(tzinfo=timezone.utc).timestamp() * 1000)


def add(home, *args: str):
    done = lf(home, "schedule", "add", *args)
    assert done.returncode == 0, done.stderr
    return done


def test_add_checks_the_flow_the_input_and_the_expression(home):
    write_flow(home, "Quick", QUICK)
    assert lf(home, "schedule", "add", "s", "Nope", "--cron", "* * * * *").returncode == 5
    bad_input = lf(home, "schedule", "add", "s", "Quick", "--cron", "* * * * *", "-i", "whom=1")
    assert bad_input.returncode == 2 and "unknown input 'whom'" in bad_input.stderr
    bad_cron = lf(home, "schedule", "add", "s", "Quick", "--cron", "61 * * * *")
    assert bad_cron.returncode == 2 and "out of range 0-59" in bad_cron.stderr
    bad_name = lf(home, "schedule", "add", "../x", "Quick", "--cron", "* * * * *")
    assert bad_name.returncode == 2 and "invalid schedule name" in bad_name.stderr
    write_flow(home, "Broken", "flow Broken\n  step x:\n    run [\n")
    assert lf(home, "schedule", "add", "s", "Broken", "--cron", "* * * * *").returncode == 2
    assert lf_json(home, "schedule", "list") == []

    done = add(home, "s", "Quick", "--cron", "0 3 * * *", "-i", "who=ann")
    assert "next slot" in done.stdout and "no supervisor is running" in done.stderr
    again = lf(home, "schedule", "add", "s", "Quick", "--cron", "0 3 * * *")
    assert again.returncode == 6 and "already exists" in again.stderr
    (row,) = lf_json(home, "schedule", "list")
    assert row["name"] == "s" and row["input"] == {"who": "ann"} and row["catch_up"] == "last"
    assert row["next_run"] == "s-" + row["next_slot"][:10].replace("-", "") + "T0300Z"
    assert lf(home, "schedule", "list").stdout.count("0 3 * * *") == 1


def test_slots_run_once_each_across_a_kill_9_restart(home, supervisor):
    write_flow(home, "Quick", QUICK)
    add(home, "tick", "Quick", "--cron", "@every 1s", "--catch-up", "all")
    first = supervisor()
    wait_for(lambda: len(run_ids(home, "tick")) >= 3, what="three slots", timeout=30)
    first.stop(signal.SIGKILL)
    time.sleep(2.5)  # slots fall while nothing runs
    second = supervisor()
    before = len(run_ids(home, "tick"))
    wait_for(lambda: len(run_ids(home, "tick")) >= before + 5, what="five more slots", timeout=30)
    second.stop()

    ids = run_ids(home, "tick")
    slots = [slot_of(i) for i in ids]
    assert slots == list(range(slots[0], slots[-1] + 1000, 1000)), ids  # no slot skipped, none twice
    logs = first.output() + second.output()
    for workflow_id in ids:
        assert logs.count(f"started {workflow_id} ") <= 1, workflow_id
    state = lf_json(home, "schedule", "list")[0]
    assert state["last_run"] == ids[-1]
    assert "Traceback" not in logs


def _missed_daily(home, name: str, policy: str, at: datetime) -> tuple[str, list[int]]:
    """A daily schedule at a time two hours before ``at``, started 5 days before: 5 missed slots, none on time.
    (``at`` is one moment for all the schedules of a test: taken anew, it may fall in the next minute.)"""
    when = at - timedelta(hours=2)
    cron = f"{when.minute} {when.hour} * * *"
    start = to_iso(int((at - timedelta(days=5)).timestamp() * 1000))
    add(home, name, "Quick", "--cron", cron, "--catch-up", policy, "--start-at", start)
    now = int(time.time() * 1000)
    expected = slots_to_start(parse_spec(cron), policy, None, from_iso(start), now)
    return cron, list(expected.run)


def test_catch_up_policies_after_a_gap(home, supervisor):
    write_flow(home, "Quick", QUICK)
    at = datetime.now(timezone.utc)
    _, none = _missed_daily(home, "gap-none", "none", at)
    _, last = _missed_daily(home, "gap-last", "last", at)
    cron, every = _missed_daily(home, "gap-all", "all", at)
    assert none == [] and len(last) == 1 and len(every) == 5 and last == every[-1:]
    sup = supervisor()
    wait_for(lambda: len(run_ids(home, "gap-all")) == 5 and len(run_ids(home, "gap-last")) == 1,
             what="catch-up runs")
    wait_for(lambda: "gap-none: 5 missed slot(s) not started (catch-up none)" in sup.output(), what="none logged")
    assert run_ids(home, "gap-none") == []
    assert [slot_of(i) for i in run_ids(home, "gap-all")] == every
    assert [slot_of(i) for i in run_ids(home, "gap-last")] == last
    rows = {r["name"]: r for r in lf_json(home, "schedule", "list")}
    assert from_iso(rows["gap-none"]["done_through"]) == every[-1] and rows["gap-none"]["last_run"] is None
    assert rows["gap-all"]["last_run"] == run_ids(home, "gap-all")[-1]
    wait_for(lambda: all(r["status"] == "completed" for r in lf_json(home, "list", "--limit", "0")),
             what="runs completed")

    # faking a gap by hand: the state says the last slot dealt with was long ago
    sup.stop()
    path = home / "var/schedules/gap-all.json"
    data = json.loads(path.read_text())
    data["done_through"] = to_iso(every[1])  # slots 3..5 again: they exist, so none is doubled
    path.write_text(json.dumps(data))
    sup = supervisor()
    wait_for(lambda: sup.output().count("already has its workflow") == 3, what="existing slots noticed")
    assert len(run_ids(home, "gap-all")) == 5


def test_pause_resume_and_delete_reach_a_running_supervisor(home, supervisor):
    write_flow(home, "Quick", QUICK)
    sup = supervisor()
    add(home, "beat", "Quick", "--cron", "@every 1s")
    wait_for(lambda: run_ids(home, "beat"), what="a first slot")
    assert lf(home, "schedule", "pause", "beat").returncode == 0
    time.sleep(0.3)
    paused_at, count = time.time(), len(run_ids(home, "beat"))
    time.sleep(2.5)
    assert len(run_ids(home, "beat")) <= count + 1  # at most a slot already being started when it paused
    count = len(run_ids(home, "beat"))
    (row,) = lf_json(home, "schedule", "list")
    assert row["paused"] is True and row["next_slot"] is None
    assert "paused" in lf(home, "schedule", "list").stdout

    resumed = lf(home, "schedule", "resume", "beat")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    resumed_at = time.time()
    wait_for(lambda: len(run_ids(home, "beat")) >= count + 2, what="slots after resume")
    new = [slot_of(i) for i in run_ids(home, "beat")[count:]]
    assert min(new) >= int(resumed_at) * 1000 - 1000  # the paused slots were skipped, not caught up
    assert not any(paused_at * 1000 + 1000 < s < resumed_at * 1000 - 1000 for s in new)

    assert lf(home, "schedule", "delete", "beat").returncode == 0
    time.sleep(0.5)
    count = len(run_ids(home, "beat"))
    time.sleep(2.5)
    assert len(run_ids(home, "beat")) == count
    assert lf_json(home, "schedule", "list") == []
    missing = lf(home, "schedule", "delete", "beat")
    assert missing.returncode == 5 and "no schedule 'beat'" in missing.stderr
    assert sup.process.poll() is None and "Traceback" not in sup.output()


def test_a_corrupt_schedule_file_does_not_stop_the_supervisor(home, supervisor):
    write_flow(home, "Quick", QUICK)
    schedules = home / "var" / "schedules"
    schedules.mkdir(parents=True)
    (schedules / "broken.json").write_text('{"localflow_schedule": 1, "name": "broken", "cron": "* * *"')
    sup = supervisor()
    add(home, "ok", "Quick", "--cron", "@every 1s")
    wait_for(lambda: run_ids(home, "ok"), what="the good schedule runs")
    wait_for(lambda: re.search(r"schedule broken: skipped: .*var/schedules/broken\.json", sup.output()),
             what="the corrupt file named")
    listed = lf(home, "schedule", "list", "--json")
    assert listed.returncode == 0 and [r["name"] for r in json.loads(listed.stdout)] == ["ok"]
    assert "broken.json" in listed.stderr and "warning" in listed.stderr
    (schedules / "broken.json").write_text("[]")  # still broken, differently: said again, once
    wait_for(lambda: "not a JSON object" in sup.output(), what="the new problem named")
    assert sup.output().count("not a JSON object") == 1
    assert sup.process.poll() is None and "Traceback" not in sup.output()
    assert lf(home, "schedule", "delete", "broken").returncode == 0


def test_the_examples_in_docs_schedules_md_run_as_written(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "schedules.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", doc, flags=re.S | re.M)
    assert len(blocks) == 2
    home = tmp_path / "home"
    shutil.copytree(repo / "flows", home / "flows")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "COLUMNS": "200"}
    script = "set -e\n" + "\n".join(blocks)

    done = subprocess.run(["bash", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "schedule tick: started tick-" in done.stdout
    assert "schedule tick paused" in done.stdout and "schedule tick resumed" in done.stdout
    assert '"start_at": "2026-01-01T00:00:00.000Z"' in done.stdout
    assert "Traceback" not in done.stderr
    assert "stopped" in (home / "supervisor.log").read_text()
    assert json.loads((repo / "docs" / "schedules.md").read_text().split("```json\n")[1].split("```")[0])
