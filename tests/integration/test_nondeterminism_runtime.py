"""A history that disagrees with its pinned flow is caught where it runs, recorded once, and shown."""

from __future__ import annotations

from pathlib import Path

from conftest import history_records, lf, lf_json, wait_for, write_flow

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "histories"
SWAPPED = "purchaseflow-steps-swapped.nondeterministic.jsonl"
WORKFLOW = "PurchaseFlow-20261125-205552-f18824"


def _plant(home: Path, lines: int = 4) -> Path:
    """The first lines of a history whose pinned flow runs charge before reserve."""
    target = home / "var" / "workflows" / WORKFLOW
    target.mkdir(parents=True)
    data = (GOLDEN / SWAPPED).read_bytes().splitlines(keepends=True)[:lines]
    (target / "history.jsonl").write_bytes(b"".join(data))
    return target


def test_the_supervisor_records_the_divergence_once_and_serves_the_others(home, supervisor):
    _plant(home)
    write_flow(home, "Quick", "flow Quick\n  return 7\n")
    sup = supervisor()

    wait_for(lambda: any(r["type"] == "WorkflowNondeterministic" for r in history_records(home, WORKFLOW)),
             what="the divergence to be recorded")
    assert lf(home, "run", "Quick", "--id", "other").returncode == 0  # the others are served
    assert lf(home, "signal", WORKFLOW, "anything").returncode == 0  # recorded, and nothing follows

    records = history_records(home, WORKFLOW)
    types = [r["type"] for r in records]
    assert types[:4] == ["WorkflowStarted", "ActivityScheduled", "ActivityStarted", "ActivityCompleted"]
    assert types[4:] == ["WorkflowNondeterministic", "SignalReceived"]
    divergence = records[4]
    assert divergence["at"] == 2 and divergence["expected"]["step"] == "charge"
    assert divergence["recorded"]["step"] == "reserve"
    assert sup.output().count("nondeterministic") == 1
    assert "charge" not in "".join(p.name for p in (home / "var" / "workflows" / WORKFLOW).glob("logs/*"))


def test_inspect_and_list_show_it_and_inspect_exits_4(home, supervisor):
    _plant(home)
    supervisor()
    wait_for(lambda: any(r["type"] == "WorkflowNondeterministic" for r in history_records(home, WORKFLOW)),
             what="the divergence to be recorded")

    inspect = lf(home, "inspect", WORKFLOW)
    (row,) = lf_json(home, "list")

    assert inspect.returncode == 4
    assert "nondeterministic" in inspect.stdout and "at seq 2" in inspect.stdout
    assert row["status"] == "nondeterministic" and row["error"] == "nondeterministic at seq 2"


def test_cancel_ends_a_nondeterministic_workflow_without_compensating(home, supervisor):
    _plant(home)
    supervisor()
    wait_for(lambda: any(r["type"] == "WorkflowNondeterministic" for r in history_records(home, WORKFLOW)),
             what="the divergence to be recorded")

    assert lf(home, "cancel", WORKFLOW).returncode == 0

    state = lf_json(home, "inspect", WORKFLOW)
    assert state["status"] == "cancelled"
    assert "not_compensated" in state["error"]
    types = [r["type"] for r in history_records(home, WORKFLOW)]
    assert "CompensationStarted" not in types and "ActivityScheduled" not in types[4:]


def test_a_consistent_history_left_by_a_crash_is_carried_on(home, supervisor):
    """The check replays; it does not reject what the flow itself would have done."""
    done = lf(home, "start", "PurchaseFlow", "--id", "fine")
    assert done.returncode == 0
    supervisor()
    wait_for(lambda: lf_json(home, "inspect", "fine")["status"] == "completed", timeout=60,
             what="the workflow to complete")
    assert not any(r["type"] == "WorkflowNondeterministic" for r in history_records(home, "fine"))


def test_a_history_cut_mid_transaction_by_a_crash_is_carried_on(home, supervisor):
    write_flow(home, "Pure", 'flow Pure\n  set total = 0\n  for n in range(5):\n    set total = total + n\n'
                             '  step show:\n    run ["echo", "done"]\n  return total\n')
    assert lf(home, "run", "Pure", "--id", "p1").returncode == 0
    history = home / "var" / "workflows" / "p1" / "history.jsonl"
    history.write_bytes(b"".join(history.read_bytes().splitlines(keepends=True)[:3]))

    assert lf(home, "replay", "p1").returncode == 0
    supervisor()
    wait_for(lambda: lf_json(home, "inspect", "p1")["status"] == "completed", what="the workflow to complete")
    assert lf_json(home, "inspect", "p1")["result"] == 10
    assert not any(r["type"] == "WorkflowNondeterministic" for r in history_records(home, "p1"))
