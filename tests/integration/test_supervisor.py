"""A real `lf supervise` process: runs workflows, reacts to the drop folder, stays alone."""

import json
import signal
from collections import Counter

from conftest import history_records, lf, lf_json, wait_for, workflow_status, write_flow


def test_supervisor_runs_a_started_purchaseflow_to_completion(home, supervisor):
    sup = supervisor()
    done = lf(home, "start", "PurchaseFlow", "--id", "s1")
    assert done.returncode == 0 and "no supervisor" not in done.stderr
    wait_for(lambda: workflow_status(home, "s1") == "completed", what="s1 completed")
    records = history_records(home, "s1")
    assert Counter(r["step"] for r in records if r["type"] == "ActivityCompleted") == {"reserve": 1, "charge": 1}
    assert "s1  completed" in sup.output()
    assert list((home / "var/timers").iterdir()) == []


def test_lf_run_follows_a_running_supervisor(home, supervisor):
    sup = supervisor()
    done = lf(home, "run", "PurchaseFlow", "--id", "f1")
    assert done.returncode == 0, done.stdout
    assert "following: supervisor pid" in done.stdout
    assert "f1  completed" in sup.output()


def test_new_flow_file_dropped_in_starts_one_workflow(home, supervisor):
    sup = supervisor()
    write_flow(home, "Hello", 'flow Hello\n  input who = "drop"\n  step greet:\n    run ["echo", who]\n  return greet.result\n')
    hello = wait_for(lambda: [r for r in lf_json(home, "list") if r["flow"] == "Hello" and r["status"] == "completed"],
                     what="Hello workflow")
    assert len(hello) == 1
    assert "new flow Hello: started workflow" in sup.output()
    assert json.loads((home / "var/registry/Hello.json").read_text())["flow"] == "Hello"


def test_dropped_flow_needing_input_or_not_parsing_starts_nothing(home, supervisor):
    sup = supervisor()
    write_flow(home, "Needy", 'flow Needy\n  input who\n  return who\n')
    write_flow(home, "Bad", 'flow Bad\n  step x:\n    run ["true"]\n    retry lots\n')
    wait_for(lambda: "input who has no default" in sup.output(), what="needy logged")
    wait_for(lambda: "flows/Bad.flow:4:" in sup.output(), what="syntax error logged")
    assert lf_json(home, "list") == []


def test_start_json_request_starts_once_and_is_moved_out(home, supervisor):
    sup = supervisor()
    request = home / "flows" / "order-9.start.json"
    tmp = home / "flows" / "order-9.tmp"
    tmp.write_text(json.dumps({"flow": "PurchaseFlow", "input": {"order_id": "R-9", "amount": 9.5}}))
    tmp.rename(request)
    rows = wait_for(lambda: [r for r in lf_json(home, "list") if r["status"] == "completed"], what="request run")
    assert len(rows) == 1
    assert lf_json(home, "inspect", rows[0]["id"])["input"] == {"order_id": "R-9", "amount": 9.5}
    assert not request.exists()
    assert [p.name.endswith("order-9.start.json") for p in (home / "var/requests/done").iterdir()] == [True]
    assert "request order-9.start.json: started workflow" in sup.output()


def test_bad_start_request_is_rejected_with_its_reason(home, supervisor):
    supervisor()
    (home / "flows" / "x.start.json").write_text(json.dumps({"flow": "Nope"}))
    rejected = home / "var/requests/rejected"
    errors = wait_for(lambda: rejected.is_dir() and list(rejected.glob("*.error")), what="rejection")
    assert "unknown flow 'Nope'" in errors[0].read_text()
    assert lf_json(home, "list") == []


def test_only_one_supervisor_per_var(home, supervisor):
    first = supervisor()
    second = lf(home, "supervise", timeout=20)
    assert second.returncode != 0
    assert f"pid {first.process.pid}" in second.stderr and "supervisor.lock" in second.stderr


def test_sigterm_stops_the_supervisor_cleanly(home, supervisor):
    sup = supervisor()
    assert sup.stop(signal.SIGTERM) == 0
    assert "stopped" in sup.output()
    assert not (home / "var/supervisor.json").exists()
    assert supervisor().process.poll() is None  # the lock was released: a new one starts
