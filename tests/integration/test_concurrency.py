"""Many `lf start` processes at once: every one gets a valid, distinct workflow."""

import subprocess
import sys

from conftest import history_records, lf_json


def test_twenty_concurrent_starts_make_twenty_valid_workflows(home):
    procs = [
        subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "start", "PurchaseFlow",
                          "-i", f"order_id=O-{n}"], cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for n in range(20)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    assert len(set(ids)) == 20
    rows = lf_json(home, "list", "--limit", "0")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    orders = set()
    for workflow_id in ids:
        [first] = history_records(home, workflow_id)
        assert first["type"] == "WorkflowStarted" and first["seq"] == 1
        orders.add(first["input"]["order_id"])
    assert orders == {f"O-{n}" for n in range(20)}


def test_concurrent_starts_with_the_same_id_create_exactly_one(home):
    procs = [
        subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "start", "PurchaseFlow",
                          "--id", "same"], cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes.count(0) == 1
    assert len(history_records(home, "same")) == 1
