"""Every example in flows/examples/ (and the PurchaseSaga) runs under one real supervisor.

The examples are started together and checked one by one, so the module costs
about as long as its slowest example, not the sum.
"""

import json
import shutil
import signal

import pytest

from conftest import alive, REPO, SupervisorProcess, history_records, lf, lf_json, wait_for, write_flow

EXAMPLES = sorted(p.stem for p in (REPO / "flows" / "examples").glob("*.flow") if p.stem != "ChildGreeting")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A home with the repo's flows, a supervisor, and one workflow per example."""
    home = tmp_path_factory.mktemp("examples") / "home"
    shutil.copytree(REPO / "flows", home / "flows")
    sup = SupervisorProcess(home)
    ids = {}
    for name in EXAMPLES:
        done = lf(home, "start", name, "--id", f"ex-{name}")
        assert done.returncode == 0, done.stderr
        ids[name] = done.stdout.strip()
    yield home, ids, sup
    sup.stop(signal.SIGTERM)


def finished(home, workflow_id, timeout=40):
    def state():
        details = lf_json(home, "inspect", workflow_id)
        return details if details["status"] in ("completed", "failed", "cancelled") else None
    return wait_for(state, timeout=timeout, what=f"{workflow_id} to finish")


def events(home, workflow_id, type_=None):
    return [r for r in history_records(home, workflow_id) if type_ is None or r["type"] == type_]


def test_every_example_is_started(running):
    home, ids, _ = running
    assert set(ids) == set(EXAMPLES) and len(EXAMPLES) >= 10


def test_branching_takes_the_matching_arm(running):
    home, ids, _ = running
    assert finished(home, ids["Branching"])["result"] == {"amount": 75, "tier": "medium"}
    assert [e["branch"] for e in events(home, ids["Branching"], "BranchChosen")] == ["then1"]


def test_parallel_branches_really_overlap(running):
    home, ids, _ = running
    details = finished(home, ids["ParallelSleeps"])
    assert details["result"] == "both done"
    records = events(home, ids["ParallelSleeps"])
    started = {r["step"]: r["ts"] for r in records if r["type"] == "ActivityStarted"}
    completed = {r["step"]: r["ts"] for r in records if r["type"] == "ActivityCompleted"}
    # each branch's sleep started before the other one finished: they ran at the same time
    assert started["left"] < completed["right"] and started["right"] < completed["left"]
    elapsed = _seconds(records[-1]["ts"]) - _seconds(records[0]["ts"])
    assert elapsed < 1.9, f"two 1s sleeps in parallel took {elapsed:.2f}s"


def _seconds(iso):
    from localflow.core.timefmt import from_iso
    return from_iso(iso) / 1000


def test_race_cancels_the_losers_process(running):
    home, ids, _ = running
    assert finished(home, ids["RaceTimeout"])["result"] == "deadline"
    # the loser is stopped right after the race is decided, so its record may follow the ending
    [failed] = wait_for(lambda: events(home, ids["RaceTimeout"], "ActivityFailed"), what="the loser's record")
    assert failed["step"] == "slow_lookup" and failed["error"]["kind"] == "cancelled"
    [started] = events(home, ids["RaceTimeout"], "ActivityStarted")
    wait_for(lambda: not alive(started["pid"]), timeout=10, what="the losing process to be killed")


def test_loop_runs_each_item_in_order(running):
    home, ids, _ = running
    assert finished(home, ids["LoopItems"])["result"] == ["packed apple", "packed pear", "packed plum"]
    steps = [e["step"] for e in events(home, ids["LoopItems"], "ActivityScheduled")]
    assert steps == ["pack[0]", "pack[1]", "pack[2]"]


def test_parallel_loop_respects_its_bound(running):
    home, ids, _ = running
    assert finished(home, ids["LoopParallel"])["status"] == "completed"
    running_now, peak = 0, 0
    for record in events(home, ids["LoopParallel"]):
        if record["type"] == "ActivityStarted":
            running_now += 1
        elif record["type"] in ("ActivityCompleted", "ActivityFailed"):
            running_now -= 1
        peak = max(peak, running_now)
    assert 2 <= peak <= 3


def test_approval_waits_for_its_signal(running):
    home, ids, _ = running
    workflow_id = ids["Approval"]
    wait_for(lambda: lf_json(home, "inspect", workflow_id)["current_steps"] == ["approval"], what="waiting for approval")
    done = lf(home, "signal", workflow_id, "approve", "--data", '{"approved": true, "by": "ann"}')
    assert done.returncode == 0, done.stderr
    assert finished(home, workflow_id)["result"] == {"approved": True, "by": "ann"}


def test_child_flow_is_a_workflow_of_its_own_linked_both_ways(running):
    home, ids, _ = running
    parent = finished(home, ids["ParentFlow"])
    child_id = f"{ids['ParentFlow']}.greet"
    assert parent["result"] == {"child_said": "hello world", "child_id": child_id}
    assert parent["children"] == [{"step": "greet", "workflow_id": child_id, "flow": "ChildGreeting",
                                   "status": "completed"}]
    child = lf_json(home, "inspect", child_id)
    assert child["parent"] == {"workflow_id": ids["ParentFlow"], "step": "greet"}
    assert "child" in lf(home, "inspect", ids["ParentFlow"]).stdout
    assert "parent" in lf(home, "inspect", child_id).stdout


def test_catch_handles_exit_codes_error_types_and_timeouts(running):
    home, ids, _ = running
    assert finished(home, ids["CatchErrors"])["result"] == {
        "stock": "backordered", "payment": "declined: insufficient funds", "speed": "too slow"}


