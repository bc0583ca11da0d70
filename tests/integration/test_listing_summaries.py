"""`lf list` reads derived summaries, but only ones that provably match their history."""

import json
import os

from conftest import lf, lf_json, wait_for, write_flow

WAITER = "flow Waiter\n  step approval:\n    wait signal approve\n  return approval.result\n"
QUICK = "flow Quick\n  return 7\n"


def _summaries(home):
    return sorted((home / "var" / "workflows").glob("*/summary.json"))


def _some_workflows(home):
    write_flow(home, "Waiter", WAITER)
    write_flow(home, "Quick", QUICK)
    for n in range(3):
        assert lf(home, "start", "Waiter", "--id", f"wait-{n}").returncode == 0
    assert lf(home, "run", "Quick", "--id", "quick").returncode == 0


def test_deleting_every_summary_changes_no_output(home):
    _some_workflows(home)
    folded = lf(home, "list", "--json").stdout
    assert len(_summaries(home)) == 4  # written by the first listing

    from_summaries = lf(home, "list", "--json").stdout
    table_from_summaries = lf(home, "list").stdout
    for path in _summaries(home):
        path.unlink()

    assert lf(home, "list", "--json").stdout == folded == from_summaries
    assert lf(home, "list").stdout == table_from_summaries


def test_a_summary_is_not_used_once_its_history_has_grown(home):
    _some_workflows(home)
    lf(home, "list")
    assert lf(home, "signal", "wait-1", "approve", "--data", "1").returncode == 0

    rows = {r["id"]: r for r in lf_json(home, "list")}

    assert rows["wait-1"]["status"] == "completed"  # the signal was taken and the flow returned it
    assert rows["wait-0"]["status"] == "running"


def test_a_summary_of_a_rewritten_history_of_the_same_size_is_not_used(home):
    _some_workflows(home)
    lf(home, "list")
    summary = home / "var" / "workflows" / "wait-2" / "summary.json"
    stamp = json.loads(summary.read_text())
    stamp["row"]["status"] = "completed"  # a lie that only a stale check would pass on
    summary.write_text(json.dumps(stamp))
    history = home / "var" / "workflows" / "wait-2" / "history.jsonl"
    data = history.read_bytes()
    history.write_bytes(data[:-2] + b" \n")  # same size, another last line: a rewritten file

    done = lf(home, "list", "--json")

    assert done.returncode == 0
    assert "wait-2" not in {r["id"] for r in json.loads(done.stdout)}  # now corrupt: a warning, not a row
    assert "wait-2" in done.stderr and "corrupt" in done.stderr


def test_list_rows_carry_when_and_why_a_workflow_ended(home):
    write_flow(home, "Boom", 'flow Boom\n  fail "no stock"\n')
    lf(home, "run", "Boom", "--id", "boom")

    (row,) = lf_json(home, "list")

    assert row["status"] == "failed" and row["error"] == "no stock" and row["ended"] is not None


def test_a_supervisor_start_skips_finished_workflows_its_summaries_call_settled(home, supervisor):
    write_flow(home, "Quick", QUICK)
    sup = supervisor()
    assert lf(home, "start", "Quick", "--id", "q1").returncode == 0
    wait_for(lambda: (home / "var" / "workflows" / "q1" / "summary.json").exists(), what="the settled summary")
    sup.stop()
    assert json.loads((home / "var" / "workflows" / "q1" / "summary.json").read_text())["settled"] is True
    # Damage the history but keep its stamp (size, inode, mtime): only a read would notice.
    history = home / "var" / "workflows" / "q1" / "history.jsonl"
    info = history.stat()
    data = history.read_bytes()
    history.write_bytes(data.replace(b'"seq":1', b'"seq":9', 1))
    os.utime(history, ns=(info.st_atime_ns, info.st_mtime_ns))

    second = supervisor()
    second.stop()

    assert "q1" not in second.output()  # not read, so not reported