def test_saga_compensates_in_reverse_order_after_a_failure(running):
    home, ids, _ = running
    details = finished(home, ids["SagaRefund"])
    assert details["status"] == "failed" and details["compensated"] == ["book", "hold_seat"]
    undo = [e["step"] for e in events(home, ids["SagaRefund"], "ActivityCompleted") if e["step"].startswith("undo")]
    assert undo == ["undo:book", "undo:hold_seat"]
    assert "compensated" in lf(home, "inspect", ids["SagaRefund"]).stdout


def test_workflow_timeout_stops_running_work(running):
    home, ids, _ = running
    details = finished(home, ids["WorkflowTimeout"])
    assert details["status"] == "failed" and details["error"]["kind"] == "timeout"
    [failed] = wait_for(lambda: events(home, ids["WorkflowTimeout"], "ActivityFailed"), what="the stopped step")
    assert failed["error"]["kind"] == "cancelled"


def test_purchase_saga_completes_when_approved(running):
    home, _, _ = running
    workflow_id = lf(home, "start", "PurchaseSaga", "-i", "order_id=S-1").stdout.strip()
    wait_for(lambda: lf_json(home, "inspect", workflow_id)["current_steps"] == ["approval"], what="saga waiting")
    assert lf(home, "signal", workflow_id, "approve", "--data", '{"approved": true, "by": "ann"}').returncode == 0
    details = finished(home, workflow_id)
    assert details["result"] == {"order": "S-1", "receipt": "RC-S-1", "tracking": "TRK-S-1", "approved_by": "ann"}


def test_purchase_saga_cancelled_refunds_then_releases(running):
    home, _, _ = running
    workflow_id = lf(home, "start", "PurchaseSaga", "-i", "order_id=S-2").stdout.strip()
    wait_for(lambda: lf_json(home, "inspect", workflow_id)["current_steps"] == ["approval"], what="saga waiting")
    assert lf(home, "cancel", workflow_id).returncode == 0
    details = finished(home, workflow_id)
    assert details["status"] == "cancelled" and details["compensated"] == ["charge", "reserve"]
    logs = home / "var/workflows" / workflow_id / "logs"
    assert json.loads((logs / "undo_charge.1.out").read_text()) == {"refunded": "RC-S-2"}
    assert "compensat" in lf(home, "history", workflow_id).stdout


def test_a_rejected_saga_fails_and_compensates(running):
    home, _, _ = running
    workflow_id = lf(home, "start", "PurchaseSaga", "-i", "order_id=S-3").stdout.strip()
    assert lf(home, "signal", workflow_id, "approve", "--data", '{"approved": false, "by": "bob"}').returncode == 0
    details = finished(home, workflow_id)
    assert details["status"] == "failed" and "rejected by bob" in details["error"]["message"]
    assert details["compensated"] == ["charge", "reserve"]


def test_cancelling_a_parent_cancels_its_child(running):
    home, _, _ = running
    write_flow(home, "Waiter", "flow Waiter\n  step w:\n    wait signal never\n  return 1\n")
    write_flow(home, "Holder", "flow Holder\n  step sub:\n    flow Waiter\n  return sub.result\n")
    workflow_id = lf(home, "start", "Holder", "--id", "holder-1").stdout.strip()
    child_id = f"{workflow_id}.sub"
    wait_for(lambda: (home / "var/workflows" / child_id).exists() and
             lf_json(home, "inspect", child_id)["current_steps"] == ["w"], what="child waiting")
    assert lf(home, "cancel", workflow_id).returncode == 0
    assert finished(home, workflow_id)["status"] == "cancelled"
    assert finished(home, child_id)["status"] == "cancelled"


def test_a_signal_sent_before_the_wait_is_buffered(running):
    home, _, _ = running
    write_flow(home, "Late", "flow Late\n  sleep 1s\n  step w:\n    wait signal go\n  return w.result\n")
    workflow_id = lf(home, "start", "Late").stdout.strip()
    assert lf(home, "signal", workflow_id, "go", "--data", "7").returncode == 0
    assert finished(home, workflow_id)["result"] == 7
    types = [r["type"] for r in events(home, workflow_id)]
    assert types.index("SignalReceived") < types.index("TimerFired") < types.index("SignalConsumed")


def test_signal_and_cancel_of_unknown_or_finished_workflows_are_clear_errors(running):
    home, ids, _ = running
    assert lf(home, "signal", "nope", "x").returncode != 0
    finished(home, ids["Branching"])
    done = lf(home, "cancel", ids["Branching"])
    assert done.returncode != 0 and "already completed" in done.stderr and "Traceback" not in done.stderr
    done = lf(home, "signal", ids["Branching"], "x", "--data", "{bad")
    assert done.returncode == 2 and "--data is not valid JSON" in done.stderr


def test_cancel_stops_a_running_activity_and_compensates(running):
    home, _, _ = running
    write_flow(home, "Busy", 'flow Busy\n  step held:\n    run ["echo", "held"]\n    undo ["echo", "freed"]\n'
                             '  step long:\n    run ["sleep", "60"]\n  return 1\n')
    workflow_id = lf(home, "start", "Busy", "--id", "busy-1").stdout.strip()
    started = wait_for(lambda: [e for e in events(home, workflow_id, "ActivityStarted") if e["step"] == "long"],
                       what="the long step running")
    assert lf(home, "cancel", workflow_id).returncode == 0
    details = finished(home, workflow_id)
    assert details["status"] == "cancelled" and details["compensated"] == ["held"]
    [stopped] = [e for e in events(home, workflow_id, "ActivityFailed") if e["step"] == "long"]
    assert stopped["error"]["kind"] == "cancelled"
    assert not alive(started[0]["pid"])
